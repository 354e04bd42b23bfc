"""Float reference of the PercepNet network: plain numpy, float64, layer by layer over the
whole sequence, state starting at zero. The same maths as the int8 runtime without
quantisation: features [T, 70] -> gains, strengths [T, 34]; weights in either format of
:mod:`percepnet.dsp.network_format`.
"""
from __future__ import annotations

import numpy as np

from .network_format import _check_arch

__all__ = ["float_reference"]


def _float_matrix(weights: dict, name: str) -> np.ndarray:
    """A float weight matrix from either format ("<name>" is "dense" or "gru0.wih" style)."""
    fkey = name if name.endswith(("wih", "whh")) else f"{name}.w"
    if fkey in weights:
        return np.asarray(weights[fkey], dtype=np.float64)
    q, scale = weights[f"{fkey}_q"], weights[f"{fkey}_scale"]
    return q.astype(np.float64) * np.asarray(scale, dtype=np.float64)[:, None]


def _sigmoid(x):
    return 0.5 + 0.5 * np.tanh(0.5 * x)


def _causal_taps(x: np.ndarray, k: int) -> np.ndarray:
    """[T, C] -> [T, k*C]: row t = [x_{t-k+1}; ...; x_t] with zeros before the start."""
    t, c = x.shape
    padded = np.concatenate([np.zeros((k - 1, c)), x])
    return np.concatenate([padded[j:j + t] for j in range(k)], axis=1)


def _gru_sequence(x: np.ndarray, weights: dict, name: str) -> np.ndarray:
    wih, whh = _float_matrix(weights, f"{name}.wih"), _float_matrix(weights, f"{name}.whh")
    bih = np.asarray(weights[f"{name}.bih"], np.float64)
    bhh = np.asarray(weights[f"{name}.bhh"], np.float64)
    hidden = whh.shape[1]
    gi = x @ wih.T + bih
    h = np.zeros(hidden)
    out = np.empty((x.shape[0], hidden))
    for t in range(x.shape[0]):
        gh = whh @ h + bhh
        r = _sigmoid(gi[t, :hidden] + gh[:hidden])
        z = _sigmoid(gi[t, hidden:2 * hidden] + gh[hidden:2 * hidden])
        n = np.tanh(gi[t, 2 * hidden:] + r * gh[2 * hidden:])
        h = (1.0 - z) * n + z * h
        out[t] = h
    return out


def float_reference(arch: dict, weights: dict, features) -> tuple[np.ndarray, np.ndarray]:
    """Gains and strengths [T, 34] of a feature sequence [T, 70] in float64 numpy, state
    starting at zero: the same maths without quantisation. ``weights`` is either format
    (float ``<L>.w`` / ``<G>.wih`` ..., or int8, which is dequantised)."""
    arch = _check_arch(arch)
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] != arch["n_features"]:
        raise ValueError(f"features must be [T, {arch['n_features']}], got {f.shape}")

    def dense(x, name):
        return x @ _float_matrix(weights, name).T + np.asarray(weights[f"{name}.b"], np.float64)

    x0 = (f - np.asarray(weights["feat_mean"], np.float64)) / np.asarray(weights["feat_std"], np.float64)
    d = np.tanh(dense(x0, "dense"))
    c1 = np.tanh(dense(_causal_taps(d, arch["conv1_kernel"]), "conv1"))
    c2 = np.tanh(dense(_causal_taps(c1, arch["conv2_kernel"]), "conv2"))
    outs, h = [], c2
    for i in range(len(arch["gru"])):
        h = _gru_sequence(h, weights, f"gru{i}")
        outs.append(h)
    hg = _gru_sequence(h, weights, "gru_gain")
    hr = _gru_sequence(np.concatenate([c2, h], axis=1), weights, "gru_strength")
    gains = _sigmoid(dense(np.concatenate([c2, *outs, hg], axis=1), "gain_head"))
    strengths = _sigmoid(dense(hr, "strength_head"))
    return gains, strengths
