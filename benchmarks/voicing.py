"""Voicing recall of the pitch tracker under noise, against its own track of the clean speech.

    .venv/bin/python -m benchmarks.voicing [--out bench-out]

On the dry items of the honest development set (``benchmarks.devset_unseen``): the tracker
(``percepnet.dsp.pitch.track_pitch``) runs on the clean reference and on the noisy input.
Frames voiced in the clean track (correlation >= ``VOICING_THRESHOLD``) are the truth;
per input SNR the report gives

- recall: the share of them the noisy track also marks voiced;
- period agreement: among those, the share whose noisy period is within 5 % of the clean one
  (octave errors and drift count as wrong);
- false voicing: the share of clean-unvoiced active frames the noisy track marks voiced;
- voiced frames per second of active speech, clean and noisy (what the window shows);

at the runtime threshold and at lower ones, to show what moving the threshold would buy.
Writes ``OUT/voicing.md`` and ``OUT/voicing.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.report import write_report

THRESHOLDS = (0.45, 0.35, 0.25)


def tracks(clean: np.ndarray, noisy: np.ndarray) -> tuple[np.ndarray, ...]:
    """(clean periods, clean correlations, noisy periods, noisy correlations, active frames)
    of one item (48 kHz signals of equal length)."""
    from percepnet.dsp.pitch import track_pitch

    pc, cc = track_pitch(clean)
    pn, cn = track_pitch(noisy)
    n = min(len(pc), len(pn))
    x = np.pad(clean, (0, max(0, n * 480 - len(clean))))[: n * 480]
    e = np.mean(x.reshape(n, 480) ** 2, axis=1)
    active = e > e.max() * 1e-4  # within 40 dB of the loudest frame
    return pc[:n], cc[:n], pn[:n], cn[:n], active


def frame_stats(tr: tuple[np.ndarray, ...], threshold: float, clean_threshold: float) -> dict:
    """Counts for one item's tracks (``tracks``) at one noisy-track threshold."""
    pc, cc, pn, cn, active = tr
    v_clean = active & (cc >= clean_threshold)
    v_noisy = cn >= threshold
    both = v_clean & v_noisy
    agree = both & (np.abs(pn - pc) <= 0.05 * pc)
    return {"active": int(active.sum()), "voiced_clean": int(v_clean.sum()),
            "hit": int(both.sum()), "agree": int(agree.sum()),
            "unvoiced_active": int((active & ~v_clean).sum()),
            "false": int((active & ~v_clean & v_noisy).sum()),
            "voiced_noisy_active": int((active & v_noisy).sum())}


def main(argv: list[str] | None = None) -> str:
    from benchmarks.devset_unseen import CONDITIONS, condition_label, load_devset
    from percepnet.dsp.pitch import VOICING_THRESHOLD

    ap = argparse.ArgumentParser(prog="python -m benchmarks.voicing", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    items = [it for it in load_devset(args.seed) if not it["room"] and it["snr_db"] is not None]
    thresholds = tuple(sorted({VOICING_THRESHOLD, *THRESHOLDS}, reverse=True))
    totals: dict = {}
    for it in items:
        tr = tracks(it["clean"], it["noisy"])
        for t in thresholds:
            s = frame_stats(tr, t, VOICING_THRESHOLD)
            acc = totals.setdefault((it["condition"], t), {k: 0 for k in s})
            for k, v in s.items():
                acc[k] += v
    lines = ["# Pitch tracker voicing under noise (unseen-voices development set, dry items)", "",
             f"Truth: frames the tracker marks voiced on the clean reference (correlation >= "
             f"{VOICING_THRESHOLD}, active frames: within 40 dB of the item's loudest). "
             f"{len(items)} items of 10 s. Threshold = the noisy track's voicing threshold "
             f"(the runtime uses {VOICING_THRESHOLD}).", "",
             "| input SNR | threshold | recall | period within 5 % | false voicing | "
             "voiced frames/s clean → noisy |", "|---|---|---|---|---|---|"]
    out = []
    for snr in CONDITIONS:
        if snr is None:
            continue
        label = condition_label(snr)
        for t in thresholds:
            a = totals.get((label, t))
            if not a or not a["voiced_clean"]:
                continue
            rec = a["hit"] / a["voiced_clean"]
            agree = a["agree"] / max(a["hit"], 1)
            false = a["false"] / max(a["unvoiced_active"], 1)
            secs = a["active"] / 100.0
            lines.append(f"| {label} | {t:.2f} | {rec:.2f} | {agree:.2f} | {false:.2f} | "
                         f"{a['voiced_clean'] / secs:.1f} → {a['voiced_noisy_active'] / secs:.1f} |")
            out.append({"condition": label, "threshold": t, "recall": rec,
                        "period_agreement": agree, "false_voicing": false, **a})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "voicing.json").write_text(json.dumps(out, indent=1) + "\n")
    return write_report(args.out, "voicing.md", lines)


if __name__ == "__main__":
    main(sys.argv[1:])
