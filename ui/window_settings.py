"""Settings persistence for the window: every change is applied to the engine at once by its
control, and written to the config file (``Settings.save()``) 0.5 s after the last change, so
a dragged slider is not saved on every step; :meth:`SettingsSaver.save` writes at once (on
close). A failed write is logged and reported, never raised."""
from __future__ import annotations

import logging

from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from percepnet.app.settings import Settings

__all__ = ["SettingsSaver", "SAVE_DEBOUNCE_MS"]

log = logging.getLogger("percepnet.ui")

SAVE_DEBOUNCE_MS = 500


class SettingsSaver(QObject):
    """Saves ``settings`` (debounced) when ``persist``; :attr:`save_failed` (message) says
    why a save did not happen."""

    save_failed = pyqtSignal(str)

    def __init__(self, settings: Settings, persist: bool = True, parent=None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.persist = persist
        self._stopped = False
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(SAVE_DEBOUNCE_MS)
        self.timer.timeout.connect(self.save)

    def schedule(self) -> None:
        """Save in 0.5 s (restarting the wait on every call)."""
        if self.persist and not self._stopped:
            self.timer.start()

    def stop(self) -> None:
        """No more scheduled saves (shutdown; :meth:`save` still writes)."""
        self._stopped = True
        self.timer.stop()

    def save(self) -> bool:
        if not self.persist:
            return False
        try:
            self.settings.save()
            return True
        except OSError as exc:
            log.warning("cannot save settings: %s", exc)
            self.save_failed.emit(f"Cannot save settings: {exc}")
            return False
