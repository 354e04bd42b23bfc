import numpy as np
import pytest

from percepnet.dsp.bands import BAND_EDGES
from percepnet.dsp.constants import BIN_HZ, N_BANDS, N_FEATURES
from percepnet.dsp.features import (
    analyze_hop,
    compute_features,
    compute_features_and_targets,
    frame_features,
    make_analysis,
)

from audio_fixtures import load_fixture, mix_at_snr


@pytest.fixture(scope="module")
def pair():
    clean = load_fixture("speech_ru.ogg")
    noise = load_fixture("noise_vacuum.ogg")
    return clean, mix_at_snr(clean, noise, 5.0)


def test_feature_vector_layout_and_ranges(pair):
    _, noisy = pair
    feats = compute_features(noisy)
    assert feats.shape == (-(-noisy.shape[0] // 480), N_FEATURES)
    assert np.all(np.isfinite(feats))
    log_e, coh, period, corr = feats[:, :34], feats[:, 34:68], feats[:, 68], feats[:, 69]
    assert np.all(log_e >= -10.0 - 1e-9) and np.all(log_e < 8)
    assert np.all((coh >= 0) & (coh <= 1))
    assert np.all((period >= (60 - 300) / 100) & (period <= (768 - 300) / 100))
    assert np.all((corr >= -0.5) & (corr <= 0.5))
    # Dynamic-range floor: no band sits more than 7 (log10) below the frame's maximum.
    assert np.all(log_e.max(axis=1, keepdims=True) - log_e <= 7.0 + 1e-9)


def _reference_log_energy(frame_window):
    """numpy re-implementation of the energy features of one 960-sample window."""
    from percepnet.dsp.bands import band_weights
    from percepnet.dsp.framing import vorbis_window

    e = band_weights() @ np.abs(np.fft.rfft(frame_window * vorbis_window())) ** 2
    out, running_max, follow = np.zeros(N_BANDS), -1e9, -1e9
    for b in range(N_BANDS):
        v = max(running_max - 7.0, follow - 1.5, np.log10(e[b] + 1e-10))
        running_max, follow = max(running_max, v), max(follow - 1.5, v)
        out[b] = v
    return out


def test_energy_features_look_ahead_two_frames(pair):
    """Row l holds the band energies of frame l + 2 (window [480 (l+1), 480 (l+3)))."""
    _, noisy = pair
    feats = compute_features(noisy)
    for l in (5, 60, 120):
        window = noisy[480 * (l + 1):480 * (l + 3)]
        assert np.allclose(feats[l, :34], _reference_log_energy(window), atol=1e-6)
        assert not np.allclose(feats[l, :34], _reference_log_energy(noisy[480 * (l - 1):480 * (l + 1)]), atol=1e-3)


def test_streaming_features_equal_batch(pair):
    _, noisy = pair
    feats = compute_features(noisy)
    a = make_analysis()
    out = np.zeros(N_FEATURES)
    for n in range(50):
        slot = analyze_hop(a, noisy[n * 480:(n + 1) * 480].copy())
        frame_features(a, slot, out)
        if n >= 2:
            assert np.allclose(out, feats[n - 2])


def test_targets_ranges_and_identity(pair):
    clean, noisy = pair
    t = compute_features_and_targets(clean, noisy)
    n = -(-clean.shape[0] // 480)
    for arr in (t.gains, t.strengths, t.mask, t.plain_gains):
        assert arr.shape == (n, N_BANDS) and np.all(np.isfinite(arr))
    assert np.all((t.gains >= 0) & (t.gains <= 1))
    assert np.all((t.plain_gains >= 0) & (t.plain_gains <= 1))
    assert np.all(t.gains <= t.plain_gains + 1e-12)  # g_att only ever attenuates
    assert np.all((t.strengths >= 0) & (t.strengths <= 1))
    assert set(np.unique(t.mask)) <= {0.0, 1.0}
    # Speech at 5 dB: some bands clearly noisy, some clearly clean.
    assert np.mean(t.plain_gains < 0.3) > 0.1 and np.mean(t.plain_gains > 0.8) > 0.05
    # Clean in, clean out: gains 1, strengths 0.
    ident = compute_features_and_targets(clean, clean)
    active = ident.mask > 0
    assert np.allclose(ident.plain_gains[active], 1.0)
    assert np.allclose(ident.strengths, 0.0)


def test_bands_above_bandwidth_are_masked(pair):
    clean, noisy = pair
    t = compute_features_and_targets(clean, noisy, bandwidth_hz=8000.0)
    above = BAND_EDGES * BIN_HZ > 8000.0
    assert np.all(t.mask[:, above] == 0)
    assert np.mean(t.mask[:, ~above]) > 0.5


def test_shape_mismatch_is_an_error(pair):
    clean, noisy = pair
    with pytest.raises(ValueError):
        compute_features_and_targets(clean, noisy[:-1])
