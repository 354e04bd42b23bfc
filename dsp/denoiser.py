"""The Denoiser: the public streaming API of PercepNet (network-driven processor).

``Denoiser(model).process(block)`` takes any number of 48 kHz mono samples and returns as
many, 40 ms later (``ALGORITHMIC_DELAY_SAMPLES``). Per 10 ms frame it computes the 70
features, runs the int8 network (34 gains, 34 strengths; for an ensemble model, two
networks on the same features and the mean of their outputs), smooths the gains across
neighbouring bands (``GAIN_BAND_SMOOTHING``) and lifts them between 8 and 15 kHz
(``HIGH_BAND_GAIN_EXPONENT``), and synthesises with pitch filtering, the
envelope postfilter and the gain-decay cap. Live controls, safe to change
between calls from the thread that calls ``process``:

- ``atten_limit_db`` (0-100 dB): the most the suppressor may take away, DeepFilterNet
  semantics (0 dB = no suppression, 100 dB = unlimited): the output spectrum is
  lim * input + (1 - lim) * processed with lim = 10^(-atten_limit_db / 20);
- ``bypass``: pass the input through (still delayed by 40 ms, so toggling never jumps in
  time); entering and leaving is a crossfade of ``CROSSFADE_FRAMES`` frames;
- ``use_comb``, ``use_postfilter``, ``use_decay_cap``: stage switches for A/B listening;
  None (the default) takes the product default (``percepnet.dsp.stage_defaults``).

Digital silence (both the frame being output and the look-ahead frame below
``SILENCE_ENERGY``) skips the network and leaves its recurrent state as it was.
After every frame, :attr:`info` (a :class:`FrameInfo`) holds what the UI shows, and the
optional ``on_frame(info)`` callback is called (for copying into ring buffers).
"""
from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
from numba import njit

from .bands import BAND_EDGES
from .constants import BIN_HZ, LOOKAHEAD_FRAMES, N_BANDS, N_FEATURES, SAMPLE_RATE_HZ
from .features import analyze_hop, frame_features
from .network import Network, _network_step_vnni, network_step
from .processor import StreamProcessor, synthesize_frame

__all__ = ["Denoiser", "FrameInfo", "denoise_frame_portable", "denoise_frame_vnni",
           "average_members", "ATTEN_LIMIT_DB_RANGE", "GAIN_BAND_SMOOTHING", "smooth_band_gains",
           "HIGH_BAND_GAIN_EXPONENT", "HIGH_BAND_FIRST", "HIGH_BAND_STOP", "lift_high_bands",
           "shape_band_gains",
           "frame_is_silent", "CROSSFADE_FRAMES", "SILENCE_ENERGY"]

#: Attenuation limit range, dB. 100 dB is "no limit" for any practical purpose.
ATTEN_LIMIT_DB_RANGE = (0.0, 100.0)
#: Bypass and attenuation-limit changes ramp over this many 10 ms frames (the 50 % window
#: overlap smooths each step further): 30 ms, short enough to feel instant, long enough
#: not to click.
CROSSFADE_FRAMES = 3
#: Total band energy of a frame below which it counts as digital silence: -100 dBFS white
#: noise gives about 5e-5 over the 34 bands (unnormalised 960-point FFT, Vorbis window).
SILENCE_ENERGY = 1e-10
_DB_FLOOR = 1e-12
#: The network's gains are smoothed across neighbouring bands before synthesis:
#: g_b <- (1 - 2w) g_b + w (g_{b-1} + g_{b+1}), first and last band kept, w = 1/3 (a 3-band
#: moving average on the ERB scale). Ours, not the paper's: the network's band-to-band
#: errors are partly independent (averaging the gains of two independently trained networks
#: scores 0.06-0.09 PESQ-WB above either alone), and averaging neighbours removes part of
#: that ripple. Exact gains (the oracle)
#: lose by it (acceptance set 2.73 -> 2.61), so it belongs to the network's estimate, not to
#: the synthesis chain. Chosen on a tuning set (seed 7, 32 dry items at 0-10 dB, not the
#: acceptance set): PESQ-WB 1.822 -> 1.843 rising monotonically over w = 0, 0.1, 0.2, 0.25,
#: 0.3, 1/3, STOI unchanged, SI-SDR -0.08 dB; w = 0.4 or two passes add under 0.01 and cost
#: 0.1-0.2 dB SI-SDR. On 40 mixed dry/reverberant items at -5..20 dB: 1.873 -> 1.886.
GAIN_BAND_SMOOTHING = 1.0 / 3.0
#: Between 8 and 15 kHz the smoothed gains are raised to this power (g <- g^0.7: 0.5 ->
#: 0.62, 0.1 -> 0.2). The networks remove speech up there that they should keep: fullband
#: speech is a small part of their training (most sources are band-limited, their loss
#: masked above their bandwidth), and on clean input the shipped pair leaves a segmental SNR
#: of only 10.5 dB at 8-16 kHz (a perfect chain: unbounded). Measured on the unseen-voices set
#: (docs/algorithm.md, "Band gains at run time"): 8-16 kHz segmental SNR of the noisy items
#: 6.47 -> 7.23 dB, of the clean-input items 10.5 -> 13.5 dB; PESQ-WB and DNSMOS unchanged
#: (they stop at 8 kHz). Lifting the bands above 15 kHz as well traded: 16-24 kHz rose on
#: clean input but fell at -5 dB (5.8 -> 4.7 dB) and on the old acceptance set (LSD 16-20 kHz
#: 22.5 -> 23.5 dB), so they are left alone. 0.6 gave 7.40 dB with more loss at -5 dB.
HIGH_BAND_GAIN_EXPONENT = 0.7
#: Lifted: the bands whose centre lies in (8, 15] kHz, bands 26-30 (8.8-14.1 kHz). Band 25
#: (7.85 kHz) as well touched PESQ-WB (-0.003).
HIGH_BAND_LIFT_HZ = (8000.0, 15000.0)
_CENTRES_HZ = BAND_EDGES * BIN_HZ
HIGH_BAND_FIRST = int(np.argmax(_CENTRES_HZ > HIGH_BAND_LIFT_HZ[0]))
HIGH_BAND_STOP = int(np.argmax(_CENTRES_HZ > HIGH_BAND_LIFT_HZ[1]))


@njit(cache=True, nogil=True)
def lift_high_bands(gains):
    """In place: gains_b <- gains_b ** HIGH_BAND_GAIN_EXPONENT for HIGH_BAND_FIRST <= b <
    HIGH_BAND_STOP.

    gains: float64 (n_bands,) in [0, 1]; stays in [0, 1] and never falls. No allocation.
    """
    for b in range(HIGH_BAND_FIRST, HIGH_BAND_STOP):
        g = gains[b]
        if g > 0.0:
            gains[b] = g ** HIGH_BAND_GAIN_EXPONENT


@njit(cache=True, nogil=True)
def shape_band_gains(gains):
    """The networks' band gains as the chain uses them: smoothed across bands
    (``smooth_band_gains``), then lifted between 8 and 15 kHz (``lift_high_bands``). In
    place."""
    smooth_band_gains(gains)
    lift_high_bands(gains)


@njit(cache=True, nogil=True)
def _fill_info(energy_in, energy_out, band_gain, input_db, output_db):
    """Band levels in dB and the speech-presence estimate (share of the input energy the
    gains keep, gains capped at 1); one compiled call instead of a dozen numpy ones."""
    total = 0.0
    kept = 0.0
    for b in range(energy_in.shape[0]):
        input_db[b] = 10.0 * math.log10(max(energy_in[b], _DB_FLOOR))
        output_db[b] = 10.0 * math.log10(max(energy_out[b], _DB_FLOOR))
        g = min(band_gain[b], 1.0)
        total += energy_in[b]
        kept += g * g * energy_in[b]
    return kept / total if total > SILENCE_ENERGY else 0.0


@njit(cache=True, nogil=True)
def smooth_band_gains(gains):
    """In place: each band's gain averaged with its neighbours (``GAIN_BAND_SMOOTHING``).

    gains: float64 (n_bands,) in [0, 1]; the first and last band keep their value; the
    result stays in [0, 1]. No allocation (the unsmoothed left neighbour is carried).
    """
    w = GAIN_BAND_SMOOTHING
    left = gains[0]
    for b in range(1, gains.shape[0] - 1):
        g = gains[b]
        gains[b] = (1.0 - 2.0 * w) * g + w * (left + gains[b + 1])
        left = g


@njit(cache=True, nogil=True)
def frame_is_silent(a, slot):
    """Digital silence: both frame ``slot`` (the one being output) and the look-ahead frame
    below ``SILENCE_ENERGY``; the network is skipped for such frames."""
    newest = (slot + LOOKAHEAD_FRAMES) % a.energy_ring.shape[0]
    return (a.energy_ring[slot].sum() < SILENCE_ENERGY
            and a.energy_ring[newest].sum() < SILENCE_ENERGY)


@njit(cache=True, nogil=True)
def _frame_front(a, hop, feats):
    """Analysis, digital-silence check and features of one frame; returns (slot, silent)."""
    slot = analyze_hop(a, hop)
    silent = frame_is_silent(a, slot)
    if not silent:
        frame_features(a, slot, feats)
    return slot, silent


@njit(cache=True, nogil=True)
def _frame_back(a, slot, gains, strengths, stages, dry_mix, s, out, input_db, output_db):
    """Synthesis and UI levels of one frame; returns the speech-presence estimate."""
    synthesize_frame(a, slot, gains, strengths, stages, dry_mix, s, out)
    return _fill_info(a.energy_ring[slot], s.energy_out, s.band_gain, input_db, output_db)


@njit(cache=True, nogil=True)
def average_members(gains, strengths, gains_b, strengths_b):
    """In place: gains, strengths <- the mean of the two members' outputs (all [34])."""
    for b in range(gains.shape[0]):
        gains[b] = 0.5 * (gains[b] + gains_b[b])
        strengths[b] = 0.5 * (strengths[b] + strengths_b[b])


# One compiled call per frame. There is one entry point per network kernel (referenced as a
# global, not passed in: numba cannot reuse its on-disk cache for a function-typed argument),
# and the VNNI one is only ever compiled on a CPU that has VNNI. A single network is passed
# as both members with ``pair`` False (same numba types, one compiled specialisation).
@njit(cache=True, nogil=True)
def denoise_frame_portable(a, hop, net_weights, net_state, net_b_weights, net_b_state, pair,
                           feats, gains, strengths, gains_b, strengths_b, stages, dry_mix, s,
                           out, input_db, output_db, pre_roll):
    """One 10 ms frame: analysis, silence check, features, network (portable kernel; with
    ``pair``, the mean of two networks' outputs, ``gains_b``/``strengths_b`` being scratch),
    band smoothing, synthesis, UI levels. Returns (silent, speech_presence).

    pre_roll: True for the first LOOKAHEAD_FRAMES frames after a reset, whose analysed
    frame lies before the first input sample; the network skips them (it never sees them
    in training, where row 0 is the first real frame, and they would leave a lasting
    imprint on its recurrent state)."""
    slot, silent = _frame_front(a, hop, feats)
    if silent or pre_roll:
        gains[:] = 1.0
        strengths[:] = 0.0
    else:
        network_step(net_weights, net_state, feats, gains, strengths)
        if pair:
            network_step(net_b_weights, net_b_state, feats, gains_b, strengths_b)
            average_members(gains, strengths, gains_b, strengths_b)
        shape_band_gains(gains)
    return silent, _frame_back(a, slot, gains, strengths, stages, dry_mix, s, out, input_db,
                               output_db)


@njit(cache=True, nogil=True)
def denoise_frame_vnni(a, hop, net_weights, net_state, net_b_weights, net_b_state, pair,
                       feats, gains, strengths, gains_b, strengths_b, stages, dry_mix, s,
                       out, input_db, output_db, pre_roll):
    """:func:`denoise_frame_portable` with the AVX-512 VNNI network kernel."""
    slot, silent = _frame_front(a, hop, feats)
    if silent or pre_roll:
        gains[:] = 1.0
        strengths[:] = 0.0
    else:
        _network_step_vnni(net_weights, net_state, feats, gains, strengths)
        if pair:
            _network_step_vnni(net_b_weights, net_b_state, feats, gains_b, strengths_b)
            average_members(gains, strengths, gains_b, strengths_b)
        shape_band_gains(gains)
    return silent, _frame_back(a, slot, gains, strengths, stages, dry_mix, s, out, input_db,
                               output_db)


class FrameInfo:
    """Per-frame values for the UI (arrays are reused: copy them to keep them)."""

    def __init__(self) -> None:
        self.frame_index = 0
        self.band_gains = np.ones(N_BANDS)  # effective gains after postfilter/cap, >= 0
        self.strengths = np.zeros(N_BANDS)  # comb strengths r_b in [0, 1]
        self.pitch_hz = 0.0  # 48000 / period
        self.voicing = 0.0  # pitch correlation in [0, 1]
        self.input_band_db = np.full(N_BANDS, -120.0)  # 10 log10 band energy
        self.output_band_db = np.full(N_BANDS, -120.0)
        self.speech_presence = 0.0  # share of the input energy kept, 0..1
        self.processing_us = 0.0  # wall time of this frame
        self.silent = False  # the network was skipped (digital silence)


class Denoiser(StreamProcessor):
    """Streaming PercepNet denoiser around a loaded model (see the module docstring).

    model: anything with ``.arch`` and ``.weights`` (``percepnet.app.models.load_model``),
    or an ensemble whose ``.members`` are two such models: both networks see the same
    features and the chain uses the mean of their gains and strengths.
    """

    def __init__(self, model, *, atten_limit_db: float = 100.0, use_comb: bool | None = None,
                 use_postfilter: bool | None = None, use_decay_cap: bool | None = None,
                 use_vnni: bool | None = None,
                 on_frame: Callable[[FrameInfo], None] | None = None) -> None:
        members = tuple(getattr(model, "members", ()) or (model,))
        if len(members) > 2:
            raise ValueError(f"an ensemble of {len(members)} networks; the runtime runs one or two")
        #: one Network per member; ``network`` is the first (the only one for a plain model)
        self.networks = [Network(m.arch, m.weights, use_vnni=use_vnni) for m in members]
        self.network = self.networks[0]
        # Frames run through denoise_frame (network inside), not through a GainSource.
        super().__init__(None, use_comb=use_comb,
                         use_postfilter=use_postfilter, use_decay_cap=use_decay_cap)
        self.model = model
        self.info = FrameInfo()
        self._features = np.zeros(N_FEATURES)
        self._gains_b, self._strengths_b = np.zeros(N_BANDS), np.zeros(N_BANDS)
        self._frame_fn = denoise_frame_vnni if self.network.uses_vnni else denoise_frame_portable
        self.on_frame = None
        self.bypass = False
        self._atten_limit_db = 100.0
        self.atten_limit_db = atten_limit_db
        # Compile (or load from the numba cache) every per-frame kernel now, on the caller's
        # thread, so the audio thread never triggers compilation; then start clean.
        # (quiet noise rather than zeros, which would skip the network path as silence).
        self.process(1e-3 * np.random.default_rng(0).standard_normal(2 * self.delay_samples))
        self.reset()
        self.on_frame = on_frame

    @property
    def atten_limit_db(self) -> float:
        return self._atten_limit_db

    @atten_limit_db.setter
    def atten_limit_db(self, value: float) -> None:
        value = float(value)
        lo, hi = ATTEN_LIMIT_DB_RANGE
        if not (lo <= value <= hi):
            raise ValueError(f"atten_limit_db must be within {lo:g}..{hi:g} dB, got {value:g}")
        self._atten_limit_db = value

    def _target_dry_mix(self) -> float:
        if self.bypass:
            return 1.0
        return 10.0 ** (-self._atten_limit_db / 20.0)

    def reset(self) -> None:
        super().reset()
        for net in self.networks:
            net.reset()
        self.dry_mix = self._target_dry_mix()
        self.info.frame_index = 0

    def _run_frame(self) -> None:
        t0 = time.perf_counter()
        target = self._target_dry_mix()
        step = 1.0 / CROSSFADE_FRAMES
        if self.dry_mix < target:
            self.dry_mix = min(target, self.dry_mix + step)
        elif self.dry_mix > target:
            self.dry_mix = max(target, self.dry_mix - step)
        info, net, net_b = self.info, self.networks[0], self.networks[-1]
        silent, presence = self._frame_fn(
            self.analysis, self._hop, net.weights, net.state, net_b.weights, net_b.state,
            net_b is not net, self._features, self.gains, self.strengths, self._gains_b,
            self._strengths_b, self.stages, self.dry_mix, self.synthesis, self._frame_out,
            info.input_band_db, info.output_band_db,
            self.frames_processed < LOOKAHEAD_FRAMES)
        self._fifo_push(self._frame_out)
        self.frames_processed += 1
        info.frame_index = self.frames_processed
        info.band_gains[:] = self.synthesis.band_gain
        info.strengths[:] = self.strengths
        period = int(self.analysis.period[0])
        info.pitch_hz = SAMPLE_RATE_HZ / period if period > 0 else 0.0
        info.voicing = float(self.analysis.corr[0])
        info.speech_presence = presence
        info.silent = silent
        info.processing_us = (time.perf_counter() - t0) * 1e6
        if self.on_frame is not None:
            self.on_frame(info)

