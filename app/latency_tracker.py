"""The engine's end-to-end delay, measured from the stream's own timestamps, and the
latency re-sync decision.

Each callback records its device round trip (DAC time of the output minus ADC time of the
input, as PortAudio reports them) in a ring (:meth:`LatencyTracker.record`, audio thread, no
allocation). The supervisor reads the ring: the median of recent callbacks is what the user
sees, and :meth:`LatencyTracker.check` says when buffered audio has piled up for long enough
that the stream should be reopened (which drops it).
"""
from __future__ import annotations

import numpy as np

__all__ = ["LatencyTracker", "IO_LATENCY_HISTORY", "RESYNC_GROWTH_MS", "RESYNC_AFTER_S",
           "RESYNC_MAX_WAIT_S", "RESYNC_SETTLE_S"]

#: End-to-end latency is reported as the median of the last 100 callbacks' device round trip
#: (1 s at 10 ms blocks): one callback's timestamps jitter by a block or more when the sound
#: server reschedules, and the median keeps the figure the user reads steady.
IO_LATENCY_HISTORY = 100
#: Re-sync when the round trip stays this much above the lowest the stream has had (ms) ...
RESYNC_GROWTH_MS = 20.0
#: ... for this long (s), at the next quiet moment: a CPU stall or clock drift otherwise
#: leaves the piled-up audio in the sound server's buffers for good (measured 110 -> 228 ms
#: in 7 minutes with a browser recording on a loaded machine).
RESYNC_AFTER_S = 2.0
#: Failing a quiet moment, re-sync anyway after waiting this much longer (s).
RESYNC_MAX_WAIT_S = 5.0
#: A round trip above the requested device latency times this plus the margin below is a
#: backlog from the start (a source that delivered its first second in one burst, as an idle
#: sink's monitor does), not the device's own latency: re-synced once per device choice (a
#: device whose latency really is that high would otherwise be reopened again and again).
CEILING_FACTOR = 2.0
CEILING_MARGIN_MS = 100.0
#: The baseline is taken only after this much running (s): the first second's figures are
#: the sound server filling its buffers.
RESYNC_SETTLE_S = 2.0


class LatencyTracker:
    """Round trips of one stream (reset when a stream opens)."""

    def __init__(self) -> None:
        self._s = np.zeros(IO_LATENCY_HISTORY)  # seconds, ring of recent callbacks
        self._n = 0  # callbacks recorded since the stream opened
        self.baseline_s = 0.0  # the lowest steady round trip of this stream (0: none yet)
        self._grown_since = 0.0  # when the round trip rose above baseline + growth (0: not)
        self._ceiling_used = False  # a start-up backlog was re-synced for this device choice

    def reset(self) -> None:
        """A stream opened (new buffers)."""
        self._n = 0
        self.baseline_s = 0.0
        self._grown_since = 0.0

    def new_choice(self) -> None:
        """The user chose devices: the start-up backlog check applies once again."""
        self.reset()
        self._ceiling_used = False

    def record(self, time_info) -> None:
        """Audio thread: note one callback's round trip (no allocation, no lock). An
        input-only stream (the pipe-source microphone's) has no DAC time: there the figure
        is the input's age when the callback runs (the FIFO's fill is added by the engine)."""
        dac = time_info.outputBufferDacTime
        io = (dac if dac > 0.0 else time_info.currentTime) - time_info.inputBufferAdcTime
        if 0.0 < io < 2.0:  # some hosts report zero timestamps
            n = self._n
            self._s[n % IO_LATENCY_HISTORY] = io
            self._n = n + 1

    def median_s(self, last: int | None = None) -> float:
        """Median round trip (s) of the last ``last`` callbacks (None: all the ring holds);
        0 when fewer than that were recorded."""
        n = min(self._n, IO_LATENCY_HISTORY)
        k = n if last is None else last
        if k == 0 or n < k:
            return 0.0
        idx = (self._n - 1 - np.arange(k)) % IO_LATENCY_HISTORY
        return float(np.median(self._s[idx]))

    def check(self, running_s: float, now: float, quiet: bool, requested_s: float) -> float:
        """Supervisor: the grown round trip (s) when the stream should be re-synced now,
        else 0. ``running_s``: time since the stream opened; ``quiet``: the input is quiet;
        ``requested_s``: the device latency the stream asked for."""
        if running_s < RESYNC_SETTLE_S:
            return 0.0
        io = self.median_s(IO_LATENCY_HISTORY // 2)
        if io <= 0.0:
            return 0.0
        if self.baseline_s == 0.0 or io < self.baseline_s:
            self.baseline_s = io
        ceiling_s = CEILING_FACTOR * requested_s + CEILING_MARGIN_MS / 1000.0
        backlog = not self._ceiling_used and io > ceiling_s
        if io - self.baseline_s <= RESYNC_GROWTH_MS / 1000.0 and not backlog:
            self._grown_since = 0.0
            return 0.0
        if self._grown_since == 0.0:
            self._grown_since = now
            return 0.0
        grown_for = now - self._grown_since
        if grown_for >= RESYNC_AFTER_S and (quiet or grown_for >= RESYNC_AFTER_S
                                             + RESYNC_MAX_WAIT_S):
            if backlog:
                self._ceiling_used = True
            return io
        return 0.0
