"""The 34 triangular ERB bands: band energies, band cross-correlations, band-to-bin gains.

The edge table is data (``dsp/data/erb34.json``; Valin's RNNoise v0.2 rule, 34 edges from 0
to 400 bins = 0 to 20 kHz at 50 Hz per bin; see docs/algorithm.md, 'The 34 ERB bands'). One
triangle peaks on each
edge and falls to zero on the neighbouring edges, so for bin k with e_i <= k < e_{i+1} and
f = (k - e_i) / (e_{i+1} - e_i), band i gets weight 1 - f and band i+1 gets f. The weights
of every covered bin (0..400) sum to one. Bins above the last edge (20-24 kHz) belong to no
band; back in the bin domain they hold the last band's value.
"""
from __future__ import annotations

import json
from importlib import resources

import numpy as np
from numba import njit

from .constants import BIN_HZ, N_BANDS, N_BINS

__all__ = [
    "BAND_EDGES",
    "load_band_edges",
    "band_weights",
    "band_energy",
    "band_cross_corr",
    "interp_band_gain",
]


def load_band_edges(name: str = "erb34") -> np.ndarray:
    """Band edges (bins, int64, strictly increasing, first 0) from ``dsp/data/<name>.json``."""
    text = resources.files("percepnet.dsp").joinpath("data", f"{name}.json").read_text()
    layout = json.loads(text)
    edges = np.asarray(layout["edges_bins"], dtype=np.int64)
    if layout.get("bin_hz", BIN_HZ) != BIN_HZ:
        raise ValueError(f"band layout {name!r} is for {layout['bin_hz']} Hz bins, not {BIN_HZ}")
    if edges[0] != 0 or np.any(np.diff(edges) < 1) or edges[-1] >= N_BINS:
        raise ValueError(f"band layout {name!r} has invalid edges")
    return edges


#: Edge bins of the 34 bands, int64 (34,), 0..400.
BAND_EDGES = load_band_edges()
assert BAND_EDGES.shape[0] == N_BANDS


def band_weights(edges: np.ndarray = BAND_EDGES) -> np.ndarray:
    """Dense triangular weights h_b(k), float64 (n_bands, 481). For tests and plots only;
    the per-frame kernels below loop over the edges directly."""
    h = np.zeros((edges.shape[0], N_BINS))
    for i in range(edges.shape[0] - 1):
        width = edges[i + 1] - edges[i]
        for k in range(edges[i], edges[i + 1]):
            f = (k - edges[i]) / width
            h[i, k] += 1.0 - f
            h[i + 1, k] += f
    h[-1, edges[-1]] += 1.0
    return h


@njit(cache=True, nogil=True)
def band_cross_corr(a, b, edges, out):
    """Triangular band cross-correlation sum_k h_b(k) Re{A(k) B*(k)}.

    a, b: complex128 (481,); edges: int64 (n_bands,); out: float64 (n_bands,).
    """
    nb = edges.shape[0]
    for i in range(nb):
        out[i] = 0.0
    for i in range(nb - 1):
        width = edges[i + 1] - edges[i]
        for k in range(edges[i], edges[i + 1]):
            f = (k - edges[i]) / width
            c = a[k].real * b[k].real + a[k].imag * b[k].imag
            out[i] += (1.0 - f) * c
            out[i + 1] += f * c
    k = edges[nb - 1]
    out[nb - 1] += a[k].real * b[k].real + a[k].imag * b[k].imag


@njit(cache=True, nogil=True)
def band_energy(spec, edges, out):
    """Triangular band energies E_b = sum_k h_b(k) |X(k)|^2 (the cross-correlation of X
    with itself).

    spec: complex128 (481,); edges: int64 (n_bands,); out: float64 (n_bands,), >= 0.
    """
    band_cross_corr(spec, spec, edges, out)


@njit(cache=True, nogil=True)
def interp_band_gain(gains, edges, out):
    """Band values back to bins, linear between band centres (the same triangular basis).

    gains: float64 (n_bands,); out: float64 (481,). Bins above the last edge hold the last
    band's value (no hidden low-pass above 20 kHz).
    """
    nb = edges.shape[0]
    for i in range(nb - 1):
        width = edges[i + 1] - edges[i]
        for k in range(edges[i], edges[i + 1]):
            f = (k - edges[i]) / width
            out[k] = (1.0 - f) * gains[i] + f * gains[i + 1]
    for k in range(edges[nb - 1], out.shape[0]):
        out[k] = gains[nb - 1]
