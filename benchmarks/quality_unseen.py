"""Quality on the honest development set (``benchmarks.devset_unseen``), peers in the same run.

    .venv/bin/python -m benchmarks.quality                     # this set (the default)
    .venv/bin/python -m benchmarks.quality --set unseen [--model NAME|PATH] [--compare NAME]
        [--ablation] [--reuse PATH/quality.json] [--no-peers] [--per-condition 20]

Systems: the noisy input, ours (the model through the streaming ``Denoiser`` with the
product's stage defaults), optional other models (``--compare``) and stage variants
(``--ablation``: comb filter on/off x postfilter on/off), RNNoise and DeepFilterNet3
(``benchmarks.peers``; ``--speex`` adds Speex NS). ``--reuse`` takes the scores of systems
other than ours from an earlier run's JSON on the same items (peers need not run again).

Metrics, every output time-aligned with the input (peers: their constant delay removed):
PESQ-WB and ESTOI (16 kHz), SI-SDR (48 kHz, capped at 50 dB), DNSMOS P.835 SIG / BAK / OVRL
(16 kHz, non-intrusive), and segmental SNR per band (0-8, 8-16, 16-24 kHz; 960-point
frames, per-frame SNR clipped to -10...35 dB, over the frames where the reference is within
40 dB of its loudest frame in that band; a band counts only on the items whose clean speech
reaches into it: 8-16 kHz from 12 kHz of bandwidth, 16-24 kHz from 18 kHz).

"Overall" is the mean over the noisy items (-5...20 dB); the clean-input items (no noise
added: the input is the reference, any change is harm) have their own rows. The noisy items
are also broken down by speech style, room, noise kind and source of the voices. Writes
``OUT/quality.md`` and ``OUT/quality.json``; if ``OUT/quality-val.json`` exists (the older
development set, ``--set val``), its overall rows are quoted as secondary rows.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import soxr

from benchmarks.report import write_results
from percepnet.dsp.constants import SAMPLE_RATE_HZ

RATE = SAMPLE_RATE_HZ  # the one definition: percepnet.dsp.constants
#: (key, label, higher is better, format)
METRICS = (
    ("pesq", "PESQ-WB", True, "{:.2f}"),
    ("estoi", "ESTOI", True, "{:.3f}"),
    ("si_sdr", "SI-SDR dB", True, "{:.2f}"),
    ("sig", "DNSMOS SIG", True, "{:.2f}"),
    ("bak", "DNSMOS BAK", True, "{:.2f}"),
    ("ovrl", "DNSMOS OVRL", True, "{:.2f}"),
)
#: (key, lo Hz, hi Hz, clean bandwidth an item needs for the band to count)
SEG_BANDS = (("seg_0_8", 0.0, 8000.0, 0.0), ("seg_8_16", 8000.0, 16000.0, 12000.0),
             ("seg_16_24", 16000.0, 24000.0, 18000.0))
SI_SDR_CAP_DB = 50.0
PEER_NAMES = ("RNNoise", "DeepFilterNet3")


def seg_snr_bands(ref: np.ndarray, est: np.ndarray, bandwidth_hz: float) -> dict:
    """Segmental SNR (dB) of ``est`` against ``ref`` in each band of SEG_BANDS (NaN for a band
    the reference's bandwidth does not reach or that has no active frame). 48 kHz signals."""
    n, hop = 960, 480
    frames = (min(len(ref), len(est)) - n) // hop + 1
    out = {}
    if frames < 1:
        return {k: math.nan for k, *_ in SEG_BANDS}
    idx = np.arange(n)[None, :] + hop * np.arange(frames)[:, None]
    win = np.hanning(n)
    R = np.fft.rfft(ref[idx] * win, axis=1)
    E = np.fft.rfft(est[idx] * win, axis=1)
    k = np.arange(n // 2 + 1) * RATE / n
    for key, lo, hi, need in SEG_BANDS:
        if bandwidth_hz < need:
            out[key] = math.nan
            continue
        band = (k >= lo) & (k < hi) if hi < RATE / 2 else (k >= lo)
        s = np.sum(np.abs(R[:, band]) ** 2, axis=1)
        d = np.sum(np.abs(R[:, band] - E[:, band]) ** 2, axis=1)
        active = s > s.max() * 1e-4
        if s.max() <= 0 or not active.any():
            out[key] = math.nan
            continue
        snr = 10 * np.log10((s[active] + 1e-20) / (d[active] + 1e-20))
        out[key] = float(np.mean(np.clip(snr, -10.0, 35.0)))
    return out


def item_scores(clean: np.ndarray, y: np.ndarray, bandwidth_hz: float, dnsmos=None) -> dict:
    """Every metric of one output against its 48 kHz reference."""
    from pesq import pesq
    from pystoi import stoi

    from benchmarks.metrics import _safe, si_sdr

    c16, y16 = soxr.resample(clean, RATE, 16000), soxr.resample(y, RATE, 16000)
    out = {"pesq": _safe(pesq, 16000, c16, y16, "wb"),
           "estoi": _safe(lambda a, b: stoi(a, b, 16000, extended=True), c16, y16),
           "si_sdr": min(SI_SDR_CAP_DB, si_sdr(clean, y))}
    if dnsmos is not None:
        try:
            out.update(dnsmos(y16))
        except Exception:
            out.update(ovrl=math.nan, sig=math.nan, bak=math.nan)
    out.update(seg_snr_bands(clean, y, bandwidth_hz))
    return out


def _mean(rows, system, key) -> float:
    vals = [r["scores"][system].get(key, math.nan) for r in rows if system in r["scores"]]
    vals = [v for v in vals if v is not None and not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


def _fmt(v, fmt="{:.2f}") -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def _table(rows, systems, keys) -> list[str]:
    spec = {m[0]: m for m in METRICS}
    spec.update({k: (k, f"segSNR {lo / 1000:g}-{hi / 1000:g} kHz", True, "{:.2f}")
                 for k, lo, hi, _ in SEG_BANDS})
    lines = ["| system | " + " | ".join(spec[k][1] for k in keys) + " |",
             "|---|" + "---|" * len(keys)]
    best = {}
    for k in keys:
        vals = [_mean(rows, s, k) for s in systems if s != "noisy"]
        vals = [v for v in vals if not math.isnan(v)]
        best[k] = max(vals) if vals else math.nan
    for s in systems:
        cells = []
        for k in keys:
            v = _mean(rows, s, k)
            c = _fmt(v, spec[k][3])
            cells.append(f"**{c}**" if s != "noisy" and not math.isnan(v) and v == best[k] else c)
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def build_report(rows, systems, meta, out_dir: Path) -> list[str]:
    from benchmarks.devset_unseen import CONDITIONS, NOISE_KINDS, SOURCE_CYCLE, condition_label

    comp = meta["composition"]
    noisy_rows = [r for r in rows if r["snr_db"] is not None]
    keys = [m[0] for m in METRICS]
    seg_keys = [k for k, *_ in SEG_BANDS]

    def counts(d):
        return ", ".join(f"{k} {v}" for k, v in sorted(d.items()))

    lines = [f"# Quality on voices training never meets: `{meta['model']}` against its peers",
             "", f"Command: `{meta['command']}`.", "",
             f"Development set `benchmarks.devset_unseen` (seed {meta['seed']}): {comp['items']} "
             f"items of {comp['seconds']:.0f} s, {comp['speakers']} speakers. Conditions: "
             f"{counts(comp['condition'])}. Sources: {counts(comp['source'])} (running speech: "
             f"Kokoro Japanese voices; isolated words: 0ad and hedgewars actors). Languages: "
             f"{counts(comp['language'])}. Noises (recordings and babble never used in "
             f"training): {counts({k: v for k, v in comp['noise_kind'].items() if k != 'None'})}. "
             f"In a room: {comp['room'].get('True', 0)} items. Best value among the "
             "processed systems in bold. Overall = the noisy items; the clean-input items "
             "have their own rows.", ""]
    if meta.get("notes"):
        lines += [f"- {n}" for n in meta["notes"]] + [""]
    lines += [f"## Overall ({len(noisy_rows)} noisy items, -5...20 dB)", ""]
    lines += _table(noisy_rows, systems, keys)
    for snr in CONDITIONS:
        label = condition_label(snr)
        rs = [r for r in rows if r["condition"] == label]
        if not rs:
            continue
        title = ("Clean input (no noise added)" if snr is None else f"Input SNR {label}")
        lines += ["", f"## {title} ({len(rs)} items)", ""] + _table(rs, systems, keys)
    lines += ["", "## PESQ-WB by condition", "",
              "| system | " + " | ".join(condition_label(c) for c in CONDITIONS) + " | all noisy |",
              "|---|" + "---|" * (len(CONDITIONS) + 1)]
    for s in systems:
        cells = [_fmt(_mean([r for r in rows if r["condition"] == condition_label(c)], s, "pesq"))
                 for c in CONDITIONS]
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {_fmt(_mean(noisy_rows, s, 'pesq'))} |")
    band_items = {k: sum(1 for r in noisy_rows if r["bandwidth_hz"] >= need)
                  for k, _, _, need in SEG_BANDS}
    lines += ["", "## Fullband: segmental SNR per band (noisy items)", "",
              "Items per band: " + ", ".join(f"{k} {v}" for k, v in band_items.items()) + ".", ""]
    lines += _table(noisy_rows, systems, seg_keys)
    # where a system falls behind: by kind of noise (real ambience and crowd recordings
    # against machines, music, babble) and by source of the voices
    sources = tuple(dict.fromkeys(SOURCE_CYCLE))
    for key, groups, title in (("style", ("running", "words"), "speech style"),
                               ("room", (False, True), "room"),
                               ("noise_kind", NOISE_KINDS, "noise kind"),
                               ("source", sources, "source of the voices")):
        lines += ["", f"## By {title} (noisy items)", ""]
        for g in groups:
            rs = [r for r in noisy_rows if r[key] == g]
            if rs:
                name = {False: "dry", True: "in a room"}.get(g, g) if key == "room" else g
                lines += [f"{name} ({len(rs)} items):", ""] + _table(rs, systems,
                                                                    ["pesq", "estoi", "ovrl"]) + [""]
    val = out_dir / "quality-val.json"
    if val.exists():
        try:
            old = json.loads(val.read_text())
            orows, osys = old["items"], old["meta"]["systems"]
            lines += ["", f"## Secondary: the older development set ({len(orows)} mixtures of "
                      "the validation speakers, `--set val`)", "",
                      "| system | PESQ-WB | STOI | SI-SDR dB | DNSMOS OVRL |", "|---|---|---|---|---|"]
            for s in osys:
                lines.append(f"| {s} | " + " | ".join(_fmt(_mean(orows, s, k), f) for k, f in (
                    ("pesq", "{:.2f}"), ("stoi", "{:.3f}"), ("si_sdr", "{:.2f}"),
                    ("ovrl", "{:.2f}"))) + " |")
        except (KeyError, ValueError) as exc:
            lines += ["", f"(older set's results unreadable: {exc})"]
    lines += ["", meta["timing"]]
    return lines


def main(argv: list[str] | None = None) -> str:
    from benchmarks import peers as peer_mod
    from benchmarks.devset_unseen import ITEMS_PER_CONDITION, composition, load_devset
    from benchmarks.peers import xcorr_lag
    from benchmarks.metrics import DNSMOS

    from percepnet.app.models import ModelError, default_model_name, load_model
    from percepnet.app.offline import denoise_signal

    ap = argparse.ArgumentParser(prog="python -m benchmarks.quality --set unseen",
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="unseen", choices=("unseen",))
    ap.add_argument("--model", default=None, metavar="NAME|PATH",
                    help="installed model name or .json/.npz path (default: the shipped default)")
    ap.add_argument("--compare", action="append", default=[], metavar="NAME|PATH",
                    help="another model to score beside it (repeatable)")
    ap.add_argument("--ablation", action="store_true",
                    help="also ours with the comb filter on/off x postfilter on/off")
    ap.add_argument("--reuse", type=Path, default=None, metavar="JSON",
                    help="take the noisy input's and peers' scores from this earlier run")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--speex", action="store_true", help="also Speex NS")
    ap.add_argument("--no-dnsmos", action="store_true")
    ap.add_argument("--per-condition", type=int, default=ITEMS_PER_CONDITION)
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    t0 = time.time()
    try:
        model_ref = args.model if args.model is not None else default_model_name()
        model = load_model(model_ref)
        others = {Path(str(m)).stem if "/" in str(m) else str(m): load_model(m) for m in args.compare}
    except ModelError as exc:
        raise SystemExit(f"benchmarks.quality: {exc}") from None
    notes = []
    dnsmos = None
    if not args.no_dnsmos:
        try:
            dnsmos = DNSMOS()
        except Exception as exc:
            notes.append(f"DNSMOS unavailable: {type(exc).__name__}: {exc}")
            print(notes[-1], file=sys.stderr)
    reused: dict[str, dict] = {}
    if args.reuse is not None:
        old = json.loads(args.reuse.read_text())
        reused = {r["name"]: r for r in old["items"]}
        notes.append(f"noisy input and peer scores reused from {args.reuse}.")
    peers = peer_mod.PeerList()
    if not args.no_peers and not reused:
        allp = peer_mod.available_peers()
        keep = PEER_NAMES + (("Speex NS",) if args.speex else ())
        peers = peer_mod.PeerList([p for p in allp if p.name in keep],
                                  {k: v for k, v in allp.unavailable.items() if k in keep})
        for p in allp:
            if p.name not in keep:
                p.close()
        for label, reason in peers.unavailable.items():
            notes.append(f"{label} unavailable: {reason}")
            print(f"UNAVAILABLE {label}: {reason}", file=sys.stderr)
    variants: dict[str, dict] = {"ours": {}}
    if args.ablation:
        variants.update({"ours comb on": {"use_comb": True},
                         "ours postfilter off": {"use_postfilter": False},
                         "ours comb on, postfilter off": {"use_comb": True, "use_postfilter": False}})
    reused_systems = []
    if reused:
        first = next(iter(reused.values()))
        reused_systems = [s for s in first["scores"] if s not in variants and s not in others
                          and s != "clean" and not s.startswith("ours")]
    systems = (["noisy"] + list(variants) + list(others) + [p.name for p in peers]
               + [s for s in reused_systems if s != "noisy"])

    print("building / loading the development set ...", flush=True)
    items = load_devset(args.seed, args.per_condition)
    rows = []
    t_run = t_score = 0.0
    for i, ex in enumerate(items):
        clean, noisy = ex["clean"], ex["noisy"]
        ta = time.time()
        outs = {}
        if not reused:
            outs["noisy"] = noisy
        for label, kw in variants.items():
            outs[label] = denoise_signal(noisy, model, **kw)
        for label, m in others.items():
            outs[label] = denoise_signal(noisy, m)
        for p in peers:
            outs[p.name] = p.enhance(noisy)
        tb = time.time()
        row = {k: ex[k] for k in ("name", "snr_db", "condition", "speaker", "source", "language",
                                  "style", "noise_kind", "room", "rt60", "bandwidth_hz")}
        row["scores"], row["lag"] = {}, {}
        if reused:
            old = reused.get(ex["name"])
            if old is None:
                raise SystemExit(f"benchmarks.quality: --reuse has no item {ex['name']}")
            row["scores"].update({s: old["scores"][s] for s in reused_systems})
        for name, y in outs.items():
            assert y.shape == noisy.shape, (name, y.shape)
            row["scores"][name] = item_scores(clean, y, ex["bandwidth_hz"], dnsmos)
            if name != "noisy":
                row["lag"][name] = xcorr_lag(clean, y, max_lag=2400)[0]
        rows.append(row)
        tc = time.time()
        t_run, t_score = t_run + tb - ta, t_score + tc - tb
        print(f"[{i + 1}/{len(items)}] {ex['name']}: " +
              " ".join(f"{k} {v['pesq']:.2f}" for k, v in row["scores"].items()), flush=True)
    for p in peers:
        p.close()
    timing = (f"Denoised and scored in {time.time() - t0:.0f} s (running the systems "
              f"{t_run:.0f} s, scoring {t_score:.0f} s).")
    meta = {"model": str(model.path), "systems": systems, "seed": args.seed,
            "composition": composition(items), "notes": notes, "timing": timing,
            "command": " ".join(["python -m benchmarks.quality",
                                 *(argv if argv is not None else sys.argv[1:])])}
    args.out.mkdir(parents=True, exist_ok=True)
    lines = build_report(rows, systems, meta, args.out)
    return write_results(args.out, "quality", lines, meta, rows)


if __name__ == "__main__":
    main()
