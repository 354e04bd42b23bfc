"""Microphone -> "PercepNet Microphone" delay as a browser meeting sees it.

    .venv/bin/python -m benchmarks.latency_browser [--server pulseaudio|pipewire|both]
                                                   [--seconds 20] [--out bench-out]

On a private sound server (the test suite's PulseAudio or PipeWire session): a fake
microphone (null sink + remap source, as a USB mic looks to apps) plays speech at 20 dB SNR;
``percepnet run --input-device <fake mic> --virtual-mic`` runs as a user would start it;
headless Chromium records the fake microphone *and* "PercepNet Microphone" with two
``getUserMedia`` streams into one AudioWorklet (``benchmarks/browser/two_mics.html``), and the
lag of the second behind the first is found per 2 s window by cross-correlation. That is the
delay a meeting gains by switching from the microphone to "PercepNet Microphone", Chromium's
own capture paths included (which is why it can differ from ``benchmarks.latency``'s
PortAudio recorder). Writes ``OUT/latency_browser.md`` and ``.json``.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.latency import (WINDOW_S, play_in_loop, start_product, stop_all,
                                window_delay_ms)
from benchmarks.report import write_results
from percepnet.dsp.constants import SAMPLE_RATE_HZ

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the suite's sound servers and browser page server
PAGE_DIR = Path(__file__).with_name("browser")
MIC_LABEL = "Bench_Fake_Mic"  # no spaces: a module argument


def _lags_ms(raw: bytes) -> list[float]:
    x = np.frombuffer(raw, dtype=np.float32).reshape(-1, 2, 128)
    mic, ours = (x[:, k, :].reshape(-1) for k in (0, 1))
    w = int(WINDOW_S * SAMPLE_RATE_HZ)
    lags = (window_delay_ms(0.0, mic[s:s + w], 0.0, ours[s:s + w])
            for s in range(0, len(mic) - w, w))
    return [round(float(d), 1) for d in lags if d is not None]


def measure(kind: str, seconds: float) -> dict:
    from chromium_page import PageServer, launch_chromium
    from live_audio import noisy_speech
    from pipewire_server import PipeWireServer
    from pulse_server import PulseServer

    import soundfile as sf

    cls = PipeWireServer if kind == "pipewire" else PulseServer
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        server = cls(tmp / "server").start()
        procs: list[subprocess.Popen] = []
        stop = threading.Event()
        try:
            with server.active(), PageServer(PAGE_DIR) as pages:
                server.pactl("load-module", "module-null-sink", "sink_name=pn_blat_sink",
                             "rate=48000", "channels=1")
                server.pactl("load-module", "module-remap-source", "source_name=pn_blat_mic",
                             "master=pn_blat_sink.monitor", "channels=1",
                             f"source_properties=device.description={MIC_LABEL}")
                wav = tmp / "speech.wav"
                sf.write(wav, noisy_speech(30.0, snr_db=20.0)[1].astype(np.float32),
                         SAMPLE_RATE_HZ, subtype="FLOAT")

                play_in_loop(server, "pn_blat_sink", wav, stop)
                engine, lines = start_product(server, "pn_blat_mic", tmp / "config.json", [])
                procs.append(engine)
                time.sleep(5.0)
                url = pages.url(f"two_mics.html?seconds={seconds:g}&mic={MIC_LABEL}")
                procs.append(launch_chromium(server, url, tmp))
                pages.wait_for("/flowing", 90)
                raw = pages.wait_for("/samples", seconds + 60)
                status = next((ln.strip() for ln in reversed(lines) if "xruns=" in ln), "")
        finally:
            stop.set()
            stop_all(procs)
            server.stop()
    lags = _lags_ms(raw)
    return {"server": kind, "seconds": seconds, "lags_ms": lags,
            "median_ms": float(np.median(lags)) if lags else float("nan"),
            "min_ms": min(lags, default=float("nan")), "max_ms": max(lags, default=float("nan")),
            "status_end": status}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", choices=("pulseaudio", "pipewire", "both"), default="both")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--out", default="bench-out")
    args = ap.parse_args(argv)
    kinds = ("pulseaudio", "pipewire") if args.server == "both" else (args.server,)
    rows = []
    for kind in kinds:
        r = measure(kind, args.seconds)
        rows.append(r)
        print(f"{kind}: median {r['median_ms']:.1f} ms (windows {r['lags_ms']})", flush=True)
    lines = ["# Microphone -> PercepNet Microphone, as Chromium records them", "",
             "| server | median ms | min ms | max ms | windows |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['server']} | {r['median_ms']:.1f} | {r['min_ms']:.1f} | "
                     f"{r['max_ms']:.1f} | {len(r['lags_ms'])} |")
    lines += ["", f"{args.seconds:g} s recorded per server, lags per {WINDOW_S:g} s window."]
    write_results(Path(args.out), "latency_browser", lines, {"seconds": args.seconds}, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
