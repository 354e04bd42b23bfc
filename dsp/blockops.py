"""Allocation-free block helpers for the audio callback (mono mixdown, fan-out, guards).

PortAudio hands the engine float32 blocks of shape (frames, channels); the Denoiser works on
float64 mono. These kernels convert between the two without allocating, and make the output
safe: every sample finite and within ±``OUTPUT_LIMIT`` full scale.
"""
from __future__ import annotations

import math

from numba import njit

from .constants import OUTPUT_LIMIT

__all__ = ["mixdown", "fan_out", "ring_write", "peak_abs"]


@njit(cache=True, nogil=True)
def mixdown(indata, out):
    """Average the channels of ``indata`` (n, ch) into ``out`` (n,); non-finite samples
    become 0. Returns the number of non-finite samples seen."""
    n, ch = indata.shape
    bad = 0
    inv = 1.0 / ch
    for i in range(n):
        acc = 0.0
        for c in range(ch):
            v = indata[i, c]
            if math.isfinite(v):
                acc += v
            else:
                bad += 1
        out[i] = acc * inv
    return bad


@njit(cache=True, nogil=True)
def fan_out(src, outdata, gain):
    """Write mono ``src`` (n,) times ``gain`` to every channel of ``outdata`` (n, ch), clamped
    to ±OUTPUT_LIMIT; non-finite samples become 0. Returns the count of non-finite ones."""
    n, ch = outdata.shape
    bad = 0
    for i in range(n):
        v = src[i] * gain
        if not math.isfinite(v):
            v = 0.0
            bad += 1
        elif v > OUTPUT_LIMIT:
            v = OUTPUT_LIMIT
        elif v < -OUTPUT_LIMIT:
            v = -OUTPUT_LIMIT
        for c in range(ch):
            outdata[i, c] = v
    return bad


@njit(cache=True, nogil=True)
def ring_write(ring, pos, src):
    """Copy ``src`` into the circular buffer ``ring`` at ``pos``; returns the new position."""
    size = ring.shape[0]
    for i in range(src.shape[0]):
        ring[pos] = src[i]
        pos += 1
        if pos == size:
            pos = 0
    return pos


@njit(cache=True, nogil=True)
def peak_abs(x):
    m = 0.0
    for i in range(x.shape[0]):
        v = abs(x[i])
        if v > m:
            m = v
    return m
