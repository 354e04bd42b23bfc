""""Listen to myself": a second output stream that plays the processed voice on the user's
speakers while the main output is the virtual microphone.

The audio callback writes each processed block into a single-producer / single-consumer
ring (:meth:`MonitorOutput.feed`); the monitor stream's own callback reads it, keeping at
most 60 ms of backlog. Neither side locks or allocates: the two counters are one-element
arrays each written by one thread only.
"""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np

from percepnet.dsp.blockops import ring_write
from percepnet.dsp.constants import SAMPLE_RATE_HZ

from .engine_core import BLOCK_SIZE
from .stream_routing import close_quietly

__all__ = ["MonitorOutput", "MONITOR_RING", "MONITOR_TARGET_LAG", "MONITOR_MAX_LAG"]

log = logging.getLogger("percepnet.engine")

#: Ring of the processed output: 0.5 s (samples).
MONITOR_RING = SAMPLE_RATE_HZ // 2
#: Backlog the monitor settles at after catching up: 2 blocks = 20 ms (samples).
MONITOR_TARGET_LAG = 2 * BLOCK_SIZE
#: Backlog above which the monitor skips ahead: 6 blocks = 60 ms (samples).
MONITOR_MAX_LAG = 6 * BLOCK_SIZE


class MonitorOutput:
    """The ring and the monitor stream. ``enabled`` is read by the audio thread;
    :meth:`open` / :meth:`close` run on the engine's control side (under its lock)."""

    def __init__(self) -> None:
        self.enabled = False
        self.stream = None
        self._ring = np.zeros(MONITOR_RING, dtype=np.float64)
        self._written = np.zeros(1, dtype=np.int64)  # audio thread only
        self._read = np.zeros(1, dtype=np.int64)  # monitor callback only

    # ------------------------------------------------------------------ audio side
    def feed(self, block: np.ndarray) -> None:
        """Audio thread: append the processed block (float64, 1-D). No allocation, no lock."""
        if self.enabled:
            w = self._written[0]
            ring_write(self._ring, w % MONITOR_RING, block)
            self._written[0] = w + block.shape[0]

    def callback(self, outdata, frames, time_info, status) -> None:
        """The monitor stream's callback: what was fed, or silence while nothing new came."""
        r = self._read[0]
        avail = self._written[0] - r
        if avail > MONITOR_MAX_LAG:  # fell behind (clock drift, start-up): catch up
            r = self._written[0] - MONITOR_TARGET_LAG
            avail = MONITOR_TARGET_LAG
        m = min(frames, avail)
        start = r % MONITOR_RING
        first = min(m, MONITOR_RING - start)
        outdata[:first, 0] = self._ring[start:start + first]
        outdata[first:m, 0] = self._ring[:m - first]
        outdata[m:, 0] = 0.0  # nothing new yet: silence on the monitor only
        self._read[0] = r + m

    # ------------------------------------------------------------------ control side
    def enable(self) -> None:
        self._read[0] = self._written[0]  # start from now, not from old audio
        self.enabled = True

    def open(self, make_stream: Callable[[Callable], object]) -> str:
        """Open and start the stream (``make_stream(callback)`` builds it); "" on success,
        else the warning to show (the main path keeps running either way)."""
        try:
            self.stream = make_stream(self.callback)
            self.stream.start()
            return ""
        except Exception as exc:  # noqa: BLE001 - the main path keeps running
            self.stream = None
            log.warning("listen-to-myself output failed: %s", exc)
            return f"listen-to-myself unavailable: {exc}"

    def close(self) -> None:
        st, self.stream = self.stream, None
        close_quietly(st)
