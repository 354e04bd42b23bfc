"""First start on an empty kernel cache: how soon the window appears, audio flows and the
suppressor takes over.

    .venv/bin/python -m benchmarks.cold_start [--runs 1] [--out bench-out]

Each run is a fresh process with ``NUMBA_CACHE_DIR`` pointing at an empty folder (what a
user's first start sees), timed from the process start (before ``import percepnet``):
- window: ``percepnet gui``'s engine built and the main window shown (Qt's offscreen
  platform when there is no screen), the shipped model, the demo clip, no sound device;
- audio flowing: the engine's first processed block;
- suppression: the suppressor prepared and handed over (its kernels compiled).
Then one warm start (the cache the cold run filled). Targets: window <= 1.5 s, audio <= 2 s,
suppression <= 60 s on the 2-core development machine. Writes ``bench-out/cold_start.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from benchmarks.report import write_report

_PROBE = textwrap.dedent("""
    import time
    T0 = time.monotonic()
    import json, os, sys
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from percepnet.app.service import build_engine
    from percepnet.app.settings import Settings
    from percepnet.ui.app import engine_settings, make_application
    from percepnet.ui.main_window import MainWindow
    from PyQt6.QtCore import QCoreApplication
    app = make_application()
    settings = Settings.load(sys.argv[2])
    engine, notes = build_engine(engine_settings(settings, demo=True, silent=True))
    window = MainWindow(engine, settings, notes=notes, persist=False, demo_forced=True,
                        tray=False)
    window.show()
    QCoreApplication.processEvents()
    t_window = time.monotonic() - T0
    engine.start()
    t_audio = None
    while time.monotonic() - T0 < 300:
        QCoreApplication.processEvents()
        if t_audio is None and engine.core.blocks > 0:
            t_audio = time.monotonic() - T0
        if engine.core.ready and t_audio is not None:
            break
        time.sleep(0.005)
    t_ready = time.monotonic() - T0 if engine.core.ready else None
    engine.stop()
    window.shutdown()
    json.dump({"window_s": t_window, "audio_s": t_audio, "suppression_s": t_ready,
               "model": engine.core.model_name}, open(sys.argv[1], "w"))
""")


def probe(cache_dir: Path, scratch: Path) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    out = scratch / "probe.json"
    res = subprocess.run([sys.executable, "-c", _PROBE, str(out), str(scratch / "cfg.json")],
                         env=env, capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cold_start",
                                description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=1, help="cold runs (each on an empty cache)")
    p.add_argument("--out", type=Path, default=Path("bench-out"))
    a = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for k in range(a.runs):
            cache = tmp / f"numba-{k}"
            rows.append(("cold (empty cache)", probe(cache, tmp)))
        rows.append(("warm (cache of the cold run)", probe(tmp / "numba-0", tmp)))
    fmt = lambda v: "never" if v is None else f"{v:.2f} s"  # noqa: E731
    lines = ["# Cold start", "", f"model `{rows[0][1]['model']}`, {os.cpu_count()} cores, "
             "timed from the process start", "",
             "| start | window shown | audio flowing | suppression |", "|---|---|---|---|"]
    lines += [f"| {name} | {fmt(r['window_s'])} | {fmt(r['audio_s'])} | "
              f"{fmt(r['suppression_s'])} |" for name, r in rows]
    lines += ["", "targets: window <= 1.5 s, audio <= 2 s, suppression <= 60 s (empty cache)"]
    write_report(a.out, "cold_start.md", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
