import math

import numpy as np

from percepnet.dsp.postfilter import cap_gain_decay, envelope_postfilter


def test_unit_gains_are_left_alone(rng):
    out = np.zeros(34)
    big_g = envelope_postfilter(np.ones(34), rng.uniform(0.1, 1, 34), out)
    assert math.isclose(big_g, 1.0) and np.allclose(out, 1.0)


def test_noisy_bands_are_pushed_down_and_compensated(rng):
    gains = np.r_[np.full(17, 0.9), np.full(17, 0.2)]
    energy = np.ones(34)
    out = np.zeros(34)
    big_g = envelope_postfilter(gains, energy, out)
    assert 1.0 < big_g <= 1.9 + 1e-12
    # Warping widens the contrast between clean and noisy bands.
    assert out[20] / out[0] < gains[20] / gains[0]


def test_compensation_peaks_at_5_6_db():
    # Largest G over many gain patterns stays at the analytic maximum 1.9 (+5.57 dB).
    out = np.zeros(34)
    best = 0.0
    for g in np.linspace(0.01, 1, 200):
        best = max(best, envelope_postfilter(np.full(34, g), np.ones(34), out))
    assert best <= math.sqrt(1.02 / (2 * math.sqrt(0.02))) + 1e-9
    assert best > 1.85


def test_decay_cap():
    prev = np.full(34, 1.0)
    g = np.zeros(34)
    cap_gain_decay(g, prev)
    assert np.allclose(g, 0.6) and np.allclose(prev, 0.6)
    g = np.full(34, 0.9)
    cap_gain_decay(g, prev)
    assert np.allclose(g, 0.9)  # rising gains are not limited


def test_per_band_variant_only_attenuates_and_keeps_unit_gains():
    from percepnet.dsp.postfilter import envelope_postfilter_per_band

    g = np.linspace(0, 1, 34)
    out = np.zeros(34)
    envelope_postfilter_per_band(g, out)
    assert np.all(out <= g + 1e-12) and np.isclose(out[-1], 1.0)
    assert out[5] < 0.8 * g[5]  # small gains are pushed down harder
    assert out[30] > 0.95 * g[30]  # near-clean bands barely move
