"""Training mixtures, features and targets, written as shards.

Augmentation follows RNNoise's recipe, adapted to the allowed sources (docs/training-data.md):
- clean speech: clips of one speaker concatenated with short random gaps, speed-perturbed
  by soxr resampling (pitch and tempo change together: within +-2 semitones, tempo within
  +-10 %), a random second-order EQ (RNNoise's ``rand_resp``: all four coefficients uniform
  in +-0.375) and a random gain;
- reverberation for a fraction of examples: pyroomacoustics shoebox rooms at 48 kHz, RT60
  0.1-0.9 s. The speech in the mixture is the convolution with the full RIR; the *target* is
  the convolution with direct path + first 20 ms of reflections, plus the late tail reshaped
  to decay with RT60 200 ms. Both are cut so that the direct path lands on the dry speech's
  sample times: target and mixture are time-aligned with the direct sound;
- noise: 1-2 kinds among recorded SFX, synthetic typing (key one-shots at random times),
  music (optional), white / pink / brown, fan-like, mains hum with harmonics, and babble of
  3-8 training voices; each with its own random EQ. SNR uniform in -5...30 dB;
- 10 % of examples get a noise-only stretch (speech removed), 10 % a speech-only stretch;
- random low-pass of the whole mixture (3 kHz * 50^U, 8th-order Butterworth) on half of the
  examples; the example's bandwidth is min(clip bandwidths (speed-scaled), cut-off), and
  bands above it are masked in the loss by ``dsp.features.compute_features_and_targets``.

Everything is drawn from a ``numpy.random.Generator``: example i of a split is made from
``default_rng([seed, split_id, i])``, so shards are reproducible regardless of workers.

CLI: ``python -m training.data --out DIR --train N --val M --seconds S --seed K``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy.signal import butter, fftconvolve, istft, lfilter, sosfilt, stft
from tqdm import tqdm

from percepnet.dsp.constants import HOP_SIZE
from percepnet.dsp.features import compute_features_and_targets

from .cleanup import CLEANER
from .corpus import load_corpus
from .sources import RATE, TTS_PREFIX, Clip, Corpus, load48, trim_silence

SPLIT_IDS = {"train": 0, "val": 1}
NOISE_WEIGHTS = {"recorded": 3.0, "sfx": 2.0, "typing": 1.0, "music": 1.0, "white": 0.5,
                 "pink": 1.0, "brown": 0.5, "fan": 1.0, "hum": 0.5, "babble": 1.5}
EARLY_S = 0.020
LATE_RT60_S = 0.2


@dataclass(frozen=True)
class Augment:
    """Probabilities and ranges; ``lowpass_hz`` / ``reverb`` / ``snr_db`` force a value."""

    snr_range: tuple[float, float] = (-5.0, 30.0)
    p_reverb: float = 0.3
    rt60_range: tuple[float, float] = (0.1, 0.9)
    late_tail: bool = True
    p_lowpass: float = 0.5
    p_speed: float = 0.5
    p_noise_only: float = 0.1
    p_speech_only: float = 0.1
    p_two_noises: float = 0.3
    level_db_range: tuple[float, float] = (-45.0, -15.0)
    #: speakers whose median clip bandwidth is >= fullband_hz are drawn this many times as
    #: often (mitigation 3 of the bandwidth trap: oversample the fullband sources)
    fullband_weight: float = 3.0
    fullband_hz: float = 18000.0
    #: share of examples whose speaker is a text-to-speech voice (``training.tts``; speakers
    #: named ``tts-*``), when the corpus has any: variety at a low weight, not the bulk
    tts_share: float = 0.2
    #: pitch/tempo change by resampling: within +-speed_semitones, probability p_speed
    speed_semitones: float = 2.0
    #: limits of the resampling factor (tempo change)
    speed_range: tuple[float, float] = (0.9, 1.1)
    lowpass_hz: float | None = None
    reverb: bool | None = None
    snr_db: float | None = None
    noise_kinds: tuple[str, ...] | None = None
    # Against over-suppression and for unseen recording chains. All off by default (0: no
    # random number is drawn for them, so the data sets of the existing recipe are unchanged).
    #: share of clean-input examples: dry speech, no noise at all (the ideal gain is 1 wherever
    #: there is speech), so clean speech learns to pass unharmed
    p_clean_input: float = 0.0
    #: share of examples whose SNR is drawn from high_snr_range instead of snr_range
    p_high_snr: float = 0.0
    high_snr_range: tuple[float, float] = (20.0, 40.0)
    #: microphone simulation on the input only (the target stays clean): hard clipping at
    #: 1-12 dB below the input's peak, 16-bit quantisation
    p_clip: float = 0.0
    p_quantise: float = 0.0
    #: microphone high-pass (2nd order, 40-250 Hz) on input and target alike
    p_highpass: float = 0.0
    #: foreground transients (clicks, knocks: decaying noise bursts) on top of the noise,
    #: 0-10 dB above the background noise's level
    p_transients: float = 0.0
    #: speaker variety: the speech's spectral envelope warped along frequency by a factor
    #: within formant_range (formants move, the pitch stays; ``formant_shift``), probability
    #: p_formant, on input and target alike
    p_formant: float = 0.0
    formant_range: tuple[float, float] = (0.85, 1.2)


# --------------------------------------------------------------------------- signal helpers

def rand_eq(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """RNNoise-style random second-order filter: zeros and poles coefficients in +-0.375."""
    b = np.concatenate(([1.0], rng.uniform(-0.375, 0.375, 2)))
    a = np.concatenate(([1.0], rng.uniform(-0.375, 0.375, 2)))
    return lfilter(b, a, x)


def transients(rng: np.random.Generator, n: int) -> np.ndarray:
    """Clicks and knocks: 2-12 decaying, band-coloured noise bursts of 3-60 ms at random times
    over ``n`` samples (unit RMS over the bursts' span, 0 elsewhere)."""
    out = np.zeros(n)
    for _ in range(int(rng.integers(2, 13))):
        length = int(rng.uniform(0.003, 0.06) * RATE)
        t = np.arange(length)
        burst = rng.normal(size=length) * np.exp(-t / (length / rng.uniform(3, 8)))
        if rng.random() < 0.5:  # a knock: low-passed
            burst = sosfilt(butter(2, rng.uniform(300, 2000), fs=RATE, output="sos"), burst)
        a = int(rng.integers(max(1, n - length)))
        out[a:a + length] += burst / (np.sqrt(np.mean(burst**2)) + 1e-12) * rng.uniform(0.3, 1.0)
    return out


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2) + 1e-20))


def _fade_mask(n: int, start: int, stop: int, fade: int = 480) -> np.ndarray:
    """1 outside [start, stop), 0 inside, with raised-cosine edges."""
    m = np.ones(n)
    m[start:stop] = 0.0
    ramp = 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, fade))
    a = max(0, start - fade)
    m[a:start] = ramp[fade - (start - a):]
    b = min(n, stop + fade)
    m[stop:b] = ramp[::-1][:b - stop]
    return m


#: formant_shift's analysis: 1024-sample frames (21 ms at 48 kHz), hop a quarter of that
FORMANT_FFT = 1024
#: cepstral coefficients kept for the envelope: 30 samples of quefrency (0.6 ms) lie well
#: below the shortest pitch period of speech (2.5 ms at 400 Hz), so harmonics are smoothed out
FORMANT_LIFTER = 30
#: the envelope warp's gain limit (dB either way): bands without speech are not lifted far
FORMANT_MAX_DB = 15.0


def formant_shift(x: np.ndarray, ratio: float) -> np.ndarray:
    """Move the spectral envelope of ``x`` (48 kHz) by ``ratio`` along frequency (> 1: a
    shorter vocal tract) while the harmonics, hence the pitch, stay: each STFT frame is
    multiplied by envelope(f / ratio) / envelope(f), the envelope being the frame's
    cepstrally smoothed log magnitude. Same length as ``x``."""
    if ratio == 1.0 or len(x) < FORMANT_FFT:
        return x
    hop = FORMANT_FFT // 4
    _, _, z = stft(x, nperseg=FORMANT_FFT, noverlap=FORMANT_FFT - hop)
    log_mag = np.log(np.abs(z) + 1e-9)
    cep = np.fft.irfft(log_mag, axis=0)
    cep[FORMANT_LIFTER:-FORMANT_LIFTER] = 0.0
    env = np.fft.rfft(cep, axis=0).real
    bins = z.shape[0]
    src = np.minimum(np.arange(bins) / ratio, bins - 1.0)
    i0 = np.minimum(src.astype(int), bins - 2)
    w = (src - i0)[:, None]
    warped = env[i0] * (1.0 - w) + env[i0 + 1] * w
    limit = FORMANT_MAX_DB / 20.0 * np.log(10.0)
    z = z * np.exp(np.clip(warped - env, -limit, limit))
    _, y = istft(z, nperseg=FORMANT_FFT, noverlap=FORMANT_FFT - hop)
    return np.pad(y, (0, max(0, len(x) - len(y))))[:len(x)]


def _speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``x`` ``factor`` times faster (pitch up by factor, duration / factor)."""
    if factor == 1.0:
        return x
    return soxr.resample(x, RATE * factor, RATE)


def _speech_track(rng: np.random.Generator, clips: list[Clip], n: int, factor: float
                  ) -> tuple[np.ndarray, float, list[str]]:
    """Random clips of one speaker with 50-500 ms gaps, ``n`` samples; returns
    (signal, lowest bandwidth after the speed change, clip paths)."""
    parts, used, total = [], [], 0
    bw = RATE / 2
    lead = int(rng.uniform(0.0, 0.3) * RATE)
    parts.append(np.zeros(lead))
    total = lead
    while total < n:
        c = clips[int(rng.integers(len(clips)))]
        x = _speed(trim_silence(np.asarray(load48(c.path))), factor)
        if x.size < 480:  # an empty or all-silent prompt: draw another clip
            continue
        x = x / (np.max(np.abs(x)) + 1e-9)
        gap = np.zeros(int(rng.uniform(0.05, 0.5) * RATE))
        parts += [x, gap]
        total += len(x) + len(gap)
        used.append(c.path)
        bw = min(bw, c.bandwidth_hz * factor)
    return np.concatenate(parts)[:n], min(bw, RATE / 2), used


def _colored(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.normal(size=n))
    f = np.arange(spec.shape[0], dtype=float)
    f[0] = 1.0
    y = np.fft.irfft(spec / f ** (exponent / 2), n)
    return y


def _fan(rng: np.random.Generator, n: int) -> np.ndarray:
    """Low-passed noise with slow AM and blade-pass tones."""
    t = np.arange(n) / RATE
    base = _colored(rng, n, rng.uniform(1.2, 2.0))
    base = base / _rms(base) * (1 + rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * rng.uniform(0.2, 2) * t))
    blade = rng.uniform(40, 200)
    tones = sum(np.sin(2 * np.pi * k * blade * t + rng.uniform(0, 2 * np.pi)) / k**1.5
                for k in range(1, 5))
    return base + rng.uniform(0.05, 0.5) * tones


def _hum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mains hum: 50 or 60 Hz with random harmonics plus a little hiss."""
    t = np.arange(n) / RATE
    f0 = (50.0 if rng.random() < 0.5 else 60.0) * rng.uniform(0.995, 1.005)
    decay = rng.uniform(0.3, 1.5)
    y = sum(rng.uniform(0.2, 1.0) * k**-decay * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.3))
            for k in range(1, int(rng.integers(4, 20))))
    return y + 0.01 * rng.normal(size=n)


def _typing(rng: np.random.Generator, keys: list[str], n: int) -> np.ndarray:
    out = np.zeros(n + RATE)
    pos = int(rng.uniform(0, 0.3) * RATE)
    mean_gap = rng.uniform(0.08, 0.3)
    while pos < n:
        shot = np.asarray(load48(keys[int(rng.integers(len(keys)))]))
        out[pos:pos + len(shot)] += rng.uniform(0.5, 1.0) * shot[: len(out) - pos]
        gap = rng.exponential(mean_gap) + 0.03
        if rng.random() < 0.05:
            gap += rng.uniform(0.3, 1.5)  # pauses
        pos += int(gap * RATE)
    return out[:n]


#: A recorded noise clip quieter than this (RMS, about -100 dBFS) is silence: it is redrawn, so
#: an example never silently loses its noise (the SNR scaling would then leave it clean).
_SILENT_RMS = 1e-5


def _recorded(rng: np.random.Generator, clips: list[Clip], n: int) -> np.ndarray:
    for _ in range(20):
        x = np.asarray(load48(clips[int(rng.integers(len(clips)))].path))
        if len(x) and _rms(x) > _SILENT_RMS:
            start = int(rng.integers(len(x)))
            return np.resize(np.roll(x, -start), n)
    raise ValueError("no audible recorded noise clip in this corpus")


def _music(rng: np.random.Generator, files: list[str], n: int) -> np.ndarray:
    path = files[int(rng.integers(len(files)))]
    info = sf.info(path)
    need = int(math.ceil(n / RATE * info.samplerate)) + 16
    start = int(rng.integers(max(1, info.frames - need)))
    data, sr = sf.read(path, start=start, frames=need, dtype="float64", always_2d=True)
    x = soxr.resample(data.mean(axis=1), sr, RATE)
    return np.resize(x, n)


def _babble(rng: np.random.Generator, corpus: Corpus, n: int, exclude: str) -> np.ndarray:
    speakers = sorted({c.speaker for c in corpus.babble if c.speaker != exclude})
    if not speakers:
        return _colored(rng, n, 1.0)
    voices = int(rng.integers(3, 9))
    chosen = rng.choice(len(speakers), size=voices, replace=voices > len(speakers))
    out = np.zeros(n)
    for i in chosen:
        spk = speakers[int(i)]
        clips = [c for c in corpus.babble if c.speaker == spk]
        x, _, _ = _speech_track(rng, clips, n, 1.0)
        out += rand_eq(rng, x) * 10 ** (rng.uniform(-6, 0) / 20)
    return out


def available_noise_kinds(corpus: Corpus) -> list[str]:
    kinds = ["white", "pink", "brown", "fan", "hum"]
    if corpus.noises:
        kinds.append("recorded")
    if corpus.extra_noises:
        kinds.append("sfx")
    if corpus.keys:
        kinds.append("typing")
    if corpus.music:
        kinds.append("music")
    if any(c.speaker for c in corpus.babble):
        kinds.append("babble")
    return kinds


def make_noise(rng: np.random.Generator, corpus: Corpus, kind: str, n: int, exclude: str
               ) -> np.ndarray:
    if kind == "recorded":
        return _recorded(rng, corpus.noises, n)
    if kind == "sfx":
        return _recorded(rng, corpus.extra_noises, n)
    if kind == "typing":
        return _typing(rng, corpus.keys, n)
    if kind == "music":
        return _music(rng, corpus.music, n)
    if kind == "white":
        return rng.normal(size=n)
    if kind == "pink":
        return _colored(rng, n, 1.0)
    if kind == "brown":
        return _colored(rng, n, 2.0)
    if kind == "fan":
        return _fan(rng, n)
    if kind == "hum":
        return _hum(rng, n)
    if kind == "babble":
        return _babble(rng, corpus, n, exclude)
    raise ValueError(kind)


# --------------------------------------------------------------------------- reverberation

def random_rir(rng: np.random.Generator, rt60_range=(0.1, 0.9)) -> tuple[np.ndarray, float]:
    """A shoebox RIR at 48 kHz (pyroomacoustics image sources); returns (rir, rt60)."""
    import pyroomacoustics as pra

    rt60 = float(rng.uniform(*rt60_range))
    for _ in range(20):
        dims = np.array([rng.uniform(2.5, 10), rng.uniform(2.5, 8), rng.uniform(2.3, 4)])
        try:
            e_abs, max_order = pra.inverse_sabine(rt60, dims)
        except ValueError:  # room too large for such a short RT60
            continue
        if e_abs > 0.99:
            continue
        break
    else:
        dims = np.array([3.0, 2.5, 2.4])
        e_abs, max_order = pra.inverse_sabine(max(rt60, 0.15), dims)
    room = pra.ShoeBox(dims, fs=RATE, materials=pra.Material(e_abs), max_order=min(max_order, 100))
    margin = 0.3
    # a talker's mouth at 1.1-1.9 m, the microphone at desk/head height, 0.3-4 m apart
    for _ in range(50):
        src = np.array([rng.uniform(margin, dims[0] - margin), rng.uniform(margin, dims[1] - margin),
                        rng.uniform(1.1, min(1.9, dims[2] - margin))])
        mic = np.array([rng.uniform(margin, dims[0] - margin), rng.uniform(margin, dims[1] - margin),
                        rng.uniform(0.7, min(1.6, dims[2] - margin))])
        if 0.3 <= np.linalg.norm(src - mic) <= 4.0:
            break
    room.add_source(src)
    room.add_microphone(mic)
    room.compute_rir()
    return np.asarray(room.rir[0][0], dtype=np.float64), rt60


def direct_index(rir: np.ndarray) -> int:
    """Sample of the direct path: the first arrival (the first tap reaching half the RIR's
    peak; only a fractional-delay filter's side lobes come before it), refined to the
    largest tap within the next 3 samples."""
    a = np.abs(rir)
    first = int(np.argmax(a >= 0.5 * a.max()))
    return first + int(np.argmax(a[first:first + 4]))


def target_rir(rir: np.ndarray, rt60: float, late_tail: bool = True) -> tuple[np.ndarray, int]:
    """(RIR for the target, index of the direct path): direct path + first 20 ms of
    reflections, plus (late_tail) the rest re-shaped to decay with RT60 200 ms."""
    d = direct_index(rir)
    cut = d + int(EARLY_S * RATE)
    h = rir.copy()
    if cut < len(h):
        if late_tail and rt60 > LATE_RT60_S:
            t = np.arange(len(h) - cut) / RATE
            # energy decays 60 dB per RT60: amplitude exp(-3 ln10 t / RT60)
            h[cut:] *= np.exp(-3 * np.log(10) * t * (1 / LATE_RT60_S - 1 / rt60))
        elif not late_tail:
            h[cut:] = 0.0
    return h, d


def reverberate(rng: np.random.Generator, speech: np.ndarray, aug: Augment
                ) -> tuple[np.ndarray, np.ndarray, float]:
    """(reverberant speech, target, rt60), both aligned so the direct path falls on the dry
    speech's samples."""
    rir, rt60 = random_rir(rng, aug.rt60_range)
    h_t, d = target_rir(rir, rt60, aug.late_tail)
    n = len(speech)
    scale = 1.0 / (abs(rir[d]) + 1e-12)  # direct path at unit gain
    wet = fftconvolve(speech, rir)[d:d + n] * scale
    target = fftconvolve(speech, h_t)[d:d + n] * scale
    return wet, target, rt60


# --------------------------------------------------------------------------- examples

def make_example(rng: np.random.Generator, corpus: Corpus, seconds: float,
                 aug: Augment | None = None) -> dict:
    """One training example: dict(clean (the target), noisy, bandwidth_hz, reverb, snr_db,
    speaker, noise_kinds, rt60, lowpass_hz, speed) with 48 kHz float64 signals of
    round(seconds * 48000 / 480) * 480 samples."""
    aug = aug or Augment()
    n = max(1, int(round(seconds * RATE / HOP_SIZE))) * HOP_SIZE
    speakers = corpus.speakers
    bw_of = corpus.speaker_bandwidths()
    p = np.array([aug.fullband_weight if bw_of[s] >= aug.fullband_hz else 1.0 for s in speakers])
    is_tts = np.array([s.startswith(TTS_PREFIX) for s in speakers])
    if is_tts.any() and (~is_tts).any():
        p = np.where(is_tts, aug.tts_share * p / p[is_tts].sum(),
                     (1.0 - aug.tts_share) * p / p[~is_tts].sum())
    speaker = speakers[int(rng.choice(len(speakers), p=p / p.sum()))]
    # speed: pitch within +-speed_semitones, tempo likewise (one resampling does both)
    factor = 1.0
    if rng.random() < aug.p_speed:
        factor = float(np.clip(2 ** (rng.uniform(-aug.speed_semitones, aug.speed_semitones)
                                     / 12), *aug.speed_range))
    speech, bw, _ = _speech_track(rng, corpus.clips_of(speaker), n, factor)
    formant = 1.0
    if aug.p_formant > 0 and rng.random() < aug.p_formant:
        formant = float(rng.uniform(*aug.formant_range))
        speech = formant_shift(speech, formant)
    speech = rand_eq(rng, speech)

    clean_input = aug.p_clean_input > 0 and rng.random() < aug.p_clean_input
    reverb = aug.reverb if aug.reverb is not None else bool(rng.random() < aug.p_reverb)
    reverb = reverb and not clean_input
    rt60 = 0.0
    if reverb:
        wet, target, rt60 = reverberate(rng, speech, aug)
    else:
        wet, target = speech, speech.copy()

    kinds_avail = list(aug.noise_kinds or available_noise_kinds(corpus))
    w = np.array([NOISE_WEIGHTS.get(k, 1.0) for k in kinds_avail])
    k_count = 2 if (len(kinds_avail) > 1 and rng.random() < aug.p_two_noises) else 1
    kinds = [str(k) for k in rng.choice(kinds_avail, size=k_count, replace=False, p=w / w.sum())]
    noise = np.zeros(n)
    for kind in kinds:
        x = rand_eq(rng, make_noise(rng, corpus, kind, n, speaker))
        noise += x / _rms(x) * 10 ** (rng.uniform(-10, 0) / 20)

    snr_range = aug.snr_range
    if aug.p_high_snr > 0 and rng.random() < aug.p_high_snr:
        snr_range = aug.high_snr_range
    snr = float(aug.snr_db if aug.snr_db is not None else rng.uniform(*snr_range))
    g = math.sqrt(np.sum(wet**2) / (np.sum(noise**2) * 10 ** (snr / 10) + 1e-20))
    noise *= g
    if aug.p_transients > 0 and rng.random() < aug.p_transients:
        noise = noise + transients(rng, n) * _rms(noise) * 10 ** (rng.uniform(0, 10) / 20)
    if clean_input:
        noise[:] = 0.0
        snr = math.inf

    if rng.random() < aug.p_noise_only:  # a stretch without speech
        a = int(rng.integers(n))
        b = min(n, a + int(rng.uniform(0.1, 0.5) * n))
        m = _fade_mask(n, a, b)
        wet, target = wet * m, target * m
    if rng.random() < aug.p_speech_only:  # a stretch without noise
        a = int(rng.integers(n))
        b = min(n, a + int(rng.uniform(0.1, 0.5) * n))
        noise = noise * _fade_mask(n, a, b)

    noisy = wet + noise
    clean = target
    if aug.p_highpass > 0 and rng.random() < aug.p_highpass:
        sos = butter(2, rng.uniform(40.0, 250.0), btype="highpass", fs=RATE, output="sos")
        noisy, clean = sosfilt(sos, noisy), sosfilt(sos, clean)
    cutoff = aug.lowpass_hz
    if cutoff is None and rng.random() < aug.p_lowpass:
        cutoff = 3000.0 * 50 ** rng.uniform()
    if cutoff is not None and cutoff < 0.95 * RATE / 2:
        sos = butter(8, cutoff, fs=RATE, output="sos")
        noisy, clean = sosfilt(sos, noisy), sosfilt(sos, clean)
        bw = min(bw, cutoff)
    else:
        cutoff = None

    level = 10 ** (rng.uniform(*aug.level_db_range) / 20) / _rms(noisy)
    peak = np.max(np.abs(noisy)) * level
    if peak > 0.99:
        level *= 0.99 / peak
    clean, noisy = clean * level, noisy * level
    if aug.p_clip > 0 and rng.random() < aug.p_clip:
        limit = np.max(np.abs(noisy)) * 10 ** (-rng.uniform(1.0, 12.0) / 20)
        noisy = np.clip(noisy, -limit, limit)
    if aug.p_quantise > 0 and rng.random() < aug.p_quantise:
        noisy = np.round(noisy * 32768.0) / 32768.0
    return {"clean": clean, "noisy": noisy, "bandwidth_hz": float(bw),
            "reverb": reverb, "snr_db": snr, "speaker": speaker, "noise_kinds": kinds,
            "rt60": rt60, "lowpass_hz": cutoff, "speed": factor, "formant": formant}


def example_arrays(example: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(features [T, 70], gains [T, 34], strengths [T, 34], mask [T, 34]), float32."""
    ft = compute_features_and_targets(example["clean"], example["noisy"],
                                      bandwidth_hz=example["bandwidth_hz"])
    return (ft.features.astype(np.float32), ft.gains.astype(np.float32),
            ft.strengths.astype(np.float32), ft.mask.astype(np.float32))


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLIT_IDS[split], index])


# --------------------------------------------------------------------------- shards

_WORKER_CORPUS: Corpus | None = None


def _init_worker(corpus: Corpus) -> None:
    global _WORKER_CORPUS
    _WORKER_CORPUS = corpus


def _one(args):
    seed, split, index, seconds, aug = args
    ex = make_example(example_rng(seed, split, index), _WORKER_CORPUS, seconds, aug)
    arrays = example_arrays(ex)
    info = {k: ex[k] for k in ("bandwidth_hz", "reverb", "snr_db", "speaker", "noise_kinds",
                               "rt60", "lowpass_hz", "speed", "formant")}
    return index, arrays, info


def write_shards(out_dir: str | Path, split: str, n_examples: int, seconds: float, seed: int,
                 examples_per_shard: int = 256, corpus: Corpus | None = None,
                 workers: int = 2, aug: Augment | None = None, progress: bool = False,
                 music: bool = False, tts_per_voice: int = 0, cleaned: bool = False,
                 extra_noise: bool = False) -> dict:
    """Write ``out_dir/shard-00000.npz``... (features [N, T, 70], gains, strengths, mask
    [N, T, 34], float32) and ``out_dir/meta.json``; returns the meta dict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    corpus = corpus if corpus is not None else load_corpus(split, music=music,
                                                           tts_per_voice=tts_per_voice,
                                                           cleaned=cleaned,
                                                           extra_noise=extra_noise)
    aug = aug or Augment()
    jobs = [(seed, split, i, seconds, aug) for i in range(n_examples)]
    infos: list[dict] = [None] * n_examples  # type: ignore[list-item]
    buf: dict[int, tuple] = {}
    shard, next_i = 0, 0
    shards = []

    def flush(count: int) -> None:
        nonlocal shard, next_i
        rows = [buf.pop(next_i + k) for k in range(count)]
        name = f"shard-{shard:05d}.npz"
        np.savez(out / name, **{key: np.stack([r[j] for r in rows]) for j, key in
                                enumerate(("features", "gains", "strengths", "mask"))})
        shards.append({"file": name, "examples": count, "first": next_i})
        shard += 1
        next_i += count

    def results():
        if workers > 1 and n_examples > 1:
            from multiprocessing import get_context
            ctx = get_context("fork" if sys.platform.startswith("linux") else "spawn")
            with ctx.Pool(workers, initializer=_init_worker, initargs=(corpus,)) as pool:
                yield from pool.imap_unordered(_one, jobs, chunksize=1)
        else:
            _init_worker(corpus)
            yield from map(_one, jobs)

    with tqdm(total=n_examples, desc=split, unit="example", disable=not progress) as bar:
        for index, arrays, info in results():
            buf[index] = arrays
            infos[index] = info
            bar.update(1)
            while next_i in buf:
                count = min(examples_per_shard, n_examples - next_i)
                if all(next_i + k in buf for k in range(count)):
                    flush(count)
                else:
                    break

    bws = np.array([i["bandwidth_hz"] for i in infos]) if infos else np.zeros(0)
    snrs = np.array([i["snr_db"] for i in infos if math.isfinite(i["snr_db"])])
    meta = {
        "split": split, "seed": seed, "seconds": seconds,
        "n_examples": n_examples, "examples_per_shard": examples_per_shard,
        "n_frames": int(round(seconds * RATE / HOP_SIZE)), "shards": shards,
        "arrays": {"features": "float32 [N, T, 70]", "gains": "float32 [N, T, 34]",
                   "strengths": "float32 [N, T, 34]", "mask": "float32 [N, T, 34]"},
        "corpus_speakers": corpus.speakers,
        "cleaned_speech": CLEANER if cleaned else None,
        "speakers": dict(Counter(i["speaker"] for i in infos)),
        "noise_kinds": dict(Counter(k for i in infos for k in i["noise_kinds"])),
        "reverb_examples": int(sum(i["reverb"] for i in infos)),
        "clean_input_examples": int(sum(not math.isfinite(i["snr_db"]) for i in infos)),
        "lowpassed_examples": int(sum(i["lowpass_hz"] is not None for i in infos)),
        "bandwidth_hz": ({"min": float(bws.min()), "median": float(np.median(bws)),
                          "max": float(bws.max()),
                          "fraction_below_16k": float(np.mean(bws < 16000))} if bws.size else {}),
        "snr_db": ({"min": float(snrs.min()), "mean": float(snrs.mean()),
                    "max": float(snrs.max())} if snrs.size else {}),
        "augment": {k: v for k, v in vars(aug).items()},
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.data", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--train", type=int, default=1000, help="training examples")
    p.add_argument("--val", type=int, default=100, help="validation examples")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--per-shard", type=int, default=256)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--music", action="store_true", help="also fetch wesnoth-1.16-music (large)")
    p.add_argument("--tts-per-voice", type=int, default=0, metavar="N",
                   help="add text-to-speech voices (training.tts), N utterances each, to the "
                        "training speakers (default: none)")
    p.add_argument("--tts-share", type=float, default=Augment.tts_share,
                   help="share of examples spoken by a TTS voice (default: %(default)s)")
    p.add_argument("--speed-semitones", type=float, default=Augment.speed_semitones,
                   help="pitch/tempo perturbation range (default: +-%(default)s semitones)")
    p.add_argument("--speed-range", type=float, nargs=2, default=Augment.speed_range,
                   metavar=("LO", "HI"), help="limits of the resampling factor")
    p.add_argument("--cleaned-speech", action="store_true",
                   help="train on the cleaned copies of the amateur (tuxpaint) recordings "
                        "(training.cleanup; the validation split stays raw)")
    p.add_argument("--clean-input", type=float, default=0.0, metavar="P",
                   help="share of clean-input examples (no noise; ideal gain 1)")
    p.add_argument("--high-snr", type=float, default=0.0, metavar="P",
                   help="share of examples at 20-40 dB SNR")
    p.add_argument("--mic-sim", action="store_true",
                   help="microphone simulation: clipping on a quarter, 16-bit quantisation on "
                        "half, a high-pass on 30 %% of the examples")
    p.add_argument("--transients", type=float, default=0.0, metavar="P",
                   help="share of examples with clicks/knocks on top of the noise")
    p.add_argument("--extra-noise", action="store_true",
                   help="also the recorded noises of training.sources.EXTRA_NOISE (kind sfx)")
    p.add_argument("--formant", type=float, default=0.0, metavar="P",
                   help="share of examples whose speech has its formants shifted")
    p.add_argument("--level-range", type=float, nargs=2, default=Augment.level_db_range,
                   metavar=("LO", "HI"), help="input RMS level range in dBFS")
    a = p.parse_args(argv)
    for split, n in (("train", a.train), ("val", a.val)):
        if n > 0:
            write_shards(a.out / split, split, n, a.seconds, a.seed, a.per_shard,
                         workers=a.workers, progress=True, music=a.music,
                         tts_per_voice=a.tts_per_voice, cleaned=a.cleaned_speech,
                         extra_noise=a.extra_noise,
                         aug=Augment(p_formant=a.formant,
                                     tts_share=a.tts_share, speed_semitones=a.speed_semitones,
                                     speed_range=tuple(a.speed_range),
                                     p_clean_input=a.clean_input, p_high_snr=a.high_snr,
                                     p_clip=0.25 if a.mic_sim else 0.0,
                                     p_quantise=0.5 if a.mic_sim else 0.0,
                                     p_highpass=0.3 if a.mic_sim else 0.0,
                                     p_transients=a.transients,
                                     level_db_range=tuple(a.level_range)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
