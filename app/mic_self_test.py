"""The Linux virtual microphone's self-test: a tone into the sink, read back from the source.

:func:`run_self_test` plays a 0.5 s 1 kHz tone into the null sink and records the remap
source ("PercepNet Microphone") meanwhile; :func:`percepnet.app.virtual_mic.analyse_tone`
judges the recording. ``PulseVirtualMic.self_test`` checks that the microphone is present and
then runs it.

One record path and one play path, both ``pacat`` children (:mod:`percepnet.app.pacat`);
there used to be a second, in-process pair through sounddevice (PortAudio's ALSA ``pulse``
device routed by ``PULSE_SOURCE``/``PULSE_SINK``), taken when pacat was missing. pacat is the
robust one:

- it is a declared runtime dependency (``pulseaudio-utils`` in packaging/system-deps.sh) and
  the keep-alive's default reader already runs it, so it is there wherever the keep-alive
  works as intended;
- it talks to the microphone's own server (``--server``) and device (``--device``); the ALSA
  ``pulse`` device reads only ``$PULSE_SERVER``, so with ``server=`` set the sounddevice path
  tested another server, and its routing went through the process environment (under
  ``ROUTE_ENV_LOCK``, shared with the engine opening its own streams);
- it keeps PortAudio and the ALSA plugin out of the measurement: the test checks the
  sink-to-source chain, and a failed start comes back with pacat's own error message.

Without pacat the self-test fails plainly, saying what to install. The engine's own output
path can still be exercised: a caller-supplied ``play_device_fn`` plays the tone instead.
"""
from __future__ import annotations

import subprocess
import threading
import time

import numpy as np

from percepnet.app.devices import child_env
from percepnet.app.mic_keep_alive import KeepAlive
from percepnet.app.pacat import pacat_argv
from percepnet.app.virtual_mic import (SAMPLE_RATE_HZ, PlayFn, SelfTestResult, analyse_tone,
                                       make_tone)

__all__ = ["run_self_test"]

_CLIENT = "percepnet-self-test"


class _Recorder:
    """Records float32 mono 48 kHz from a source in the background (a ``pacat`` child).

    Raises FileNotFoundError (saying what to install) when pacat is missing."""

    def __init__(self, source: str, server: str | None) -> None:
        self._argv = pacat_argv("record", source, "float32le", 10, _CLIENT, server)
        self._chunks: list[bytes] = []
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._got = threading.Event()
        self._stopped = False

    def start(self) -> None:
        self._proc = subprocess.Popen(self._argv, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      env=child_env())
        self._thread = threading.Thread(target=self._read, daemon=True,
                                        name="percepnet-selftest-rec")
        self._thread.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while True:
            b = self._proc.stdout.read1(65536)
            if not b:
                break
            self._chunks.append(b)
            self._got.set()

    def wait_first_data(self, timeout_s: float) -> bool:
        return self._got.wait(timeout_s)

    def describe_failure(self) -> str:
        if self._proc is not None and self._proc.poll() is not None:
            err = (self._proc.stderr.read() if self._proc.stderr else b"").decode(errors="replace")
            return f"pacat exited {self._proc.returncode}: {err.strip()}"
        return "nothing recorded within the time limit"

    def stop(self) -> np.ndarray:
        if not self._stopped:
            self._stopped = True
            if self._proc is not None:
                self._proc.terminate()
                try:
                    self._proc.wait(2.0)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
                if self._thread is not None:
                    self._thread.join(2.0)
                for f in (self._proc.stdout, self._proc.stderr):
                    if f is not None:
                        f.close()
        data = b"".join(self._chunks)
        data = data[: len(data) // 4 * 4]
        return np.frombuffer(data, dtype="<f4").astype(np.float32)


def _play(samples: np.ndarray, sink: str, server: str | None, timeout_s: float) -> None:
    """Play mono float32 48 kHz samples into ``sink`` (a ``pacat`` child), blocking until
    played."""
    data = np.ascontiguousarray(samples, dtype="<f4")
    proc = subprocess.run(pacat_argv("playback", sink, "float32le", 20, _CLIENT, server),
                          input=data.tobytes(), capture_output=True, timeout=timeout_s + 2.0,
                          env=child_env())
    if proc.returncode != 0:
        raise RuntimeError(f"pacat --playback exited {proc.returncode}: "
                           f"{proc.stderr.decode(errors='replace').strip()}")


def run_self_test(sink_name: str, source_name: str, server: str | None,
                  play_device_fn: PlayFn | None = None, timeout_s: float = 3.0,
                  keep_alive: bool = True) -> SelfTestResult:
    """Play the tone into ``sink_name`` (or through ``play_device_fn``), record
    ``source_name`` meanwhile, and judge the recording. Never raises.

    ``keep_alive``: run a :class:`KeepAlive` on the sink for the test (pass False when one is
    already running): without a low-latency reader on the sink's monitor the first audio can
    take seconds to arrive (the null sink renders in bursts).
    """
    tone = make_tone()
    deadline = time.monotonic() + timeout_s
    try:
        rec = _Recorder(source_name, server)
    except FileNotFoundError as exc:
        return SelfTestResult(False, detail=f"the self-test could not run: {exc}")
    ka = KeepAlive(sink_name, server=server) if keep_alive else None
    try:
        if ka is not None:
            ka.start()
        rec.start()
        if not rec.wait_first_data(min(2.5, max(0.1, deadline - time.monotonic()))):
            return SelfTestResult(False, detail="no audio came from the microphone "
                                  f"({rec.describe_failure()})")
        if play_device_fn is not None:
            play_device_fn(tone, SAMPLE_RATE_HZ)
        else:
            _play(tone, sink_name, server, max(0.5, deadline - time.monotonic()))
        time.sleep(min(0.3, max(0.0, deadline - time.monotonic())))
        recorded = rec.stop()
    except Exception as exc:
        return SelfTestResult(False, detail=f"the self-test could not run: {exc}")
    finally:
        rec.stop()
        if ka is not None:
            ka.stop()
    return analyse_tone(recorded, SAMPLE_RATE_HZ, played=tone)
