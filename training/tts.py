"""Synthetic speakers from text-to-speech, for speaker variety at a low mixing weight.

Why: the model's validation loss is dominated by unseen speakers, not unseen noises (measured
on the shipped ``small`` checkpoint, 48 fresh mixtures each: training speakers with held-out
noises 0.256, validation speakers with training noises 0.323). The real-speech sources give 13
training voices; TTS adds many more pitch/formant/rate combinations, at a low mixing weight:
for variety, not as the bulk (docs/training-data.md).

Engines (Debian main, unpacked into the data cache like every other source, never installed):

- ``espeak-ng`` (formant synthesis, 22.05 kHz, ≈11 kHz bandwidth): one voice per
  (language, variant), random base pitch (``-p``), pitch range (``-P``) and rate (``-s``) per
  utterance. The validation languages (``training.sources.VALIDATION_SPEAKERS``) are left out.
- ``flite`` (diphone/clustergen, 8-16 kHz): its built-in English voices.

Text: the multilingual one-line descriptions shipped with tuxpaint-stamps-default
(``stamps/**/*.txt``, lines ``<lang>.utf8=<sentence>``), read in each voice's own language.

Utterances are written once as 16-bit WAV under ``<data cache>/tts-v1/<speaker>/`` with a JSON
listing (clip, speaker, duration, measured bandwidth); speakers are named ``tts-<engine>-<voice>``.
Deterministic from the seed.
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from training.sources import (SPEECH_PACKAGE, VALIDATION_SPEAKERS, Clip, cache_dir,
                              fetch_packages, load48, measure_bandwidth)

ESPEAK_PACKAGES = ("espeak-ng", "libespeak-ng1", "espeak-ng-data", "libpcaudio0", "libsonic0")
FLITE_PACKAGES = ("flite", "libflite1")
TTS_VERSION = 1
#: espeak-ng language code -> the tuxpaint text language whose sentences it reads
ESPEAK_LANGUAGES = {
    "en-us": "en_GB", "en": "en_GB", "de": "de", "fr-fr": "fr", "es": "es", "it": "it",
    "pt": "pt", "nl": "nl", "sv": "sv", "nb": "nb", "fi": "fi", "pl": "pl", "cs": "cs",
    "sk": "sk", "hu": "hu", "ro": "ro", "ru": "ru", "uk": "uk", "el": "el", "tr": "tr",
    "ca": "ca", "eu": "eu", "hr": "hr", "sl": "sl", "lt": "lt", "et": "et", "is": "is",
    "cy": "cy", "ga": "ga", "eo": "eo",
}
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")


def _sentences(tree: Path) -> dict[str, list[str]]:
    """language -> sentences from the tuxpaint stamp descriptions (first line is English)."""
    out: dict[str, list[str]] = {}
    for f in sorted(glob.glob(str(tree / "usr/share/tuxpaint/stamps/**/*.txt"), recursive=True)):
        try:
            lines = Path(f).read_text(encoding="utf-8").splitlines()
        except (UnicodeDecodeError, OSError):
            continue
        if lines and lines[0].strip():
            out.setdefault("en_GB", []).append(lines[0].strip())
        for line in lines[1:]:
            key, sep, text = line.partition("=")
            if sep and key.endswith(".utf8") and len(text.strip()) > 8:
                out.setdefault(key[:-5], []).append(text.strip())
    return out


def _run(cmd: list[str], env: dict) -> bool:
    return subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=60).returncode == 0


def _speak_jobs(rng: np.random.Generator, sentences: dict[str, list[str]],
                per_voice: int) -> list[tuple[str, str, list[str]]]:
    """(speaker, text, engine args) for every utterance to synthesise."""
    jobs = []
    val = {v.lower() for v in VALIDATION_SPEAKERS}
    for lang, text_lang in ESPEAK_LANGUAGES.items():
        if lang.split("-")[0] in val or not sentences.get(text_lang):
            continue
        for variant in rng.choice(ESPEAK_VARIANTS, size=3, replace=False):
            speaker = f"tts-espeak-{lang}-{variant}"
            base_pitch = int(rng.integers(25, 76))
            for _ in range(per_voice):
                text = sentences[text_lang][int(rng.integers(len(sentences[text_lang])))]
                args = ["-v", f"{lang}+{variant}", "-p", str(int(np.clip(
                    base_pitch + rng.integers(-8, 9), 0, 99))),
                    "-s", str(int(rng.integers(135, 195)))]
                jobs.append((speaker, text, ["espeak"] + args))
    for voice in FLITE_VOICES:
        for _ in range(per_voice):
            text = sentences["en_GB"][int(rng.integers(len(sentences["en_GB"])))]
            jobs.append((f"tts-flite-{voice}", text, ["flite", voice]))
    return jobs


def engines() -> tuple[list[str], str, dict]:
    """Fetch (once) and locate the engines: (espeak-ng command prefix, flite path, env)."""
    tree = fetch_packages(ESPEAK_PACKAGES + FLITE_PACKAGES)
    lib = tree / "usr/lib/x86_64-linux-gnu"
    env = dict(os.environ, LD_LIBRARY_PATH=f"{lib}:{os.environ.get('LD_LIBRARY_PATH', '')}")
    return [str(tree / "usr/bin/espeak-ng"), f"--path={lib}"], str(tree / "usr/bin/flite"), env


def synthesise(args: list[str], text: str, out: Path, tools=None) -> bool:
    """Speak ``text`` into the WAV file ``out`` with ``args`` from ``_speak_jobs``
    (["espeak", espeak-ng options...] or ["flite", voice]); False if the engine failed or
    produced next to nothing (nothing is left at ``out`` then)."""
    espeak, flite, env = tools or engines()
    with tempfile.NamedTemporaryFile(suffix=".wav", dir=out.parent, delete=False) as t:
        tmp = Path(t.name)
    if args[0] == "espeak":
        ok = _run(espeak + args[1:] + ["-w", str(tmp), text], env)
    else:
        ok = _run([flite, "-voice", args[1], "-t", text, "-o", str(tmp)], env)
    if not ok or tmp.stat().st_size < 2000:
        tmp.unlink(missing_ok=True)
        return False
    tmp.replace(out)
    return True


def build_tts(per_voice: int = 30, seed: int = 1) -> list[dict]:
    """Synthesise (once) and list the TTS clips; returns Clip dicts (split "train")."""
    root = cache_dir() / f"tts-v{TTS_VERSION}"
    listing = root / f"clips-{per_voice}-{seed}.json"
    if listing.exists():
        return json.loads(listing.read_text())
    tree = fetch_packages((SPEECH_PACKAGE,))
    tools = engines()
    rng = np.random.default_rng([seed, TTS_VERSION])
    clips = []
    for i, (speaker, text, args) in enumerate(_speak_jobs(rng, _sentences(tree), per_voice)):
        out = root / speaker / f"{i:05d}.wav"
        out.parent.mkdir(parents=True, exist_ok=True)
        if not out.exists() and not synthesise(args, text, out, tools):
            continue
        x = load48(out)
        if len(x) < 0.5 * 48000:
            continue
        clips.append(asdict(Clip(str(out), speaker, "train", len(x) / 48000,
                                 float(measure_bandwidth(x)))))
    if not clips:
        raise RuntimeError(f"text-to-speech produced no clips under {root}")
    tmp = listing.with_suffix(".tmp")
    tmp.write_text(json.dumps(clips, indent=1))
    tmp.replace(listing)
    return clips
