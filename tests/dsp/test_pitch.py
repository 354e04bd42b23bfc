"""Tests of the streaming pitch tracker (dsp/pitch.py).

Three groups: accuracy on synthetic voiced speech with a known F0 in 0 dB white noise; agreement
between the tracks of clean and noisy real speech (the committed fixtures); and the streaming
contract (hop-by-hop equals batch, callable from njit code, reset, silence, output ranges, frame
timing).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numba import njit

from percepnet.dsp import pitch
from percepnet.dsp.constants import (
    HOP_SIZE,
    LOOKAHEAD_FRAMES,
    PITCH_MAX_PERIOD,
    PITCH_MIN_PERIOD,
    SAMPLE_RATE_HZ,
)

FIXTURES = Path(__file__).parents[1] / "fixtures"
FS = SAMPLE_RATE_HZ

#: A frame's estimate is a gross error when it is off by more than 20 % of the true period.
GROSS_ERROR = 0.2


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def frame_windows(n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end sample of frame l's analysis window, [(l-1)*480, (l+1)*480)."""
    starts = (np.arange(n_frames) - 1) * HOP_SIZE
    return starts, starts + 2 * HOP_SIZE


def synthetic_voiced(f0: float, seed: int, snr_db: float = 0.0) -> tuple[np.ndarray, np.ndarray,
                                                                         np.ndarray]:
    """Speech-like voiced segments with vibrato, alternating with silence and unvoiced bursts.

    Five 400 ms voiced segments separated by 200 ms gaps; every other gap holds a noise burst
    (an unvoiced sound). The voiced source is a sum of harmonics with a -12 dB/octave glottal
    roll-off (amplitude 1/k^2) shaped by a 700 Hz, 150 Hz wide formant (up to +12 dB), with
    +-5 % vibrato at 5 Hz and 5 ms on/off ramps. White noise is added at ``snr_db`` relative to
    the mean power of the voiced segments.

    Returns (x float64[N], true_period float64[n_frames] at each window's centre in samples,
    voiced bool[n_frames]: the window lies entirely inside a voiced segment).
    """
    rng = np.random.default_rng(seed)
    seg = int(0.4 * FS)
    gap = int(0.2 * FS)
    n_seg = 5
    n = gap + n_seg * (seg + gap)
    t = np.arange(n) / FS
    f_inst = f0 * (1.0 + 0.05 * np.sin(2 * np.pi * 5.0 * t + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(f_inst) / FS
    source = np.zeros(n)
    for k in range(1, int(8000 / f0) + 1):
        formant = 1.0 + 3.0 / np.sqrt(1.0 + ((k * f_inst - 700.0) / 75.0) ** 2)
        source += formant * np.sin(k * phase) / k**2
    mask = np.zeros(n, dtype=bool)
    for i in range(n_seg):
        start = gap + i * (seg + gap)
        mask[start:start + seg] = True
    ramp = np.hanning(2 * int(0.005 * FS) + 1)
    envelope = np.convolve(mask.astype(float), ramp / ramp.sum(), mode="same")
    voiced = source * envelope
    level = np.sqrt(np.mean(voiced[mask] ** 2))
    unvoiced = np.zeros(n)
    for i in range(0, n_seg, 2):
        start = gap + i * (seg + gap) + seg + gap // 4
        unvoiced[start:start + gap // 2] = 0.3 * level * rng.standard_normal(gap // 2)
    noise = rng.standard_normal(n) * level / 10 ** (snr_db / 20)
    x = voiced + unvoiced + noise

    n_frames = -(-n // HOP_SIZE)
    starts, ends = frame_windows(n_frames)
    centres = np.clip(np.arange(n_frames) * HOP_SIZE, 0, n - 1)
    true_period = FS / f_inst[centres]
    inside = np.array([s >= 0 and e <= n and mask[s:e].all() for s, e in zip(starts, ends)])
    return x, true_period, inside


@functools.lru_cache(maxsize=None)
def load_48k(name: str) -> np.ndarray:
    """A fixture as mono float64 at 48 kHz (read-only)."""
    x, sr = sf.read(FIXTURES / f"{name}.ogg", dtype="float64", always_2d=True)
    y = soxr.resample(x.mean(axis=1), sr, FS)
    y.setflags(write=False)
    return y


def speech_power(x: np.ndarray) -> float:
    """Mean power above 50 Hz (Parseval on one FFT of the whole signal).

    The amateur fixtures carry DC offset and rumble (a fifth of the power of speech_da); counting
    it as speech would make the mixtures noisier than their nominal SNR.
    """
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(x.size, 1.0 / FS)
    return float(2.0 * np.sum(np.abs(spec[freqs >= 50.0]) ** 2) / x.size**2)


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """speech + noise (looped to length) scaled so that speech_power / noise power = snr_db."""
    looped = np.resize(noise, speech.size)
    gain = np.sqrt(speech_power(speech) / np.mean(looped**2) / 10 ** (snr_db / 10))
    return speech + gain * looped


@functools.lru_cache(maxsize=None)
def clean_track(name: str) -> tuple[np.ndarray, np.ndarray]:
    return pitch.track_pitch(load_48k(name))


def push_all(state: pitch.PitchState, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Call pitch_push from Python over whole hops of x; per-push outputs."""
    n_push = x.size // HOP_SIZE
    out = [pitch.pitch_push(state, np.ascontiguousarray(x[p * HOP_SIZE:(p + 1) * HOP_SIZE]))
           for p in range(n_push)]
    periods, corrs, newest = (np.array(v) for v in zip(*out))
    return periods, corrs, newest


@njit(cache=True)
def push_all_njit(state, x):
    """The same loop compiled, passing the whole state tuple into pitch_push from njit code."""
    n_push = x.shape[0] // HOP_SIZE
    periods = np.zeros(n_push, dtype=np.int64)
    corrs = np.zeros(n_push)
    newest = np.zeros(n_push)
    for p in range(n_push):
        period, corr, new = pitch.pitch_push(state, x[p * HOP_SIZE:(p + 1) * HOP_SIZE])
        periods[p] = period
        corrs[p] = corr
        newest[p] = new
    return periods, corrs, newest


def harmonic_tone(f0: float, seconds: float, start: int = 0) -> np.ndarray:
    """Zeros for ``start`` samples, then a steady harmonic tone (1/k amplitudes up to 4 kHz)."""
    t = np.arange(int(seconds * FS)) / FS
    tone = sum(np.sin(2 * np.pi * k * f0 * t + 0.3 * k) / k for k in range(1, int(4000 / f0) + 1))
    return np.concatenate([np.zeros(start), 0.1 * tone])


# ---------------------------------------------------------------------------------------------
# 1. Synthetic voiced speech with known F0 in 0 dB white noise
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("f0", [70.0, 95.0, 130.0, 180.0, 250.0, 320.0, 400.0])
def test_gross_error_rate_at_0db_snr(f0):
    x, true_period, voiced = synthetic_voiced(f0, seed=int(f0))
    periods, corrs = pitch.track_pitch(x)
    assert periods.shape == corrs.shape == true_period.shape
    rel = np.abs(periods - true_period) / true_period
    gross = np.mean(rel[voiced] > GROSS_ERROR)
    assert voiced.sum() > 150
    assert gross < 0.05, f"{f0} Hz: {gross:.1%} gross errors"
    # Voiced frames should also be told apart from the noise-only gaps by the correlation.
    assert np.median(corrs[voiced]) > np.median(corrs[~voiced])


@pytest.mark.parametrize("f0", [82.0, 173.0, 240.0, 390.0])
def test_period_is_exact_on_a_clean_steady_tone(f0):
    x = harmonic_tone(f0, 1.0)
    periods, corrs = pitch.track_pitch(x)
    steady = slice(5, len(periods) - 5)
    assert np.all(np.abs(periods[steady] - FS / f0) <= 1.0)
    assert np.all(corrs[steady] > 0.9)


# ---------------------------------------------------------------------------------------------
# 2. Real speech: clean track versus noisy track at 5 dB SNR
# ---------------------------------------------------------------------------------------------

SPEECH = ["speech_ru", "speech_fr", "speech_da"]


@pytest.mark.parametrize("noise_kind", ["vacuum", "white"])
@pytest.mark.parametrize("name", SPEECH)
def test_noisy_track_agrees_with_clean_track(name, noise_kind):
    speech = load_48k(name)
    if noise_kind == "vacuum":
        noise = load_48k("noise_vacuum")
    else:
        noise = np.random.default_rng(sum(map(ord, name))).standard_normal(speech.size)
    noisy = mix_at_snr(speech, noise, 5.0)
    clean_periods, clean_corrs = clean_track(name)
    noisy_periods, _ = pitch.track_pitch(noisy)
    voiced = clean_corrs >= pitch.VOICING_THRESHOLD
    assert voiced.sum() > 80
    agree = np.abs(noisy_periods - clean_periods) <= GROSS_ERROR * clean_periods
    rate = agree[voiced].mean()
    assert rate >= 0.90, f"{name} + {noise_kind}: agreement {rate:.1%}"


@pytest.mark.parametrize("name", SPEECH)
def test_clean_speech_track_is_plausible(name):
    periods, corrs = clean_track(name)
    voiced = corrs >= pitch.VOICING_THRESHOLD
    f0 = FS / periods[voiced]
    # A fair share of running speech is voiced, and voiced frames sit in the range of voices.
    assert 0.25 < voiced.mean() < 0.8
    assert np.mean((f0 >= 60.0) & (f0 <= 400.0)) >= 0.95
    assert 70.0 <= np.median(f0) <= 300.0


def test_noise_alone_is_not_voiced():
    rng = np.random.default_rng(7)
    for noise in (0.1 * rng.standard_normal(10 * FS), np.resize(load_48k("noise_vacuum"), 10 * FS),
                  np.resize(load_48k("noise_kettle"), 10 * FS)):
        _, corrs = pitch.track_pitch(noise)
        assert np.mean(corrs >= pitch.VOICING_THRESHOLD) < 0.005


# ---------------------------------------------------------------------------------------------
# 3. Streaming contract
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def streaming_signal() -> np.ndarray:
    """3 s: a speech excerpt, then synthetic voiced speech in noise (not a whole number of hops)."""
    x, _, _ = synthetic_voiced(150.0, seed=3, snr_db=5.0)
    y = np.concatenate([load_48k("speech_fr")[FS // 2: FS * 2], 0.05 * x[:FS + 1234]])
    y.setflags(write=False)
    return y


def padded_hops(x: np.ndarray) -> np.ndarray:
    """x zero-padded as track_pitch does: whole hops plus M hops to flush."""
    n_frames = -(-x.size // HOP_SIZE)
    out = np.zeros((n_frames + LOOKAHEAD_FRAMES) * HOP_SIZE)
    out[:x.size] = x
    return out


def test_hop_by_hop_equals_track_pitch():
    x = streaming_signal()
    periods, corrs = pitch.track_pitch(x)
    assert periods.dtype == np.int64 and corrs.dtype == np.float64
    assert periods.size == -(-x.size // HOP_SIZE)
    p_push, c_push, _ = push_all(pitch.make_pitch_state(), padded_hops(x))
    # Push n returns frame n - M; the first M pushes return the initial values.
    assert np.all(p_push[:LOOKAHEAD_FRAMES] == pitch.INITIAL_PERIOD)
    assert np.all(c_push[:LOOKAHEAD_FRAMES] == 0.0)
    np.testing.assert_array_equal(p_push[LOOKAHEAD_FRAMES:], periods)
    np.testing.assert_array_equal(c_push[LOOKAHEAD_FRAMES:], corrs)


def test_pitch_push_is_callable_from_njit_code():
    x = padded_hops(streaming_signal())
    expected = push_all(pitch.make_pitch_state(), x)
    got = push_all_njit(pitch.make_pitch_state(), x)
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)


def test_reset_restores_initial_behaviour():
    x = padded_hops(streaming_signal())
    fresh = pitch.make_pitch_state()
    state = pitch.make_pitch_state()
    push_all(state, x[: 100 * HOP_SIZE])
    pitch.reset_pitch_state(state)
    for name in pitch.PitchState._fields:
        np.testing.assert_array_equal(getattr(state, name), getattr(fresh, name), err_msg=name)
    for e, g in zip(push_all(fresh, x), push_all(state, x)):
        np.testing.assert_array_equal(e, g)


@pytest.mark.parametrize("level", [0.0, 1e-8])
def test_silence_gives_finite_outputs_and_zero_correlation(level):
    x = level * np.random.default_rng(1).standard_normal(3 * FS)
    periods, corrs = pitch.track_pitch(x)
    assert np.all(np.isfinite(corrs))
    assert np.all(corrs <= 1e-3)
    assert np.all((periods >= PITCH_MIN_PERIOD) & (periods <= PITCH_MAX_PERIOD))
    if level == 0.0:
        assert np.all(periods == pitch.INITIAL_PERIOD)
        assert np.all(corrs == 0.0)
    _, _, newest = push_all(pitch.make_pitch_state(), padded_hops(x))
    assert np.all(np.isfinite(newest)) and np.all(newest <= 1e-3)


def test_frame_timing_convention():
    """Frame l's window is [(l-1)*480, (l+1)*480); push n returns frame n-2 and frame n's cue."""
    onset_frame = 10
    x = harmonic_tone(200.0, 0.5, start=onset_frame * HOP_SIZE)
    periods, corrs = pitch.track_pitch(x)
    # Frames before the onset see only zeros; frame 10's window is half tone.
    assert np.all(corrs[:onset_frame] == 0.0)
    assert corrs[onset_frame] > 0.0
    assert np.all(corrs[onset_frame + 2: onset_frame + 20] > 0.9)
    assert np.all(periods[onset_frame + 2: onset_frame + 20] == 240)
    _, c_push, newest = push_all(pitch.make_pitch_state(), padded_hops(x))
    assert np.all(newest[:onset_frame] == 0.0) and newest[onset_frame] > 0.0
    assert c_push[onset_frame + LOOKAHEAD_FRAMES - 1] == 0.0
    assert c_push[onset_frame + LOOKAHEAD_FRAMES] > 0.0


_SIGNALS = st.sampled_from(["white", "impulses", "square", "clipped_tone", "dc", "chirp"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=_SIGNALS, seed=st.integers(0, 2**31 - 1),
       log_level=st.floats(-9.0, 4.0), seconds=st.floats(0.0, 1.5))
def test_outputs_stay_in_range(kind, seed, log_level, seconds):
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    t = np.arange(n) / FS
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind == "impulses":
        x = (rng.random(n) < 0.002) * rng.standard_normal(n)
    elif kind == "square":
        x = np.sign(np.sin(2 * np.pi * rng.uniform(20, 2000) * t))
    elif kind == "clipped_tone":
        x = np.clip(5 * np.sin(2 * np.pi * rng.uniform(50, 900) * t), -1, 1)
    elif kind == "dc":
        x = np.ones(n)
    else:
        x = np.sin(2 * np.pi * (50 * t + rng.uniform(100, 2000) * t**2))
    x = 10.0**log_level * x
    periods, corrs = pitch.track_pitch(x)
    assert periods.size == corrs.size == -(-n // HOP_SIZE)
    assert np.all((periods >= PITCH_MIN_PERIOD) & (periods <= PITCH_MAX_PERIOD))
    assert np.all(np.isfinite(corrs)) and np.all((corrs >= 0.0) & (corrs <= 1.0))
    _, _, newest = push_all(pitch.make_pitch_state(), padded_hops(x))
    assert np.all(np.isfinite(newest)) and np.all((newest >= 0.0) & (newest <= 1.0))


def test_non_finite_input_does_not_poison_the_state():
    x = padded_hops(streaming_signal())
    state = pitch.make_pitch_state()
    bad = x[:HOP_SIZE].copy()
    bad[[3, 100, 200]] = [np.nan, np.inf, -np.inf]
    pitch.pitch_push(state, bad)
    periods, corrs, newest = push_all(state, x)
    assert np.all(np.isfinite(corrs)) and np.all(np.isfinite(newest))
    assert np.all((periods >= PITCH_MIN_PERIOD) & (periods <= PITCH_MAX_PERIOD))
    # Once the bad hop has left every buffer, the tracker finds the same voicing again.
    assert np.mean(corrs[50:] > pitch.VOICING_THRESHOLD) > 0.2


def test_wrong_hop_length_is_rejected():
    with pytest.raises(ValueError):
        pitch.pitch_push(pitch.make_pitch_state(), np.zeros(HOP_SIZE - 1))
