"""Comb (pitch) filter and its per-band energy normalisation (docs/algorithm.md, 'Comb filter').

p(n) = sum_{k=-K..K} w_k y(n - k T) over the 960-sample span of the frame being enhanced,
with Hann taps normalised to sum 1. Negative k read future samples: this is the paper's
non-causal comb filter, and the reason for the look-ahead. With K = 5 periods each side the
filter has unit gain on the harmonics and passes sigma^2 = sum w_k^2 = 0.125 of uncorrelated
noise power (-9 dB). Only 480*M = 960 future samples exist, so K is truncated per frame to
K_eff = min(5, floor(960 / T)) (>= 1 for every T <= 768), symmetrically, which keeps the
filter zero-phase; sigma^2 is recomputed for K_eff.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .bands import interp_band_gain
from .constants import BIN_HZ, COMB_LOOKAHEAD_SAMPLES, COMB_PERIODS, WINDOW_SIZE

__all__ = [
    "HISTORY_SIZE", "WINDOW_OFFSET", "comb_taps", "comb_filter", "mix_pitch", "comb_noise_power",
]

#: Past samples the taps may reach: K_eff * T <= 960 for every period (see module doc).
_PAST_SAMPLES = COMB_LOOKAHEAD_SAMPLES
#: Time-domain history the filter reads: 960 past + 960 window + 960 future = 2880 samples.
HISTORY_SIZE = _PAST_SAMPLES + WINDOW_SIZE + COMB_LOOKAHEAD_SAMPLES
#: Index in the history buffer where the window of the frame being enhanced starts.
WINDOW_OFFSET = _PAST_SAMPLES


@njit(cache=True, nogil=True)
def comb_taps(period, taps):
    """Hann taps for one period, w_k ~ 0.5 - 0.5 cos(2 pi (k + K + 1) / (2K + 2)), sum 1.

    period: int samples (60..768). taps: float64 (2*COMB_PERIODS + 1,), written in
    taps[0 .. 2K] for k = -K..K. Returns (K_eff, sigma2) with sigma2 = sum w_k^2, the noise
    power the filter passes.
    """
    k_eff = min(COMB_PERIODS, COMB_LOOKAHEAD_SAMPLES // period)
    if k_eff < 1:
        k_eff = 1
    total = 0.0
    for j in range(2 * k_eff + 1):
        w = 0.5 - 0.5 * math.cos(2.0 * math.pi * (j + 1) / (2 * k_eff + 2))
        taps[j] = w
        total += w
    sigma2 = 0.0
    for j in range(2 * k_eff + 1):
        taps[j] /= total
        sigma2 += taps[j] * taps[j]
    return k_eff, sigma2


@njit(cache=True, nogil=True)
def comb_filter(history, period, taps, out):
    """Comb-filter the window of the frame being enhanced.

    history: float64 (HISTORY_SIZE,), samples with the frame's window at
    [WINDOW_OFFSET, WINDOW_OFFSET + 960). period: int (60..768). taps: float64 scratch
    (>= 11,). out: float64 (960,), the filtered span (not windowed). Returns sigma2.
    """
    k_eff, sigma2 = comb_taps(period, taps)
    n_out = out.shape[0]
    for n in range(n_out):
        out[n] = 0.0
    for j in range(2 * k_eff + 1):
        # tap j <-> k = K - j: reads y(n - k T); k < 0 reads the future.
        shift = (k_eff - j) * period
        w = taps[j]
        base = WINDOW_OFFSET - shift
        for n in range(n_out):
            out[n] += w * history[base + n]
    return sigma2


#: Pitch correlation below which the comb filter is not applied at all, rising linearly to
#: full strength at the tracker's voicing threshold (``pitch.VOICING_THRESHOLD``, 0.45). The
#: network's strengths do not follow voicing (measured on the unseen-voices set: mean
#: strength 0.55 on unvoiced frames against 0.51 on voiced ones at 20 dB SNR), so without
#: this gate the comb smears unvoiced speech and the highs with a filter tuned to a period
#: that is not there. 0.30: above the 99.9th percentile of noise-only frames of white noise
#: and a kettle (0.26, 0.31 is the kettle's), where a comb cannot help.
COMB_VOICING_MIN = 0.30


#: Highest frequency the comb filter acts on. Above it a 10 ms frame's harmonics are too
#: dense and too sensitive to pitch jitter for a filter 5 periods long: on the unseen-voices
#: set the comb there cost 0.4-0.8 dB segmental SNR in the 8-16 and 16-24 kHz bands and
#: nothing below changed when it was cut (PESQ-WB and DNSMOS identical, both work below
#: 8 kHz). 8000 Hz = bin 160 at 50 Hz per bin.
COMB_MAX_HZ = 8000.0
COMB_MAX_BIN = int(COMB_MAX_HZ / BIN_HZ)


@njit(cache=True, nogil=True)
def voicing_weight(corr, full):
    """Share of the comb strengths applied for a frame of pitch correlation ``corr``: 0 up
    to COMB_VOICING_MIN, 1 from ``full`` (the voicing threshold) on, linear between."""
    if corr <= COMB_VOICING_MIN:
        return 0.0
    if corr >= full:
        return 1.0
    return (corr - COMB_VOICING_MIN) / (full - COMB_VOICING_MIN)


@njit(cache=True, nogil=True)
def mix_pitch(spec_y, spec_p, energy_y, energy_p, strengths, edges, norm_bands, norm_bins,
              r_bins, out, weight=1.0):
    """Pitch filtering: Z(k) = (1 - r(k)) Y(k) + r(k) sqrt(E_y/E_p)(k) P(k), r = the band
    strengths interpolated to bins, times ``weight`` (the frame's :func:`voicing_weight`),
    and 0 from COMB_MAX_HZ up.

    The comb output is first scaled per band to the noisy band energy, so r means what the
    strength target assumed (both components energy-normalised).
    spec_y, spec_p: complex128 (481,); energy_y, energy_p, strengths: float64 (n_bands,),
    strengths in [0, 1]; edges: int64 (n_bands,); norm_bands (n_bands,), norm_bins (481,),
    r_bins (481,): float64 scratch. out: complex128 (481,); weight in [0, 1].
    """
    nb = edges.shape[0]
    for b in range(nb):
        norm_bands[b] = math.sqrt(energy_y[b] / energy_p[b]) if energy_p[b] > 0.0 else 0.0
    interp_band_gain(norm_bands, edges, norm_bins)
    interp_band_gain(strengths, edges, r_bins)
    for k in range(out.shape[0]):
        r = r_bins[k] * weight if k < COMB_MAX_BIN else 0.0
        out[k] = (1.0 - r) * spec_y[k] + (r * norm_bins[k]) * spec_p[k]


def comb_noise_power(period: int) -> float:
    """sigma^2 of the (truncated) comb filter at this period; plain-Python helper for tests."""
    taps = np.zeros(2 * COMB_PERIODS + 1)
    return float(comb_taps(period, taps)[1])
