"""``percepnet gui``: the command-line entry of the window. Imports no Qt until it runs, so
``percepnet --help`` and the headless commands stay fast and work without Qt."""
from __future__ import annotations

import argparse
import os
import sys

__all__ = ["add_parser", "run", "has_screen"]


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("gui", help="open the PercepNet Desktop window",
                       description="Open the window: live suppression with device pickers, "
                       "attenuation limit, A/B stage switches, spectrograms, band gains and "
                       "pitch track. Settings are shared with 'percepnet run'.")
    p.add_argument("--demo", action="store_true",
                   help="play the bundled demo clip (noisy speech, looped) instead of the "
                   "microphone")
    p.add_argument("--minimized", action="store_true",
                   help="start minimised to the tray (also the start_minimized setting)")
    p.add_argument("--self-test", type=float, default=None, metavar="SECONDS",
                   help="open the window (offscreen when there is no screen), run the demo "
                   "clip for SECONDS without playback, check that the views received "
                   "telemetry and the engine reported no errors; exit 0 if so, else 1")
    p.add_argument("--config", default=None, metavar="PATH",
                   help="config file (default: the user config dir, or $PERCEPNET_CONFIG)")
    return p


def has_screen() -> bool:
    """Can Qt open a window here? (macOS/Windows always; elsewhere an X11 or Wayland
    display, or an explicitly chosen Qt platform such as offscreen.)"""
    if sys.platform == "darwin" or sys.platform.startswith("win"):
        return True
    return any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def run(args: argparse.Namespace) -> int:
    if not has_screen():
        if args.self_test is not None:
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
        else:
            print("percepnet gui: no screen here (neither DISPLAY nor WAYLAND_DISPLAY is set). "
                  "Run 'percepnet run' for the headless service, or set "
                  "QT_QPA_PLATFORM=offscreen to run the window invisibly.", file=sys.stderr)
            return 2
    if args.self_test is not None and args.self_test <= 0:
        print("percepnet gui: --self-test needs a positive number of seconds", file=sys.stderr)
        return 2
    from .app import run_gui

    return run_gui(args)
