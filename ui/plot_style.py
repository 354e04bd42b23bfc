"""Shared look of the plots: colours, colormaps, and plots that ignore the mouse."""
from __future__ import annotations

import pyqtgraph as pg
from PyQt6.QtWidgets import QGraphicsItem

__all__ = ["BACKGROUND", "FOREGROUND", "INPUT_COLOR", "OUTPUT_COLOR", "GAIN_COLOR",
           "STRENGTH_COLOR", "PITCH_COLOR", "colormap", "static_plot", "configure"]

BACKGROUND = "#15171c"
FOREGROUND = "#c8ccd4"
INPUT_COLOR = "#8a94a6"
OUTPUT_COLOR = "#4cc38a"
GAIN_COLOR = "#4cc38a"
STRENGTH_COLOR = "#e0a84a"
#: what the chain computes but does not apply (comb filter off, suppression off)
NOT_APPLIED_COLOR = "#5a606b"
PITCH_COLOR = "#f0c04a"

_FALLBACK_STOPS = {
    # a few stops of matplotlib's inferno / viridis, used when pyqtgraph's colormap files are
    # not available (e.g. a frozen bundle that did not collect them)
    "inferno": [(0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66),
                (245, 125, 21), (250, 193, 39), (252, 255, 164)],
    "viridis": [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)],
}


def configure() -> None:
    """Global pyqtgraph options for the window (call once, before creating plots)."""
    pg.setConfigOptions(background=BACKGROUND, foreground=FOREGROUND, antialias=False,
                        imageAxisOrder="col-major")


def colormap(name: str) -> pg.ColorMap:
    """pyqtgraph's bundled colormap ``name`` (e.g. "inferno"), or a built-in approximation."""
    try:
        cmap = pg.colormap.get(name)
        if cmap is not None:
            return cmap
    except Exception:  # noqa: BLE001 - missing data files: fall back below
        pass
    stops = _FALLBACK_STOPS.get(name, _FALLBACK_STOPS["viridis"])
    pos = [i / (len(stops) - 1) for i in range(len(stops))]
    return pg.ColorMap(pos, stops)


def static_plot(plot: pg.PlotItem) -> pg.PlotItem:
    """A plot for live data: no mouse panning/zooming, no context menu, no auto-range."""
    plot.setMouseEnabled(x=False, y=False)
    plot.setMenuEnabled(False)
    plot.hideButtons()
    plot.disableAutoRange()
    # The axes never change, but their ticks reach into the data area, so every data update
    # repaints them (text layout included: ~40 % of the UI's time). Cache them as pixmaps.
    for name in ("left", "bottom", "right", "top"):
        axis = plot.getAxis(name)
        axis.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    return plot
