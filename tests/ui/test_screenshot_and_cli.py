"""The screenshot script renders real plots; ``percepnet gui --self-test`` passes headless and
its checks can fail; ``percepnet gui`` without a screen says what to do."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from PyQt6.QtGui import QImage

from percepnet.cli import main


def _pixels(img: QImage, rect) -> np.ndarray:
    img = img.convertToFormat(QImage.Format.Format_RGB32)
    ptr = img.constBits()
    ptr.setsize(img.sizeInBytes())
    arr = np.frombuffer(ptr, dtype=np.uint32).reshape(img.height(), img.bytesPerLine() // 4)
    return arr[rect.top():rect.bottom() + 1, rect.left():rect.right() + 1].copy()


def test_screenshot_shows_live_plots(qtbot, tmp_path, shipped_model):
    from percepnet.ui.screenshot import render_window, save_png, view_regions

    window, engine = render_window(seconds=2.0, size=(1280, 800), model=shipped_model)
    qtbot.addWidget(window)
    try:
        out = save_png(window, tmp_path / "shot.png")
        small = save_png(window, tmp_path / "shot4.png", bits=4)
        regions = view_regions(window)
    finally:
        window.shutdown()
        engine.stop()
    img = QImage(str(out))
    assert (img.width(), img.height()) == (1280, 800)
    for name in ("spec_in", "spec_out"):
        px = _pixels(img, regions[name])
        assert np.unique(px).size > 300, name  # a spectrogram, not a blank or flat plot
    for name in ("pitch_view", "bars_view", "gain_map", "strength_map"):
        assert np.unique(_pixels(img, regions[name])).size > 20, name
    # the 4-bit version (for the README) is smaller and still shows the spectrogram
    assert small.stat().st_size < 0.8 * out.stat().st_size
    assert np.unique(_pixels(QImage(str(small)), regions["spec_in"])).size > 100


def test_gui_self_test_passes_headless(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env["PERCEPNET_CONFIG"] = str(tmp_path / "settings.json")
    r = subprocess.run([sys.executable, "-m", "percepnet", "gui", "--self-test", "1.5"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "self-test: OK" in r.stdout
    assert "[ok] spectrogram rows received" in r.stdout
    assert not (tmp_path / "settings.json").exists()  # the self-test never writes the config


def test_self_test_report_fails_without_data_or_with_errors(qtbot, fakes, settings):
    from percepnet.ui.app import self_test_report
    from percepnet.ui.main_window import MainWindow
    from percepnet.ui.virtual_mic_panel import VirtualMicController

    engine = fakes.Engine()
    engine.errors = 3
    w = MainWindow(engine, settings, persist=False, watch_devices=False, tray=False,
                   vmic=VirtualMicController(None, "x", autoload=False))
    qtbot.addWidget(w)
    ok, lines = self_test_report(w, engine)
    w.shutdown()
    assert not ok and lines[0].startswith("self-test: FAILED")
    assert any("[FAIL] spectrogram rows received: 0" in ln for ln in lines)
    assert any("[FAIL] no engine errors" in ln for ln in lines)


def test_gui_without_a_screen_points_to_the_headless_service(monkeypatch, capsys):
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert main(["gui"]) == 2
    assert "percepnet run" in capsys.readouterr().err


def test_command_line_imports_no_qt_until_the_window_opens():
    code = ("import sys\nfrom percepnet.cli import build_parser\n"
            "build_parser().parse_args(['gui', '--demo'])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PyQt6', 'pyqtgraph')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
