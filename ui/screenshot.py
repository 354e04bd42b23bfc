"""Render the window with the demo clip playing and save a PNG (no screen needed).

    python -m percepnet.ui.screenshot OUT.png [--seconds 3] [--size 1280x800] [--bits 4]

Runs offscreen when there is no display. Uses the shipped model when installed (else
pass-through), the default settings (not the user's config) and no playback.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

__all__ = ["render_window", "save_png", "view_regions", "main"]


def render_window(seconds: float = 3.0, size: tuple[int, int] = (1280, 800), model=None):
    """Build the window on a file-driven engine (demo clip, null output), show it, let it
    run ``seconds`` and return ``(window, engine)`` (the engine still running)."""
    from PyQt6.QtTest import QTest

    from percepnet.app.engine import DEMO_DEVICE, NULL_DEVICE, Engine
    from percepnet.app.settings import Settings

    from .app import DEMO_NOTE, make_application
    from .main_window import MainWindow
    from .virtual_mic_panel import VirtualMicController

    make_application()
    if model is None:
        from percepnet.app.models import ModelError, default_model_name, load_model

        try:
            model = load_model(default_model_name())
        except ModelError:
            model = None
    settings = Settings({"first_run_done": True})
    engine = Engine(model, input_device=DEMO_DEVICE, output_device=NULL_DEVICE)
    vmic = VirtualMicController(None, "not used for the screenshot", autoload=False)
    window = MainWindow(engine, settings, notes=[DEMO_NOTE], persist=False, demo_forced=True,
                        tray=False, vmic=vmic, watch_devices=False)
    window.on_devices_listed([])
    window.resize(*size)
    window.show()
    engine.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QTest.qWait(20)
    window.update_status()
    QTest.qWait(50)
    return window, engine


def view_regions(window) -> dict:
    """name -> QRect of each plot in window coordinates."""
    from PyQt6.QtCore import QPoint, QRect

    out = {}
    for name in ("spec_in", "spec_out", "pitch_view", "bars_view", "gain_map", "strength_map"):
        w = getattr(window, name)
        top_left = w.mapTo(window, QPoint(0, 0))
        out[name] = QRect(top_left, w.size())
    return out


def save_png(window, path: str | Path, bits: int = 8) -> Path:
    """Grab the window and write a PNG. ``bits`` < 8 keeps only that many bits per colour
    channel (4 bits: about half the file size, hardly visible; used for the README)."""
    import numpy as np
    from PyQt6.QtGui import QImage

    img = window.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    if bits < 8:
        ptr = img.bits()
        ptr.setsize(img.sizeInBytes())
        px = np.frombuffer(ptr, dtype=np.uint8).reshape(img.height(), img.bytesPerLine())
        rgb = px.reshape(img.height(), -1, 4)[:, :, :3]
        keep = np.uint8((0xFF << (8 - bits)) & 0xFF)
        rgb &= keep
        rgb |= rgb >> bits  # spread the kept bits so white stays white
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not img.save(str(path), "PNG", 9):
        raise OSError(f"cannot write {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m percepnet.ui.screenshot",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="PNG file to write")
    p.add_argument("--seconds", type=float, default=3.0, help="run time before the grab")
    p.add_argument("--size", default="1280x800", help="window size WxH (default %(default)s)")
    p.add_argument("--bits", type=int, default=8, choices=range(1, 9), metavar="1..8",
                   help="bits per colour channel (4 halves the file; default %(default)s)")
    args = p.parse_args(argv)
    if not any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")) \
            and sys.platform.startswith("linux"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    w, h = (int(v) for v in args.size.lower().split("x"))
    window, engine = render_window(args.seconds, (w, h))
    try:
        path = save_png(window, args.out, args.bits)
    finally:
        window.shutdown()
        engine.stop()
    print(f"wrote {path} ({path.stat().st_size // 1024} kB)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
