"""The virtual microphone as the window sees it: state, self-test, on/off — every call to the
back-end runs in a worker thread (they talk to the sound server and the self-test plays a
0.5 s tone), results come back through queued Qt signals.

The back-end (``percepnet.app.mic_backends.get_backend()``) is optional: when the module is
missing, or creating the back-end fails, the controller reports "unavailable" and the
window disables its controls.

:class:`VirtualMicPanel` is the window's "Virtual microphone" box (mode and "Listen to
myself" switches) with the status-bar readout and self-test button, driven by the controller.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from PyQt6.QtCore import QObject, QTimer, pyqtSignal
from PyQt6.QtWidgets import QGroupBox, QLabel, QPushButton, QVBoxLayout

from percepnet.app.settings import PARAMS, Settings

from .controls import ParamCheck

__all__ = ["VirtualMicController", "VirtualMicPanel", "load_backend", "VMIC_STATUS_INTERVAL_MS"]

VMIC_STATUS_INTERVAL_MS = 5000

log = logging.getLogger("percepnet.ui")


def load_backend() -> tuple[Any | None, str]:
    """(back-end, "") or (None, why it is unavailable)."""
    try:
        from percepnet.app import mic_backends
    except Exception as exc:  # noqa: BLE001 - ImportError or a broken module alike
        return None, f"module not available ({type(exc).__name__}: {exc})"
    get_backend = getattr(mic_backends, "get_backend", None)
    if get_backend is None:
        return None, "module has no get_backend()"
    try:
        backend = get_backend()
    except Exception as exc:  # noqa: BLE001
        return None, f"{type(exc).__name__}: {exc}"
    for name in ("status", "self_test"):
        if not callable(getattr(backend, name, None)):
            return None, f"back-end has no {name}()"
    return backend, ""


def _describe_status(st: Any) -> tuple[str, bool, bool]:
    """One line for the status bar, whether the microphone is present and whether its sound
    server (or driver) answered at all."""
    present = bool(getattr(st, "present", False))
    reachable = bool(getattr(st, "reachable", True))
    desc = getattr(st, "description", None) or "PercepNet Microphone"
    if present:
        readers = getattr(st, "readers", ()) or ()
        who = f", used by {', '.join(readers)}" if readers else ""
        return f"virtual mic: ready (“{desc}”{who})", True, reachable
    detail = getattr(st, "detail", "") or "absent"
    return f"virtual mic: off — {detail}", False, reachable


def _describe_self_test(res: Any) -> tuple[bool, str]:
    ok = bool(getattr(res, "ok", False))
    lines = res.lines() if callable(getattr(res, "lines", None)) else [str(res)]
    return ok, "\n".join(str(x) for x in lines)


class VirtualMicController(QObject):
    """Runs the back-end's calls off the GUI thread, one at a time.

    Signals: :attr:`status_changed` (text, present, server reachable),
    :attr:`self_test_done` (ok, text),
    :attr:`enabled_changed` (on, sink name or "", text, requested state),
    :attr:`busy_changed` (busy).
    """

    status_changed = pyqtSignal(str, bool, bool)
    self_test_done = pyqtSignal(bool, str)
    enabled_changed = pyqtSignal(bool, str, str, bool)
    rebuilt = pyqtSignal(str)
    busy_changed = pyqtSignal(bool)

    def __init__(self, backend: Any | None = None, reason: str = "", *,
                 autoload: bool = True, parent=None) -> None:
        super().__init__(parent)
        if backend is None and autoload and not reason:
            backend, reason = load_backend()
        self.backend = backend
        self.reason = reason or ("" if backend is not None else "not available")
        self._lock = threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="percepnet-ui-vmic")
        self._busy = False
        self._loud = 0  # queued or running operations that are not status refreshes
        self._status_pending = False
        self._test_pending = False
        self._closed = False
        self.created = False  # ensure() was called by us (remove() at exit)
        self._keep_alive = None
        self._supervising = False
        self.last_text = ("virtual mic: unavailable" if backend is None
                          else "virtual mic: checking…")
        self.last_present = False

    @property
    def available(self) -> bool:
        return self.backend is not None

    @property
    def busy(self) -> bool:
        return self._busy

    # ------------------------------------------------------------------ operations
    def refresh_status(self) -> bool:
        """Query the state in the background; False when busy or unavailable."""
        return self._run(self._do_status, quiet=True)

    def run_self_test(self) -> bool:
        """Queue the self-test; False when unavailable or one is already pending."""
        return self._run(self._do_self_test)

    def set_enabled(self, on: bool) -> bool:
        """Create (on) the virtual microphone; off just reports (the device stays present
        while the app runs, so meeting apps keep seeing it)."""
        return self._run(lambda: self._do_enable(on))

    def remove_if_created(self) -> None:
        """At exit, synchronously: take away what we created (never raises)."""
        self.close()
        if self.backend is None or not self.created:
            return
        stop_supervision = getattr(self.backend, "stop_supervision", None)
        if self._supervising and callable(stop_supervision):
            try:
                stop_supervision()
            except Exception as exc:  # noqa: BLE001
                log.warning("stopping the virtual microphone supervision failed: %s", exc)
        self._supervising = False
        ka, self._keep_alive = self._keep_alive, None
        if ka is not None:
            try:
                ka.stop()
            except Exception as exc:  # noqa: BLE001
                log.warning("stopping the virtual microphone keep-alive failed: %s", exc)
        try:
            self.backend.remove()
        except Exception as exc:  # noqa: BLE001
            log.warning("removing the virtual microphone failed: %s", exc)

    # ------------------------------------------------------------------ internals
    def _run(self, fn: Callable[[], None], quiet: bool = False) -> bool:
        """Queue ``fn`` on the worker thread (one operation at a time, in order). A quiet
        status refresh is dropped while another one is still queued; a self-test is refused
        while one is pending; everything else queues."""
        if self.backend is None or self._closed:
            return False
        became_busy = False
        with self._lock:
            if quiet and self._status_pending:
                return True
            if fn == self._do_self_test and self._test_pending:
                return False
            if quiet:
                self._status_pending = True
            if fn == self._do_self_test:
                self._test_pending = True
            if not quiet:
                self._loud += 1
                became_busy = self._loud == 1
                self._busy = True
        if became_busy:
            self.busy_changed.emit(True)

        def work() -> None:
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - report, never crash the window
                log.warning("virtual microphone: %s", exc)
                self._emit_status(f"virtual mic: error — {type(exc).__name__}: {exc}", False,
                                  True)
            finally:
                done = False
                with self._lock:
                    if quiet:
                        self._status_pending = False
                    if fn == self._do_self_test:
                        self._test_pending = False
                    if not quiet:
                        self._loud -= 1
                        done = self._loud == 0
                        if done:
                            self._busy = False
                if done:
                    self.busy_changed.emit(False)

        try:
            self._worker.submit(work)
        except RuntimeError:  # shut down
            return False
        return True

    def close(self) -> None:
        """Stop accepting work; waits for the running operation (at most a self-test)."""
        self._closed = True
        self._worker.shutdown(wait=True, cancel_futures=True)

    def _supervise(self) -> None:
        """Like the headless service: the back-end's supervisor rebuilds the device after a
        sound-server restart (we then reopen the output stream onto it) and keeps a
        low-latency reader on the sink (an idle null sink is drained in bursts and would
        stall our stream). Back-ends without supervision get a plain keep-alive if offered."""
        if self._supervising or self._keep_alive is not None:
            return
        start = getattr(self.backend, "start_supervision", None)
        if callable(start):
            start(on_change=self._on_mic_changed)
            self._supervising = True
            return
        keep_alive = getattr(self.backend, "keep_alive", None)
        if callable(keep_alive):
            self._keep_alive = keep_alive()

    def _on_mic_changed(self, status: Any) -> None:
        """From the back-end's supervisor thread: the device was rebuilt (or changed), or
        another app's stream was moved off its internal sink (``moved``: say so, reopen
        nothing)."""
        text, present, reachable = _describe_status(status)
        moved = tuple(getattr(status, "moved", ()) or ())
        if moved:
            self._emit_status(f"{text}; {moved[0]}", present, reachable)
            return
        self._emit_status(text, present, reachable)
        sink = getattr(self.backend, "sink_name", None) or ""
        if present and sink:
            self.rebuilt.emit(str(sink))

    def _emit_status(self, text: str, present: bool, reachable: bool) -> None:
        self.last_text, self.last_present = text, present
        self.status_changed.emit(text, present, reachable)

    def _do_status(self) -> None:
        self._emit_status(*_describe_status(self.backend.status()))

    def _do_self_test(self) -> None:
        try:
            ok, text = _describe_self_test(self.backend.self_test())
        except Exception as exc:  # noqa: BLE001 - self_test should not raise; report if it does
            ok, text = False, f"self-test: FAILED\ndetail: {type(exc).__name__}: {exc}"
        self.self_test_done.emit(ok, text)
        self._do_status()

    def _do_enable(self, on: bool) -> None:
        if not on:
            self.enabled_changed.emit(False, "", "virtual mic mode off: output to the speakers",
                                      False)
            self._do_status()
            return
        ensure = getattr(self.backend, "ensure", None)
        if not callable(ensure):
            self.enabled_changed.emit(False, "", "virtual mic: this back-end cannot create "
                                      "the device", True)
            return
        st = ensure()
        self.created = True
        text, present, reachable = _describe_status(st)
        self._emit_status(text, present, reachable)
        sink = getattr(self.backend, "sink_name", None) or getattr(st, "sink_name", None) or ""
        if present and sink:
            self._supervise()
        if present and sink:
            self.enabled_changed.emit(True, str(sink), text, True)
        else:
            self.enabled_changed.emit(False, "", text, True)


class VirtualMicPanel(QGroupBox):
    """The "Virtual microphone" box: :attr:`vmic_check` (mode on/off) and
    :attr:`monitor_check` ("Listen to myself", to ``chosen_output()``), plus
    :attr:`status_label` and :attr:`self_test_button` for the status bar. The routing of the
    engine's output follows ``vmic.enabled_changed`` elsewhere (the device controller).

    Signals: :attr:`settings_changed` (save them), :attr:`message` (status-bar text, ms),
    :attr:`server_unreachable` (no sound server: the first-run hint is moot).
    """

    settings_changed = pyqtSignal()
    message = pyqtSignal(str, int)
    server_unreachable = pyqtSignal()

    def __init__(self, vmic: VirtualMicController, engine, settings: Settings,
                 chosen_output: Callable[[], str], parent=None) -> None:
        super().__init__("Virtual microphone", parent)
        self.vmic = vmic
        self.engine = engine
        self.settings = settings
        self._chosen_output = chosen_output
        self._self_test_pending = False
        self.self_test_result: tuple[bool, str] | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(VMIC_STATUS_INTERVAL_MS)
        self._timer.timeout.connect(self.vmic.refresh_status)

        lay = QVBoxLayout(self)
        self.vmic_check = ParamCheck(PARAMS["virtual_mic"], settings.virtual_mic)
        self.vmic_check.toggled.connect(self._on_virtual_mic)
        self.monitor_check = ParamCheck(PARAMS["monitor"], settings.monitor)
        self.monitor_check.toggled.connect(self._on_monitor)
        if not hasattr(engine, "monitor"):
            self.monitor_check.setToolTip(self.monitor_check.toolTip()
                                          + " (Not yet supported by the audio engine: the "
                                          "setting is stored.)")
        lay.addWidget(self.vmic_check)
        lay.addWidget(self.monitor_check)
        if not vmic.available:
            self.vmic_check.setEnabled(False)
            self.vmic_check.setToolTip(f"Virtual microphone unavailable: {vmic.reason}")
        self.monitor_check.setEnabled(vmic.available and settings.virtual_mic)

        self.status_label = QLabel(vmic.last_text)
        self.self_test_button = QPushButton("Self-test")
        self.self_test_button.setToolTip("Play a short 1 kHz tone into “PercepNet Microphone” "
                                          "and read it back (anyone recording from it hears "
                                          "the beep)")
        self.self_test_button.setEnabled(vmic.available)
        self.self_test_button.clicked.connect(self.run_self_test)
        vmic.status_changed.connect(self._on_status)
        vmic.self_test_done.connect(self._on_self_test_done)
        vmic.enabled_changed.connect(self._on_enabled)
        vmic.busy_changed.connect(self._on_busy)

    def start(self) -> None:
        """Poll the state every 5 s and restore the saved mode (where there is a back-end)."""
        if self.vmic.available:
            self._timer.start()
            self.vmic.refresh_status()
            if self.settings.virtual_mic:
                self.vmic.set_enabled(True)

    def stop(self) -> None:
        self._timer.stop()

    def run_self_test(self) -> bool:
        """Start the virtual microphone's self-test in the background."""
        self._self_test_pending = True
        started = self.vmic.run_self_test()
        if not started:
            self._self_test_pending = False
            self.message.emit("Virtual microphone unavailable, or a self-test is "
                              "already running", 4000)
        return started

    # ------------------------------------------------------------------ controls
    def _on_monitor(self, on: bool) -> None:
        self.settings.monitor = on
        if hasattr(self.engine, "monitor_device"):
            self.engine.monitor_device = self._chosen_output()
        if hasattr(self.engine, "monitor"):
            self.engine.monitor = on
        self.settings_changed.emit()

    def _on_virtual_mic(self, on: bool) -> None:
        self.settings.virtual_mic = on
        self.settings_changed.emit()
        self.monitor_check.setEnabled(on and self.vmic.available)
        self.vmic.set_enabled(on)

    # ------------------------------------------------------------------ controller reports
    def _on_enabled(self, on: bool, sink: str, text: str, requested: bool) -> None:
        self.status_label.setText(text)
        if requested and not on:
            # asked for but could not be created: show it as off (the setting is kept, so
            # the next start tries again)
            self.vmic_check.blockSignals(True)
            self.vmic_check.setChecked(False)
            self.vmic_check.blockSignals(False)
            self.monitor_check.setEnabled(False)

    def _on_status(self, text: str, present: bool, reachable: bool = True) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet("" if present else "color:#8a94a6;")
        if not reachable:  # nothing to restart meeting apps for, nothing the controls can do
            self.server_unreachable.emit()
            reason = "No sound server (PulseAudio/PipeWire) is reachable."
            for w in (self.vmic_check, self.monitor_check, self.self_test_button):
                w.setEnabled(False)
                w.setToolTip(reason)
        elif self.vmic.available and not self.vmic_check.isEnabled():
            self.vmic_check.setEnabled(True)
            self.vmic_check.setToolTip(PARAMS["virtual_mic"].help)
            self.monitor_check.setEnabled(self.settings.virtual_mic)
            self.monitor_check.setToolTip(PARAMS["monitor"].help)
            self.self_test_button.setEnabled(True)
            self.self_test_button.setToolTip("")

    def _on_busy(self, busy: bool) -> None:
        self.self_test_button.setEnabled(self.vmic.available and not busy)
        if busy:
            self.self_test_button.setText("Testing…" if self._self_test_pending else "Working…")
        else:
            self.self_test_button.setText("Self-test")

    def _on_self_test_done(self, ok: bool, text: str) -> None:
        self._self_test_pending = False
        first = text.splitlines()[0] if text else ("self-test: OK" if ok else "self-test: FAILED")
        self.message.emit(first, 8000)
        self.self_test_button.setToolTip(text)
        self.self_test_result = (ok, text)
