import numpy as np

from percepnet.dsp.bands import (
    BAND_EDGES,
    band_cross_corr,
    band_energy,
    band_weights,
    interp_band_gain,
    load_band_edges,
)
from percepnet.dsp.constants import N_BANDS, N_BINS
from percepnet.dsp.framing import vorbis_window


def test_vorbis_window_is_power_complementary():
    w = vorbis_window(960)
    assert np.max(np.abs(w[:480] ** 2 + w[480:] ** 2 - 1.0)) < 1e-12
    assert np.all(w > 0) and np.all(w < 1)


def test_band_layout_is_34_erb_bands_to_20_khz():
    edges = load_band_edges()
    assert edges.shape == (N_BANDS,)
    assert edges[0] == 0 and edges[-1] == 400  # 400 bins * 50 Hz = 20 kHz
    assert np.all(np.diff(edges) >= 2)  # no single-bin band
    # ERB-like: widths never shrink going up.
    assert np.all(np.diff(np.diff(edges)) >= 0)


def test_band_weights_sum_to_one_over_covered_bins():
    h = band_weights()
    total = h.sum(axis=0)
    assert np.allclose(total[: BAND_EDGES[-1] + 1], 1.0, atol=1e-12)
    assert np.all(total[BAND_EDGES[-1] + 1 :] == 0.0)


def test_constant_band_gains_interpolate_to_constant():
    out = np.zeros(N_BINS)
    for value in (0.0, 0.37, 1.0):
        interp_band_gain(np.full(N_BANDS, value), BAND_EDGES, out)
        assert np.allclose(out, value, atol=1e-12)


def test_interpolation_is_linear_between_band_peaks(rng):
    gains = rng.uniform(0, 1, N_BANDS)
    out = np.zeros(N_BINS)
    interp_band_gain(gains, BAND_EDGES, out)
    assert np.allclose(out[BAND_EDGES], gains)
    # The same triangular basis as the analysis weights.
    assert np.allclose(out[: BAND_EDGES[-1] + 1], (band_weights().T @ gains)[: BAND_EDGES[-1] + 1])
    assert np.all(out[BAND_EDGES[-1]:] == gains[-1])


def test_band_energy_and_cross_corr_match_dense_weights(rng):
    a = rng.normal(size=N_BINS) + 1j * rng.normal(size=N_BINS)
    b = rng.normal(size=N_BINS) + 1j * rng.normal(size=N_BINS)
    h = band_weights()
    e = np.zeros(N_BANDS)
    band_energy(a, BAND_EDGES, e)
    assert np.allclose(e, h @ np.abs(a) ** 2)
    c = np.zeros(N_BANDS)
    band_cross_corr(a, b, BAND_EDGES, c)
    assert np.allclose(c, h @ np.real(a * np.conj(b)))
