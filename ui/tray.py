"""The system-tray icon and its menu (suppression on/off, show/hide the window, quit).

Closing the window hides it to the tray, where the suppressor keeps running; the first time
that happens the tray says so. Where the platform has no tray (offscreen, some desktops)
:meth:`TrayIcon.create` returns None and the window behaves as a plain window.
"""
from __future__ import annotations

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from .icons import app_icon

__all__ = ["TrayIcon"]


class TrayIcon(QSystemTrayIcon):
    """The tray icon of ``window``. Signals: :attr:`suppression_toggled` (on),
    :attr:`toggle_window` (left click or "Show / hide window"), :attr:`quit_clicked`."""

    suppression_toggled = pyqtSignal(bool)
    toggle_window = pyqtSignal()
    quit_clicked = pyqtSignal()

    @classmethod
    def create(cls, window: QWidget, suppression: bool) -> "TrayIcon | None":
        """A shown tray icon, or None where the platform has no system tray."""
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return None
        tray = cls(window, suppression)
        tray.show()
        return tray

    def __init__(self, window: QWidget, suppression: bool) -> None:
        super().__init__(app_icon(), window)
        self._hint_shown = False
        self.setToolTip("PercepNet Desktop")
        menu = QMenu(window)
        self.suppress_action = QAction("Suppression", menu)
        self.suppress_action.setCheckable(True)
        self.suppress_action.setChecked(suppression)
        self.suppress_action.toggled.connect(self.suppression_toggled)
        show = QAction("Show / hide window", menu)
        show.triggered.connect(self.toggle_window)
        quit_ = QAction("Quit", menu)
        quit_.triggered.connect(self.quit_clicked)
        menu.addAction(self.suppress_action)
        menu.addAction(show)
        menu.addSeparator()
        menu.addAction(quit_)
        self.setContextMenu(menu)
        self.activated.connect(self._on_activated)

    def set_suppression(self, on: bool) -> None:
        """Show the suppression state in the menu (without echoing it back)."""
        self.suppress_action.blockSignals(True)
        self.suppress_action.setChecked(on)
        self.suppress_action.blockSignals(False)

    def show_still_running_hint(self) -> None:
        """After the window was closed to the tray: say so, once."""
        if not self._hint_shown:
            self._hint_shown = True
            self.showMessage("PercepNet Desktop", "Still running in the tray. "
                             "Use Quit in its menu to stop.",
                             QSystemTrayIcon.MessageIcon.Information, 3000)

    def _on_activated(self, reason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.toggle_window.emit()
