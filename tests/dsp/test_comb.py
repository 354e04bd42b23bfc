import numpy as np
import pytest

from percepnet.dsp.comb import HISTORY_SIZE, WINDOW_OFFSET, comb_filter, comb_noise_power, comb_taps


@pytest.mark.parametrize("period,k_eff,sigma2", [(100, 5, 0.125), (192, 5, 0.125), (300, 3, 0.1875),
                                                 (480, 2, 0.25), (768, 1, 0.375)])
def test_taps_truncate_to_lookahead(period, k_eff, sigma2):
    taps = np.zeros(11)
    k, s2 = comb_taps(period, taps)
    assert k == k_eff
    assert k * period <= 960  # never reads audio that has not arrived
    assert np.isclose(taps[: 2 * k + 1].sum(), 1.0)
    assert np.allclose(taps[: 2 * k + 1], taps[: 2 * k + 1][::-1])  # symmetric: zero phase
    assert np.isclose(s2, sigma2)


def test_comb_keeps_periodic_signal_and_reduces_noise(rng):
    period = 160  # 300 Hz, K_eff = 5
    n = np.arange(HISTORY_SIZE)
    harmonic = sum(np.cos(2 * np.pi * h * n / period + h) / h for h in range(1, 8))
    taps = np.zeros(11)
    out = np.zeros(960)
    comb_filter(harmonic, period, taps, out)
    window = harmonic[WINDOW_OFFSET:WINDOW_OFFSET + 960]
    assert np.max(np.abs(out - window)) < 1e-9
    noise = rng.normal(size=HISTORY_SIZE)
    s2 = comb_filter(noise, period, taps, out)
    assert np.isclose(np.var(out), s2, rtol=0.15)
    assert np.isclose(comb_noise_power(period), 0.125)
