"""Hot-plug: poll the device list in a background thread and hand changes to the GUI thread.

``list_devices()`` talks to the sound server (up to a 1 s timeout when it hangs), so it never
runs on the GUI thread; the result crosses threads through a queued Qt signal.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from PyQt6.QtCore import QObject, pyqtSignal

__all__ = ["DeviceWatcher"]

log = logging.getLogger("percepnet.ui")


class DeviceWatcher(QObject):
    """Emits :attr:`devices_changed` with the new ``list[Device]`` whenever it differs
    (and once at start)."""

    devices_changed = pyqtSignal(list)

    def __init__(self, lister: Callable[[], list] | None = None, interval_s: float = 2.0,
                 parent=None) -> None:
        super().__init__(parent)
        if lister is None:
            from percepnet.app.devices import list_devices as lister
        self._lister = lister
        self.interval_s = float(interval_s)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: list | None = None
        self.polls = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="percepnet-ui-devices",
                                        daemon=True)
        self._thread.start()

    def poll_now(self) -> None:
        """Ask for an immediate re-scan (e.g. when the user opens a picker)."""
        self._wake.set()

    def stop(self, timeout_s: float = 2.0) -> None:
        t, self._thread = self._thread, None
        self._stop.set()
        self._wake.set()
        if t is not None:
            t.join(timeout=timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                devices = list(self._lister())
            except Exception as exc:  # noqa: BLE001 - a broken server must not end the poll
                log.debug("device listing failed: %s", exc)
                devices = None
            self.polls += 1
            if devices is not None and devices != self._last and not self._stop.is_set():
                self._last = devices
                self.devices_changed.emit(devices)
            self._wake.wait(self.interval_s)
            self._wake.clear()
