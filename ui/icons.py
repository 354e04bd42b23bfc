"""The application icon, drawn in code (no image files to package): a green disc with a
waveform that flattens out — noise going quiet."""
from __future__ import annotations

import math

from PyQt6.QtCore import QPointF, Qt
from PyQt6.QtGui import QBrush, QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap

__all__ = ["app_icon"]

_ICON: QIcon | None = None


def _pixmap(size: int) -> QPixmap:
    pm = QPixmap(size, size)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setBrush(QBrush(QColor("#2f9e6b")))
    p.setPen(Qt.PenStyle.NoPen)
    p.drawEllipse(1, 1, size - 2, size - 2)
    path = QPainterPath()
    n = 48
    for i in range(n + 1):
        t = i / n
        x = size * (0.18 + 0.64 * t)
        amp = size * 0.26 * (1.0 - t) ** 1.5
        y = size * 0.5 + amp * math.sin(2 * math.pi * 3.5 * t)
        if i == 0:
            path.moveTo(QPointF(x, y))
        else:
            path.lineTo(QPointF(x, y))
    p.setPen(QPen(QColor("#ffffff"), max(1.5, size / 14), Qt.PenStyle.SolidLine,
                  Qt.PenCapStyle.RoundCap))
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawPath(path)
    p.end()
    return pm


def app_icon() -> QIcon:
    """The icon (cached; needs a QApplication)."""
    global _ICON
    if _ICON is None:
        icon = QIcon()
        for size in (16, 22, 32, 48, 64, 128):
            icon.addPixmap(_pixmap(size))
        _ICON = icon
    return _ICON
