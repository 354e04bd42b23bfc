"""Per-frame analysis, the 70-value network input and the training targets.

This is the one source of truth for what the network sees and what it is trained to
predict: the streaming processor, the oracle and ``training/`` all call into this module.

Timing (docs/algorithm.md, 'Signal flow per frame'). Push n delivers samples [480 n, 480 (n + 1)).
Frame n's analysis window is [480 (n - 1), 480 (n + 1)). At push n the frame being
enhanced is l = n - M (M = 2): its spectrum Y(l) was computed two pushes ago, its pitch
decision and its comb filter use samples up to the newest one. The features for frame l
therefore hold:

====================  =====  ==========================================================
features[0:34]        34     log10 band energies of the *newest* frame n = l + M
features[34:68]       34     pitch coherence q(Y(l), P_hat(l)) of frame l, in [0, 1]
features[68]          1      (T(l) - 300) / 100, T the pitch period in samples at 48 kHz
features[69]          1      pitch correlation of the newest frame minus 0.5
====================  =====  ==========================================================

Log energies use log10(E + 1e-10) with RNNoise's dynamic-range floor: each band is kept
>= max(running max - 7, previous band - 1.5) (log10 units). Standardisation (mean and
variance from training) belongs to the network, not here.

Targets for frame l, from the clean signal x and the noisy mixture y = x + noise:
- gain g_b = sqrt(E_x,b / E_y,b) clipped to [0, 1] (an amplitude ratio), times g_att,b;
- strength r_b from q_x = q(X, P), q_y = q(Y, P) with P the clean signal comb-filtered at
  the clean pitch (``strength.py``);
- mask_b = 0 where the band does not count in the loss: both energies negligible, or the
  band lies above the clip's real bandwidth (upsampled audio is empty above its original
  Nyquist frequency; scoring those bands would teach the network that they always are).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from .bands import BAND_EDGES, band_cross_corr, band_energy
from .comb import HISTORY_SIZE, comb_filter
from .constants import (
    BIN_HZ,
    COMB_PERIODS,
    HOP_SIZE,
    LOOKAHEAD_FRAMES,
    N_BANDS,
    N_BINS,
    N_FEATURES,
    WINDOW_SIZE,
)
from .fft import FFTPlan, make_plan, rfft
from .framing import apply_window, vorbis_window
from .pitch import PitchState, make_pitch_state, pitch_push, reset_pitch_state
from .strength import band_coherence, strength_targets

__all__ = [
    "Analysis",
    "make_analysis",
    "reset_analysis",
    "analyze_hop",
    "frame_features",
    "frame_targets",
    "FeatureTargets",
    "compute_features",
    "compute_features_and_targets",
    "SILENT_BAND_ENERGY",
    "LOG_ENERGY_FLOOR",
]

#: Offset inside log10 so that digital silence maps to -10 (a +-1 float signal through an
#: unnormalised 960-point FFT: -100 dBFS white noise gives band energies of about 1e-7).
LOG_ENERGY_FLOOR = 1e-10
#: Dynamic-range floor of the log energies, log10 units: 7 below the running maximum (70 dB)
#: and 1.5 below the previous band (15 dB per band), as in RNNoise.
_LOG_RANGE = 7.0
_LOG_FOLLOW = 1.5
#: Below this band energy in both clean and noisy the gain is "don't care" (about -110 dBFS
#: white noise in a 2-bin band).
SILENT_BAND_ENERGY = 1e-8
_RING = LOOKAHEAD_FRAMES + 1
#: Input samples are clamped to +-4 (12 dB above full scale): only broken input gets there.
INPUT_LIMIT = 4.0


class Analysis(NamedTuple):
    """Streaming analysis state of one signal (all numpy arrays; passed whole into njit code).

    Per push it holds the spectra and band energies of the last M+1 frames, and for the
    frame being enhanced its comb-filtered spectrum, coherence, period and correlation.
    """

    window: np.ndarray  # float64 (960,) Vorbis window
    edges: np.ndarray  # int64 (34,) band edges in bins
    plan: FFTPlan
    pitch: PitchState
    history: np.ndarray  # float64 (2880,) time-domain samples: 960 past, window, 960 future
    frame: np.ndarray  # float64 (960,) scratch
    comb_out: np.ndarray  # float64 (960,) scratch
    taps: np.ndarray  # float64 (11,) comb taps scratch
    spec_ring: np.ndarray  # complex128 (M+1, 481) spectra of the last M+1 frames
    energy_ring: np.ndarray  # float64 (M+1, 34) band energies of those frames
    spec_p: np.ndarray  # complex128 (481,) comb-filtered spectrum of frame l
    energy_p: np.ndarray  # float64 (34,) its band energies
    cross: np.ndarray  # float64 (34,) band cross-correlation Y(l) . P(l)
    coherence: np.ndarray  # float64 (34,) q(Y(l), P(l)) in [0, 1]
    count: np.ndarray  # int64 (1,) pushes so far
    period: np.ndarray  # int64 (1,) pitch period of frame l, samples at 48 kHz
    corr: np.ndarray  # float64 (1,) pitch correlation of frame l
    corr_newest: np.ndarray  # float64 (1,) pitch correlation of the newest frame
    sigma2: np.ndarray  # float64 (1,) noise power passed by frame l's comb filter


def make_analysis() -> Analysis:
    """A fresh analysis state (allocates once; ``analyze_hop`` never allocates)."""
    return Analysis(
        window=vorbis_window(WINDOW_SIZE),
        edges=BAND_EDGES.copy(),
        plan=make_plan(WINDOW_SIZE),
        pitch=make_pitch_state(),
        history=np.zeros(HISTORY_SIZE),
        frame=np.zeros(WINDOW_SIZE),
        comb_out=np.zeros(WINDOW_SIZE),
        taps=np.zeros(2 * COMB_PERIODS + 1),
        spec_ring=np.zeros((_RING, N_BINS), dtype=np.complex128),
        energy_ring=np.zeros((_RING, N_BANDS)),
        spec_p=np.zeros(N_BINS, dtype=np.complex128),
        energy_p=np.zeros(N_BANDS),
        cross=np.zeros(N_BANDS),
        coherence=np.zeros(N_BANDS),
        count=np.zeros(1, dtype=np.int64),
        period=np.zeros(1, dtype=np.int64),
        corr=np.zeros(1),
        corr_newest=np.zeros(1),
        sigma2=np.ones(1),
    )


def reset_analysis(a: Analysis) -> None:
    """Return ``a`` to its initial state in place."""
    for arr in (a.history, a.frame, a.comb_out, a.spec_ring, a.energy_ring, a.spec_p,
                a.energy_p, a.cross, a.coherence, a.count, a.period, a.corr, a.corr_newest):
        arr[...] = 0
    a.sigma2[0] = 1.0
    reset_pitch_state(a.pitch)


@njit(cache=True, nogil=True)
def analyze_hop(a, hop):
    """Push 480 new samples (float64) and analyse frame l = n - M.

    Returns the ring slot of frame l: ``a.spec_ring[slot]`` is Y(l) and
    ``a.energy_ring[slot]`` its band energies; ``a.spec_ring[newest]`` with
    newest = (slot + M) % (M + 1) is the newest frame.
    """
    h = a.history
    n_hist = h.shape[0]
    for i in range(n_hist - HOP_SIZE):
        h[i] = h[i + HOP_SIZE]
    base = n_hist - HOP_SIZE
    for i in range(HOP_SIZE):
        v = hop[i]
        # Broken input must not poison 120 ms of history: NaN/Inf become 0, and samples are
        # clamped to +-INPUT_LIMIT (far beyond full scale, so real audio is untouched).
        if not math.isfinite(v):
            v = 0.0
        h[base + i] = min(INPUT_LIMIT, max(-INPUT_LIMIT, v))

    # The pitch tracker reads the cleaned samples, not the raw block.
    period, corr, corr_newest = pitch_push(a.pitch, h[base:])

    n = a.count[0]
    newest = n % _RING
    apply_window(h[n_hist - WINDOW_SIZE:], a.window, a.frame)
    rfft(a.frame, a.spec_ring[newest], a.plan)
    band_energy(a.spec_ring[newest], a.edges, a.energy_ring[newest])

    slot = (n - LOOKAHEAD_FRAMES) % _RING
    sigma2 = comb_filter(h, period, a.taps, a.comb_out)
    apply_window(a.comb_out, a.window, a.frame)
    rfft(a.frame, a.spec_p, a.plan)
    band_energy(a.spec_p, a.edges, a.energy_p)
    band_cross_corr(a.spec_ring[slot], a.spec_p, a.edges, a.cross)
    band_coherence(a.cross, a.energy_ring[slot], a.energy_p, a.coherence)

    a.period[0] = period
    a.corr[0] = corr
    a.corr_newest[0] = corr_newest
    a.sigma2[0] = sigma2
    a.count[0] = n + 1
    return slot


@njit(cache=True, nogil=True)
def frame_features(a, slot, out):
    """The 70 features of frame l (see the module docstring) into out, float64 (70,)."""
    newest = (slot + LOOKAHEAD_FRAMES) % _RING
    energy = a.energy_ring[newest]
    nb = energy.shape[0]
    running_max = -1e9
    follow = -1e9
    for b in range(nb):
        v = math.log10(energy[b] + LOG_ENERGY_FLOOR)
        v = max(running_max - _LOG_RANGE, max(follow - _LOG_FOLLOW, v))
        running_max = max(running_max, v)
        follow = max(follow - _LOG_FOLLOW, v)
        out[b] = v
    for b in range(nb):
        out[nb + b] = a.coherence[b]
    out[2 * nb] = (a.period[0] - 300.0) / 100.0
    out[2 * nb + 1] = a.corr_newest[0] - 0.5


@njit(cache=True, nogil=True)
def frame_targets(clean, noisy, slot, max_band, cross_scratch, q_y, gains, gains_att,
                  strengths, mask):
    """Training targets of frame l from the clean and noisy analyses (same push count).

    clean, noisy: Analysis states advanced in lock-step; slot: their common ring slot of
    frame l. max_band: bands with index > max_band are above the clip's bandwidth (masked).
    Writes float64 (34,) arrays: gains = sqrt(E_x/E_y) clipped to [0, 1] (the "gains only"
    oracle), gains_att = gains * g_att (the network's gain target), strengths r in [0, 1]
    and mask in {0, 1}. cross_scratch and q_y are (34,) scratch.
    """
    e_x = clean.energy_ring[slot]
    e_y = noisy.energy_ring[slot]
    band_cross_corr(noisy.spec_ring[slot], clean.spec_p, noisy.edges, cross_scratch)
    band_coherence(cross_scratch, e_y, clean.energy_p, q_y)
    strength_targets(clean.coherence, q_y, clean.sigma2[0], strengths, gains_att)
    for b in range(gains.shape[0]):
        if e_y[b] > 0.0:
            g = min(1.0, math.sqrt(e_x[b] / e_y[b]))
        else:
            g = 1.0
        gains[b] = g
        gains_att[b] *= g
        silent = e_x[b] < SILENT_BAND_ENERGY and e_y[b] < SILENT_BAND_ENERGY
        mask[b] = 0.0 if (silent or b > max_band) else 1.0


class FeatureTargets(NamedTuple):
    """Per-frame arrays for one clip, frame l on row l (n_frames = ceil(n_samples / 480))."""

    features: np.ndarray  # float64 (n_frames, 70)
    gains: np.ndarray  # float64 (n_frames, 34) network gain target (with g_att), [0, 1]
    strengths: np.ndarray  # float64 (n_frames, 34) r targets, [0, 1]
    mask: np.ndarray  # float64 (n_frames, 34) 1 = band counts in the loss
    plain_gains: np.ndarray  # float64 (n_frames, 34) sqrt(E_x/E_y) without g_att
    period: np.ndarray  # int64 (n_frames,) noisy pitch period, samples at 48 kHz
    corr: np.ndarray  # float64 (n_frames,) noisy pitch correlation


def max_band_for_bandwidth(bandwidth_hz: float | None) -> int:
    """Index of the highest band whose peak lies within the bandwidth (all bands if None)."""
    if bandwidth_hz is None:
        return N_BANDS - 1
    inside = np.nonzero(BAND_EDGES * BIN_HZ <= bandwidth_hz)[0]
    return int(inside[-1]) if inside.size else 0


def _padded_hops(x: np.ndarray) -> tuple[np.ndarray, int]:
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"expected a mono signal (1-D), got shape {x.shape}")
    n_frames = -(-x.shape[0] // HOP_SIZE)
    padded = np.zeros((n_frames + LOOKAHEAD_FRAMES) * HOP_SIZE)
    padded[: x.shape[0]] = x
    return padded, n_frames


@njit(cache=True, nogil=True)
def _features_batch(a, padded, n_frames, feats, period, corr):
    for n in range(n_frames + LOOKAHEAD_FRAMES):
        slot = analyze_hop(a, padded[n * HOP_SIZE:(n + 1) * HOP_SIZE])
        l = n - LOOKAHEAD_FRAMES
        if l >= 0:
            frame_features(a, slot, feats[l])
            period[l] = a.period[0]
            corr[l] = a.corr[0]


@njit(cache=True, nogil=True)
def _targets_batch(ac, ay, clean, noisy, n_frames, max_band, feats, gains, gains_att,
                   strengths, mask, period, corr):
    cross = np.zeros(gains.shape[1])
    q_y = np.zeros(gains.shape[1])
    for n in range(n_frames + LOOKAHEAD_FRAMES):
        lo = n * HOP_SIZE
        analyze_hop(ac, clean[lo:lo + HOP_SIZE])
        slot = analyze_hop(ay, noisy[lo:lo + HOP_SIZE])
        l = n - LOOKAHEAD_FRAMES
        if l >= 0:
            frame_features(ay, slot, feats[l])
            frame_targets(ac, ay, slot, max_band, cross, q_y, gains[l], gains_att[l],
                          strengths[l], mask[l])
            period[l] = ay.period[0]
            corr[l] = ay.corr[0]


def compute_features(noisy: np.ndarray) -> np.ndarray:
    """Features of a whole 48 kHz mono signal: float64 (ceil(N/480), 70)."""
    padded, n_frames = _padded_hops(noisy)
    feats = np.zeros((n_frames, N_FEATURES))
    _features_batch(make_analysis(), padded, n_frames, feats, np.zeros(n_frames, np.int64),
                    np.zeros(n_frames))
    return feats


def compute_features_and_targets(clean: np.ndarray, noisy: np.ndarray, *,
                                  bandwidth_hz: float | None = None) -> FeatureTargets:
    """Features of ``noisy`` and targets from ``clean`` (both 48 kHz mono, same length).

    bandwidth_hz: the clean clip's real bandwidth; bands above it are masked.
    """
    if np.shape(clean) != np.shape(noisy):
        raise ValueError(f"clean {np.shape(clean)} and noisy {np.shape(noisy)} differ in shape")
    pc, n_frames = _padded_hops(clean)
    py, _ = _padded_hops(noisy)
    feats = np.zeros((n_frames, N_FEATURES))
    gains = np.zeros((n_frames, N_BANDS))
    gains_att = np.zeros((n_frames, N_BANDS))
    strengths = np.zeros((n_frames, N_BANDS))
    mask = np.zeros((n_frames, N_BANDS))
    period = np.zeros(n_frames, np.int64)
    corr = np.zeros(n_frames)
    _targets_batch(make_analysis(), make_analysis(), pc, py, n_frames,
                   max_band_for_bandwidth(bandwidth_hz), feats, gains, gains_att, strengths,
                   mask, period, corr)
    return FeatureTargets(feats, gains_att, strengths, mask, gains, period, corr)
