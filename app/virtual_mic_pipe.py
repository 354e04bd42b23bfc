"""Linux back-end of the virtual microphone on a pipe source (PulseAudio or PipeWire).

One module, on both servers::

    engine callback --write()--> FIFO $XDG_RUNTIME_DIR/percepnet/mic.fifo
        --module-pipe-source--> source "percepnet_mic" ("PercepNet Microphone", mono, 48 kHz)

Against the null sink + remap source of :class:`~percepnet.app.virtual_mic_pulse.
PulseVirtualMic` it has no sink at all (so no app can offer it as a speaker), no output
stream (the engine opens its input only: about 40 ms less delay, measured in
docs/sound-servers.md) and no null sink to keep awake. The server creates the FIFO when the
module loads and removes it when it unloads; the engine writes it through
:class:`~percepnet.app.mic_pipe.MicPipe` (output device ``"pipe:<path>"``, this back-end's
``sink_name``).

It needs the server to open a file of ours: the server must run on this machine, as this
user (a remote ``PULSE_SERVER`` or a sandbox without the runtime directory cannot), which is
when :func:`~percepnet.app.mic_backends.get_backend` falls back to the null-sink chain.
PulseAudio's pipe source has no clock of its own (it posts data as it arrives, so it runs
on the engine's input clock) and gives nothing while nobody writes; PipeWire's reads on its
graph clock and plays silence when the FIFO is short (docs/sound-servers.md).
"""
from __future__ import annotations

import logging
import os
import stat
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from percepnet.app.mic_pipe import PIPE_PREFIX, MicPipe
from percepnet.app.mic_self_test import run_self_test
from percepnet.app.virtual_mic import (
    MIC_DESCRIPTION, SAMPLE_RATE_HZ, SOURCE_NAME, MicStatus, PlayFn, SelfTestResult,
)
from percepnet.app.virtual_mic_pulse import _INVALID_INDEX, PulseVirtualMic, _Chain, module_arg

__all__ = ["PipeVirtualMic", "default_fifo_path"]

log = logging.getLogger(__name__)

_MODULE = "module-pipe-source"


def default_fifo_path() -> str:
    """``$XDG_RUNTIME_DIR/percepnet/mic.fifo`` (per user and login, mode 700), else a
    per-user directory under the temporary directory."""
    base = os.environ.get("XDG_RUNTIME_DIR") or os.path.join(
        tempfile.gettempdir(), f"percepnet-{os.getuid()}")
    return os.path.join(base, "percepnet", "mic.fifo")


class PipeVirtualMic(PulseVirtualMic):
    """The virtual microphone as a pipe source (module docstring). The interface and the
    thread-safety are :class:`PulseVirtualMic`'s; ``sink_name`` is the engine's output
    device, ``"pipe:<fifo>"``."""

    backend = "pulse-pipe"

    def __init__(self, source_name: str = SOURCE_NAME, description: str = MIC_DESCRIPTION,
                 server: str | None = None, remove_at_exit: bool = True,
                 connect_timeout_s: float | None = None, fifo_path: str | None = None) -> None:
        super().__init__(source_name=source_name, description=description, server=server,
                         remove_at_exit=remove_at_exit, connect_timeout_s=connect_timeout_s)
        self.fifo_path = fifo_path or default_fifo_path()
        self.sink_name = PIPE_PREFIX + self.fifo_path

    def source_args(self) -> str:
        return (f"source_name={self.source_name} file={self.fifo_path} format=float32le "
                f"rate={SAMPLE_RATE_HZ} channels=1 "
                f"source_properties=\"device.description='{self.description}'\"")

    # ------------------------------------------------------------------ inspection
    def _inspect(self, pulse) -> _Chain:
        chain = _Chain()
        for m in pulse.module_list():
            if m.name == _MODULE and (module_arg(m.argument, "source_name") == self.source_name
                                      or module_arg(m.argument, "file") == self.fifo_path):
                chain.source_modules.append(m)
        chain.source = next((s for s in pulse.source_list() if s.name == self.source_name), None)
        p = chain.problems
        if chain.source is None:
            p.append(f"source {self.source_name} missing")
        if len(chain.source_modules) != 1:
            p.append(f"{len(chain.source_modules)} pipe-source modules of ours (want 1)")
        else:
            m = chain.source_modules[0]
            if module_arg(m.argument, "file") != self.fifo_path:
                p.append(f"pipe source reads {module_arg(m.argument, 'file')}, "
                         f"not {self.fifo_path}")
            owner = getattr(chain.source, "owner_module", None) if chain.source else None
            if owner not in (None, _INVALID_INDEX) and owner != m.index:
                p.append(f"source {self.source_name} belongs to another module ({owner})")
        if not p and not self._fifo_ok():
            p.append(f"{self.fifo_path} is not the pipe source's FIFO")
        return chain

    def _fifo_ok(self) -> bool:
        try:
            return stat.S_ISFIFO(os.stat(self.fifo_path).st_mode)
        except OSError:
            return False

    def _modules(self) -> list[tuple[str, str]]:
        return [(_MODULE, self.source_args())]

    def _prepare_build(self) -> None:
        """The FIFO's directory (mode 700: the FIFO itself is made world-writable by
        PulseAudio), and no stale FIFO of a crashed server in the way (PulseAudio refuses to
        load over an existing file)."""
        d = Path(self.fifo_path).parent
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            st = os.lstat(self.fifo_path)
        except FileNotFoundError:
            return
        if not stat.S_ISFIFO(st.st_mode):
            raise OSError(f"{self.fifo_path} exists and is not a FIFO; remove it")
        os.unlink(self.fifo_path)

    def _status_on(self, pulse, chain: _Chain | None = None, repaired: bool = False) -> MicStatus:
        st = super()._status_on(pulse, chain, repaired)
        if not st.present:
            return st
        return replace(st, writers=("PercepNet",) if MicPipe.for_path(self.fifo_path).active
                       else ())

    # ------------------------------------------------------------------ the interface
    def output_route(self) -> dict[str, str]:
        return {}

    def keep_alive(self, start: bool = True, method: str = "auto"):
        raise RuntimeError("a pipe source needs no keep-alive")

    def start_supervision(self, interval_s: float = 0.5,
                          on_change: Callable[[MicStatus], None] | None = None,
                          keep_alive: bool = False):
        return super().start_supervision(interval_s=interval_s, on_change=on_change,
                                         keep_alive=False)

    def self_test(self, play_device_fn: PlayFn | None = None,
                  timeout_s: float = 3.0) -> SelfTestResult:
        """A 0.5 s 1 kHz tone through the FIFO, read back from "PercepNet Microphone".

        While the engine writes, the tone is mixed into its blocks (anyone recording hears
        the beep); otherwise a silence writer holds the FIFO for the test. Never raises.
        """
        st = self.status()
        if not st.present:
            return SelfTestResult(False, detail=f"virtual microphone absent: {st.detail}")
        pipe = MicPipe.for_path(self.fifo_path)
        feeder = None if pipe.active else SilenceWriter(pipe)
        try:
            if feeder is not None:
                feeder.start()
            play = play_device_fn or (lambda x, rate: pipe.play(x, timeout_s))
            return run_self_test(None, self.source_name, self.server, play_device_fn=play,
                                 timeout_s=timeout_s, keep_alive=False)
        except Exception as exc:  # noqa: BLE001
            return SelfTestResult(False, detail=f"the self-test could not run: {exc}")
        finally:
            if feeder is not None:
                feeder.stop()


class SilenceWriter:
    """Writes silence into a :class:`MicPipe` every 10 ms from a thread of its own, standing
    in for the engine (the self-test when the engine is not running)."""

    def __init__(self, pipe: MicPipe) -> None:
        self.pipe = pipe
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "SilenceWriter":
        self.pipe.open()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="percepnet-mic-silence")
        self._thread.start()
        deadline = time.monotonic() + 1.0
        while not self.pipe.active and time.monotonic() < deadline:
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        hop = SAMPLE_RATE_HZ // 100
        block = np.zeros(hop, np.float32)
        t = time.monotonic()
        while not self._stop.is_set():
            self.pipe.write(block)
            t += hop / SAMPLE_RATE_HZ
            delay = t - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -0.5:
                t = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        self.pipe.close()
