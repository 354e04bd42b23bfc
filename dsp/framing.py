"""Framing: the Vorbis window, analysis windowing and windowed overlap-add synthesis.

The 960-sample window is applied at analysis and at synthesis. It is power complementary,
w(n)^2 + w(n + 480)^2 = 1, so windowed overlap-add of unmodified frames reconstructs the
input exactly, delayed by one hop (docs/algorithm.md, 'Framing and delay').
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .constants import HOP_SIZE, WINDOW_SIZE

__all__ = ["vorbis_window", "apply_window", "overlap_add"]


def vorbis_window(size: int = WINDOW_SIZE) -> np.ndarray:
    """Vorbis power-complementary window, w(n) = sin(pi/2 * sin^2(pi*(n + 1/2)/size)).

    Returns float64 (size,), values in (0, 1).
    """
    n = np.arange(size, dtype=np.float64)
    return np.sin(0.5 * np.pi * np.sin(np.pi * (n + 0.5) / size) ** 2)


@njit(cache=True, nogil=True)
def apply_window(x, window, out):
    """out[n] = x[n] * window[n]; all float64 (960,)."""
    for n in range(out.shape[0]):
        out[n] = x[n] * window[n]


@njit(cache=True, nogil=True)
def overlap_add(frame, window, overlap, out):
    """Window one synthesised frame and overlap-add it with the previous half.

    frame: float64 (960,), the inverse FFT of the processed spectrum (not yet windowed).
    overlap: float64 (480,), carried between calls; holds the windowed second half of the
    previous frame and is updated in place. out: float64 (480,), the finished samples.
    """
    for n in range(HOP_SIZE):
        out[n] = overlap[n] + frame[n] * window[n]
        overlap[n] = frame[n + HOP_SIZE] * window[n + HOP_SIZE]
