"""Network architectures: layer widths of the PercepNet model (docs/algorithm.md, 'The network').

dense 70 -> D, causal conv k5 D -> C1, causal conv k3 C1 -> C2, a stack of GRUs, a gain
branch GRU and a strength branch GRU; tanh hidden activations, sigmoid outputs. The widths
are configuration so the same code serves the paper-size ``full`` model (about 8 M weights)
and the ``small`` one that trains on a laptop CPU. A model's manifest stores its ``arch``.
"""
from __future__ import annotations

from .constants import N_BANDS, N_FEATURES

__all__ = ["ARCHITECTURES", "n_weights"]


def _arch(dense: int, conv: int, gru: int, n_gru: int, gru_strength: int) -> dict:
    return {
        "n_features": N_FEATURES,
        "n_bands": N_BANDS,
        "dense": dense,
        "conv1": conv,
        "conv1_kernel": 5,
        "conv2": conv,
        "conv2_kernel": 3,
        "gru": [gru] * n_gru,
        "gru_gain": gru,
        "gru_strength": gru_strength,
    }


#: full: the paper's layer sizes (jzi040941's rnn_train.py adds up to 7.96 M weights);
#: small: half the widths of the big layers, about 2.2 M weights.
ARCHITECTURES = {
    "full": _arch(dense=128, conv=512, gru=512, n_gru=3, gru_strength=128),
    "small": _arch(dense=128, conv=256, gru=256, n_gru=3, gru_strength=128),
}


def n_weights(arch: dict) -> int:
    """Number of weights (not biases) of an architecture."""
    d, c1, c2 = arch["dense"], arch["conv1"], arch["conv2"]
    total = arch["n_features"] * d + arch["conv1_kernel"] * d * c1 + arch["conv2_kernel"] * c1 * c2
    prev = c2
    for h in arch["gru"]:
        total += 3 * h * (prev + h)
        prev = h
    hg, hr = arch["gru_gain"], arch["gru_strength"]
    total += 3 * hg * (prev + hg)
    total += 3 * hr * (c2 + prev + hr)
    total += arch["n_bands"] * (c2 + sum(arch["gru"]) + hg) + arch["n_bands"] * hr
    return total
