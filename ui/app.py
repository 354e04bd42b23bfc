"""Running the window: the QApplication, the engine, the window, and ``--self-test``."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import time

from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication

from percepnet.app.engine import DEMO_DEVICE, NULL_DEVICE
from percepnet.app.service import build_engine
from percepnet.app.settings import Settings

from .icons import app_icon
from .main_window import MainWindow
from .virtual_mic_panel import VirtualMicController

__all__ = ["make_application", "run_gui", "engine_settings", "DEMO_NOTE"]

log = logging.getLogger("percepnet.ui")

DEMO_NOTE = "Demo mode: playing the bundled demo clip (noisy speech, looped)."


_APP: QApplication | None = None


def make_application(argv: list[str] | None = None) -> QApplication:
    """The QApplication (created once, and kept alive here)."""
    global _APP
    app = QApplication.instance()
    if app is None:
        app = QApplication(argv if argv is not None else sys.argv[:1])
    _APP = app
    app.setApplicationName("PercepNet Desktop")
    app.setApplicationDisplayName("PercepNet Desktop")
    app.setDesktopFileName("percepnet")
    app.setWindowIcon(app_icon())
    return app


def engine_settings(settings: Settings, *, demo: bool = False, silent: bool = False) -> Settings:
    """A copy of ``settings`` for building the engine: ``demo`` forces the demo clip,
    ``silent`` the null output. The user's settings object (and file) stay untouched."""
    values = settings.as_dict()
    if demo:
        values["input_device"] = DEMO_DEVICE
    if silent:
        values["output_device"] = NULL_DEVICE
    return Settings(values)


def run_gui(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    self_test = getattr(args, "self_test", None)
    demo = bool(getattr(args, "demo", False)) or self_test is not None
    app = make_application()
    settings = Settings.load(getattr(args, "config", None))
    t0 = time.monotonic()
    engine, notes = build_engine(engine_settings(settings, demo=demo,
                                                 silent=self_test is not None))
    if demo:
        notes = [DEMO_NOTE] + list(notes)
    vmic = None
    if self_test is not None:  # never create or test the virtual microphone here
        vmic = VirtualMicController(None, "not used by the window self-test", autoload=False)
    window = MainWindow(engine, settings, notes=notes, persist=self_test is None,
                        demo_forced=demo, tray=self_test is None, vmic=vmic)
    app.setQuitOnLastWindowClosed(window.tray is None)
    window.quit_requested.connect(app.quit)
    engine.start()
    if self_test is None and (args.minimized or settings.start_minimized):
        window.start_minimized()
    else:
        window.show()
    log.info("window up in %.2f s (model %s, input %s, output %s)", time.monotonic() - t0,
             engine.core.model_name, engine.input_device or "default",
             engine.output_device or "default")

    # Ctrl+C in the terminal: Qt's loop runs in C++, so wake Python now and then to let the
    # signal handler run, then quit cleanly (settings saved, stream closed).
    signal.signal(signal.SIGINT, lambda *_: window.quit())
    signal.signal(signal.SIGTERM, lambda *_: window.quit())
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(200)

    result = {"rc": 0}
    if self_test is not None:
        waited = {"s": 0.0}

        def finish() -> None:
            # on a first start the kernels compile in the background (up to ~60 s on 2
            # cores): the self-test measures the prepared suppressor, so it waits for it
            if not engine.core.ready and not engine.core.prepare_error and waited["s"] < 180:
                waited["s"] += 0.5
                QTimer.singleShot(500, finish)
                return
            ok, lines = self_test_report(window, engine)
            for line in lines:
                print(line, flush=True)
            result["rc"] = 0 if ok else 1
            window.quit()
            app.quit()

        QTimer.singleShot(int(self_test * 1000), finish)
    try:
        app.exec()
    finally:
        window.shutdown()
        engine.stop()
    return result["rc"]


def self_test_report(window: MainWindow, engine) -> tuple[bool, list[str]]:
    """(passed, report lines) for ``percepnet gui --self-test``."""
    d = engine.diagnostics()
    st = window.extra_state()
    checks = [
        ("engine running", d.state == "running", d.state),
        ("spectrogram rows received", st["spec_rows"] > 0, str(st["spec_rows"])),
        ("views redrawn", st["frames_drawn"] > 0, f"{st['frames_drawn']} frames, "
         f"{window.fps:.0f} fps"),
        ("no engine errors", d.errors == 0, f"{d.errors} errors {d.last_error}".strip()),
    ]
    ok = all(c[1] for c in checks)
    from PyQt6.QtGui import QGuiApplication

    lines = [f"self-test: {'OK' if ok else 'FAILED'} (model {d.model}, "
             f"{d.frames} frames processed, callback p99 {d.callback_p99_ms:.2f} ms, "
             f"Qt platform {QGuiApplication.platformName()})"]
    lines += [f"  [{'ok' if good else 'FAIL'}] {name}: {value}" for name, good, value in checks]
    return ok, lines
