"""The clean-speech guard (dsp/gain_floor.py): a floor under the network's band gains where a
band stands far above its own noise floor, and nothing where it does not."""
import numpy as np
import pytest

from percepnet.dsp.constants import ALGORITHMIC_DELAY_SAMPLES, N_BANDS
from percepnet.dsp.denoiser import Denoiser
from percepnet.dsp.gain_floor import (FLOOR_MARGIN_DB, NOISE_RISE_DB_PER_S, floor_band_gains,
                                      make_floor_state)

from audio_fixtures import load_fixture, mix_at_snr
from model_fixtures import tiny_model


def _run(energies: np.ndarray, gain: float) -> np.ndarray:
    """Each frame's gains after the floor, all bands starting at ``gain``: (frames, 34)."""
    state = make_floor_state()
    out = np.empty_like(energies)
    for i, e in enumerate(energies):
        g = np.full(N_BANDS, gain)
        floor_band_gains(e, state, g)
        out[i] = g
    return out


def test_speech_far_above_a_quiet_floor_keeps_its_gain():
    quiet = np.full((200, N_BANDS), 1e-10)  # a quiet room, -100 dB
    speech = np.full((5, N_BANDS), 1e-3)  # 70 dB above it
    g = _run(np.concatenate([quiet, speech]), gain=0.3)
    np.testing.assert_array_equal(g[:200], 0.3)  # the room itself: left to the network
    assert np.all(g[200:] > 0.99)  # the voice: not attenuated


def test_steady_noise_is_left_to_the_network(rng):
    # a band energy that swings like a single FFT bin's (exponential): the widest spread
    noise = 1e-4 * rng.exponential(1.0, size=(1000, N_BANDS))
    g = _run(noise, gain=0.1)
    assert np.all(g == 0.1)
    # and speech 20 dB above that noise is the network's business too (below the margin)
    assert FLOOR_MARGIN_DB > 20.0
    g = _run(np.concatenate([noise, np.full((20, N_BANDS), 1e-2)]), gain=0.1)
    assert np.all(g[-20:] < 0.2)


def test_noise_that_starts_after_silence_becomes_the_floor_within_two_seconds(rng):
    silence = np.full((100, N_BANDS), 1e-12)
    noise = 1e-4 * (0.5 + rng.random((300, N_BANDS)))
    g = _run(np.concatenate([silence, noise]), gain=0.0)
    assert np.max(g[100:110]) > 0.5  # at first the new noise looks like speech ...
    settle = int(100 * (80.0 - FLOOR_MARGIN_DB) / NOISE_RISE_DB_PER_S) + 20  # frames
    assert settle < 200
    assert np.all(g[100 + settle:] == 0.0)  # ... until the floor has risen to it


def test_gains_stay_in_range_and_digital_silence_is_safe():
    e = np.concatenate([np.zeros((50, N_BANDS)), np.full((10, N_BANDS), 1.0),
                        np.zeros((10, N_BANDS))])
    for gain in (0.0, 0.5, 1.0):
        g = _run(e, gain)
        assert np.all(np.isfinite(g)) and np.all((g >= gain) & (g <= 1.0))


@pytest.fixture(scope="module")
def clean_speech():
    """A clean recording: half a second of its room (-80 dBFS) before the voice."""
    room = 1e-4 * np.random.default_rng(5).standard_normal(24000)
    return np.concatenate([room, load_fixture("speech_fr.ogg")])


def test_the_denoiser_leaves_clean_speech_closer_to_itself_with_the_floor(clean_speech):
    """Clean input: with the guard the output is nearer the input (the network's own gains,
    here an untrained tiny network's, take speech away); at 0 dB the guard stays out."""
    d = ALGORITHMIC_DELAY_SAMPLES
    x = clean_speech

    def err_db(use_gain_floor: bool, sig: np.ndarray) -> float:
        den = Denoiser(tiny_model(3), use_gain_floor=use_gain_floor)
        y = den.process(np.concatenate([sig, np.zeros(d)]))[d:]
        return 10 * np.log10(np.sum((y - sig) ** 2) / np.sum(sig ** 2))

    assert err_db(True, x) < err_db(False, x) - 0.5  # measured: -6.9 vs -5.8 dB
    noisy = mix_at_snr(x, load_fixture("noise_vacuum.ogg"), 0.0)
    assert abs(err_db(True, noisy) - err_db(False, noisy)) < 0.5
