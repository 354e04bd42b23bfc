"""The real-time engine under load: xruns and callback p99, with and without a CPU hog.

    .venv/bin/python -m benchmarks.engine_load [--seconds 60] [--model NAME|PATH]

Starts its own isolated PulseAudio server (as the tests do), a continuous capture source
(``module-sine-source``, a stand-in for a microphone) and a null sink the engine plays into
(drained by ``parecord`` like a meeting app recording the virtual microphone). Runs the
engine for ``--seconds`` twice: on an idle machine, then with a busy-loop process pinned
to the other core. Reports xruns after the first second, callback p50/p99, late callbacks,
end-to-end latency and the model's real-time factor; writes ``bench-out/engine_load.md``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import write_report

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from live_audio import start_silence_feeder  # noqa: E402  (shared with the tests)
from pulse_server import PulseServer  # noqa: E402

from percepnet.app.engine import Engine  # noqa: E402
from percepnet.app.models import default_model_name, load_model  # noqa: E402

HOG = "import os\nwhile True:\n    pass\n"


def _run(model, server: PulseServer, seconds: float) -> dict:
    engine = Engine(model, input_device="bench_mic", output_device="bench_out")
    rec = subprocess.Popen(["parecord", "--device=bench_out.monitor", "--latency-msec=10",
                            "/dev/null"], env=server.child_env(), stdin=subprocess.DEVNULL)
    # an idle null sink sleeps up to 2 s between renders until a low-latency stream plays
    # into it; a silent player keeps it rendering every few ms, as a sound card would
    feeder = start_silence_feeder(server, "bench_out")
    time.sleep(0.3)
    try:
        engine.start()
        time.sleep(seconds)
        d = engine.diagnostics()
    finally:
        engine.stop()
        for p in (rec, feeder):
            p.terminate()
            p.wait(timeout=5)
    return d.as_dict()


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    a = ap.parse_args(argv)
    model = load_model(a.model or default_model_name())
    cores = sorted(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="pn-bench-pa-") as base:
        server = PulseServer(base).start()
        try:
            server.pactl("load-module", "module-sine-source", "source_name=bench_mic",
                         "rate=48000", "frequency=440")
            server.load_null_sink("bench_out")
            idle = _run(model, server, a.seconds)
            hog_core = cores[-1]
            hog = subprocess.Popen(["taskset", "-c", str(hog_core), sys.executable, "-c", HOG])
            try:
                loaded = _run(model, server, a.seconds)
            finally:
                hog.kill()
                hog.wait()
        finally:
            server.stop()
    rows = []
    for name, d in (("idle", idle), (f"busy loop on core {hog_core}", loaded)):
        rows.append(f"| {name} | {d['xruns']} | {d['xruns_startup']} | {d['late_callbacks']} | "
                    f"{d['callback_p50_ms']:.2f} | {d['callback_p99_ms']:.2f} | "
                    f"{d['latency_ms']:.0f} | {d['model_rtf']:.3f} | {d['restarts']} | "
                    f"{d['errors']} |")
    return write_report(a.out, "engine_load.md", [
        f"# Engine under load: model `{model.name}`, {a.seconds:g} s per run, "
        f"{len(cores)} cores",
        "",
        "PulseAudio (isolated server, null sink drained by parecord and kept rendering by a "
        "silent player; capture from module-sine-source), 48 kHz, 480-sample blocks. Xruns are PortAudio status flags "
        "after the first second (start-up ones counted apart); p50/p99 are the callback's "
        "own wall time; latency is device in + 40 ms algorithmic + device out as PortAudio "
        "reports it.",
        "",
        "| condition | xruns | start-up xruns | late callbacks | callback p50 ms | "
        "callback p99 ms | latency ms | model RTF | restarts | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ])


if __name__ == "__main__":
    main()
