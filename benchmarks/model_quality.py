"""Quality of a trained model on the validation speakers, against the peers in one run.

    .venv/bin/python -m benchmarks.model_quality [--model weights/small.json] [--items 24]

Mixtures: the held-out validation speakers (``training.sources.VALIDATION_SPEAKERS``) with
held-out noise files and procedural noises, dry, SNR uniform in 0-10 dB. Scores PESQ-WB,
STOI (both at 16 kHz) and SI-SDR (48 kHz) for noisy / ours / oracle (``all`` stage) /
RNNoise / DeepFilterNet3 (each peer's delay compensated), and on items whose clean speech
has real content above 16 kHz the log-spectral distance to the clean signal in 8-16 kHz and
16-20 kHz (does the model keep the highs?).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import soxr
from pesq import pesq
from pystoi import stoi

from benchmarks.report import write_report

from percepnet.app.models import load_model
from percepnet.app.offline import denoise_signal
from percepnet.dsp.oracle import oracle_enhance

RATE = 48_000


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    ref = ref - ref.mean()
    est = est - est.mean()
    target = np.dot(est, ref) / (np.dot(ref, ref) + 1e-20) * ref
    return float(10 * np.log10(np.sum(target**2) / (np.sum((est - target) ** 2) + 1e-20) + 1e-20))


def lsd(ref: np.ndarray, est: np.ndarray, lo_hz: float, hi_hz: float) -> float:
    """Log-spectral distance (dB) in [lo, hi) over frames where the reference is active."""
    n = 960
    win = np.hanning(n)
    frames = (len(ref) - n) // 480
    k = np.arange(n // 2 + 1) * RATE / n
    band = (k >= lo_hz) & (k < hi_hz)
    out = []
    for i in range(frames):
        r = np.abs(np.fft.rfft(ref[i * 480:i * 480 + n] * win))[band] ** 2
        e = np.abs(np.fft.rfft(est[i * 480:i * 480 + n] * win))[band] ** 2
        if r.mean() < 1e-9:
            continue
        out.append(np.sqrt(np.mean((10 * np.log10(r + 1e-12) - 10 * np.log10(e + 1e-12)) ** 2)))
    return float(np.mean(out)) if out else float("nan")


def scores(clean: np.ndarray, y: np.ndarray) -> dict:
    c16, y16 = soxr.resample(clean, RATE, 16000), soxr.resample(y, RATE, 16000)
    return {"pesq": pesq(16000, c16, y16, "wb"), "stoi": stoi(c16, y16, 16000),
            "si_sdr": si_sdr(clean, y), "lsd_8_16": lsd(clean, y, 8000, 16000),
            "lsd_16_20": lsd(clean, y, 16000, 20000)}


def main(argv: list[str] | None = None) -> str:
    from training.data import Augment, make_example
    from training.sources import load_corpus

    from benchmarks import peers as peer_mod

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="weights/small.json")
    ap.add_argument("--items", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    t0 = time.time()
    model = load_model(args.model)
    corpus = load_corpus("val")
    peers = peer_mod.available_peers()
    systems = ["noisy", "ours", "oracle"] + [p.name for p in peers]
    rows, fullband = [], []
    for i in range(args.items):
        rng = np.random.default_rng(10_000 + i)
        aug = Augment(snr_db=float(rng.uniform(0.0, 10.0)), reverb=False, lowpass_hz=None,
                      p_lowpass=0.0, p_speed=0.0, p_noise_only=0.0, p_speech_only=0.0)
        ex = make_example(rng, corpus, args.seconds, aug)
        clean, noisy = ex["clean"], ex["noisy"]
        outs = {"noisy": noisy, "ours": denoise_signal(noisy, model),
                "oracle": oracle_enhance(clean, noisy, "all")}
        for p in peers:
            outs[p.name] = p.enhance(noisy)
        row = {name: scores(clean, y) for name, y in outs.items()}
        rows.append(row)
        if ex["bandwidth_hz"] >= 18000:
            fullband.append(row)
        print(f"item {i:2d} {ex['speaker']} {ex['snr_db']:4.1f} dB bw {ex['bandwidth_hz']:.0f}: " +
              " ".join(f"{k} {v['pesq']:.2f}" for k, v in row.items()), flush=True)

    def mean(rs, name, key):
        return float(np.nanmean([r[name][key] for r in rs])) if rs else float("nan")

    lines = [f"# Model quality: `{args.model}` on {len(rows)} validation mixtures "
             f"(speakers {', '.join(sorted(set(corpus.speakers)))}; 0-10 dB; dry)", "",
             "| system | PESQ-WB | STOI | SI-SDR dB |", "|---|---|---|---|"]
    for s in systems:
        lines.append(f"| {s} | {mean(rows, s, 'pesq'):.2f} | {mean(rows, s, 'stoi'):.3f} | "
                     f"{mean(rows, s, 'si_sdr'):.2f} |")
    lines += ["", f"Log-spectral distance to clean (dB, lower is better) on the {len(fullband)} "
              "items with real content above 16 kHz:", "",
              "| system | 8-16 kHz | 16-20 kHz |", "|---|---|---|"]
    for s in systems:
        lines.append(f"| {s} | {mean(fullband, s, 'lsd_8_16'):.2f} | {mean(fullband, s, 'lsd_16_20'):.2f} |")
    lines += ["", f"Scored in {time.time() - t0:.0f} s."]
    report = write_report(args.out, "model_quality.md", lines)
    return report


if __name__ == "__main__":
    main()
