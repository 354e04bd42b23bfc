"""Portable compiled path of the PercepNet network: int8 weights x float32 activations,
float32 accumulation, the row scale applied once per output. LLVM auto-vectorises it
(``vpmovsxbd`` + ``vcvtdq2ps`` + FMA).

A frame is one call of the njit :func:`network_step` (features [70] -> gains, strengths [34],
float64), which allocates nothing. tanh and sigmoid use a rational approximation (max error
3.3e-7) so the gate loops vectorise. The helpers here (not the matrix-vector product) are
shared with the VNNI path.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .network_pack import (A_CAT, A_CONV1_IN, A_CONV2_IN, A_GH, A_GI, A_HR, A_STR_IN, A_X0,
                           CONV1, CONV2, D_FEAT_MEAN, D_FEAT_STD, D_N_FEATURES, D_N_LAYERS,
                           DENSE, GAIN_HEAD, GRU_GAIN, GRU_STACK, GRU_STRENGTH, M_BIAS, M_COLS,
                           M_KPAD, M_ROWS, M_SCALE, M_W, STRENGTH_HEAD, _jit)

__all__ = ["network_step"]


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
