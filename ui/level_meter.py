"""A horizontal peak meter in dBFS with a 1.5 s peak-hold mark, painted directly (cheaper
than a plot for one number at 30 fps), and the "noise removed" readout under the meters."""
from __future__ import annotations

import time

import numpy as np
from PyQt6.QtCore import QRectF, Qt
from PyQt6.QtGui import QColor, QPainter
from PyQt6.QtWidgets import QLabel, QSizePolicy, QWidget

from percepnet.app.telemetry import Telemetry

__all__ = ["LevelMeter", "NoiseRemovedLabel"]

GREEN = QColor("#4cc38a")
AMBER = QColor("#e0a84a")
RED = QColor("#e5534b")
TRACK = QColor("#2a2e37")
TEXT = QColor("#c8ccd4")


class LevelMeter(QWidget):
    """``set_level(db)`` with the block's peak level; shows -60..0 dBFS."""

    RANGE_DB = (-60.0, 0.0)
    HOLD_S = 1.5

    def __init__(self, label: str, parent=None) -> None:
        super().__init__(parent)
        self.label = label
        self.level_db = self.RANGE_DB[0]
        self.peak_db = self.RANGE_DB[0]
        self._peak_t = 0.0
        self.setMinimumHeight(18)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip(f"{label} peak level, dBFS (the mark holds the highest peak for "
                        f"{self.HOLD_S:g} s)")

    def set_level(self, db: float) -> None:
        lo, hi = self.RANGE_DB
        db = min(max(float(db), lo), hi + 6.0) if db == db else lo
        now = time.monotonic()
        if db >= self.peak_db or now - self._peak_t > self.HOLD_S:
            self.peak_db, self._peak_t = db, now
        if abs(db - self.level_db) > 0.05:
            self.level_db = db
            self.update()

    def _x(self, db: float, width: float) -> float:
        lo, hi = self.RANGE_DB
        return width * min(max((db - lo) / (hi - lo), 0.0), 1.0)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        w, h = float(self.width()), float(self.height())
        p.fillRect(QRectF(0, 0, w, h), TRACK)
        x = self._x(self.level_db, w)
        color = GREEN if self.level_db < -12 else (AMBER if self.level_db < -3 else RED)
        p.fillRect(QRectF(0, 0, x, h), color)
        px = self._x(self.peak_db, w)
        p.fillRect(QRectF(max(px - 2, 0), 0, 2, h), TEXT)
        p.setPen(TEXT)
        p.drawText(QRectF(4, 0, w - 8, h), Qt.AlignmentFlag.AlignVCenter,
                   f"{self.label}  {self.level_db:5.1f} dB")
        p.end()


_IN_DB = Telemetry.field("input_db")
_OUT_DB = Telemetry.field("output_db")
_VOICING = Telemetry.field("voicing")
_SILENT = Telemetry.field("silent")
_BYPASS = Telemetry.field("bypass")
#: frames the pitch tracker finds unvoiced below this voicing count as noise for the
#: "noise removed" readout (speech pauses, the noise between words)
NOISE_FRAME_MAX_VOICING = 0.3
#: the readout is the median over the last this many noise frames (about 5 s of pauses)
NOISE_READOUT_FRAMES = 500


class NoiseRemovedLabel(QLabel):
    """``push(scalars, suppression)`` with the telemetry's scalar rows; shows how much
    quieter the output is than the input in the noise-only frames."""

    def __init__(self, parent=None) -> None:
        super().__init__("noise removed: –", parent)
        self.setToolTip(
            "How much quieter the output is than the input in the pauses between words "
            "(unvoiced, non-silent frames), median over the last few seconds of them.")
        self._noise_db = np.full(NOISE_READOUT_FRAMES, np.nan)
        self._noise_pos = 0

    def push(self, sc: np.ndarray, suppression: bool) -> None:
        """The plain "noise removed" figure, in dB, from the frames that carry only noise."""
        noise = ((sc[:, _VOICING] < NOISE_FRAME_MAX_VOICING) & (sc[:, _SILENT] < 0.5)
                 & (sc[:, _BYPASS] < 0.5))
        d = sc[noise, _IN_DB] - sc[noise, _OUT_DB]
        self._noise_db[(self._noise_pos + np.arange(d.size)) % NOISE_READOUT_FRAMES] = d
        self._noise_pos += d.size
        if not suppression:
            self.setText("noise removed: 0 dB (suppression off)")
            self._noise_db[:] = np.nan
            self._noise_pos = 0
        elif self._noise_pos >= 20:
            self.setText(f"noise removed: {float(np.nanmedian(self._noise_db)):.0f} dB")
        else:
            self.setText("noise removed: – (waiting for a pause)")
