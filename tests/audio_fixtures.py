"""Audio helpers shared by the tests: the committed fixtures at 48 kHz and mixing at an SNR."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(name: str, rate: int = 48_000) -> np.ndarray:
    """A committed fixture as float64 mono at ``rate``."""
    data, sr = sf.read(str(FIXTURES / name), dtype="float64", always_2d=True)
    mono = data.mean(axis=1)
    return soxr.resample(mono, sr, rate) if sr != rate else mono


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """clean + noise (looped to length) scaled to ``snr_db`` over the whole clip."""
    noise = np.resize(noise, clean.shape[0])
    gain = np.sqrt(np.sum(clean**2) / (np.sum(noise**2) * 10.0 ** (snr_db / 10.0)))
    return clean + gain * noise


def tone_fit(y: np.ndarray, f: float, rate: int) -> tuple[float, float]:
    """(amplitude of the tone at ``f`` Hz in ``y``, the residual in dB below it): a
    least-squares sine/cosine fit at a known frequency."""
    t = np.arange(len(y)) / rate
    a = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)], 1)
    c, *_ = np.linalg.lstsq(a, y, rcond=None)
    fit = a @ c
    return float(np.hypot(*c)), float(20 * np.log10(np.std(y - fit) / np.std(fit)))
