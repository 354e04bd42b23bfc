"""Envelope postfilter and gain-decay cap (inference only).

See docs/algorithm.md, 'Synthesis: pitch filtering, postfilter, scale bands'.

1. Warped gain g_w = g sin(pi g / 2): bands near 1 are untouched, noisy bands pushed down.
2. E0 = sum_b (g_b |Y_b|)^2, E1 = sum_b (g_w,b |Y_b|)^2.
3. Global compensation G = sqrt((1 + beta) (E0/E1) / (1 + beta (E0/E1)^2)), beta = 0.02;
   its maximum is 1.9 (+5.6 dB) at E0/E1 = 1/sqrt(beta).
4. Target band magnitude X_b = G g_w,b |Y_b|, i.e. an effective band gain G g_w,b (not
   clipped to 1).
The decay cap g >= 0.6 g_prev (RT60 about 135 ms) then stops unnaturally fast attenuation.

``envelope_postfilter_per_band`` is DeepFilterNet's per-band variant of the same idea,
g (1 + beta) / (1 + beta (g / g_w)^2): no global boost, milder on mid gains. It is kept
beside the paper's global form so both can be compared on a trained network.
"""
from __future__ import annotations

import math

from numba import njit

from .constants import GAIN_DECAY_PER_FRAME, POSTFILTER_BETA

__all__ = ["envelope_postfilter", "envelope_postfilter_per_band", "cap_gain_decay"]


@njit(cache=True, nogil=True)
def envelope_postfilter(gains, energy_y, out):
    """Effective band gains G * g_w after the envelope postfilter.

    gains: float64 (n_bands,) in [0, 1]; energy_y: float64 (n_bands,) noisy band energies
    |Y_b|^2; out: float64 (n_bands,), >= 0, may exceed 1 (at most 1.9). Returns G.
    """
    e0 = 0.0
    e1 = 0.0
    for b in range(gains.shape[0]):
        g = gains[b]
        gw = g * math.sin(0.5 * math.pi * g)
        out[b] = gw
        e0 += g * g * energy_y[b]
        e1 += gw * gw * energy_y[b]
    if e1 <= 0.0:
        big_g = 1.0
    else:
        ratio = e0 / e1
        big_g = math.sqrt((1.0 + POSTFILTER_BETA) * ratio / (1.0 + POSTFILTER_BETA * ratio * ratio))
    for b in range(gains.shape[0]):
        out[b] *= big_g
    return big_g


@njit(cache=True, nogil=True)
def envelope_postfilter_per_band(gains, out):
    """DeepFilterNet-style per-band postfilter: out_b = g (1 + beta) / (1 + beta (g/g_w)^2).

    gains, out: float64 (n_bands,), gains in [0, 1]; out <= gains (1 where g = 1).
    """
    for b in range(gains.shape[0]):
        g = gains[b]
        gw = g * math.sin(0.5 * math.pi * g)
        if gw <= 1e-12:
            out[b] = 0.0
        else:
            ratio = g / gw
            out[b] = g * (1.0 + POSTFILTER_BETA) / (1.0 + POSTFILTER_BETA * ratio * ratio)


@njit(cache=True, nogil=True)
def cap_gain_decay(gains, previous):
    """In place: gains_b = max(gains_b, 0.6 * previous_b); then previous <- gains.

    Both float64 (n_bands,).
    """
    for b in range(gains.shape[0]):
        g = max(gains[b], GAIN_DECAY_PER_FRAME * previous[b])
        gains[b] = g
        previous[b] = g
