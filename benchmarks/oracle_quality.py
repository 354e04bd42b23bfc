"""Oracle quality of the three stages on the development set (PESQ-WB and STOI).

    .venv/bin/python -m benchmarks.oracle_quality [--items 24]

Writes bench-out/oracle_quality.md and prints the table.
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

from percepnet.dsp.oracle import oracle_enhance

from benchmarks.devset import build_devset

STAGES = ("gains", "comb", "all")
#: Extra column: the "all" stage with DeepFilterNet's per-band postfilter.
PER_BAND = "all-pb"


def scores(clean: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    c16 = soxr.resample(clean, 48000, 16000)
    y16 = soxr.resample(y, 48000, 16000)
    return pesq(16000, c16, y16, "wb"), stoi(c16, y16, 16000, extended=False)


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=24)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    t0 = time.time()
    mixes = build_devset(args.items)
    rows = []
    for m in mixes:
        row = {"noisy": scores(m.clean, m.noisy)}
        for stage in STAGES:
            row[stage] = scores(m.clean, oracle_enhance(m.clean, m.noisy, stage))
        row[PER_BAND] = scores(m.clean, oracle_enhance(m.clean, m.noisy, "all",
                                                       postfilter_per_band=True))
        rows.append((m, row))
        print(f"{m.name:18s} {m.snr_db:5.1f} dB " + " ".join(
            f"{k}:{v[0]:.2f}/{v[1]:.3f}" for k, v in row.items()), flush=True)
    cols = ("noisy",) + STAGES + (PER_BAND,)
    mean = {k: np.mean([r[k] for _, r in rows], axis=0) for k in cols}
    lines = [
        f"# Oracle quality, {len(rows)} development mixtures (0-10 dB SNR), PESQ-WB / STOI",
        "",
        "gains: band gains only; comb: + pitch filtering; all: + the paper's envelope",
        "postfilter; all-pb: + DeepFilterNet's per-band postfilter instead. No decay cap.",
        "",
        "| item | SNR dB | " + " | ".join(cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for m, r in rows:
        lines.append(f"| {m.name} | {m.snr_db:.1f} | " + " | ".join(
            f"{r[k][0]:.2f} / {r[k][1]:.3f}" for k in cols) + " |")
    lines.append("| **mean** | | " + " | ".join(
        f"**{mean[k][0]:.2f} / {mean[k][1]:.3f}**" for k in cols) + " |")
    by_noise = {}
    for m, r in rows:
        by_noise.setdefault(m.noise, []).append(r)
    lines += ["", "Mean PESQ-WB by noise type:", "",
              "| noise | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for noise, rs in by_noise.items():
        lines.append(f"| {noise} | " + " | ".join(
            f"{np.mean([x[k][0] for x in rs]):.2f}" for k in cols) + " |")
    lines += ["", f"Built and scored in {time.time() - t0:.0f} s."]
    report = write_report(args.out, "oracle_quality.md", lines)
    return report


if __name__ == "__main__":
    main()
