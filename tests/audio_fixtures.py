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
