"""The augmentations against over-suppression and for unseen recording chains
(training/data.py): clean-input examples, high SNR, microphone simulation, transients. On the
committed fixture recordings; no network."""
from training_extras import require_training_extras

require_training_extras()

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training import data as D
from training.sources import RATE, Corpus

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
OFF = dict(p_reverb=0.0, p_lowpass=0.0, p_speed=0.0, p_noise_only=0.0, p_speech_only=0.0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    key = d / "key.wav"
    sf.write(key, np.random.default_rng(5).normal(size=2000) * np.exp(-np.arange(2000) / 300),
             44100)
    return Corpus.from_files({lang: [FIXTURES / f"speech_{lang}.ogg"] for lang in ("ru", "fr")},
                             noises=[FIXTURES / "noise_vacuum.ogg"], keys=[str(key)])


def test_a_clean_input_example_has_no_noise_and_ideal_gains_of_one(corpus):
    aug = D.Augment(p_clean_input=1.0, p_reverb=1.0, **{k: v for k, v in OFF.items()
                                                         if k != "p_reverb"})
    ex = D.make_example(np.random.default_rng(3), corpus, 2.0, aug)
    assert not ex["reverb"] and math.isinf(ex["snr_db"])
    np.testing.assert_allclose(ex["noisy"], ex["clean"], atol=1e-12)
    _, gains, _, mask = D.example_arrays(ex)
    kept = gains[mask > 0]
    assert kept.size > 1000
    # the network's target is the ideal gain times the comb attenuation factor, near 1
    assert np.median(kept) > 0.95 and np.mean(kept > 0.8) > 0.9


def test_high_snr_examples_draw_from_their_range(corpus):
    aug = D.Augment(p_high_snr=1.0, high_snr_range=(30.0, 31.0), **OFF)
    snrs = [D.make_example(np.random.default_rng(i), corpus, 1.0, aug)["snr_db"]
            for i in range(4)]
    assert all(30.0 <= s <= 31.0 for s in snrs)


def test_microphone_simulation_clips_and_quantises_the_input_only(corpus):
    aug = D.Augment(p_clip=1.0, p_quantise=1.0, **OFF)
    ex = D.make_example(np.random.default_rng(1), corpus, 2.0, aug)
    noisy, clean = ex["noisy"], ex["clean"]
    peak = np.max(np.abs(noisy))
    assert np.mean(np.abs(noisy) >= peak - 1e-12) > 1e-3  # flat tops: clipped
    np.testing.assert_allclose(noisy * 32768.0, np.round(noisy * 32768.0), atol=1e-6)
    assert np.mean(np.abs(clean) >= np.max(np.abs(clean)) - 1e-12) < 1e-3  # the target is not


def test_transients_add_short_loud_bursts():
    x = D.transients(np.random.default_rng(2), RATE)
    assert x.shape == (RATE,) and np.isfinite(x).all()
    busy = np.mean(np.abs(x) > 1e-9)
    assert 0.0 < busy < 0.6  # bursts, silence between them


def _centroid_hz(x: np.ndarray) -> float:
    power = np.abs(np.fft.rfft(x)) ** 2
    return float(np.sum(power * np.fft.rfftfreq(len(x), 1 / RATE)) / np.sum(power))


def _pitch_hz(x: np.ndarray) -> float:
    """Autocorrelation pitch of the loudest 100 ms."""
    frames = x[:len(x) // 4800 * 4800].reshape(-1, 4800)
    seg = frames[int(np.argmax(np.sum(frames**2, axis=1)))]
    r = np.correlate(seg, seg, "full")[len(seg) - 1:]
    lo, hi = RATE // 400, RATE // 60
    return RATE / (lo + int(np.argmax(r[lo:hi])))


@pytest.mark.parametrize("ratio", [0.85, 1.2])
def test_formant_shift_moves_the_envelope_and_keeps_the_pitch(ratio):
    from training.sources import load48
    x = np.asarray(load48(FIXTURES / "speech_fr.ogg"))
    y = D.formant_shift(x, ratio)
    assert y.shape == x.shape and np.all(np.isfinite(y))
    moved = _centroid_hz(y) / _centroid_hz(x)
    assert (moved > 1.05) if ratio > 1 else (moved < 0.95), moved
    # a speed change by the same ratio would move the pitch by 15-20 %
    assert abs(_pitch_hz(y) / _pitch_hz(x) - 1) < 0.05
    assert D.formant_shift(x, 1.0) is x


def test_formant_shifted_examples_record_their_ratio(corpus):
    aug = D.Augment(p_formant=1.0, formant_range=(1.1, 1.15), **OFF)
    ex = D.make_example(np.random.default_rng(2), corpus, 2.0, aug)
    assert 1.1 <= ex["formant"] <= 1.15
    assert D.make_example(np.random.default_rng(2), corpus, 2.0, D.Augment(**OFF))["formant"] == 1


def test_the_extra_noises_are_their_own_kind_and_absent_by_default(corpus):
    from dataclasses import replace

    from training.sources import Clip
    assert "sfx" not in D.available_noise_kinds(corpus)  # the existing recipe is unchanged
    kettle = Clip(str(FIXTURES / "noise_kettle.ogg"), "fixtures", "train", 3.0, 22050.0)
    more = replace(corpus, extra_noises=[kettle])
    assert "sfx" in D.available_noise_kinds(more)
    x = D.make_noise(np.random.default_rng(0), more, "sfx", RATE, exclude="ru")
    kettle_48k = np.asarray(D.load48(kettle.path))
    assert x.shape == (RATE,) and np.std(x) > 0
    # its first 100 samples are a stretch of the kettle recording (drawn, then looped)
    windows = np.lib.stride_tricks.sliding_window_view(kettle_48k, 100)
    assert np.any(np.all(windows == x[:100], axis=1))
