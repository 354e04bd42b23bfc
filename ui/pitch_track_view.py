"""The pitch track: the tracker's fundamental frequency (Hz) over time, voiced frames only
(unvoiced frames are NaN, so the curve breaks there instead of diving to 0 Hz)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from percepnet.dsp.constants import HOP_SIZE, SAMPLE_RATE_HZ

from .plot_style import PITCH_COLOR, static_plot
from .scroll_buffer import ScrollBuffer

__all__ = ["PitchTrackView", "PITCH_RANGE_HZ"]

FRAME_S = HOP_SIZE / SAMPLE_RATE_HZ
#: y range shown: speech fundamentals (the tracker searches 62.5-800 Hz)
PITCH_RANGE_HZ = (50.0, 450.0)


class PitchTrackView(pg.PlotWidget):
    def __init__(self, title: str = "Pitch (voiced frames)", *, seconds: float = 3.0,
                 parent=None) -> None:
        super().__init__(parent=parent)
        n = max(2, int(round(seconds / FRAME_S)))
        self.buffer = ScrollBuffer(n, (), fill=np.nan)
        self.x = (np.arange(n, dtype=np.float64) - (n - 1)) * FRAME_S  # -span .. 0 s
        plot = static_plot(self.getPlotItem())
        plot.setTitle(title, size="9pt")
        plot.setLabel("left", "Hz")
        plot.setLabel("bottom", "s")
        plot.showGrid(y=True, alpha=0.2)
        # a line through consecutive voiced frames plus a dot on each (a voiced frame
        # between two unvoiced ones has no line segment to show it)
        self.curve = plot.plot(self.x, self.buffer.view(), pen=pg.mkPen(PITCH_COLOR, width=2),
                               connect="finite")
        self.dots = pg.ScatterPlotItem(size=4, pen=None, brush=PITCH_COLOR)
        plot.addItem(self.dots)
        plot.setXRange(self.x[0], 0.0, padding=0)
        plot.setYRange(*PITCH_RANGE_HZ, padding=0)
        self._dirty = False
        self._scratch = np.zeros(0, dtype=np.float32)
        self.voiced_received = 0  # voiced frames seen so far

    def push_pitch(self, pitch_hz: np.ndarray) -> None:
        """Append per-frame pitch values; values <= 0 (unvoiced) become gaps."""
        n = pitch_hz.shape[0]
        if n == 0:
            return
        if self._scratch.shape[0] < n:
            self._scratch = np.zeros(max(n, 64), dtype=np.float32)
        s = self._scratch[:n]
        s[:] = pitch_hz
        unvoiced = ~(s > 0.0)
        self.voiced_received += n - int(np.count_nonzero(unvoiced))
        s[unvoiced] = np.nan
        self.buffer.push(s)
        self._dirty = True

    def refresh(self) -> bool:
        if not self._dirty:
            return False
        self._dirty = False
        y = self.buffer.view()
        self.curve.setData(self.x, y, connect="finite")
        voiced = np.isfinite(y)
        self.dots.setData(self.x[voiced], y[voiced])
        return True

    def points(self) -> np.ndarray:
        """The finite pitch values shown now (Hz)."""
        v = np.array(self.buffer.view())
        return v[np.isfinite(v)]
