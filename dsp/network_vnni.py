"""AVX-512 VNNI path of the PercepNet network, and the CPU check that guards it.

Activations in [-1, 1] (every layer input except the first dense layer's, which stays on the
float path) are quantised to u8 as 128 + round(127 x); the u8 x s8 dot products use
``vpdpbusd`` through a numba ``@intrinsic`` (4 rows per pass sharing the activation loads;
columns padded with zero weights to multiples of 64), corrected with 128 x the precomputed
row sums and rescaled by w_scale / 127. Same contract as the portable
:func:`percepnet.dsp.network_kernels.network_step` (features [70] -> gains, strengths [34]).

The kernels are only compiled when first called, and only ever called on a CPU where
:func:`vnni_available` says yes: importing this module never compiles anything.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .network_kernels import (_bias, _bias_tanh, _copy, _front_f32, _gru_gates, _outputs,
                              _rows, _shift_history)
from .network_pack import (A_CAT, A_CONV1_IN, A_CONV2_IN, A_GH, A_GI, A_HR, COL_BLOCK, CONV1,
                           CONV2, D_N_LAYERS, DENSE, GAIN_HEAD, GRU_GAIN, GRU_STACK,
                           GRU_STRENGTH, M_COLS, M_KPAD, M_ROWS, M_ROWSUM, M_SCALE, M_W,
                           STRENGTH_HEAD, U_CAT, U_CONV1_IN, U_CONV2_IN, U_HR, U_STR_IN, _jit)

__all__ = ["vnni_available", "vnni_step_function"]


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
