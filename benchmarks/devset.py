"""Development test set built from the allowed sources (docs/training-data.md).

Fetches Debian packages with ``apt-get download`` into the user cache (never into the
repository), unpacks them, and builds deterministic noisy mixtures:
- clean speech: tuxpaint-stamps-default spoken descriptions, one speaker per language;
  several languages, several 1-4 s phrases concatenated into ~5 s items ("es" is excluded:
  every file is clipped);
- noise: recorded household noises (vacuum cleaner, washing machine, kettle), typing
  synthesised from bucklespring key one-shots, procedural pink noise, fan-like noise and
  babble from speakers not used as the clean voice of the item;
- SNR uniform in 0-10 dB over the whole item.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from training.sources import fetch_packages as _fetch_packages
from percepnet.dsp.constants import SAMPLE_RATE_HZ

RATE = SAMPLE_RATE_HZ  # the one definition: percepnet.dsp.constants
PACKAGES = ("tuxpaint-stamps-default", "bucklespring-data")
LANGUAGES = ("ru", "fr", "da", "be", "ro", "bg", "ca")
NOISE_TYPES = ("vacuum", "washing", "typing", "pink", "fan", "babble")


def fetch_packages() -> Path:
    """Download and unpack the Debian packages once; returns the unpack root."""
    return _fetch_packages(PACKAGES)


def _load(path: str | Path) -> np.ndarray:
    data, sr = sf.read(str(path), dtype="float64", always_2d=True)
    x = data.mean(axis=1)
    return soxr.resample(x, sr, RATE) if sr != RATE else x


def _trim(x: np.ndarray, floor_db: float = -45.0) -> np.ndarray:
    """Drop leading/trailing samples quieter than floor_db below the clip's peak (10 ms)."""
    frames = x[: len(x) // 480 * 480].reshape(-1, 480)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    active = np.nonzero(level > level.max() + floor_db)[0]
    if active.size == 0:
        return x
    return x[active[0] * 480:(active[-1] + 1) * 480]


def speech_item(tree: Path, lang: str, rng: np.random.Generator, seconds: float) -> np.ndarray:
    files = sorted(glob.glob(str(tree / "usr/share/tuxpaint/stamps/**" / f"*_desc_{lang}.ogg"),
                             recursive=True))
    out, gap = [], np.zeros(int(0.15 * RATE))
    while sum(len(o) for o in out) < seconds * RATE:
        out += [_trim(_load(files[rng.integers(len(files))])), gap]
    x = np.concatenate(out)[: int(seconds * RATE)]
    return 0.3 * x / (np.max(np.abs(x)) + 1e-9)


def _pink(n: int, rng: np.random.Generator, exponent: float = 1.0) -> np.ndarray:
    spec = np.fft.rfft(rng.normal(size=n))
    f = np.arange(spec.shape[0], dtype=float)
    f[0] = 1.0
    return np.fft.irfft(spec / f ** (exponent / 2), n)


def _fan(n: int, rng: np.random.Generator) -> np.ndarray:
    """Fan-like: brown-ish noise with a slow amplitude modulation and blade tones."""
    t = np.arange(n) / RATE
    base = _pink(n, rng, 1.6) * (1 + 0.2 * np.sin(2 * np.pi * 0.7 * t))
    blade = rng.uniform(80, 160)
    tones = sum(np.sin(2 * np.pi * k * blade * t + rng.uniform(0, 6.28)) / k for k in range(1, 5))
    return base / np.std(base) + 0.3 * tones


def _typing(tree: Path, n: int, rng: np.random.Generator) -> np.ndarray:
    keys = sorted(glob.glob(str(tree / "usr/share/buckle/wav/*.wav")))
    out = np.zeros(n + RATE)
    pos = 0
    while pos < n:
        shot = _load(keys[rng.integers(len(keys))])
        out[pos:pos + len(shot)] += shot
        pos += int(rng.uniform(0.08, 0.35) * RATE)
    return out[:n]


def noise_item(tree: Path, kind: str, n: int, rng: np.random.Generator, exclude: str) -> np.ndarray:
    stamps = tree / "usr/share/tuxpaint/stamps"
    if kind == "vacuum":
        return np.resize(_load(stamps / "household/vacuum_cleaner.ogg"), n)
    if kind == "washing":
        return np.resize(_load(stamps / "household/Washing-machine.ogg"), n)
    if kind == "typing":
        return _typing(tree, n, rng)
    if kind == "pink":
        return _pink(n, rng)
    if kind == "fan":
        return _fan(n, rng)
    if kind == "babble":
        others = [lang for lang in LANGUAGES if lang != exclude]
        voices = rng.choice(others, size=4, replace=False)
        return sum(speech_item(tree, str(v), rng, n / RATE)[:n] for v in voices)
    raise ValueError(kind)


@dataclass
class Mixture:
    name: str
    clean: np.ndarray
    noisy: np.ndarray
    snr_db: float
    noise: str
    language: str


def build_devset(n_items: int = 24, seconds: float = 5.0, seed: int = 2020) -> list[Mixture]:
    tree = fetch_packages()
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n_items):
        lang = LANGUAGES[i % len(LANGUAGES)]
        kind = NOISE_TYPES[i % len(NOISE_TYPES)]
        clean = speech_item(tree, lang, rng, seconds)
        noise = noise_item(tree, kind, clean.shape[0], rng, lang)
        snr = float(rng.uniform(0.0, 10.0))
        gain = np.sqrt(np.sum(clean**2) / (np.sum(noise**2) * 10 ** (snr / 10)))
        items.append(Mixture(f"{i:02d}-{lang}-{kind}", clean, clean + gain * noise, snr, kind, lang))
    return items
