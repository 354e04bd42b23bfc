"""Packed weights and state of the PercepNet network's int8 runtime: a few flat arrays, so
one call from Python unboxes little and the tuples' types do not depend on the number of GRU
layers.

:class:`NetworkWeights`: five flat arrays, every matrix in one int8 buffer (columns padded
with zero weights to multiples of ``COL_BLOCK`` = 64) described by a table; the ``M_*``,
matrix-row and ``D_*``/``A_*``/``U_*`` constants index it. :class:`NetworkState`: one float32
and one uint8 buffer holding everything carried between frames plus scratch. Both compiled
paths (:mod:`percepnet.dsp.network_kernels`, :mod:`percepnet.dsp.network_vnni`) use them;
``_jit`` is their shared numba options.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from .network_format import _MATRICES, _check_arch, validate_weights

__all__ = ["NetworkWeights", "NetworkState", "pack_weights", "make_state", "reset_state"]


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
