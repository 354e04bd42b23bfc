"""Int8 inference runtime of the PercepNet network (spec section 8), one fused call per frame.

The network (same maths as PyTorch, see ``training/model.py``), per 10 ms frame t, with
f the 70 features:

1. x0 = (f - feat_mean) / feat_std
2. d = tanh(W_dense x0 + b)                                   dense, D
3. c1 = tanh(W_c1 [d_{t-4}; ...; d_t] + b)                    causal conv k=5, C1
4. c2 = tanh(W_c2 [c1_{t-2}; c1_{t-1}; c1_t] + b)             causal conv k=3, C2
5. h_1 = GRU_1(c2, h_1), h_l = GRU_l(h_{l-1}, h_l)            the GRU stack (any depth >= 1)
6. h_g = GRU_gain(h_L, h_g); gains = sigmoid(W_g [c2; h_1..h_L; h_g] + b)          34
7. h_r = GRU_strength([c2; h_L], h_r); strengths = sigmoid(W_r h_r + b)            34

Conv matrices are [C_out, k*C_in] with column j*C_in + c = tap j (oldest first) of input
channel c. GRU cells are PyTorch's (gates r, z, n stacked in that order; b_hn inside r*(.)).

Weights file layout (a dict of arrays, e.g. from ``np.load(path, allow_pickle=False)``):
``<L>.w_q`` int8 [rows, cols], ``<L>.w_scale`` float32 [rows], ``<L>.b`` float32 [rows] for
L in dense, conv1, conv2, gain_head, strength_head; ``<G>.wih_q`` int8 [3H, in],
``<G>.wih_scale`` float32 [3H], ``<G>.whh_q`` int8 [3H, H], ``<G>.whh_scale`` float32 [3H],
``<G>.bih``, ``<G>.bhh`` float32 [3H] for G in gru0 .. gru{L-1}, gru_gain, gru_strength; plus
``feat_mean``, ``feat_std`` float32 [70]. Per-row symmetric quantisation, W ~ w_q * w_scale[:, None]
(:func:`quantize_rows` is the one definition; the exporter imports it).

Two compiled paths, chosen at construction (:class:`Network`):

- portable: int8 weights x float32 activations, float32 accumulation, the row scale applied
  once per output. LLVM auto-vectorises it (``vpmovsxbd`` + ``vcvtdq2ps`` + FMA).
- VNNI (AVX-512 VNNI CPUs only, detected at run time): activations in [-1, 1] (every layer
  input except the first dense layer's, which stays on the float path) are quantised to u8
  as 128 + round(127 x); the u8 x s8 dot products use ``vpdpbusd`` through a numba
  ``@intrinsic`` (4 rows per pass sharing the activation loads; columns padded with zero
  weights to multiples of 64), corrected with 128 x the precomputed row sums and rescaled by
  w_scale / 127.

Both use the same packed weights (:class:`NetworkWeights`: five flat arrays, every matrix in
one int8 buffer described by a table, so the tuple's type does not depend on the number of
GRU layers and a call from Python unboxes few arrays) and the same preallocated state
(:class:`NetworkState`: one float32 and one uint8 buffer). A frame is one call of the njit
step function (:func:`network_step` or the VNNI one from :func:`vnni_step_function`), which
allocates nothing; another njit function can call it directly with
``network.step_function, network.weights, network.state``. tanh and sigmoid use a rational
approximation (max error 3.3e-7) so the gate loops vectorise.

The VNNI kernels are only compiled when first called, and :class:`Network` only calls them
when :func:`vnni_available` says the CPU (and numba's target) has VNNI: importing this module
never compiles anything.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = [
    "quantize_rows",
    "dequantize_weights",
    "quantize_weights",
    "random_float_weights",
    "random_weights",
    "weight_layout",
    "validate_weights",
    "float_reference",
    "vnni_available",
    "NetworkWeights",
    "NetworkState",
    "pack_weights",
    "make_state",
    "reset_state",
    "network_step",
    "vnni_step_function",
    "Network",
]

_MATRICES = ("dense", "conv1", "conv2", "gain_head", "strength_head")
_ARCH_INT_KEYS = ("n_features", "n_bands", "dense", "conv1", "conv1_kernel", "conv2",
                  "conv2_kernel", "gru_gain", "gru_strength")


# --------------------------------------------------------------------------------------------
# Quantisation and the weights format
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Float reference (plain numpy, float64, layer by layer over the whole sequence)
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# CPU check
# --------------------------------------------------------------------------------------------

def vnni_available() -> bool:
    """True when this CPU has AVX-512 VNNI and numba compiles for it (the host CPU, or an
    explicit NUMBA_CPU_NAME / NUMBA_CPU_FEATURES target that includes it)."""
    try:
        import llvmlite.binding as llvm
        from numba.core import config

        if not llvm.get_host_cpu_features().get("avx512vnni", False):
            return False
        cpu_name = getattr(config, "CPU_NAME", None)
        if cpu_name and cpu_name != "host":
            features = getattr(config, "CPU_FEATURES", None) or ""
            return "+avx512vnni" in features.split(",")
        return True
    except Exception:  # pragma: no cover - unknown platform: the portable path is safe
        return False


# --------------------------------------------------------------------------------------------
# Packed weights and state: a few flat arrays (one cheap unboxing per frame from Python)
# --------------------------------------------------------------------------------------------

#: Columns of every packed matrix are padded with zero weights to a multiple of this (one
#: 512-bit register of int8); rows and matrices start on 64-byte boundaries.
COL_BLOCK = 64

# Columns of NetworkWeights.mat (one row per matrix).
M_W, M_ROWS, M_COLS, M_KPAD, M_SCALE, M_BIAS, M_ROWSUM = range(7)
# Rows of NetworkWeights.mat: the matrices; GRU g has W_ih at row g and W_hh at row g + 1.
DENSE, CONV1, CONV2, GAIN_HEAD, STRENGTH_HEAD, GRU_GAIN, GRU_STRENGTH = 0, 1, 2, 3, 4, 5, 7
GRU_STACK = 9  # stack layer l: W_ih at GRU_STACK + 2 l, W_hh at GRU_STACK + 2 l + 1

# Entries of NetworkWeights.dims: sizes, offsets of the feature statistics in fv, and the
# offsets of each state region in NetworkState.act (A_*) and NetworkState.act_u8 (U_*).
(D_N_FEATURES, D_N_BANDS, D_N_LAYERS, D_FEAT_MEAN, D_FEAT_STD,
 A_X0, A_CONV1_IN, A_CONV2_IN, A_CAT, A_STR_IN, A_HR, A_GI, A_GH, A_SIZE,
 U_CONV1_IN, U_CONV2_IN, U_CAT, U_STR_IN, U_HR, U_SIZE, N_DIMS) = range(21)


class NetworkWeights(NamedTuple):
    """Packed weights, read-only during inference.

    ``wq``: every int8 matrix, row-major [rows, kpad] with kpad = cols rounded up to
    COL_BLOCK (zero weights in the padding), 64-byte aligned; ``fv``: float32 per-row scales
    and biases, feat_mean, feat_std; ``rowsum``: int32 sums of each row's weights (the u8
    offset correction of the VNNI path); ``mat``: int64 [n_matrices, 7] table (columns M_*:
    offset in wq, rows, cols, kpad, offset of the scales in fv, of the biases in fv, of the
    row sums), rows DENSE ... GRU_STACK + 2 L - 1; ``dims``: int64 [N_DIMS] sizes and the
    offsets of the feature statistics and of the state regions."""
    wq: np.ndarray
    fv: np.ndarray
    rowsum: np.ndarray
    mat: np.ndarray
    dims: np.ndarray


class NetworkState(NamedTuple):
    """Everything carried between frames, plus scratch. ``act`` (float32) holds, at the
    offsets in ``dims``: x0 [70]; conv1_in = [d_{t-k1+1}; ...; d_t]; conv2_in =
    [c1_{t-k2+1}; ...; c1_t]; cat = [c2 | h_1 | ... | h_L | h_g] (the GRU states and the gain
    head's input); str_in = [c2 | h_L]; hr (strength GRU state); gi, gh (scratch). ``act_u8``
    holds the u8 codes 128 + round(127 x) of conv1_in, conv2_in, cat, str_in and hr for the
    VNNI path, each region long enough for the padded reads past its data (those bytes meet
    zero weights). :meth:`Network.state_arrays` gives named views."""
    act: np.ndarray
    act_u8: np.ndarray


def _padded(cols: int) -> int:
    return -(-cols // COL_BLOCK) * COL_BLOCK


def _aligned_zeros(n: int, dtype) -> np.ndarray:
    """Zeroed 1-D array whose data starts on a 64-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.zeros(n + 64 // itemsize, dtype)
    start = (-raw.ctypes.data % 64) // itemsize
    return raw[start:start + n]


def _stack_names(arch: dict) -> list[tuple[str, str]]:
    """(weights-format prefix, part) of every matrix in the order of NetworkWeights.mat."""
    names = [(m, "w") for m in _MATRICES]
    for g in ("gru_gain", "gru_strength") + tuple(f"gru{i}" for i in range(len(arch["gru"]))):
        names += [(g, "wih"), (g, "whh")]
    return names


def pack_weights(arch: dict, weights: dict) -> NetworkWeights:
    """Validate and pack the int8 weights format into a :class:`NetworkWeights`."""
    validate_weights(arch, weights)
    arch = _check_arch(arch)
    names = _stack_names(arch)
    shapes = [weights[f"{p}.{part}_q"].shape for p, part in names]
    mat = np.zeros((len(names), 7), np.int64)
    w_off = f_off = r_off = 0
    for i, (rows, cols) in enumerate(shapes):
        kpad = _padded(cols)
        mat[i] = (w_off, rows, cols, kpad, f_off, f_off + rows, r_off)
        w_off += rows * kpad
        f_off += 2 * rows
        r_off += rows
    nf = arch["n_features"]
    wq = _aligned_zeros(w_off, np.int8)
    fv = _aligned_zeros(f_off + 2 * nf, np.float32)
    rowsum = _aligned_zeros(r_off, np.int32)
    for i, (p, part) in enumerate(names):
        o, rows, cols, kpad, so, bo, ro = mat[i]
        q = weights[f"{p}.{part}_q"]
        wq[o:o + rows * kpad].reshape(rows, kpad)[:, :cols] = q
        fv[so:so + rows] = weights[f"{p}.{part}_scale"]
        bias = {"w": "b", "wih": "bih", "whh": "bhh"}[part]
        fv[bo:bo + rows] = weights[f"{p}.{bias}"]
        rowsum[ro:ro + rows] = q.astype(np.int32).sum(axis=1, dtype=np.int32)
    fv[f_off:f_off + nf] = weights["feat_mean"]
    fv[f_off + nf:f_off + 2 * nf] = weights["feat_std"]

    # State layout.
    d, c1, c2 = arch["dense"], arch["conv1"], arch["conv2"]
    sizes, hg, hr = arch["gru"], arch["gru_gain"], arch["gru_strength"]
    n_cat = c2 + sum(sizes) + hg
    kpad = {name: int(mat[i, M_KPAD]) for i, name in enumerate(names)}
    # Furthest u8 read from the start of cat: each GRU reads kpad bytes from its input and
    # from its state, the gain head kpad bytes from offset 0.
    cat_reads = [n_cat, kpad[("gain_head", "w")]]
    x_off, h_off = 0, c2
    for i, h in enumerate(sizes):
        cat_reads += [x_off + kpad[(f"gru{i}", "wih")], h_off + kpad[(f"gru{i}", "whh")]]
        x_off, h_off = h_off, h_off + h
    cat_reads += [x_off + kpad[("gru_gain", "wih")], h_off + kpad[("gru_gain", "whh")]]
    n_scratch = max(3 * max(sizes + [hg, hr]), arch["n_bands"])
    dims = np.zeros(N_DIMS, np.int64)
    dims[D_N_FEATURES], dims[D_N_BANDS], dims[D_N_LAYERS] = nf, arch["n_bands"], len(sizes)
    dims[D_FEAT_MEAN], dims[D_FEAT_STD] = f_off, f_off + nf
    a_regions = ((A_X0, nf), (A_CONV1_IN, arch["conv1_kernel"] * d),
                 (A_CONV2_IN, arch["conv2_kernel"] * c1), (A_CAT, n_cat),
                 (A_STR_IN, c2 + sizes[-1]), (A_HR, hr), (A_GI, n_scratch), (A_GH, n_scratch))
    u_regions = ((U_CONV1_IN, kpad[("conv1", "w")]), (U_CONV2_IN, kpad[("conv2", "w")]),
                 (U_CAT, max(cat_reads)), (U_STR_IN, kpad[("gru_strength", "wih")]),
                 (U_HR, max(kpad[("gru_strength", "whh")], kpad[("strength_head", "w")])))
    for regions, size_key in ((a_regions, A_SIZE), (u_regions, U_SIZE)):
        off = 0
        for key, n in regions:
            dims[key] = off
            off += _padded(n)  # each region starts 64-byte aligned
        dims[size_key] = off
    return NetworkWeights(wq, fv, rowsum, mat, dims)


def make_state(w: NetworkWeights) -> NetworkState:
    """Preallocated state and scratch for packed weights ``w`` (zero = stream start)."""
    state = NetworkState(_aligned_zeros(int(w.dims[A_SIZE]), np.float32),
                         _aligned_zeros(int(w.dims[U_SIZE]), np.uint8))
    reset_state(state)
    return state


_jit = dict(cache=True, nogil=True, fastmath=True, error_model="numpy")
# error_model="numpy": no ZeroDivisionError branch on "/", which would stop vectorisation.
# Hot loops index 0-based slices (x[off:off + n][k], not x[off + k]): numba cannot prove
# off + k >= 0, and its negative-index wrap-around would turn the loads into gathers.


@njit(**_jit)
def reset_state(s):
    """Back to the start of a stream: all activations and GRU states 0 (u8 code 128)."""
    s.act[:] = 0.0
    s.act_u8[:] = 128


# --------------------------------------------------------------------------------------------
# Portable kernels (int8 weights x float32 activations)
# --------------------------------------------------------------------------------------------

# tanh(x) ~ x P(x^2) / Q(x^2) on |x| <= 9 (|tanh| > 1 - 3e-8 beyond): a rational fit of our
# own (linearised least squares, Sanathanan-Koerner iterations), max error 3.3e-7 in float32.
# Branch-free and call-free, so the loops around it vectorise (libm's tanhf/expf do not).
_TANH_CLAMP = np.float32(9.0)
_TP0, _TP1, _TP2, _TP3, _TP4 = (np.float32(v) for v in (
    0.999999937830367, 0.13376664996861454, 0.003490561619248184, 2.0532032632213323e-05,
    1.3258064332655973e-08))
_TQ1, _TQ2, _TQ3, _TQ4 = (np.float32(v) for v in (
    0.4670997008652636, 0.025857473051355422, 0.00032776630376783744, 7.73489291783467e-07))
_ONE, _HALF = np.float32(1.0), np.float32(0.5)


@njit(**_jit)
def _tanh32(x):
    x = min(max(x, -_TANH_CLAMP), _TANH_CLAMP)
    x2 = x * x
    p = x * (_TP0 + x2 * (_TP1 + x2 * (_TP2 + x2 * (_TP3 + x2 * _TP4))))
    q = _ONE + x2 * (_TQ1 + x2 * (_TQ2 + x2 * (_TQ3 + x2 * _TQ4)))
    return min(max(p / q, -_ONE), _ONE)


@njit(**_jit)
def _sigmoid32(x):
    return _HALF + _HALF * _tanh32(_HALF * x)


@njit(**_jit)
def _rows(w, m):
    return w.mat[m, M_ROWS]


@njit(**_jit)
def _bias(w, m):
    o = w.mat[m, M_BIAS]
    return w.fv[o:o + w.mat[m, M_ROWS]]


@njit(**_jit)
def _mv_f32(w, m, x, x_off, y, y_off):
    """y[y_off + i] = scale[i] * sum_k W_m[i, k] * x[x_off + k] over the real columns."""
    o, rows, cols, kpad, so = w.mat[m, M_W], w.mat[m, M_ROWS], w.mat[m, M_COLS], w.mat[m, M_KPAD], w.mat[m, M_SCALE]
    scale = w.fv[so:so + rows]
    xs = x[x_off:x_off + cols]
    ys = y[y_off:y_off + rows]
    wq = w.wq
    for i in range(rows):
        wi = wq[o + i * kpad:o + i * kpad + cols]
        acc = np.float32(0.0)
        for k in range(cols):
            acc += np.float32(wi[k]) * xs[k]
        ys[i] = acc * scale[i]


@njit(**_jit)
def _bias_tanh(y, off, b):
    ys = y[off:off + b.shape[0]]
    for i in range(b.shape[0]):
        ys[i] = _tanh32(ys[i] + b[i])


@njit(**_jit)
def _shift_history(buf, off, n, step):
    """Drop the oldest ``step`` values of buf[off:off + n] (a queue of frames, oldest first)."""
    b = buf[off:off + n]
    for i in range(n - step):
        b[i] = b[i + step]


@njit(**_jit)
def _gru_gates(hidden, a, gi_off, gh_off, bih, bhh, h_off):
    """PyTorch's GRU update of a[h_off:h_off + hidden] from gi = W_ih x, gh = W_hh h."""
    hs = a[h_off:h_off + hidden]
    gir, giz, gin = a[gi_off:gi_off + hidden], a[gi_off + hidden:gi_off + 2 * hidden], a[gi_off + 2 * hidden:gi_off + 3 * hidden]
    ghr, ghz, ghn = a[gh_off:gh_off + hidden], a[gh_off + hidden:gh_off + 2 * hidden], a[gh_off + 2 * hidden:gh_off + 3 * hidden]
    bir, biz, bin_ = bih[:hidden], bih[hidden:2 * hidden], bih[2 * hidden:3 * hidden]
    bhr, bhz, bhn = bhh[:hidden], bhh[hidden:2 * hidden], bhh[2 * hidden:3 * hidden]
    for j in range(hidden):
        r = _sigmoid32(gir[j] + bir[j] + ghr[j] + bhr[j])
        z = _sigmoid32(giz[j] + biz[j] + ghz[j] + bhz[j])
        n = _tanh32(gin[j] + bin_[j] + r * (ghn[j] + bhn[j]))
        hs[j] = n + z * (hs[j] - n)  # (1 - z) n + z h


@njit(**_jit)
def _gru_f32(w, m, a, x_off, h_off):
    """GRU with W_ih = matrix m, W_hh = matrix m + 1: input a[x_off:], state a[h_off:]."""
    gi, gh = w.dims[A_GI], w.dims[A_GH]
    _mv_f32(w, m, a, x_off, a, gi)
    _mv_f32(w, m + 1, a, h_off, a, gh)
    _gru_gates(_rows(w, m) // 3, a, gi, gh, _bias(w, m), _bias(w, m + 1), h_off)


@njit(**_jit)
def _outputs(a, off, b, out):
    """out = sigmoid(a[off:] + b) in float64 (the network's gains or strengths)."""
    ys = a[off:off + b.shape[0]]
    for i in range(b.shape[0]):
        out[i] = 1.0 / (1.0 + math.exp(-np.float64(ys[i] + b[i])))


@njit(**_jit)
def _front_f32(w, s, features):
    """Standardise, then dense + tanh into the newest slot of conv1_in (both paths)."""
    a = s.act
    nf, x0, c1in = w.dims[D_N_FEATURES], w.dims[A_X0], w.dims[A_CONV1_IN]
    mean = w.fv[w.dims[D_FEAT_MEAN]:w.dims[D_FEAT_MEAN] + nf]
    std = w.fv[w.dims[D_FEAT_STD]:w.dims[D_FEAT_STD] + nf]
    xs = a[x0:x0 + nf]
    for i in range(nf):
        xs[i] = (np.float32(features[i]) - mean[i]) / std[i]
    d, n1 = _rows(w, DENSE), w.mat[CONV1, M_COLS]
    _shift_history(a, c1in, n1, d)
    _mv_f32(w, DENSE, a, x0, a, c1in + n1 - d)
    _bias_tanh(a, c1in + n1 - d, _bias(w, DENSE))


@njit(**_jit)
def _copy(src, src_off, dst, dst_off, n):
    s, d = src[src_off:src_off + n], dst[dst_off:dst_off + n]
    for i in range(n):
        d[i] = s[i]


@njit(**_jit)
def network_step(w, s, features, gains_out, strengths_out):
    """One frame on the portable path: features [70] -> gains_out, strengths_out [34]
    (float64), updating the state ``s`` in place. Allocates nothing."""
    a, dims = s.act, w.dims
    c1, c2 = _rows(w, CONV1), _rows(w, CONV2)
    c1in, c2in, cat = dims[A_CONV1_IN], dims[A_CONV2_IN], dims[A_CAT]
    n2 = w.mat[CONV2, M_COLS]
    _front_f32(w, s, features)
    _shift_history(a, c2in, n2, c1)
    _mv_f32(w, CONV1, a, c1in, a, c2in + n2 - c1)
    _bias_tanh(a, c2in + n2 - c1, _bias(w, CONV1))
    _mv_f32(w, CONV2, a, c2in, a, cat)
    _bias_tanh(a, cat, _bias(w, CONV2))
    x_off, h_off = cat, cat + c2
    for layer in range(dims[D_N_LAYERS]):
        m = GRU_STACK + 2 * layer
        _gru_f32(w, m, a, x_off, h_off)
        x_off, h_off = h_off, h_off + _rows(w, m) // 3
    _gru_f32(w, GRU_GAIN, a, x_off, h_off)
    _mv_f32(w, GAIN_HEAD, a, cat, a, dims[A_GI])
    _outputs(a, dims[A_GI], _bias(w, GAIN_HEAD), gains_out)
    str_in, n_last = dims[A_STR_IN], h_off - x_off
    _copy(a, cat, a, str_in, c2)
    _copy(a, x_off, a, str_in + c2, n_last)
    _gru_f32(w, GRU_STRENGTH, a, str_in, dims[A_HR])
    _mv_f32(w, STRENGTH_HEAD, a, dims[A_HR], a, dims[A_GI])
    _outputs(a, dims[A_GI], _bias(w, STRENGTH_HEAD), strengths_out)


# --------------------------------------------------------------------------------------------
# VNNI kernels: compiled on first call only, and only ever called on a VNNI CPU
# --------------------------------------------------------------------------------------------

_VNNI_ROWS = 4  # rows per pass of the VNNI matrix-vector product (they share the x loads)


def _dot_codegen(n_rows: int):
    """LLVM IR of sum_k u8 x[k] * s8 w_r[k] for n_rows rows w_r = wq[w_off + r kpad:],
    over n_chunks * 64 bytes, one ``vpdpbusd`` accumulator per row; returns the int32 sums."""

    def codegen(context, builder, signature, args):
        xu_v, xo, wq_v, wo, kpad, n = args
        acc_t = ir.VectorType(ir.IntType(32), 16)
        byte_t = ir.VectorType(ir.IntType(8), COL_BLOCK)
        xa = context.make_array(signature.args[0])(context, builder, xu_v)
        wa = context.make_array(signature.args[2])(context, builder, wq_v)
        xp = builder.bitcast(builder.gep(xa.data, [xo]), byte_t.as_pointer())
        wps = [builder.bitcast(builder.gep(wa.data, [builder.add(wo, builder.mul(kpad, ir.Constant(kpad.type, r)))]),
                               byte_t.as_pointer()) for r in range(n_rows)]
        dpbusd = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(acc_t, [acc_t, byte_t, byte_t]),
            "llvm.x86.avx512.vpdpbusd.512")
        reduce_add = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(32), [acc_t]), "llvm.vector.reduce.add.v16i32")
        accs = [cgutils.alloca_once_value(builder, ir.Constant(acc_t, None)) for _ in range(n_rows)]
        with cgutils.for_range(builder, n) as loop:
            xv = builder.load(builder.gep(xp, [loop.index]), align=1)
            for wp, acc in zip(wps, accs):
                wv = builder.load(builder.gep(wp, [loop.index]), align=1)
                builder.store(builder.call(dpbusd, [builder.load(acc), xv, wv]), acc)
        sums = [builder.call(reduce_add, [builder.load(acc)]) for acc in accs]
        if n_rows == 1:
            return sums[0]
        return context.make_tuple(builder, signature.return_type, sums)

    return codegen


def _dot_typer(n_rows: int):
    def typer(typingctx, xu, x_off, wq, w_off, kpad, n_chunks):
        if not (isinstance(xu, types.Array) and isinstance(wq, types.Array)):
            return None
        ret = types.int32 if n_rows == 1 else types.UniTuple(types.int32, n_rows)
        sig = ret(xu, types.intp, wq, types.intp, types.intp, types.intp)
        return sig, _dot_codegen(n_rows)

    typer.__name__ = typer.__qualname__ = f"dot{n_rows}_u8s8"
    return typer


# u8 xu[x_off:] . s8 rows of wq starting at w_off, rows kpad apart (64 n_chunks bytes each).
_dot_u8s8 = intrinsic(_dot_typer(1))
_dot4_u8s8 = intrinsic(_dot_typer(_VNNI_ROWS))


@njit(**_jit)
def _mv_u8(w, m, xu, x_off, y, y_off):
    """y[y_off + i] = scale[i] / 127 * sum_k W_m[i, k] (xu[x_off + k] - 128) for the u8
    codes xu = 128 + round(127 x); reads kpad bytes of xu."""
    o, rows, kpad, so, ro = w.mat[m, M_W], w.mat[m, M_ROWS], w.mat[m, M_KPAD], w.mat[m, M_SCALE], w.mat[m, M_ROWSUM]
    n_chunks = kpad // COL_BLOCK
    scale = w.fv[so:so + rows]
    rowsum = w.rowsum[ro:ro + rows]
    ys = y[y_off:y_off + rows]
    inv127 = np.float32(1.0 / 127.0)
    i = 0
    while i + _VNNI_ROWS <= rows:
        sums = _dot4_u8s8(xu, x_off, w.wq, o + i * kpad, kpad, n_chunks)
        for r in range(_VNNI_ROWS):
            ys[i + r] = np.float32(sums[r] - np.int32(128) * rowsum[i + r]) * (scale[i + r] * inv127)
        i += _VNNI_ROWS
    while i < rows:
        acc = _dot_u8s8(xu, x_off, w.wq, o + i * kpad, kpad, n_chunks)
        ys[i] = np.float32(acc - np.int32(128) * rowsum[i]) * (scale[i] * inv127)
        i += 1


@njit(**_jit)
def _to_u8(x, x_off, xu, xu_off, n):
    """xu = 128 + round(127 x) for x in [-1, 1] (saturating)."""
    xs = x[x_off:x_off + n]
    us = xu[xu_off:xu_off + n]
    for i in range(n):
        v = np.float32(127.0) * xs[i] + np.float32(128.5)
        us[i] = np.uint8(np.int32(min(max(v, np.float32(0.0)), np.float32(255.0))))


@njit(**_jit)
def _gru_u8(w, m, a, u, ux_off, h_off, uh_off):
    """GRU (matrices m, m + 1): input codes u[ux_off:], state a[h_off:] with its codes
    u[uh_off:] (updated too)."""
    gi, gh = w.dims[A_GI], w.dims[A_GH]
    hidden = _rows(w, m) // 3
    _mv_u8(w, m, u, ux_off, a, gi)
    _mv_u8(w, m + 1, u, uh_off, a, gh)
    _gru_gates(hidden, a, gi, gh, _bias(w, m), _bias(w, m + 1), h_off)
    _to_u8(a, h_off, u, uh_off, hidden)


@njit(**_jit)
def _network_step_vnni(w, s, features, gains_out, strengths_out):
    """One frame on the VNNI path (same contract as :func:`network_step`)."""
    a, u, dims = s.act, s.act_u8, w.dims
    d, c1, c2 = _rows(w, DENSE), _rows(w, CONV1), _rows(w, CONV2)
    c1in, c2in, cat = dims[A_CONV1_IN], dims[A_CONV2_IN], dims[A_CAT]
    uc1in, uc2in, ucat = dims[U_CONV1_IN], dims[U_CONV2_IN], dims[U_CAT]
    n1, n2 = w.mat[CONV1, M_COLS], w.mat[CONV2, M_COLS]
    _front_f32(w, s, features)  # float conv1_in: only its newest slot is used here
    _shift_history(u, uc1in, n1, d)
    _to_u8(a, c1in + n1 - d, u, uc1in + n1 - d, d)
    _mv_u8(w, CONV1, u, uc1in, a, c2in + n2 - c1)
    _bias_tanh(a, c2in + n2 - c1, _bias(w, CONV1))
    _shift_history(u, uc2in, n2, c1)
    _to_u8(a, c2in + n2 - c1, u, uc2in + n2 - c1, c1)
    _mv_u8(w, CONV2, u, uc2in, a, cat)
    _bias_tanh(a, cat, _bias(w, CONV2))
    _to_u8(a, cat, u, ucat, c2)
    x_off, h_off = 0, c2  # relative to cat / ucat
    for layer in range(dims[D_N_LAYERS]):
        m = GRU_STACK + 2 * layer
        _gru_u8(w, m, a, u, ucat + x_off, cat + h_off, ucat + h_off)
        x_off, h_off = h_off, h_off + _rows(w, m) // 3
    _gru_u8(w, GRU_GAIN, a, u, ucat + x_off, cat + h_off, ucat + h_off)
    _mv_u8(w, GAIN_HEAD, u, ucat, a, dims[A_GI])
    _outputs(a, dims[A_GI], _bias(w, GAIN_HEAD), gains_out)
    ustr = dims[U_STR_IN]
    _copy(u, ucat, u, ustr, c2)
    _copy(u, ucat + x_off, u, ustr + c2, h_off - x_off)
    _gru_u8(w, GRU_STRENGTH, a, u, ustr, dims[A_HR], dims[U_HR])
    _mv_u8(w, STRENGTH_HEAD, u, dims[U_HR], a, dims[A_GI])
    _outputs(a, dims[A_GI], _bias(w, STRENGTH_HEAD), strengths_out)


def vnni_step_function():
    """The VNNI frame step (njit, same signature as :func:`network_step`); RuntimeError on a
    CPU without AVX-512 VNNI, where compiling or running it would crash the process."""
    if not vnni_available():
        raise RuntimeError("this CPU (or numba's target) has no AVX-512 VNNI")
    return _network_step_vnni


# --------------------------------------------------------------------------------------------
# The object the audio engine uses
# --------------------------------------------------------------------------------------------

class Network:
    """The int8 network with its state, one :meth:`step` per 10 ms frame.

    ``use_vnni``: None picks the VNNI path when :func:`vnni_available`, True demands it
    (ValueError without VNNI), False forces the portable path. The constructor validates the
    weights, packs them and compiles the step (one warm-up frame, then :meth:`reset`), so the
    audio thread never triggers compilation.
    From other njit code: ``step_function(weights, state, features, gains_out, strengths_out)``.
    """

    def __init__(self, arch: dict, weights: dict, *, use_vnni: bool | None = None) -> None:
        validate_weights(arch, weights)
        self.arch = dict(arch)
        available = vnni_available()
        if use_vnni is None:
            use_vnni = available
        elif use_vnni and not available:
            raise ValueError("use_vnni=True but this CPU (or numba's target) has no AVX-512 VNNI")
        self.uses_vnni = bool(use_vnni)
        self.weights = pack_weights(arch, weights)
        self.state = make_state(self.weights)
        self.step_function = _network_step_vnni if self.uses_vnni else network_step
        self.n_weights = int(sum(weights[k].size for k, (dt, _) in weight_layout(self.arch).items()
                                 if dt == np.int8))
        self.n_features, self.n_bands = int(arch["n_features"]), int(arch["n_bands"])
        self._in_shape, self._out_shape = (self.n_features,), (self.n_bands,)
        self._features = np.zeros(self.n_features)
        self.step(np.zeros(self.n_features), np.zeros(self.n_bands), np.zeros(self.n_bands))
        self.reset()

    def reset(self) -> None:
        """Forget all state (a new stream starts)."""
        reset_state(self.state)

    def step(self, features: np.ndarray, gains_out: np.ndarray, strengths_out: np.ndarray) -> None:
        """One frame: features [70] (float64; other real dtypes are copied into a float64
        buffer first) -> gains_out, strengths_out [34] (float64, written in place)."""
        if (features.shape != self._in_shape or gains_out.shape != self._out_shape
                or strengths_out.shape != self._out_shape):
            raise ValueError(f"step expects features {self._in_shape} and outputs {self._out_shape}, "
                             f"got {features.shape}, {gains_out.shape}, {strengths_out.shape}")
        if gains_out.dtype != np.float64 or strengths_out.dtype != np.float64:
            raise ValueError("step writes float64 gains_out and strengths_out")
        if features.dtype != np.float64:
            np.copyto(self._features, features)  # one compiled specialisation only
            features = self._features
        self.step_function(self.weights, self.state, features, gains_out, strengths_out)

    def run(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Convenience (allocates): step through a sequence [T, 70] from the current state."""
        f = np.asarray(features, dtype=np.float64)
        gains, strengths = np.empty((f.shape[0], self.n_bands)), np.empty((f.shape[0], self.n_bands))
        for t in range(f.shape[0]):
            self.step(f[t], gains[t], strengths[t])
        return gains, strengths

    def state_arrays(self) -> dict:
        """Named float32 views of the state (for tests and debugging): conv1_in, conv2_in,
        c2, gru0 .. gru{L-1}, gru_gain, gru_strength."""
        a, dims, arch = self.state.act, self.weights.dims, self.arch
        out = {
            "conv1_in": a[dims[A_CONV1_IN]:dims[A_CONV1_IN] + arch["conv1_kernel"] * arch["dense"]],
            "conv2_in": a[dims[A_CONV2_IN]:dims[A_CONV2_IN] + arch["conv2_kernel"] * arch["conv1"]],
        }
        off = int(dims[A_CAT])
        for name, n in [("c2", arch["conv2"])] + [(f"gru{i}", h) for i, h in enumerate(arch["gru"])] \
                + [("gru_gain", arch["gru_gain"])]:
            out[name], off = a[off:off + n], off + n
        out["gru_strength"] = a[dims[A_HR]:dims[A_HR] + arch["gru_strength"]]
        return out
