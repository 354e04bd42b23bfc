"""DSP cost per 10 ms frame without the network, on one core.

    .venv/bin/python -m benchmarks.dsp_cost [--seconds 60]

Times the whole streaming chain (analysis with pitch tracking and comb filter, gain source
returning fixed values, synthesis with pitch filtering and postfilter) and its parts, on
real speech plus noise, pinned to one CPU. Reports medians and p99 in microseconds.
"""
from __future__ import annotations

import argparse
import gc
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from benchmarks.report import write_report

from percepnet.dsp.constants import HOP_SIZE, N_BANDS
from percepnet.dsp.features import analyze_hop, frame_features, make_analysis
from percepnet.dsp.fft import make_plan, rfft
from percepnet.dsp.pitch import make_pitch_state, pitch_push
from percepnet.dsp.processor import (
    STAGE_COMB,
    STAGE_DECAY_CAP,
    STAGE_POSTFILTER,
    StreamProcessor,
    make_synthesis,
    synthesize_frame,
)

ALL_STAGES = STAGE_COMB | STAGE_POSTFILTER | STAGE_DECAY_CAP

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def _signal(seconds: float) -> np.ndarray:
    data, sr = sf.read(str(FIXTURES / "speech_fr.ogg"), dtype="float64")
    speech = soxr.resample(data, sr, 48000)
    x = np.resize(speech, int(seconds * 48000))
    return x + 0.02 * np.random.default_rng(0).normal(size=x.shape[0])


def _time_frames(fn, n_frames: int) -> np.ndarray:
    t = np.empty(n_frames)
    for i in range(n_frames):
        t0 = time.perf_counter_ns()
        fn(i)
        t[i] = time.perf_counter_ns() - t0
    return t / 1000.0


def time_paced(calls: dict, n_frames: int, period_s: float, turn: int = 100) -> dict:
    """Wall time (µs) of each call, paced as an audio callback is: one call per tick of
    ``period_s``, sleeping in between (the core idles and other work takes its caches, which
    a back-to-back loop never shows). ``calls`` maps a name to ``fn(i)``, i = 0 ..
    n_frames - 1 in order; they take turns of ``turn`` ticks (1 s at 10 ms), so a change in
    the machine's background load during the run falls on all of them alike and their
    ratios hold. The garbage collector is off while timing. Returns name -> (n_frames,)."""
    t = {name: np.empty(n_frames) for name in calls}
    gc_was = gc.isenabled()
    gc.disable()
    try:
        tick = time.perf_counter()
        for start in range(0, n_frames, turn):
            for name, fn in calls.items():
                for i in range(start, min(start + turn, n_frames)):
                    tick += period_s
                    time.sleep(max(0.0, tick - time.perf_counter()))
                    t0 = time.perf_counter_ns()
                    fn(i)
                    t[name][i] = time.perf_counter_ns() - t0
    finally:
        if gc_was:
            gc.enable()
    return {name: v / 1000.0 for name, v in t.items()}


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    x = _signal(args.seconds)
    n = x.shape[0] // HOP_SIZE
    hops = [np.ascontiguousarray(x[i * HOP_SIZE:(i + 1) * HOP_SIZE]) for i in range(n)]

    a, s = make_analysis(), make_synthesis()
    gains, strengths, feats, out = np.full(N_BANDS, 0.7), np.full(N_BANDS, 0.3), np.zeros(70), np.zeros(HOP_SIZE)

    def whole(i):
        slot = analyze_hop(a, hops[i])
        frame_features(a, slot, feats)
        synthesize_frame(a, slot, gains, strengths, ALL_STAGES, 0.0, s, out)

    ps = make_pitch_state()
    plan, spec, frame = make_plan(960), np.zeros(481, np.complex128), np.zeros(960)
    a2 = make_analysis()
    slots = []

    def pitch(i):
        pitch_push(ps, hops[i])

    def fft(i):
        rfft(frame, spec, plan)

    def analysis(i):
        slots.append(analyze_hop(a2, hops[i]))

    class Fixed:
        def reset(self):
            pass

        def frame(self, analysis, slot, g, r):
            g[:] = 0.7
            r[:] = 0.3

    proc = StreamProcessor(Fixed(), use_decay_cap=True)
    block_out = np.zeros(HOP_SIZE)

    def stream(i):
        proc.process(hops[i], block_out)

    whole(0), pitch(0), fft(0), analysis(0), stream(0)  # compile / load from cache
    rows = []
    for name, fn in (("StreamProcessor.process, 480-sample blocks (Python framing included)", stream),
                     ("whole chain (analysis + features + synthesis)", whole), ("analysis (incl. pitch, comb, 2 FFTs)", analysis),
                     ("pitch tracker", pitch), ("one rfft of 960", fft)):
        t = _time_frames(fn, n)
        rows.append((name, np.median(t), np.percentile(t, 99)))
    lines = [f"# DSP cost per 10 ms frame, no network, one core ({n} frames of speech + noise)", "",
             "| part | median µs | p99 µs | % of real time (median) |", "|---|---|---|---|"]
    for name, med, p99 in rows:
        lines.append(f"| {name} | {med:.1f} | {p99:.1f} | {100 * med / 10000:.2f} % |")
    lines += ["", "Target: whole chain <= 100 µs per frame (1 % of one core)."]
    report = write_report(args.out, "dsp_cost.md", lines)
    return report


if __name__ == "__main__":
    main()
