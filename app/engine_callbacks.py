"""The engine's audio-thread side: the PortAudio callbacks and the pacing thread.

:class:`AudioThread` is mixed into :class:`percepnet.app.engine.Engine`, which owns the state
these methods use (``core``, ``_adapter``, ``_pipe``, ``_mon``, ``_demo``, the counters). Each
callback has the real-time contract: no array allocation, no lock, no logging, no Qt; the
block itself is processed by :class:`~percepnet.app.engine_core.EngineCore`, which never
raises and passes the input through (40 ms late) on its own errors; an error in the
bookkeeping around it is counted, never raised into PortAudio (which would stop the stream).

- :meth:`AudioThread._callback`: a duplex stream (input device -> output device);
- :meth:`AudioThread._pipe_callback`: an input-only stream whose output goes into the FIFO of
  a pipe-source microphone (:class:`~percepnet.app.mic_pipe.MicPipe`);
- :meth:`AudioThread._demo_callback`: the demo clip into an output stream;
- :meth:`AudioThread._pace`: the demo clip with no output device, or into the microphone's
  FIFO, on a thread paced at the block rate.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from percepnet.dsp.constants import SAMPLE_RATE_HZ

from .engine_core import BLOCK_SIZE

__all__ = ["AudioThread", "STARTUP_GRACE_S", "LATE_FRACTION"]

#: Xruns and late callbacks in the first second after a stream starts are start-up noise
#: (the sound server fills its buffers), counted apart.
STARTUP_GRACE_S = 1.0
#: A callback that takes longer than this share of its block period is "late".
LATE_FRACTION = 0.8


class AudioThread:
    """The callbacks of :class:`percepnet.app.engine.Engine` (module docstring)."""

    def _note_status(self, status) -> None:
        if not status:
            return
        if time.monotonic() - self._stream_started < STARTUP_GRACE_S:
            self.xruns_startup += 1
            return
        self.xruns += 1
        if status.input_overflow:
            self.input_overflows += 1
        if status.output_underflow:
            self.output_underflows += 1

    def _after_block(self, frames: int, t_start: float, time_info=None) -> None:
        now = time.monotonic()
        self._last_callback = now
        self._callbacks_since_open += 1
        if not self._timing_clean and now - self._stream_started > STARTUP_GRACE_S:
            self._timing_clean = True
            self.core.reset_timing()  # start-up callbacks do not count toward p50/p99
        if (time.perf_counter() - t_start) > LATE_FRACTION * frames / self._rate \
                and now - self._stream_started > STARTUP_GRACE_S:
            self.late_callbacks += 1
        if time_info is not None:
            self._latency.record(time_info)

    def _callback(self, indata, outdata, frames, time_info, status) -> None:
        """The duplex stream's callback (PortAudio's thread). Real-time contract: no array
        allocation, no lock, no logging, no Qt. The block itself is processed by the core,
        which never raises and passes the input through (40 ms late) on its own errors; an
        error in the bookkeeping around it is counted, never raised into PortAudio (which
        would stop the stream)."""
        t0 = self._begin(status)
        self._process(indata, outdata, frames, t0, time_info)

    def _pipe_callback(self, indata, frames, time_info, status) -> None:
        """The input-only stream's callback of a pipe-source microphone: the output goes into
        the FIFO (whose writer never raises and never waits); the same contract."""
        t0 = self._begin(status)
        self._process(indata, self._pipe_out[:frames], frames, t0, time_info)

    def _begin(self, status) -> float:
        """A callback's start: its clock, and the stream's status flags counted."""
        t0 = time.perf_counter()
        try:
            self._note_status(status)
        except Exception:  # noqa: BLE001
            self.callback_errors += 1
        return t0

    def _process(self, indata, outdata, frames: int, t0: float, time_info) -> None:
        """The block through the core (behind the rate adapter for a device at another
        rate), its 48 kHz output into the microphone's FIFO where there is one and to the
        monitor, then the bookkeeping."""
        ad = self._adapter
        if ad is None:
            self.core.process_block(indata, outdata)
            y = self.core._out[:frames]
        else:  # a device at another rate: converted to 48 kHz and back around the core
            ad.process_block(indata, outdata)
            y = ad.out48[:ad.produced48]
        pipe = self._pipe
        if pipe is not None:
            pipe.write(y)
        try:
            self._mon.feed(y)
            self._after_block(frames, t0, time_info)
        except Exception:  # noqa: BLE001
            self.callback_errors += 1

    def _demo_callback(self, outdata, frames, time_info, status) -> None:
        """The demo's output-only callback; the same contract as :meth:`_callback`."""
        t0 = time.perf_counter()
        try:
            self._note_status(status)
            block = self._demo.next_block(frames)
        except Exception:  # noqa: BLE001
            self.callback_errors += 1
            outdata[:] = 0.0
            return
        self.core.process_block(block, outdata)
        try:
            self._mon.feed(self.core._out[:frames])
            self._after_block(frames, t0)
        except Exception:  # noqa: BLE001
            self.callback_errors += 1

    # ------------------------------------------------------------------ null output
    def _start_pacer(self) -> None:
        self._pacer_stop.clear()
        self._pacer = threading.Thread(target=self._pace, name="percepnet-null-output", daemon=True)
        self._pacer.start()

    def _stop_pacer(self) -> None:
        p, self._pacer = self._pacer, None
        if p is not None:
            self._pacer_stop.set()
            if p is not threading.current_thread():
                p.join(timeout=2.0)

    def _pace(self) -> None:
        out = np.zeros((BLOCK_SIZE, 1), dtype=np.float32)
        period = BLOCK_SIZE / SAMPLE_RATE_HZ
        next_t = time.monotonic()
        while not self._pacer_stop.is_set():
            t0 = time.perf_counter()
            self.core.process_block(self._demo.next_block(BLOCK_SIZE), out)
            if self._pipe is not None:
                self._pipe.write(self.core._out[:BLOCK_SIZE])
            self._mon.feed(self.core._out[:BLOCK_SIZE])
            self._after_block(BLOCK_SIZE, t0)
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                self._pacer_stop.wait(delay)
            elif delay < -0.5:  # fell far behind (machine suspended): resynchronise
                next_t = time.monotonic()
