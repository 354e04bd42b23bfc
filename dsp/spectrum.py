"""Display spectra for the UI: log-magnitude of the latest 960 samples, allocation-free.

Not part of the signal chain; the engine calls :func:`log_spectrum_db` once per 10 ms hop on
its input and on its output so the window can draw before/after spectrograms. Bins are
50 Hz wide (960-point FFT at 48 kHz), 481 of them from 0 to 24 kHz.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from .constants import N_BINS, WINDOW_SIZE
from .fft import FFTPlan, make_plan, rfft
from .framing import vorbis_window

__all__ = ["SpectrumState", "make_spectrum_state", "log_spectrum_db", "SPECTRUM_FLOOR_DB"]

#: Lowest level reported, dB re full scale (a full-scale sine reads about 0 dB).
SPECTRUM_FLOOR_DB = -120.0


class SpectrumState(NamedTuple):
    window: np.ndarray  # float64 (960,)
    plan: FFTPlan
    frame: np.ndarray  # float64 (960,), windowed samples
    spec: np.ndarray  # complex128 (481,)


def make_spectrum_state() -> SpectrumState:
    w = vorbis_window(WINDOW_SIZE)
    return SpectrumState(w, make_plan(WINDOW_SIZE), np.zeros(WINDOW_SIZE),
                         np.zeros(N_BINS, dtype=np.complex128))


@njit(cache=True, nogil=True)
def log_spectrum_db(state, history, start, out_db):
    """dB magnitude of the 960 samples of the circular buffer ``history`` that end just
    before index ``start`` (so ``history[start:]`` + ``history[:start]`` in time order).

    history: float (960,) ring; out_db: float32 or float64 (481,), >= SPECTRUM_FLOOR_DB.
    Scaled so a full-scale sine reads about 0 dB (window sum / 2 normalisation).
    """
    n = state.window.shape[0]
    wsum = 0.0
    for i in range(n):
        v = history[(start + i) % n]
        if not math.isfinite(v):
            v = 0.0
        state.frame[i] = v * state.window[i]
        wsum += state.window[i]
    rfft(state.frame, state.spec, state.plan)
    scale = 2.0 / wsum
    for k in range(out_db.shape[0]):
        z = state.spec[k]
        p = (z.real * z.real + z.imag * z.imag) * scale * scale
        out_db[k] = max(10.0 * math.log10(p + 1e-30), SPECTRUM_FLOOR_DB)
