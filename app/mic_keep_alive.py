"""Keep the virtual microphone's null sink rendering in real time (Linux, PulseAudio/PipeWire).

A null sink that nobody records from is rendered in large bursts, so an output stream writing
to it gets its callbacks in bursts too (measured here: the first ~2 s of a 480-frame output
stream gave 3-6 callbacks/s instead of 100). :class:`KeepAlive` runs a low-latency reader of
``<sink>.monitor`` that throws the data away, which makes the sink run in real time;
:func:`kick_sink` wakes an idle null sink so that the reader's low latency applies at once.

Used by :class:`percepnet.app.virtual_mic_pulse.PulseVirtualMic` (``keep_alive()``), by its
supervisor (:mod:`percepnet.app.mic_supervisor`) and by the self-test
(:mod:`percepnet.app.mic_self_test`).
"""
from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from typing import Any, Callable, Mapping

from percepnet.app.devices import child_env, pulse_client, routed_env
from percepnet.app.pacat import find_pacat, pacat_argv
from percepnet.app.virtual_mic import PULSE_CLIENT_NAME, SAMPLE_RATE_HZ, SINK_NAME

__all__ = ["KeepAlive", "kick_sink"]

log = logging.getLogger("percepnet.app.virtual_mic_pulse")

_KEEP_ALIVE_CLIENT = "percepnet-keep-alive"
#: runs "$@" (pacat) in place of the shell; a background subshell kills it when our end of
#: its stdin pipe closes, which happens whenever this process ends, kill -9 included. (A
#: PR_SET_PDEATHSIG preexec_fn would need preexec_fn, unsafe with threads, and would fire
#: when the *thread* that spawned it ends.)
_TIED_TO_PARENT_SH = 'exec 3<&0; (read _ <&3; kill $$ 2>/dev/null) & exec "$@"'


def kick_sink(pulse, sink_name: str) -> bool:
    """Suspend and resume an idle null sink so it re-arms its render timer at once.

    An idle null sink sleeps for its maximum latency (2 s) between renders and only picks
    up a new, lower requested latency when it wakes: a reader that connects waits up to
    2 s for its first data (measured 2.0 s) unless the sink is kicked (then 0.08 s). Skipped
    (False) while something plays into the sink, which a suspend would interrupt.
    """
    sink = next((s for s in pulse.sink_list() if s.name == sink_name), None)
    if sink is None or any(si.sink == sink.index for si in pulse.sink_input_list()):
        return False
    pulse.sink_suspend(sink.index, 1)
    pulse.sink_suspend(sink.index, 0)
    return True


def _open_routed(stream_factory: Callable[[], Any], env: Mapping[str, str]) -> Any:
    """Open and start a PortAudio stream with ``env`` set (routing for the ALSA plugins)."""
    with routed_env(env):
        stream = stream_factory()
        stream.start()
    return stream


class KeepAlive:
    """Drains ``<sink>.monitor`` at low latency and discards the data (see module docstring).

    ``method``: ``"pacat"`` (a ``pacat --record --latency-msec=10`` child writing to
    /dev/null, tied to this process: it ends when we end, ``kill -9`` included), or
    ``"sounddevice"`` (an in-process ``InputStream`` on the ALSA ``pulse`` device, routed by
    ``PULSE_SOURCE`` while it opens), or ``"auto"`` (pacat when installed). The pacat child
    also ends when the server goes away; :meth:`start` again (the supervisor does).
    """

    def __init__(self, sink_name: str = SINK_NAME, method: str = "auto",
                 server: str | None = None, latency_ms: int = 10) -> None:
        if method not in ("auto", "pacat", "sounddevice"):
            raise ValueError(f"unknown keep-alive method {method!r}")
        self.sink_name, self.server, self.latency_ms = sink_name, server, latency_ms
        self.method = ("pacat" if find_pacat() else "sounddevice") if method == "auto" else method
        self._proc: subprocess.Popen | None = None
        self._stream = None
        self._lock = threading.Lock()

    @property
    def monitor(self) -> str:
        return f"{self.sink_name}.monitor"

    @property
    def running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        if self._stream is not None:
            return bool(self._stream.active)
        return False

    def start(self, kick: bool = True) -> bool:
        """Start (or restart a dead) reader; True when running. Never raises.

        ``kick``: then wake the sink so the low latency applies at once (:func:`kick_sink`;
        skipped while something plays into the sink)."""
        with self._lock:
            if self.running:
                return True
            self._stop_locked()
            try:
                if self.method == "pacat":
                    self._proc = subprocess.Popen(
                        ["sh", "-c", _TIED_TO_PARENT_SH, "sh",
                         *pacat_argv("record", self.monitor, "s16le", self.latency_ms,
                                     _KEEP_ALIVE_CLIENT, self.server)],
                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL, env=child_env())
                else:
                    import sounddevice as sd

                    self._stream = _open_routed(
                        lambda: sd.InputStream(device="pulse", samplerate=SAMPLE_RATE_HZ,
                                               channels=1, dtype="int16", blocksize=480,
                                               latency="low", callback=lambda *a: None),
                        {"PULSE_SOURCE": self.monitor})
            except Exception as exc:
                log.warning("keep-alive on %s could not start: %s", self.monitor, exc)
                self._stop_locked()
                return False
        if kick:
            self._kick()
        return True

    def _kick(self, wait_s: float = 1.0) -> None:
        """Once our reader is connected, kick the sink (:func:`kick_sink`) so the reader's
        low latency applies now rather than after the sink's next 2 s sleep."""
        try:
            server = self.server or os.environ.get("PULSE_SERVER")
            with pulse_client(PULSE_CLIENT_NAME, server) as pulse:
                deadline = time.monotonic() + wait_s
                while time.monotonic() < deadline:
                    # the pacat child is connected when its record stream is listed (the
                    # remap source has its own stream on the monitor, so match the name)
                    if self._proc is None or any(
                            (o.proplist or {}).get("application.name") == _KEEP_ALIVE_CLIENT
                            for o in pulse.source_output_list()):
                        kick_sink(pulse, self.sink_name)
                        return
                    time.sleep(0.02)
        except Exception as exc:
            log.debug("keep-alive kick failed: %s", exc)

    def _stop_locked(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin is not None:
                proc.stdin.close()  # the tie: the watcher subshell kills pacat
            try:
                proc.wait(2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:
                pass

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def __enter__(self) -> "KeepAlive":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
