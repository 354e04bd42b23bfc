"""Allocation-free real FFT (and inverse) of the 960-sample analysis window, in numba.

Why not ``np.fft``: numba cannot compile ``np.fft`` calls, and the per-frame path of the
real-time chain must not allocate.  This module therefore provides a plain-numba real
FFT that writes into caller-provided arrays and keeps all its tables and scratch memory in
a precomputed :class:`FFTPlan`.

Conventions (identical to numpy):

* ``rfft(x, out, plan)``: ``out[k] = sum_t x[t] exp(-2j*pi*k*t/n)``, ``k = 0..n/2``
  (unnormalised), like ``numpy.fft.rfft(x)``.
* ``irfft(X, out, plan)``: the inverse with ``1/n`` normalisation, like
  ``numpy.fft.irfft(X, n)``; the imaginary parts of ``X[0]`` and ``X[n/2]`` are ignored.

Shapes and dtypes: ``x``/time signals are ``float64[n]``, spectra are
``complex128[n//2 + 1]`` (481 bins for n = 960).  Inputs are never modified.

Algorithm: the real signal is packed into the ``n/2``-point complex sequence
``z[m] = x[2m] + 1j*x[2m+1]``, transformed with an iterative mixed-radix (2, 3, 4, 5)
Stockham autosort complex FFT (ping-pong between two scratch buffers, no bit reversal),
and split into the even/odd half spectra with one pass of ``exp(-2j*pi*k/n)`` twiddles.
The inverse runs the same steps backwards, computing the inverse complex FFT as
``conj(FFT(conj(Z)))``.

A plan's scratch buffers are shared state: one plan must not be used by two threads at
the same time (make one plan per thread if the chain is ever run in parallel).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

__all__ = ["FFTPlan", "make_plan", "rfft", "irfft"]

# Only allow fused multiply-add contraction (about 10 % faster, slightly more accurate);
# no reassociation and no NaN/inf assumptions.
_FASTMATH = {"contract"}


class FFTPlan(NamedTuple):
    """Precomputed tables and scratch memory for one real FFT size ``n`` (numpy arrays only).

    ``half = n // 2`` is the size of the inner complex FFT.
    """

    #: int64[n_stages, 2]: per Stockham stage, its radix p (in {2, 3, 4, 5}; the product
    #: over stages is ``half``) and the offset of its twiddles in ``stage_twiddles``.
    stages: np.ndarray
    #: complex128[sum of m*(p-1)]: per stage, ``w**(r*j)`` for j < m, 1 <= r < p, stored at
    #: ``offset + j*(p-1) + (r-1)``, with ``w = exp(-2j*pi/(m*p))`` and ``m`` that stage's
    #: number of butterfly groups.
    stage_twiddles: np.ndarray
    #: complex128[half + 1]: ``exp(-2j*pi*k/n)`` for the real/complex split step.
    split_twiddles: np.ndarray
    #: complex128[2, half]: scratch; row 0 receives the packed input, row 1 is its
    #: Stockham ping-pong partner.  (Few fields: each costs ~0.2 us to unbox per Python call.)
    work: np.ndarray


def _factorize(half: int) -> list[int]:
    """Split ``half`` into radices, preferring 4 (fewest operations), then 5, 3, 2."""
    radices: list[int] = []
    rest = half
    while rest % 4 == 0:
        radices.append(4)
        rest //= 4
    for p in (5, 3, 2):
        while rest % p == 0:
            radices.append(p)
            rest //= p
    if rest != 1:
        raise ValueError(f"n/2 = {half} must factor into 2, 3, 4 and 5")
    # The order changes speed by only a few percent (measured for 960); radix 5 goes last
    # because the last stage has m = 1, i.e. only unit twiddles, saving the most there.
    radices.sort(key=lambda p: {2: 0, 4: 1, 3: 2, 5: 3}[p])
    return radices


def make_plan(n: int = 960) -> FFTPlan:
    """Build the tables and scratch buffers for a real FFT of even size ``n``.

    ``n // 2`` must be a product of 2, 3, 4 and 5 (960 -> 480 = 2*4*4*3*5).
    Raises ``ValueError`` otherwise.
    """
    n = int(n)
    if n < 2 or n % 2:
        raise ValueError(f"n must be even and >= 2, got {n}")
    half = n // 2
    radices = _factorize(half) if half > 1 else []

    offsets = []
    twiddles = []
    offset = 0
    n_cur = half
    for p in radices:
        m = n_cur // p
        j = np.arange(m)[:, None]
        r = np.arange(1, p)[None, :]
        tw = np.exp(-2j * np.pi * ((j * r) % n_cur) / n_cur).reshape(-1)
        offsets.append(offset)
        twiddles.append(tw)
        offset += tw.size
        n_cur = m

    stage_twiddles = (
        np.concatenate(twiddles) if twiddles else np.zeros(1, dtype=np.complex128)
    )
    k = np.arange(half + 1)
    stages = np.zeros((len(radices), 2), dtype=np.int64)
    stages[:, 0] = radices
    stages[:, 1] = offsets
    return FFTPlan(
        stages=stages,
        stage_twiddles=np.ascontiguousarray(stage_twiddles, dtype=np.complex128),
        split_twiddles=np.exp(-2j * np.pi * k / n).astype(np.complex128),
        work=np.zeros((2, half), dtype=np.complex128),
    )


# ---------------------------------------------------------------------------------------
# Stockham stages (decimation in frequency).  For a stage of radix p with ``m`` groups and
# stride ``s`` (the product of the radices already done; m * p * s = half), input k of
# butterfly (j, q) is x[q + s*(j + k*m)] and output r goes to y[q + s*(p*j + r)] after
# multiplication by the twiddle w**(r*j), w = exp(-2j*pi/(m*p)).  The buffers are viewed
# as x3[k, j, q] and y3[j, r, q] (reshape of a contiguous array: a view, no allocation),
# which also spares numba's negative-index checks.  The inner loop runs over the longer
# of j and q; in the q-inner order, group j = 0 (unit twiddles) skips the multiplications.
# Complex constants like -1j are applied with explicit real arithmetic.
# ---------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def _mul_mi(z):
    """-1j * z."""
    return complex(z.imag, -z.real)


@njit(cache=True, nogil=True, inline="always")
def _bfly3(a0, a1, a2):
    """3-point DFT (forward)."""
    t1 = a1 + a2
    t2 = a0 - 0.5 * t1
    t3 = _mul_mi(a1 - a2) * 0.8660254037844386  # sin(2*pi/3)
    return a0 + t1, t2 + t3, t2 - t3


@njit(cache=True, nogil=True, inline="always")
def _bfly4(a0, a1, a2, a3):
    """4-point DFT (forward)."""
    t0 = a0 + a2
    t1 = a0 - a2
    t2 = a1 + a3
    t3 = _mul_mi(a1 - a3)
    return t0 + t2, t1 + t3, t0 - t2, t1 - t3


@njit(cache=True, nogil=True, inline="always")
def _bfly5(a0, a1, a2, a3, a4):
    """5-point DFT (forward)."""
    c1 = 0.30901699437494745  # cos(2*pi/5)
    c2 = -0.8090169943749475  # cos(4*pi/5)
    s1 = 0.9510565162951535  # sin(2*pi/5)
    s2 = 0.5877852522924731  # sin(4*pi/5)
    b1 = a1 + a4
    b2 = a2 + a3
    d1 = _mul_mi(a1 - a4)
    d2 = _mul_mi(a2 - a3)
    e1 = a0 + c1 * b1 + c2 * b2
    e2 = a0 + c2 * b1 + c1 * b2
    f1 = s1 * d1 + s2 * d2
    f2 = s2 * d1 - s1 * d2
    return a0 + b1 + b2, e1 + f1, e2 + f2, e2 - f2, e1 - f1


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _stage2(x, y, tw, off, m, s):
    x3 = x.reshape((2, m, s))
    y3 = y.reshape((m, 2, s))
    if m >= s:
        for q in range(s):
            for j in range(m):
                a0 = x3[0, j, q]
                a1 = x3[1, j, q]
                y3[j, 0, q] = a0 + a1
                y3[j, 1, q] = (a0 - a1) * tw[off + j]
        return
    for q in range(s):
        a0 = x3[0, 0, q]
        a1 = x3[1, 0, q]
        y3[0, 0, q] = a0 + a1
        y3[0, 1, q] = a0 - a1
    for j in range(1, m):
        w1 = tw[off + j]
        for q in range(s):
            a0 = x3[0, j, q]
            a1 = x3[1, j, q]
            y3[j, 0, q] = a0 + a1
            y3[j, 1, q] = (a0 - a1) * w1


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _stage3(x, y, tw, off, m, s):
    x3 = x.reshape((3, m, s))
    y3 = y.reshape((m, 3, s))
    if m >= s:
        for q in range(s):
            for j in range(m):
                y0, y1, y2 = _bfly3(x3[0, j, q], x3[1, j, q], x3[2, j, q])
                y3[j, 0, q] = y0
                y3[j, 1, q] = y1 * tw[off + 2 * j]
                y3[j, 2, q] = y2 * tw[off + 2 * j + 1]
        return
    for q in range(s):
        y0, y1, y2 = _bfly3(x3[0, 0, q], x3[1, 0, q], x3[2, 0, q])
        y3[0, 0, q] = y0
        y3[0, 1, q] = y1
        y3[0, 2, q] = y2
    for j in range(1, m):
        w1 = tw[off + 2 * j]
        w2 = tw[off + 2 * j + 1]
        for q in range(s):
            y0, y1, y2 = _bfly3(x3[0, j, q], x3[1, j, q], x3[2, j, q])
            y3[j, 0, q] = y0
            y3[j, 1, q] = y1 * w1
            y3[j, 2, q] = y2 * w2


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _stage4(x, y, tw, off, m, s):
    x3 = x.reshape((4, m, s))
    y3 = y.reshape((m, 4, s))
    if m >= s:
        for q in range(s):
            for j in range(m):
                y0, y1, y2, y3_ = _bfly4(x3[0, j, q], x3[1, j, q], x3[2, j, q], x3[3, j, q])
                y3[j, 0, q] = y0
                y3[j, 1, q] = y1 * tw[off + 3 * j]
                y3[j, 2, q] = y2 * tw[off + 3 * j + 1]
                y3[j, 3, q] = y3_ * tw[off + 3 * j + 2]
        return
    for q in range(s):
        y0, y1, y2, y3_ = _bfly4(x3[0, 0, q], x3[1, 0, q], x3[2, 0, q], x3[3, 0, q])
        y3[0, 0, q] = y0
        y3[0, 1, q] = y1
        y3[0, 2, q] = y2
        y3[0, 3, q] = y3_
    for j in range(1, m):
        w1 = tw[off + 3 * j]
        w2 = tw[off + 3 * j + 1]
        w3 = tw[off + 3 * j + 2]
        for q in range(s):
            y0, y1, y2, y3_ = _bfly4(x3[0, j, q], x3[1, j, q], x3[2, j, q], x3[3, j, q])
            y3[j, 0, q] = y0
            y3[j, 1, q] = y1 * w1
            y3[j, 2, q] = y2 * w2
            y3[j, 3, q] = y3_ * w3


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _stage5(x, y, tw, off, m, s):
    x3 = x.reshape((5, m, s))
    y3 = y.reshape((m, 5, s))
    if m >= s:
        for q in range(s):
            for j in range(m):
                y0, y1, y2, y3_, y4 = _bfly5(
                    x3[0, j, q], x3[1, j, q], x3[2, j, q], x3[3, j, q], x3[4, j, q]
                )
                y3[j, 0, q] = y0
                y3[j, 1, q] = y1 * tw[off + 4 * j]
                y3[j, 2, q] = y2 * tw[off + 4 * j + 1]
                y3[j, 3, q] = y3_ * tw[off + 4 * j + 2]
                y3[j, 4, q] = y4 * tw[off + 4 * j + 3]
        return
    for q in range(s):
        y0, y1, y2, y3_, y4 = _bfly5(
            x3[0, 0, q], x3[1, 0, q], x3[2, 0, q], x3[3, 0, q], x3[4, 0, q]
        )
        y3[0, 0, q] = y0
        y3[0, 1, q] = y1
        y3[0, 2, q] = y2
        y3[0, 3, q] = y3_
        y3[0, 4, q] = y4
    for j in range(1, m):
        w1 = tw[off + 4 * j]
        w2 = tw[off + 4 * j + 1]
        w3 = tw[off + 4 * j + 2]
        w4 = tw[off + 4 * j + 3]
        for q in range(s):
            y0, y1, y2, y3_, y4 = _bfly5(
                x3[0, j, q], x3[1, j, q], x3[2, j, q], x3[3, j, q], x3[4, j, q]
            )
            y3[j, 0, q] = y0
            y3[j, 1, q] = y1 * w1
            y3[j, 2, q] = y2 * w2
            y3[j, 3, q] = y3_ * w3
            y3[j, 4, q] = y4 * w4


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _cfft(plan):
    """Forward complex FFT of ``plan.work[0]`` (length half, clobbered).

    Returns the row of ``plan.work`` (0 or 1, by the parity of the number of stages) that
    holds the result.
    """
    stages = plan.stages
    tw = plan.stage_twiddles
    x = plan.work[0]
    y = plan.work[1]
    n_cur = x.shape[0]
    s = 1
    for i in range(stages.shape[0]):
        p = stages[i, 0]
        m = n_cur // p
        off = stages[i, 1]
        if p == 4:
            _stage4(x, y, tw, off, m, s)
        elif p == 2:
            _stage2(x, y, tw, off, m, s)
        elif p == 3:
            _stage3(x, y, tw, off, m, s)
        else:
            _stage5(x, y, tw, off, m, s)
        x, y = y, x
        n_cur = m
        s *= p
    return x


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def rfft(x, out, plan):
    """Real forward FFT, like ``numpy.fft.rfft(x)`` (unnormalised).

    x: float64[n] (not modified); out: complex128[n//2 + 1] (written); plan: ``make_plan(n)``.
    Allocates nothing.
    """
    half = plan.work.shape[1]
    if x.shape[0] != 2 * half or out.shape[0] != half + 1:
        raise ValueError("rfft: need x of length n and out of length n//2 + 1 for the plan")
    z = plan.work[0]
    for m in range(half):
        z[m] = complex(x[2 * m], x[2 * m + 1])
    Z = _cfft(plan)
    w = plan.split_twiddles
    # Split: the spectra of the even and odd samples are E[k] = (Z[k] + conj(Z[half-k]))/2
    # and O[k] = (Z[k] - conj(Z[half-k]))/(2j); then X[k] = E[k] + w^k O[k] with
    # w = exp(-2j*pi/n).  Each iteration fills the pair k, half-k.
    z0 = Z[0]
    out[0] = complex(z0.real + z0.imag, 0.0)
    out[half] = complex(z0.real - z0.imag, 0.0)
    for k in range(1, half // 2 + 1):
        zk = Z[k]
        zc = Z[half - k].conjugate()
        e = 0.5 * (zk + zc)
        o = _mul_mi(0.5 * (zk - zc))
        t = w[k] * o
        out[k] = e + t
        # X[half-k] = conj(E[k]) - conj(w^k O[k]) (Hermitian symmetry of E and O).
        out[half - k] = (e - t).conjugate()


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def irfft(X, out, plan):
    """Real inverse FFT, like ``numpy.fft.irfft(X, n)`` (1/n normalisation).

    X: complex128[n//2 + 1] (not modified; imag of X[0] and X[n//2] ignored);
    out: float64[n] (written); plan: ``make_plan(n)``.  Allocates nothing.
    """
    half = plan.work.shape[1]
    if X.shape[0] != half + 1 or out.shape[0] != 2 * half:
        raise ValueError("irfft: need X of length n//2 + 1 and out of length n for the plan")
    w = plan.split_twiddles
    z = plan.work[0]
    # Undo the split: E[k] = (X[k] + conj(X[half-k]))/2, O[k] = (X[k] - conj(X[half-k]))
    # / (2 w^k), Z[k] = E[k] + 1j*O[k].  The buffer receives conj(Z) so that the forward
    # transform computes the inverse: ifft(Z) = conj(fft(conj(Z))) / half.
    r0 = X[0].real
    rn = X[half].real
    z[0] = complex(0.5 * (r0 + rn), -0.5 * (r0 - rn))
    for k in range(1, half // 2 + 1):
        xk = X[k]
        xc = X[half - k].conjugate()
        e = 0.5 * (xk + xc)
        o = (0.5 * (xk - xc)) * w[k].conjugate()
        io = complex(-o.imag, o.real)
        z[k] = (e + io).conjugate()
        # Z[half-k] = conj(E[k]) + 1j*conj(O[k]) = conj(E[k] - 1j*O[k]).
        z[half - k] = e - io
    Y = _cfft(plan)
    # z = ifft(Z) over half points (1/half; with the 0.5 in E and O this is irfft's 1/n),
    # and x[2m] = Re z[m], x[2m+1] = Im z[m]; Y holds conj(half * z).
    scale = 1.0 / half
    for m in range(half):
        y = Y[m]
        out[2 * m] = y.real * scale
        out[2 * m + 1] = -y.imag * scale
