"""Pitch coherence, the optimal comb-filter strength r_b and the extra attenuation g_att.

See docs/algorithm.md, 'Pitch coherence and comb strength'. With triangular band weights
h_b(k), the coherence of A and B in band b is
q = sum h_b Re{A B*} / sqrt(sum h_b |A|^2 * sum h_b |B|^2), clamped to [0, 1].

Training targets use q_x = q(X, P) and q_y = q(Y, P), P being the comb-filtered *clean*
signal with the clean pitch. If the comb filter keeps the periodic part and passes sigma^2
of the uncorrelated noise power, the filtered noisy signal has coherence
q_p = q_y / sqrt((1 - sigma^2) q_y^2 + sigma^2) with P.

Mixing z = (1 - r) y + r p (both band-normalised) and asking z to be as periodic as the
clean band (coherence q_x) gives, with alpha = r / (1 - r),
a alpha^2 + 2 b alpha - c = 0, a = q_p^2 - q_x^2, b = q_y q_p (1 - q_x^2), c = q_x^2 - q_y^2.
The positive root is computed as alpha = c / (sqrt(b^2 + a c) + b), the cancellation-free
form of (sqrt(b^2 + a c) - b) / a.
- c <= 0: the noisy band is already as periodic as the clean one: r = 0.
- a <= 0: even full filtering cannot reach q_x: r = STRENGTH_WHEN_UNREACHABLE and the gain
  target gets g_att = sqrt((1 + n0 - q_x^2) / (1 + n0 - q_p^2)), n0 = 0.03 (about -15 dB,
  the noise-masking-tone threshold).
"""
from __future__ import annotations

import math

from numba import njit

from .constants import NOISE_MASKING_N0, STRENGTH_WHEN_UNREACHABLE

__all__ = ["band_coherence", "filtered_coherence", "optimal_strength", "strength_targets"]

#: Below this, a (= q_p^2 - q_x^2) counts as "full filtering cannot reach q_x".
_A_EPS = 1e-9


@njit(cache=True, nogil=True)
def band_coherence(cross, energy_a, energy_b, out):
    """q_b = cross_b / sqrt(E_a,b E_b,b), clamped to [0, 1]; 0 where either energy is 0.

    All float64 (n_bands,).
    """
    for b in range(out.shape[0]):
        den = energy_a[b] * energy_b[b]
        if den <= 0.0:
            out[b] = 0.0
        else:
            q = cross[b] / math.sqrt(den)
            out[b] = min(1.0, max(0.0, q))


@njit(cache=True, nogil=True)
def filtered_coherence(q_y, sigma2):
    """Coherence with P of the noisy band after ideal comb filtering, in [0, 1].

    q_y in [0, 1]; sigma2 in (0, 1], the noise power the comb filter passes.
    """
    den = (1.0 - sigma2) * q_y * q_y + sigma2
    if den <= 0.0:
        return 0.0
    return min(1.0, q_y / math.sqrt(den))


@njit(cache=True, nogil=True)
def optimal_strength(q_x, q_y, q_p):
    """Optimal strength r and extra attenuation g_att for one band.

    q_x, q_y, q_p: coherences with P of the clean, noisy and ideally comb-filtered noisy
    band, each clamped to [0, 1] here. Returns (r in [0, 1], g_att in (0, 1]).
    """
    q_x = min(1.0, max(0.0, q_x))
    q_y = min(1.0, max(0.0, q_y))
    q_p = min(1.0, max(0.0, q_p))
    c = q_x * q_x - q_y * q_y
    if c <= 0.0:
        return 0.0, 1.0
    a = q_p * q_p - q_x * q_x
    if a <= _A_EPS:
        num = max(0.0, 1.0 + NOISE_MASKING_N0 - q_x * q_x)
        den = max(1e-12, 1.0 + NOISE_MASKING_N0 - q_p * q_p)
        g_att = min(1.0, math.sqrt(num / den))
        return STRENGTH_WHEN_UNREACHABLE, g_att
    b = q_y * q_p * (1.0 - q_x * q_x)
    den = math.sqrt(max(0.0, b * b + a * c)) + b
    if den <= 0.0:  # b = 0 and a * c underflowed: c is subnormal, r = sqrt(c / a) is 0
        return 0.0, 1.0
    alpha = c / den
    r = alpha / (1.0 + alpha)
    return min(1.0, max(0.0, r)), 1.0


@njit(cache=True, nogil=True)
def strength_targets(q_x, q_y, sigma2, r_out, g_att_out):
    """Per-band r_b and g_att for one frame.

    q_x, q_y: float64 (n_bands,) coherences of clean and noisy with the clean comb output;
    sigma2: float, the comb filter's passed noise power this frame. Writes r_out and
    g_att_out, float64 (n_bands,).
    """
    for b in range(r_out.shape[0]):
        q_p = filtered_coherence(q_y[b], sigma2)
        r, g = optimal_strength(q_x[b], q_y[b], q_p)
        r_out[b] = r
        g_att_out[b] = g
