"""Weights format of the PercepNet network's int8 runtime: the architecture checks, the
layout of every array, validation, per-row quantisation and random weights.

Weights file layout (a dict of arrays, e.g. from ``np.load(path, allow_pickle=False)``):
``<L>.w_q`` int8 [rows, cols], ``<L>.w_scale`` float32 [rows], ``<L>.b`` float32 [rows] for
L in dense, conv1, conv2, gain_head, strength_head; ``<G>.wih_q`` int8 [3H, in],
``<G>.wih_scale`` float32 [3H], ``<G>.whh_q`` int8 [3H, H], ``<G>.whh_scale`` float32 [3H],
``<G>.bih``, ``<G>.bhh`` float32 [3H] for G in gru0 .. gru{L-1}, gru_gain, gru_strength; plus
``feat_mean``, ``feat_std`` float32 [70]. Per-row symmetric quantisation, W ~ w_q * w_scale[:, None]
(:func:`quantize_rows` is the one definition; the exporter imports it). Conv matrices are
[C_out, k*C_in] with column j*C_in + c = tap j (oldest first) of input channel c; GRU
matrices stack PyTorch's gates r, z, n in that order.

The float format (:func:`dequantize_weights`, :func:`random_float_weights`) has ``<L>.w``,
``<G>.wih``, ``<G>.whh`` in place of the ``_q``/``_scale`` pairs.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["quantize_rows", "dequantize_weights", "quantize_weights", "random_float_weights",
           "random_weights", "weight_layout", "validate_weights"]

_MATRICES = ("dense", "conv1", "conv2", "gain_head", "strength_head")
_ARCH_INT_KEYS = ("n_features", "n_bands", "dense", "conv1", "conv1_kernel", "conv2",
                  "conv2_kernel", "gru_gain", "gru_strength")


def quantize_rows(w) -> tuple[np.ndarray, np.ndarray]:
    """Per-row symmetric int8 quantisation: scale = max|row| / 127 (float32),
    q = round(w / scale) clipped to +-127 (int8); an all-zero row gets scale 0 and q 0.
    ``q * scale[:, None]`` reconstructs w to within scale / 2 per element."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"quantize_rows expects a 2-D matrix, got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("quantize_rows: the matrix has non-finite values")
    amax = np.max(np.abs(w), axis=1, initial=0.0)
    scale = (amax / 127.0).astype(np.float32)
    # Divide by the float32 scale the runtime will multiply with, so q * scale is nearest w.
    div = np.where(scale > 0, scale.astype(np.float64), 1.0)
    q = np.clip(np.rint(w / div[:, None]), -127, 127).astype(np.int8)
    return q, scale


def _gru_names(arch: dict) -> list[str]:
    return [f"gru{i}" for i in range(len(arch["gru"]))] + ["gru_gain", "gru_strength"]


def _check_arch(arch) -> dict:
    if not isinstance(arch, dict):
        raise ValueError(f"arch must be a dict, got {type(arch).__name__}")
    missing = [k for k in _ARCH_INT_KEYS + ("gru",) if k not in arch]
    if missing:
        raise ValueError(f"arch is missing {', '.join(missing)}")
    out = {}
    for key in _ARCH_INT_KEYS:
        v = arch[key]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"arch[{key!r}] must be a positive integer, got {v!r}")
        out[key] = int(v)
    gru = arch["gru"]
    if (not isinstance(gru, (list, tuple)) or len(gru) < 1
            or any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1
                   for h in gru)):
        raise ValueError(f"arch['gru'] must be a non-empty list of positive integers, got {gru!r}")
    out["gru"] = [int(h) for h in gru]
    return out


def _layer_shapes(arch: dict) -> dict:
    """name -> (rows, cols) of every weight matrix (the float view: "<L>" and "<G>.wih"/"whh")."""
    nf, d, c1, c2 = arch["n_features"], arch["dense"], arch["conv1"], arch["conv2"]
    nb = arch["n_bands"]
    shapes = {
        "dense": (d, nf),
        "conv1": (c1, arch["conv1_kernel"] * d),
        "conv2": (c2, arch["conv2_kernel"] * c1),
    }
    prev = c2
    for i, h in enumerate(arch["gru"]):
        shapes[f"gru{i}.wih"] = (3 * h, prev)
        shapes[f"gru{i}.whh"] = (3 * h, h)
        prev = h
    hg, hr = arch["gru_gain"], arch["gru_strength"]
    shapes["gru_gain.wih"], shapes["gru_gain.whh"] = (3 * hg, prev), (3 * hg, hg)
    shapes["gru_strength.wih"], shapes["gru_strength.whh"] = (3 * hr, c2 + prev), (3 * hr, hr)
    shapes["gain_head"] = (nb, c2 + sum(arch["gru"]) + hg)
    shapes["strength_head"] = (nb, hr)
    return shapes


def weight_layout(arch: dict) -> dict:
    """Every array of the int8 weights format: name -> (dtype, shape)."""
    arch = _check_arch(arch)
    shapes = _layer_shapes(arch)
    i8, f32 = np.dtype(np.int8), np.dtype(np.float32)
    nf = arch["n_features"]
    out = {"feat_mean": (f32, (nf,)), "feat_std": (f32, (nf,))}
    for name in _MATRICES:
        rows, cols = shapes[name]
        out[f"{name}.w_q"] = (i8, (rows, cols))
        out[f"{name}.w_scale"] = (f32, (rows,))
        out[f"{name}.b"] = (f32, (rows,))
    for g in _gru_names(arch):
        for part in ("wih", "whh"):
            rows, cols = shapes[f"{g}.{part}"]
            out[f"{g}.{part}_q"] = (i8, (rows, cols))
            out[f"{g}.{part}_scale"] = (f32, (rows,))
        out[f"{g}.bih"] = (f32, (shapes[f"{g}.wih"][0],))
        out[f"{g}.bhh"] = (f32, (shapes[f"{g}.wih"][0],))
    return out


def validate_weights(arch: dict, weights: dict) -> None:
    """Raise ValueError (listing the problems) unless ``weights`` holds every array of the
    format for ``arch`` with the right dtype and shape, finite values, non-negative scales and
    positive feat_std. Extra arrays are ignored."""
    layout = weight_layout(arch)  # raises ValueError for a malformed arch
    if not hasattr(weights, "keys"):
        raise ValueError(f"weights must be a dict of arrays, got {type(weights).__name__}")
    missing = [k for k in layout if k not in weights]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise ValueError(f"weights are missing {len(missing)} array(s): {shown}")
    problems = []
    for name, (dtype, shape) in layout.items():
        a = weights[name]
        if not isinstance(a, np.ndarray):
            problems.append(f"{name} is a {type(a).__name__}, not a numpy array")
            continue
        if a.dtype != dtype:
            problems.append(f"{name} has dtype {a.dtype}, expected {dtype}")
            continue
        if a.shape != shape:
            problems.append(f"{name} has shape {a.shape}, expected {shape} for this architecture")
            continue
        if dtype.kind == "f":
            if not np.all(np.isfinite(a)):
                problems.append(f"{name} has non-finite values")
            elif name.endswith("_scale") and np.any(a < 0):
                problems.append(f"{name} has negative scales")
            elif name == "feat_std" and np.any(a <= 0):
                problems.append("feat_std has values <= 0")
    if problems:
        shown = "; ".join(problems[:6]) + (f"; and {len(problems) - 6} more" if len(problems) > 6 else "")
        raise ValueError(f"invalid weights: {shown}")


def dequantize_weights(weights: dict) -> dict:
    """Float64 weights (the float format: ``<L>.w``, ``<G>.wih``, ``<G>.whh``, biases and
    feature statistics) from the int8 format."""
    out = {}
    for key, a in weights.items():
        if key.endswith("_q"):
            base = key[:-2]
            scale = np.asarray(weights[base + "_scale"], dtype=np.float64)
            out[base] = a.astype(np.float64) * scale[:, None]
        elif not key.endswith("_scale"):
            out[key] = np.asarray(a, dtype=np.float64)
    return out


def quantize_weights(float_weights: dict) -> dict:
    """The int8 format from float weights (``<L>.w``/``<G>.wih``/``<G>.whh`` are quantised
    with :func:`quantize_rows`; biases and feature statistics become float32)."""
    out = {}
    for key, a in float_weights.items():
        layer, _, part = key.rpartition(".")
        if part == "w":
            out[f"{layer}.w_q"], out[f"{layer}.w_scale"] = quantize_rows(a)
        elif part in ("wih", "whh"):
            out[f"{key}_q"], out[f"{key}_scale"] = quantize_rows(a)
        else:
            out[key] = np.asarray(a, dtype=np.float32)
    return out


def random_float_weights(arch: dict, seed: int = 0, *, init_scale: float = 1.0) -> dict:
    """Float weights (float32, float format) drawn like PyTorch's default init (uniform in
    +-1/sqrt(fan_in), times ``init_scale``), weights clipped to +-0.5 as in training;
    feat_mean 0, feat_std 1."""
    arch = _check_arch(arch)
    rng = np.random.default_rng(seed)
    shapes = _layer_shapes(arch)

    def uni(shape, bound):
        return rng.uniform(-bound, bound, size=shape).astype(np.float32)

    out = {}
    for name in _MATRICES:
        rows, cols = shapes[name]
        bound = init_scale / math.sqrt(cols)  # Linear: fan_in; Conv1d: C_in * k = cols
        out[f"{name}.w"] = np.clip(uni((rows, cols), bound), -0.5, 0.5)
        out[f"{name}.b"] = uni((rows,), bound)
    for g in _gru_names(arch):
        rows = shapes[f"{g}.wih"][0]
        bound = init_scale / math.sqrt(rows // 3)  # nn.GRU: 1/sqrt(hidden)
        for part in ("wih", "whh"):
            out[f"{g}.{part}"] = np.clip(uni(shapes[f"{g}.{part}"], bound), -0.5, 0.5)
        out[f"{g}.bih"] = uni((rows,), bound)
        out[f"{g}.bhh"] = uni((rows,), bound)
    out["feat_mean"] = np.zeros(arch["n_features"], np.float32)
    out["feat_std"] = np.ones(arch["n_features"], np.float32)
    return out


def random_weights(arch: dict, seed: int = 0, *, init_scale: float = 1.0) -> dict:
    """:func:`random_float_weights` quantised into the int8 weights format."""
    return quantize_weights(random_float_weights(arch, seed, init_scale=init_scale))
