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


def test_voicing_gate_ramps_from_noise_level_to_the_voicing_threshold():
    from percepnet.dsp.comb import COMB_VOICING_MIN, voicing_weight
    from percepnet.dsp.pitch import VOICING_THRESHOLD

    assert voicing_weight(0.0, VOICING_THRESHOLD) == 0.0
    assert voicing_weight(COMB_VOICING_MIN, VOICING_THRESHOLD) == 0.0
    mid = (COMB_VOICING_MIN + VOICING_THRESHOLD) / 2
    assert np.isclose(voicing_weight(mid, VOICING_THRESHOLD), 0.5)
    assert voicing_weight(VOICING_THRESHOLD, VOICING_THRESHOLD) == 1.0
    assert voicing_weight(0.9, VOICING_THRESHOLD) == 1.0


def test_mix_pitch_weight_scales_the_strengths(rng):
    """weight 0 (an unvoiced frame) leaves the noisy spectrum as it is; weight w mixes like
    strengths times w; nothing changes above 8 kHz."""
    from percepnet.dsp.bands import BAND_EDGES
    from percepnet.dsp.comb import mix_pitch

    nb = len(BAND_EDGES)
    spec_y = rng.normal(size=481) + 1j * rng.normal(size=481)
    spec_p = rng.normal(size=481) + 1j * rng.normal(size=481)
    energy_y, energy_p = np.ones(nb), np.ones(nb)
    edges = np.asarray(BAND_EDGES, dtype=np.int64)
    scratch = (np.zeros(nb), np.zeros(481), np.zeros(481))

    def run(strength, weight):
        out = np.zeros(481, dtype=complex)
        mix_pitch(spec_y, spec_p, energy_y, energy_p, np.full(nb, strength), edges, *scratch,
                  out, weight)
        return out

    from percepnet.dsp.comb import COMB_MAX_BIN

    assert np.allclose(run(0.8, 0.0), spec_y)
    assert np.allclose(run(0.8, 0.5), run(0.4, 1.0))
    full = run(0.8, 1.0)
    assert not np.allclose(full[:COMB_MAX_BIN], spec_y[:COMB_MAX_BIN])
    # the highs are left as they are (COMB_MAX_HZ, 8 kHz)
    assert COMB_MAX_BIN == 160 and np.allclose(full[COMB_MAX_BIN:], spec_y[COMB_MAX_BIN:])
