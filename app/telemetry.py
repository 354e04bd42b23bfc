"""Telemetry from the audio thread to the UI: preallocated single-producer/single-consumer
rings.

The audio callback is the only writer and writes one row per 10 ms frame (slice assignment
into preallocated float32 arrays, then one counter increment). The UI thread is the only
reader: :meth:`FrameRing.read_new` copies the rows written since its last call. Nothing is
locked; a reader that falls more than ``capacity`` rows behind simply loses the oldest rows
(it gets the newest ``capacity``). The counter is a 1-element int64 array written after the
row, so a reader never sees a row before it is complete (CPython's GIL orders the two
stores as seen by another Python thread).
"""
from __future__ import annotations

import numpy as np

from percepnet.dsp.constants import N_BANDS, N_BINS

__all__ = ["FrameRing", "Telemetry", "SCALAR_FIELDS"]

#: Columns of the per-frame scalar ring.
SCALAR_FIELDS = ("pitch_hz", "voicing", "speech_presence", "input_db", "output_db",
                 "processing_us", "bypass", "silent")


class FrameRing:
    """``capacity`` rows of ``width`` float32 values; SPSC, lock-free."""

    def __init__(self, capacity: int, width: int) -> None:
        self.capacity = int(capacity)
        self.width = int(width)
        self.data = np.zeros((self.capacity, self.width), dtype=np.float32)
        self.written = np.zeros(1, dtype=np.int64)  # total rows ever written

    # producer side (audio thread) -------------------------------------------------
    def slot(self) -> np.ndarray:
        """The row the next :meth:`commit` publishes (write into it first)."""
        return self.data[self.written[0] % self.capacity]

    def commit(self) -> None:
        self.written[0] += 1

    def push(self, row) -> None:
        self.data[self.written[0] % self.capacity, :] = row
        self.written[0] += 1

    # consumer side (UI thread) ----------------------------------------------------
    def read_new(self, last: int) -> tuple[np.ndarray, int]:
        """Rows written after row count ``last`` (oldest first) and the new count."""
        end = int(self.written[0])
        start = max(last, end - self.capacity + 1)  # keep one row of margin for the writer
        if start >= end:
            return np.zeros((0, self.width), dtype=np.float32), end
        idx = np.arange(start, end) % self.capacity
        return self.data[idx].copy(), end

    def latest(self, n: int = 1) -> np.ndarray:
        end = int(self.written[0])
        n = min(n, end, self.capacity - 1)
        if n <= 0:
            return np.zeros((0, self.width), dtype=np.float32)
        return self.data[np.arange(end - n, end) % self.capacity].copy()


class Telemetry:
    """All rings the window reads; one row per 10 ms frame in each.

    - ``spec_in`` / ``spec_out``: (481,) dB spectra of the input (delayed by the algorithmic
      delay so it lines up with the output) and of the output, 50 Hz bins, 0-24 kHz;
    - ``gains`` / ``strengths``: (34,) effective band gains and comb strengths;
    - ``bands_in`` / ``bands_out``: (34,) band levels in dB;
    - ``scalars``: see :data:`SCALAR_FIELDS`.
    """

    def __init__(self, capacity: int = 512) -> None:
        self.spec_in = FrameRing(capacity, N_BINS)
        self.spec_out = FrameRing(capacity, N_BINS)
        self.gains = FrameRing(capacity, N_BANDS)
        self.strengths = FrameRing(capacity, N_BANDS)
        self.bands_in = FrameRing(capacity, N_BANDS)
        self.bands_out = FrameRing(capacity, N_BANDS)
        self.scalars = FrameRing(capacity, len(SCALAR_FIELDS))

    @staticmethod
    def field(name: str) -> int:
        return SCALAR_FIELDS.index(name)
