"""Training-data generation (training/sources.py, training/data.py) on a tiny local corpus
built from the committed fixtures: no network, no apt."""
from training_extras import require_training_extras

require_training_extras()

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import butter, sosfiltfilt

from percepnet.dsp.bands import BAND_EDGES
from percepnet.dsp.constants import BIN_HZ, N_BANDS, N_FEATURES
from percepnet.dsp.features import max_band_for_bandwidth
from training import data as D
from training.sources import RATE, Corpus, load48, measure_bandwidth, trim_silence

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SECONDS = 2.0
T = int(SECONDS * RATE / 480)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Two synthetic key one-shots (decaying noise bursts) as 44.1 kHz wav files."""
    d = tmp_path_factory.mktemp("keys")
    rng = np.random.default_rng(5)
    paths = []
    for i in range(2):
        n = 2000
        x = rng.normal(size=n) * np.exp(-np.arange(n) / 300) * 0.3
        p = d / f"key{i}.wav"
        sf.write(p, x, 44100)
        paths.append(str(p))
    return paths


@pytest.fixture(scope="module")
def corpus(keys):
    return Corpus.from_files(
        {lang: [FIXTURES / f"speech_{lang}.ogg"] for lang in ("ru", "fr", "da")},
        noises=[FIXTURES / "noise_vacuum.ogg", FIXTURES / "noise_kettle.ogg"], keys=keys)


def _lag(a: np.ndarray, b: np.ndarray, max_lag: int = 200) -> int:
    """Lag (samples) of a against b (a delayed => > 0) from the phase-transform weighted
    cross-correlation (GCC-PHAT). A plain cross-correlation of speech peaks wherever the
    broad low-frequency autocorrelation meets the sum of strong early reflections; the
    PHAT weighting sharpens it to the first arrival."""
    n = len(a) + len(b)
    x = np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n))
    c = np.fft.irfft(x / (np.abs(x) + 1e-12), n)
    lags = np.concatenate((np.arange(0, max_lag + 1), np.arange(-max_lag, 0)))
    vals = np.concatenate((c[:max_lag + 1], c[-max_lag:]))
    return int(lags[np.argmax(vals)])


def test_fixture_bandwidths_match_data_sources_table(corpus):
    """ru ~19 kHz, fr ~20 kHz, da ~20 kHz in docs/training-data.md."""
    bw = {c.speaker: c.bandwidth_hz for c in corpus.speech}
    for lang, expected in (("ru", 19000), ("fr", 20000), ("da", 20000)):
        assert abs(bw[lang] - expected) < 1500, (lang, bw[lang])


@pytest.mark.parametrize("cutoff", [4000.0, 9000.0, 15000.0])
def test_bandwidth_of_lowpassed_noise(cutoff):
    rng = np.random.default_rng(1)
    for rate in (RATE, 44100):
        x = rng.normal(size=3 * rate)
        spec = np.fft.rfft(x)
        spec[np.fft.rfftfreq(len(x), 1 / rate) > cutoff] = 0.0  # brick-wall band limit
        y = np.fft.irfft(spec, len(x)) + 1e-7 * rng.normal(size=len(x))  # and a faint floor
        bw = measure_bandwidth(y, rate)
        assert cutoff * 0.97 < bw < cutoff * 1.1, (rate, cutoff, bw)
        # a steep (but not brick-wall) filter: where it is ~60 dB down
        z = sosfiltfilt(butter(10, cutoff, fs=rate, output="sos"), x)
        assert cutoff < measure_bandwidth(z, rate) < cutoff * 1.5
    assert measure_bandwidth(rng.normal(size=RATE)) > 23000
    assert measure_bandwidth(rng.normal(size=44100), 44100) > 21000


def test_targets_in_range_and_shapes(corpus):
    for seed in range(4):
        ex = D.make_example(np.random.default_rng(seed), corpus, SECONDS)
        assert ex["clean"].shape == ex["noisy"].shape == (int(SECONDS * RATE),)
        assert np.all(np.isfinite(ex["noisy"])) and np.max(np.abs(ex["noisy"])) <= 1.0
        assert -5.0 <= ex["snr_db"] <= 30.0
        feats, gains, strengths, mask = D.example_arrays(ex)
        assert feats.shape == (T, N_FEATURES) and feats.dtype == np.float32
        for a in (gains, strengths, mask):
            assert a.shape == (T, N_BANDS) and a.dtype == np.float32
        assert np.all(np.isfinite(feats))
        assert gains.min() >= 0.0 and gains.max() <= 1.0
        assert strengths.min() >= 0.0 and strengths.max() <= 1.0
        assert set(np.unique(mask)) <= {0.0, 1.0}


def test_forced_lowpass_masks_bands_above_bandwidth(corpus):
    aug = D.Augment(lowpass_hz=4000.0)
    ex = D.make_example(np.random.default_rng(3), corpus, SECONDS, aug)
    assert ex["bandwidth_hz"] == 4000.0
    _, _, _, mask = D.example_arrays(ex)
    top = max_band_for_bandwidth(4000.0)
    assert BAND_EDGES[top] * BIN_HZ <= 4000.0 < BAND_EDGES[top + 1] * BIN_HZ
    assert np.all(mask[:, top + 1:] == 0.0)
    assert mask[:, :top + 1].mean() > 0.5


def test_bandwidth_is_min_of_clip_and_lowpass(corpus):
    narrow = replace(corpus, speech=[replace(c, bandwidth_hz=7000.0) for c in corpus.speech])
    aug = D.Augment(lowpass_hz=None, p_lowpass=0.0, p_speed=0.0)
    ex = D.make_example(np.random.default_rng(0), narrow, SECONDS, aug)
    assert ex["bandwidth_hz"] == 7000.0
    _, _, _, mask = D.example_arrays(ex)
    assert np.all(mask[:, max_band_for_bandwidth(7000.0) + 1:] == 0.0)
    ex = D.make_example(np.random.default_rng(0), narrow, SECONDS, replace(aug, lowpass_hz=5000.0))
    assert ex["bandwidth_hz"] == 5000.0


@pytest.mark.parametrize("seed", range(5))
def test_reverb_target_aligned_with_direct_path(seed):
    dry = trim_silence(np.asarray(load48(FIXTURES / "speech_ru.ogg")))[: 2 * RATE].copy()
    wet, target, rt60 = D.reverberate(np.random.default_rng(seed), dry, D.Augment())
    assert wet.shape == target.shape == dry.shape
    assert abs(_lag(target, dry)) <= 1
    assert abs(_lag(wet, dry)) <= 1  # the mixture's direct sound falls on the dry samples
    assert abs(_lag(target, wet)) <= 1


def test_direct_index_matches_geometry():
    """The direct path found in a pyroomacoustics RIR is where the geometry puts it."""
    import pyroomacoustics as pra

    for src, mic in (([1.0, 1.5, 1.7], [3.5, 2.0, 1.2]), ([4.0, 3.0, 1.2], [4.3, 3.1, 1.0])):
        e_abs, order = pra.inverse_sabine(0.6, [6.0, 5.0, 3.0])
        room = pra.ShoeBox([6.0, 5.0, 3.0], fs=RATE, materials=pra.Material(e_abs), max_order=order)
        room.add_source(src)
        room.add_microphone(mic)
        room.compute_rir()
        rir = room.rir[0][0]
        expected = (np.linalg.norm(np.subtract(src, mic)) / pra.constants.get("c") * RATE
                    + pra.constants.get("frac_delay_length") // 2)
        assert abs(D.direct_index(rir) - expected) <= 1.0


def test_target_decays_faster_than_reverberant_signal():
    rng = np.random.default_rng(11)
    n = RATE
    burst = np.zeros(n)
    burst[:4800] = rng.normal(size=4800)  # 100 ms burst, then silence
    wet, target, rt60 = D.reverberate(np.random.default_rng(2), burst,
                                      D.Augment(rt60_range=(0.6, 0.9)))
    tail = slice(4800 + 2400, 4800 + 14400)  # 50-250 ms after the burst ends

    def tail_db(x):
        return 10 * np.log10(np.sum(x[tail] ** 2) / np.sum(x[:4800] ** 2))

    assert tail_db(target) < tail_db(wet) - 10.0


@pytest.mark.parametrize("seed", range(6))
def test_reverb_direct_path_on_dry_samples_white_source(seed):
    """A white source: the direct path sits at lag 0 in the target and the reverberant
    signal."""
    dry = np.random.default_rng(100 + seed).normal(size=RATE // 2)
    wet, target, rt60 = D.reverberate(np.random.default_rng(seed), dry, D.Augment())
    assert abs(_lag(target, dry)) <= 1
    assert abs(_lag(wet, dry)) <= 1


def test_reverberant_example_clean_aligned_with_noisy(corpus):
    aug = D.Augment(reverb=True, snr_db=30.0, p_noise_only=0.0, p_speech_only=0.0,
                    p_lowpass=0.0)
    ex = D.make_example(np.random.default_rng(4), corpus, SECONDS, aug)
    assert ex["reverb"] and 0.1 <= ex["rt60"] <= 0.9
    assert abs(_lag(ex["clean"], ex["noisy"])) <= 1


def test_deterministic_from_seed(corpus):
    a = D.make_example(np.random.default_rng(42), corpus, SECONDS)
    b = D.make_example(np.random.default_rng(42), corpus, SECONDS)
    c = D.make_example(np.random.default_rng(43), corpus, SECONDS)
    np.testing.assert_array_equal(a["noisy"], b["noisy"])
    np.testing.assert_array_equal(a["clean"], b["clean"])
    assert a["noise_kinds"] == b["noise_kinds"] and a["snr_db"] == b["snr_db"]
    assert not np.array_equal(a["noisy"], c["noisy"])


def test_every_noise_kind(corpus):
    n = RATE
    for kind in D.available_noise_kinds(corpus):
        x = D.make_noise(np.random.default_rng(0), corpus, kind, n, exclude="ru")
        assert x.shape == (n,) and np.all(np.isfinite(x)) and np.std(x) > 0, kind
    assert {"recorded", "typing", "babble", "fan", "hum", "pink"} <= set(
        D.available_noise_kinds(corpus))


def test_shards(corpus, tmp_path):
    meta = D.write_shards(tmp_path / "a", "train", 5, 1.0, seed=9, examples_per_shard=2,
                          corpus=corpus, workers=1)
    files = sorted((tmp_path / "a").glob("shard-*.npz"))
    assert [f.name for f in files] == ["shard-00000.npz", "shard-00001.npz", "shard-00002.npz"]
    t = 100
    sizes = []
    for f in files:
        with np.load(f, allow_pickle=False) as z:
            assert set(z.files) == {"features", "gains", "strengths", "mask"}
            nb = z["features"].shape[0]
            sizes.append(nb)
            assert z["features"].shape == (nb, t, N_FEATURES)
            for k in ("gains", "strengths", "mask"):
                assert z[k].shape == (nb, t, N_BANDS)
            assert all(z[k].dtype == np.float32 for k in z.files)
    assert sizes == [2, 2, 1]
    on_disk = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert on_disk == json.loads(json.dumps(meta))
    assert on_disk["split"] == "train" and on_disk["seed"] == 9 and on_disk["n_examples"] == 5
    assert sum(on_disk["speakers"].values()) == 5 and on_disk["noise_kinds"]
    assert set(on_disk["bandwidth_hz"]) >= {"min", "median", "max"}
    # same seed, two worker processes: identical shards
    D.write_shards(tmp_path / "b", "train", 5, 1.0, seed=9, examples_per_shard=2,
                   corpus=corpus, workers=2)
    for f in files:
        with np.load(f) as za, np.load(tmp_path / "b" / f.name) as zb:
            for k in za.files:
                np.testing.assert_array_equal(za[k], zb[k])


def test_fullband_speakers_oversampled(corpus):
    """Bandwidth-trap mitigation 3: fullband speakers are drawn fullband_weight times as often."""
    mixed = replace(corpus, speech=[replace(c, bandwidth_hz=20000.0 if c.speaker == "ru" else 8000.0)
                                    for c in corpus.speech])
    aug = D.Augment(p_reverb=0.0, p_lowpass=0.0, fullband_weight=4.0,
                    noise_kinds=("white",))
    drawn = [D.make_example(np.random.default_rng(s), mixed, 0.2, aug)["speaker"]
             for s in range(120)]
    share = drawn.count("ru") / len(drawn)
    assert 0.5 < share < 0.85  # 4 / 6 expected, 1 / 3 without oversampling


def test_silent_noise_clips_are_redrawn(tmp_path):
    """A silent noise file must never leave an example without its noise."""
    import numpy as np
    import soundfile as sf

    from training.data import _recorded
    from training.sources import Clip

    silent, loud = tmp_path / "silent.wav", tmp_path / "loud.wav"
    sf.write(silent, np.zeros(48000), 48000)
    sf.write(loud, 0.1 * np.random.default_rng(0).standard_normal(48000), 48000)
    clips = [Clip(path=str(silent), speaker="", split="train", duration=1.0, bandwidth_hz=24000.0),
             Clip(path=str(loud), speaker="", split="train", duration=1.0, bandwidth_hz=24000.0)]
    for seed in range(10):
        x = _recorded(np.random.default_rng(seed), clips, 4800)
        assert np.sqrt(np.mean(x**2)) > 0.05


def test_tts_voices_get_their_share(corpus):
    """Text-to-speech voices (speakers named tts-*) are drawn with probability tts_share as a
    group, however many of them there are; the real speakers keep their relative weights."""
    tts = [replace(c, speaker=f"tts-espeak-v{k}") for k in range(6) for c in corpus.speech[:1]]
    mixed = replace(corpus, speech=list(corpus.speech) + tts)
    aug = D.Augment(p_reverb=0.0, p_lowpass=0.0, noise_kinds=("white",), tts_share=0.25)
    drawn = [D.make_example(np.random.default_rng(s), mixed, 0.2, aug)["speaker"]
             for s in range(200)]
    share = sum(s.startswith("tts-") for s in drawn) / len(drawn)
    assert 0.15 < share < 0.35  # 0.25 expected; 6 / 9 = 0.67 if drawn like real speakers
    assert {s for s in drawn if not s.startswith("tts-")} == {"ru", "fr", "da"}


@pytest.mark.parametrize("semitones, lo, hi", [(2.0, 0.9, 1.1), (3.0, 0.84, 1.19)])
def test_speed_perturbation_range(corpus, semitones, lo, hi):
    aug = D.Augment(p_reverb=0.0, p_lowpass=0.0, noise_kinds=("white",), p_speed=1.0,
                    speed_semitones=semitones, speed_range=(lo, hi))
    f = np.array([D.make_example(np.random.default_rng(s), corpus, 0.2, aug)["speed"]
                  for s in range(60)])
    assert f.min() >= lo and f.max() <= hi
    assert f.min() < 1 - 0.6 * (1 - lo) and f.max() > 1 + 0.6 * (hi - 1)  # spans the range
