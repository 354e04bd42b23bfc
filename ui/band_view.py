"""The network's outputs per ERB band: 34 band gains and 34 comb (pitch-filter) strengths,
now as bars and over time as scrolling heatmaps."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import QRectF

from percepnet.dsp.bands import BAND_EDGES
from percepnet.dsp.constants import HOP_SIZE, N_BANDS, SAMPLE_RATE_HZ

from .plot_style import GAIN_COLOR, NOT_APPLIED_COLOR, STRENGTH_COLOR, colormap, static_plot
from .scroll_buffer import ScrollBuffer

__all__ = ["BandBarsView", "BandHeatmapView", "band_ticks"]

FRAME_S = HOP_SIZE / SAMPLE_RATE_HZ
#: each band's centre (its triangle's peak), Hz
BAND_CENTRES_HZ = np.asarray(BAND_EDGES, dtype=float) * (SAMPLE_RATE_HZ / 960.0)


def band_ticks(freqs_hz=(250, 500, 1000, 2000, 4000, 8000, 16000)) -> list[tuple[float, str]]:
    """Axis ticks at the bands closest to ``freqs_hz``, labelled in Hz/kHz."""
    ticks = []
    for f in freqs_hz:
        i = int(np.argmin(np.abs(BAND_CENTRES_HZ - f)))
        ticks.append((float(i), f"{f // 1000}k" if f >= 1000 else str(f)))
    return ticks


class BandBarsView(pg.PlotWidget):
    """The latest frame: band gains (0..1, green) and comb strengths (0..1, amber) side by
    side for each of the 34 bands."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent=parent)
        plot = static_plot(self.getPlotItem())
        self._plot = plot
        self.gains_applied = True
        self.comb_applied = True
        self.title = ""
        self._set_title()
        x = np.arange(N_BANDS, dtype=float)
        self.gains = np.zeros(N_BANDS)
        self.strengths = np.zeros(N_BANDS)
        self.gain_bars = pg.BarGraphItem(x=x - 0.2, height=self.gains, width=0.4,
                                         brush=GAIN_COLOR, pen=None, name="gain")
        self.strength_bars = pg.BarGraphItem(x=x + 0.2, height=self.strengths, width=0.4,
                                             brush=STRENGTH_COLOR, pen=None, name="comb")
        plot.addItem(self.gain_bars)
        plot.addItem(self.strength_bars)
        plot.setXRange(-0.7, N_BANDS - 0.3, padding=0)
        plot.setYRange(0.0, 1.05, padding=0)
        plot.getAxis("bottom").setTicks([band_ticks()])
        plot.setLabel("bottom", "band (Hz)")
        self.updates = 0

    def _set_title(self) -> None:
        def entry(color: str, name: str, applied: bool, why: str) -> str:
            if applied:
                return f"<span style='color:{color}'>■</span> {name}"
            return (f"<span style='color:{NOT_APPLIED_COLOR}'>■ {name} "
                    f"(not applied: {why})</span>")
        self.title = (entry(GAIN_COLOR, "band gains", self.gains_applied, "suppression off")
                      + ", " + entry(STRENGTH_COLOR, "comb strengths", self.comb_applied,
                                     "comb filter off") + " (now)")
        self._plot.setTitle(self.title, size="9pt")

    def set_applied(self, gains: bool, comb: bool) -> None:
        """Draw what the chain does not apply in grey, and say so in the title."""
        if (gains, comb) == (self.gains_applied, self.comb_applied):
            return
        self.gains_applied, self.comb_applied = gains, comb
        self.gain_bars.setOpts(brush=GAIN_COLOR if gains else NOT_APPLIED_COLOR)
        self.strength_bars.setOpts(brush=STRENGTH_COLOR if comb else NOT_APPLIED_COLOR)
        self._set_title()

    def set_frame(self, gains: np.ndarray, strengths: np.ndarray) -> None:
        """Show one frame: ``gains`` and ``strengths`` are (34,) in 0..1."""
        np.clip(gains, 0.0, 1.0, out=self.gains)
        np.clip(strengths, 0.0, 1.0, out=self.strengths)
        self.gain_bars.setOpts(height=self.gains)
        self.strength_bars.setOpts(height=self.strengths)
        self.updates += 1


class BandHeatmapView(pg.PlotWidget):
    """One value per band over time (band on y, time on x, newest at 0 s)."""

    def __init__(self, title: str, *, seconds: float = 3.0, levels=(0.0, 1.0),
                 cmap: str = "viridis", parent=None) -> None:
        super().__init__(parent=parent)
        self.levels = levels
        n = max(2, int(round(seconds / FRAME_S)))
        self.buffer = ScrollBuffer(n, (N_BANDS,), fill=levels[0])
        plot = static_plot(self.getPlotItem())
        self._plot, self.base_title, self.not_applied = plot, title, ""
        plot.setTitle(title, size="9pt")
        plot.setLabel("bottom", "s")
        self.image = pg.ImageItem(axisOrder="col-major")
        self.image.setColorMap(colormap(cmap))
        self.image.setImage(self.buffer.view(), autoLevels=False, levels=levels)
        span = n * FRAME_S
        self.image.setRect(QRectF(-span, -0.5, span, N_BANDS))
        plot.addItem(self.image)
        plot.setXRange(-span, 0.0, padding=0)
        plot.setYRange(-0.5, N_BANDS - 0.5, padding=0)
        plot.getAxis("left").setTicks([band_ticks((250, 1000, 4000, 16000))])
        self._dirty = False

    def set_not_applied(self, why: str) -> None:
        """``why`` non-empty: the values are computed but not applied (dimmed, and the
        title says why); "" when they are."""
        if why == self.not_applied:
            return
        self.not_applied = why
        self.image.setOpacity(0.3 if why else 1.0)
        title = self.base_title if not why else (
            f"{self.base_title} <span style='color:{NOT_APPLIED_COLOR}'>(not applied: "
            f"{why})</span>")
        self._plot.setTitle(title, size="9pt")

    def push_rows(self, rows: np.ndarray) -> None:
        if rows.shape[0]:
            self.buffer.push(rows)
            self._dirty = True

    def refresh(self) -> bool:
        if not self._dirty:
            return False
        self._dirty = False
        self.image.setImage(self.buffer.view(), autoLevels=False, levels=self.levels)
        return True
