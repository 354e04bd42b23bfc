"""A fixed-size scrolling history for the views, updated in place without allocating.

The views show the newest ``length`` frames, oldest first. ``np.roll`` would allocate a new
array on every update (30 times a second per view); instead the rows are kept twice, in a
buffer of ``2 * length`` rows where row ``i`` and row ``i + length`` are always equal, so the
newest ``length`` rows in time order are the contiguous slice ``buf[pos:pos + length]`` — a
view, not a copy — for any write position ``pos``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["ScrollBuffer"]


class ScrollBuffer:
    """The newest ``length`` rows of shape ``row_shape`` (float32), oldest first.

    ``fill`` is the value shown before any data arrived (e.g. the dB floor, or NaN for a
    curve that should show nothing yet).
    """

    def __init__(self, length: int, row_shape: tuple[int, ...] = (), fill: float = 0.0) -> None:
        if length < 1:
            raise ValueError("length must be >= 1")
        self.length = int(length)
        self.fill = float(fill)
        self._buf = np.full((2 * self.length, *row_shape), self.fill, dtype=np.float32)
        self._pos = 0  # where the next row goes, in [0, length)
        self.rows_written = 0

    def push(self, rows: np.ndarray) -> int:
        """Append ``rows`` (shape ``(n, *row_shape)``, oldest first); returns ``n``."""
        n = rows.shape[0]
        if n == 0:
            return 0
        self.rows_written += n
        length = self.length
        if n > length:
            rows = rows[n - length:]
        k = rows.shape[0]
        pos = self._pos
        first = min(k, length - pos)
        buf = self._buf
        buf[pos:pos + first] = rows[:first]
        buf[pos + length:pos + length + first] = rows[:first]
        rest = k - first
        if rest:
            buf[:rest] = rows[first:]
            buf[length:length + rest] = rows[first:]
        self._pos = (pos + k) % length
        return n

    def view(self) -> np.ndarray:
        """The newest ``length`` rows, oldest first (a view into the buffer: do not keep it
        across :meth:`push` calls)."""
        return self._buf[self._pos:self._pos + self.length]

    def clear(self) -> None:
        self._buf[:] = self.fill
        self._pos = 0
        self.rows_written = 0
