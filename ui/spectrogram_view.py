"""Scrolling spectrogram of the input or the output: 481 bins (0-24 kHz, 50 Hz apart), one
column per 10 ms frame, fixed dB colour levels (no auto-levels: a quiet room must look
quiet, not be stretched to full contrast)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PyQt6.QtCore import QRectF

from percepnet.dsp.constants import HOP_SIZE, N_BINS, SAMPLE_RATE_HZ

from .plot_style import colormap, static_plot
from .scroll_buffer import ScrollBuffer

__all__ = ["SpectrogramView", "DEFAULT_LEVELS_DB"]

#: colour scale of the spectrograms, dB (the engine's floor is -120 dB)
DEFAULT_LEVELS_DB = (-100.0, -20.0)
FRAME_S = HOP_SIZE / SAMPLE_RATE_HZ
NYQUIST_KHZ = SAMPLE_RATE_HZ / 2000.0


class SpectrogramView(pg.PlotWidget):
    """Time (s, newest at 0) on x, frequency (kHz) on y; feed it with :meth:`push_rows`
    (rows of 481 dB values) and draw with :meth:`refresh`."""

    def __init__(self, title: str, *, seconds: float = 3.0,
                 levels: tuple[float, float] = DEFAULT_LEVELS_DB, cmap: str = "inferno",
                 colorbar: bool = True, parent=None) -> None:
        super().__init__(parent=parent)
        self.levels = levels
        n = max(2, int(round(seconds / FRAME_S)))
        self.buffer = ScrollBuffer(n, (N_BINS,), fill=levels[0])
        plot = static_plot(self.getPlotItem())
        plot.setTitle(title, size="9pt")
        plot.setLabel("left", "kHz")
        plot.setLabel("bottom", "s")
        self.image = pg.ImageItem(axisOrder="col-major")
        self.image.setColorMap(colormap(cmap))
        self.image.setImage(self.buffer.view(), autoLevels=False, levels=levels)
        span = n * FRAME_S
        bin_khz = NYQUIST_KHZ / (N_BINS - 1)
        # each pixel is centred on its bin: rows span [-bin/2, 24 kHz + bin/2]
        self.image.setRect(QRectF(-span, -bin_khz / 2, span, NYQUIST_KHZ + bin_khz))
        plot.addItem(self.image)
        plot.setXRange(-span, 0.0, padding=0)
        plot.setYRange(0.0, NYQUIST_KHZ, padding=0)
        if colorbar:
            bar = pg.ColorBarItem(values=levels, colorMap=colormap(cmap), interactive=False,
                                  width=12, label="dB", colorMapMenu=False)
            bar.setImageItem(self.image, insert_in=plot)
        self.rows_received = 0
        self._dirty = False

    def push_rows(self, rows: np.ndarray) -> None:
        """Append spectra (n, 481) in dB, oldest first."""
        if rows.shape[0]:
            self.buffer.push(rows)
            self.rows_received += rows.shape[0]
            self._dirty = True

    def refresh(self) -> bool:
        """Redraw if new rows arrived; returns whether it redrew."""
        if not self._dirty:
            return False
        self._dirty = False
        self.image.setImage(self.buffer.view(), autoLevels=False, levels=self.levels)
        return True

    def image_data(self) -> np.ndarray:
        """What the image shows now, (frames, 481) dB, oldest first (a copy)."""
        return np.array(self.buffer.view())
