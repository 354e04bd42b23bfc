"""Tests for percepnet.dsp.fft: parity with numpy.fft, round trip, no side effects."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import njit

from percepnet.dsp.constants import FFT_SIZE, N_BINS
from percepnet.dsp.fft import FFTPlan, irfft, make_plan, rfft

N = FFT_SIZE  # 960


@pytest.fixture(scope="module")
def plan() -> FFTPlan:
    return make_plan(N)


def _vorbis_window(n: int) -> np.ndarray:
    t = np.arange(n)
    return np.sin(0.5 * np.pi * np.sin(np.pi * (t + 0.5) / n) ** 2)


def _rfft(x: np.ndarray, plan: FFTPlan) -> np.ndarray:
    out = np.empty(x.shape[0] // 2 + 1, dtype=np.complex128)
    rfft(x, out, plan)
    return out


def _irfft(X: np.ndarray, plan: FFTPlan) -> np.ndarray:
    out = np.empty(2 * (X.shape[0] - 1), dtype=np.float64)
    irfft(X, out, plan)
    return out


def _assert_spectrum_close(got: np.ndarray, ref: np.ndarray) -> None:
    scale = max(np.abs(ref).max(), 1e-300)
    assert np.abs(got - ref).max() <= 1e-9 * scale


def test_plan_layout(plan):
    radices = plan.stages[:, 0]
    assert int(np.prod(radices)) == N // 2
    assert set(radices.tolist()) <= {2, 3, 4, 5}
    assert all(isinstance(a, np.ndarray) for a in plan)
    assert plan.work.shape == (2, N // 2) and plan.work.dtype == np.complex128
    assert plan.split_twiddles.shape == (N_BINS,)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 12345])
def test_rfft_matches_numpy_random(plan, seed):
    x = np.random.default_rng(seed).standard_normal(N)
    got = _rfft(x, plan)
    assert got.shape == (N_BINS,) and got.dtype == np.complex128
    _assert_spectrum_close(got, np.fft.rfft(x))


def test_rfft_matches_numpy_windowed_sine(plan):
    t = np.arange(N)
    x = _vorbis_window(N) * np.sin(2 * np.pi * 1234.5 * t / 48_000 + 0.3)
    _assert_spectrum_close(_rfft(x, plan), np.fft.rfft(x))


@pytest.mark.parametrize("pos", [0, 1, 17, N // 2, N - 1])
def test_rfft_matches_numpy_impulse(plan, pos):
    x = np.zeros(N)
    x[pos] = 1.0
    _assert_spectrum_close(_rfft(x, plan), np.fft.rfft(x))


def test_rfft_dc_and_nyquist_are_real(plan):
    x = np.random.default_rng(7).standard_normal(N)
    X = _rfft(x, plan)
    assert X[0].imag == 0.0 and X[-1].imag == 0.0
    assert X[0].real == pytest.approx(x.sum(), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 12345])
def test_irfft_matches_numpy_random(plan, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal(N_BINS) + 1j * rng.standard_normal(N_BINS)
    ref = np.fft.irfft(X, N)
    got = _irfft(X, plan)
    assert got.shape == (N,) and got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_irfft_ignores_imag_of_dc_and_nyquist(plan):
    rng = np.random.default_rng(5)
    X = rng.standard_normal(N_BINS) + 1j * rng.standard_normal(N_BINS)
    X_real_ends = X.copy()
    X_real_ends[0] = X[0].real
    X_real_ends[-1] = X[-1].real
    np.testing.assert_array_equal(_irfft(X, plan), _irfft(X_real_ends, plan))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip(plan, seed):
    x = np.random.default_rng(seed).standard_normal(N)
    np.testing.assert_allclose(_irfft(_rfft(x, plan), plan), x, rtol=0, atol=1e-12)


def test_round_trip_windowed_sine(plan):
    t = np.arange(N)
    x = _vorbis_window(N) * np.sin(2 * np.pi * 440.0 * t / 48_000)
    np.testing.assert_allclose(_irfft(_rfft(x, plan), plan), x, rtol=0, atol=1e-12)


def test_inputs_not_modified(plan):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(N)
    x_copy = x.copy()
    X = rng.standard_normal(N_BINS) + 1j * rng.standard_normal(N_BINS)
    X_copy = X.copy()
    _rfft(x, plan)
    _irfft(X, plan)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(X, X_copy)


def test_read_only_inputs(plan):
    rng = np.random.default_rng(12)
    x = rng.standard_normal(N)
    x.flags.writeable = False
    X = np.fft.rfft(x)
    X.flags.writeable = False
    _assert_spectrum_close(_rfft(x, plan), X)
    np.testing.assert_allclose(_irfft(X, plan), x, rtol=0, atol=1e-12)


def test_repeated_calls_are_independent(plan):
    # The plan's scratch buffers are reused: results must not depend on earlier calls.
    rng = np.random.default_rng(13)
    x1, x2 = rng.standard_normal(N), rng.standard_normal(N)
    first = _rfft(x1, plan)
    _rfft(x2, plan)
    _irfft(np.fft.rfft(x2), plan)
    np.testing.assert_array_equal(_rfft(x1, plan), first)


@pytest.mark.parametrize("n", [2, 4, 6, 10, 18, 30, 40, 240, 480, 1200, 2 * 3 * 5 * 5 * 4])
def test_other_sizes_match_numpy(n):
    p = make_plan(n)
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n)
    _assert_spectrum_close(_rfft(x, p), np.fft.rfft(x))
    X = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    ref = np.fft.irfft(X, n)
    np.testing.assert_allclose(_irfft(X, p), ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    np.testing.assert_allclose(_irfft(_rfft(x, p), p), x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n", [0, 3, 14, 44, 962])
def test_unsupported_sizes_raise(n):
    with pytest.raises(ValueError):
        make_plan(n)


def test_wrong_lengths_raise(plan):
    with pytest.raises(ValueError):
        rfft(np.zeros(N - 2), np.empty(N_BINS, dtype=np.complex128), plan)
    with pytest.raises(ValueError):
        rfft(np.zeros(N), np.empty(N_BINS - 1, dtype=np.complex128), plan)
    with pytest.raises(ValueError):
        irfft(np.zeros(N_BINS, dtype=np.complex128), np.empty(N - 1), plan)


@njit(cache=False)
def _spectral_gain_in_njit(x, gain, spec, y, plan):
    rfft(x, spec, plan)
    for k in range(spec.shape[0]):
        spec[k] *= gain[k]
    irfft(spec, y, plan)


def test_callable_from_njit(plan):
    rng = np.random.default_rng(21)
    x = rng.standard_normal(N)
    gain = rng.uniform(0.0, 1.0, N_BINS)
    spec = np.empty(N_BINS, dtype=np.complex128)
    y = np.empty(N)
    _spectral_gain_in_njit(x, gain, spec, y, plan)
    ref = np.fft.irfft(np.fft.rfft(x) * gain, N)
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


@pytest.mark.slow
def test_no_nrt_allocations():
    # NRT allocation statistics are only collected with NUMBA_NRT_STATS=1, which must be
    # set before numba starts, hence the subprocess.  Unboxing arguments in a Python call
    # creates NRT meminfos, so the transforms are looped inside an njit driver and the
    # counts of a 1-iteration and an 11-iteration call are compared.
    code = textwrap.dedent(
        """
        import numpy as np
        from numba import njit
        from numba.core.runtime import rtsys
        from percepnet.dsp.fft import make_plan, rfft, irfft

        @njit
        def drive(x, X, y, plan, reps):
            for _ in range(reps):
                rfft(x, X, plan)
                irfft(X, y, plan)

        plan = make_plan(960)
        x = np.random.default_rng(0).standard_normal(960)
        X = np.empty(481, dtype=np.complex128)
        y = np.empty(960)
        drive(x, X, y, plan, 1)
        counts = []
        for reps in (1, 11):
            before = rtsys.get_allocation_stats().alloc
            drive(x, X, y, plan, reps)
            counts.append(rtsys.get_allocation_stats().alloc - before)
        print(counts[1] - counts[0])
        """
    )
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "0"
