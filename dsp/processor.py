"""The streaming frame processor: any block size in, the same number of samples out.

Signal flow per 10 ms hop (docs/algorithm.md, 'Signal flow per frame'): analysis of the noisy input
(``features.analyze_hop``), 34 band gains and 34 comb strengths from a pluggable
:class:`GainSource` (the oracle now, the network later), then synthesis: pitch filtering
(energy-normalised mix of Y and the comb output P_hat), the envelope postfilter with the
gain-decay cap, "scale bands" to the target band magnitudes, inverse FFT and windowed
overlap-add.

Delay: an output sample leaves 1440 samples (30 ms: 10 ms overlap + M = 2 hops of
look-ahead) after its input arrived at the frame processor, plus 480 samples (10 ms) of
block buffering so that every call can return exactly as many samples as it was given,
whatever the host block size: ``ALGORITHMIC_DELAY_SAMPLES`` = 1920 = 40 ms in all.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Protocol

import numpy as np
from numba import njit

from .bands import band_energy, interp_band_gain
from .comb import mix_pitch, voicing_weight
from .stage_defaults import STAGE_DEFAULTS
from .constants import (
    ALGORITHMIC_DELAY_SAMPLES,
    BLOCK_DELAY_SAMPLES,
    HOP_SIZE,
    N_BANDS,
    N_BINS,
    OUTPUT_LIMIT,
    WINDOW_SIZE,
)
from .features import Analysis, analyze_hop, make_analysis, reset_analysis
from .fft import irfft
from .framing import overlap_add
from .postfilter import cap_gain_decay, envelope_postfilter, envelope_postfilter_per_band
from .pitch import VOICING_THRESHOLD

__all__ = ["GainSource", "UnitSource", "Synthesis", "make_synthesis", "synthesize_frame",
           "StreamProcessor", "process_signal", "ALGORITHMIC_DELAY_SAMPLES", "STAGE_COMB",
           "STAGE_POSTFILTER", "STAGE_POSTFILTER_PER_BAND", "STAGE_DECAY_CAP"]

#: Stage switches of ``synthesize_frame`` (bit mask).
STAGE_COMB = 1  # pitch filtering with the strengths
STAGE_POSTFILTER = 2  # the paper's envelope postfilter (global compensation G)
STAGE_POSTFILTER_PER_BAND = 4  # DeepFilterNet's per-band form instead (see postfilter.py)
STAGE_DECAY_CAP = 8  # gains fall by at most 0.6 per frame

#: Added to both energies of the "scale bands" ratio: far below any audible band energy
#: (-200 dBFS), it only makes 0/0 (a digitally silent band) come out as a factor of 1.
_SCALE_EPS = 1e-30
#: Upper bound on the per-band "scale bands" factor, a guard against a band of Z that
#: cancelled out (its energy near 0 while the target is not).
_MAX_BAND_SCALE = 100.0


class GainSource(Protocol):
    """Where the 34 band gains and 34 comb strengths of each frame come from."""

    def reset(self) -> None:
        """Forget all state (a new stream starts)."""

    def frame(self, analysis: Analysis, slot: int, gains: np.ndarray,
              strengths: np.ndarray) -> None:
        """Write frame l's gains and strengths, float64 (34,) each, in [0, 1].

        Called once per hop, right after ``analyze_hop`` returned ``slot``.
        """


class UnitSource:
    """Gains 1, strengths 0: the chain then reproduces its input (delayed)."""

    def reset(self) -> None:
        pass

    def frame(self, analysis, slot, gains, strengths) -> None:
        gains[:] = 1.0
        strengths[:] = 0.0


class Synthesis(NamedTuple):
    """Synthesis state and scratch (numpy arrays only)."""

    spec_z: np.ndarray  # complex128 (481,) pitch-filtered spectrum
    energy_z: np.ndarray  # float64 (34,)
    band_gain: np.ndarray  # float64 (34,) effective gain after the postfilter
    band_scale: np.ndarray  # float64 (34,) "scale bands" factor
    prev_gain: np.ndarray  # float64 (34,) last effective gain (decay cap)
    norm_bands: np.ndarray  # float64 (34,) scratch
    norm_bins: np.ndarray  # float64 (481,) scratch
    r_bins: np.ndarray  # float64 (481,) scratch
    bin_gain: np.ndarray  # float64 (481,) scratch
    energy_out: np.ndarray  # float64 (34,) band energies of the output spectrum
    time: np.ndarray  # float64 (960,) inverse FFT output
    overlap: np.ndarray  # float64 (480,) overlap-add memory


def make_synthesis() -> Synthesis:
    return Synthesis(
        spec_z=np.zeros(N_BINS, dtype=np.complex128),
        energy_z=np.zeros(N_BANDS),
        band_gain=np.zeros(N_BANDS),
        band_scale=np.zeros(N_BANDS),
        prev_gain=np.zeros(N_BANDS),
        norm_bands=np.zeros(N_BANDS),
        norm_bins=np.zeros(N_BINS),
        r_bins=np.zeros(N_BINS),
        bin_gain=np.zeros(N_BINS),
        energy_out=np.zeros(N_BANDS),
        time=np.zeros(WINDOW_SIZE),
        overlap=np.zeros(HOP_SIZE),
    )


@njit(cache=True, nogil=True)
def synthesize_frame(a, slot, gains, strengths, stages, dry_mix, s, out):
    """Turn frame l's gains/strengths into 480 output samples.

    a: the noisy Analysis after ``analyze_hop`` returned ``slot``; gains, strengths:
    float64 (34,) in [0, 1]; stages: int bit mask of ``STAGE_*`` switches (the decay cap
    acts on the gains after the postfilter, if any); dry_mix in [0, 1]: share of the
    unprocessed spectrum in the output (0: fully processed, 1: the input, delayed; this is
    how the attenuation limit and bypass act, DeepFilterNet-style); s: Synthesis;
    out: float64 (480,). ``s.energy_out`` receives the output band energies.
    """
    spec_y = a.spec_ring[slot]
    energy_y = a.energy_ring[slot]
    if stages & STAGE_COMB:
        mix_pitch(spec_y, a.spec_p, energy_y, a.energy_p, strengths, a.edges, s.norm_bands,
                  s.norm_bins, s.r_bins, s.spec_z, voicing_weight(a.corr[0], VOICING_THRESHOLD))
    else:
        for k in range(spec_y.shape[0]):
            s.spec_z[k] = spec_y[k]
    if stages & STAGE_POSTFILTER_PER_BAND:
        envelope_postfilter_per_band(gains, s.band_gain)
    elif stages & STAGE_POSTFILTER:
        envelope_postfilter(gains, energy_y, s.band_gain)
    else:
        for b in range(gains.shape[0]):
            s.band_gain[b] = gains[b]
    if stages & STAGE_DECAY_CAP:
        cap_gain_decay(s.band_gain, s.prev_gain)
    # Scale bands: give band b of Z the target magnitude X_b = g_b |Y_b|.
    band_energy(s.spec_z, a.edges, s.energy_z)
    for b in range(gains.shape[0]):
        g = s.band_gain[b]
        target = g * g * energy_y[b]
        scale = math.sqrt((target + _SCALE_EPS) / (s.energy_z[b] + _SCALE_EPS))
        s.band_scale[b] = min(scale, _MAX_BAND_SCALE)
    interp_band_gain(s.band_scale, a.edges, s.bin_gain)
    wet = 1.0 - dry_mix
    for k in range(s.spec_z.shape[0]):
        s.spec_z[k] = wet * s.bin_gain[k] * s.spec_z[k] + dry_mix * spec_y[k]
    band_energy(s.spec_z, a.edges, s.energy_out)
    irfft(s.spec_z, s.time, a.plan)
    overlap_add(s.time, a.window, s.overlap, out)
    for n in range(out.shape[0]):
        out[n] = min(OUTPUT_LIMIT, max(-OUTPUT_LIMIT, out[n]))


class StreamProcessor:
    """Streaming PercepNet chain around a gain source.

    ``process(block)`` accepts any number of samples (48 kHz mono float) and returns the
    same number, delayed by ``ALGORITHMIC_DELAY_SAMPLES`` (1920 = 40 ms). The stage switches
    ``use_comb``, ``use_postfilter``, ``postfilter_per_band`` and ``use_decay_cap`` may be
    flipped between calls.

    Stage switches left as None take the product defaults (``percepnet.dsp.stage_defaults``).
    The decay cap (gains fall by at most 0.6 per frame, RT60 about 135 ms) smooths a
    network's estimates; with the oracle's exact gains it lets transient noise through
    (measured on typing noise, oracle PESQ-WB 3.65 -> 1.37).
    """

    delay_samples = ALGORITHMIC_DELAY_SAMPLES

    def __init__(self, source: GainSource | None = None, *, use_comb: bool | None = None,
                 use_postfilter: bool | None = None, postfilter_per_band: bool = False,
                 use_decay_cap: bool | None = None) -> None:
        self.source: GainSource = source if source is not None else UnitSource()
        # None: the product default (percepnet.dsp.stage_defaults)
        self.use_comb = STAGE_DEFAULTS["use_comb"] if use_comb is None else use_comb
        self.use_postfilter = (STAGE_DEFAULTS["use_postfilter"] if use_postfilter is None
                               else use_postfilter)
        self.postfilter_per_band = postfilter_per_band
        self.use_decay_cap = (STAGE_DEFAULTS["use_decay_cap"] if use_decay_cap is None
                              else use_decay_cap)
        self.analysis = make_analysis()
        self.synthesis = make_synthesis()
        #: Share of the unprocessed input in the output, 0..1 (attenuation limit, bypass).
        self.dry_mix = 0.0
        self.gains = np.ones(N_BANDS)
        self.strengths = np.zeros(N_BANDS)
        self._hop = np.zeros(HOP_SIZE)
        self._hop_fill = 0
        self._frame_out = np.zeros(HOP_SIZE)
        # Output FIFO: at most one finished hop plus one hop of block buffering is queued.
        self._fifo = np.zeros(2 * HOP_SIZE)
        self._fifo_read = 0
        self._fifo_len = BLOCK_DELAY_SAMPLES
        self.frames_processed = 0

    @property
    def stages(self) -> int:
        """The current stage switches as the ``STAGE_*`` bit mask."""
        mask = STAGE_COMB if self.use_comb else 0
        if self.use_postfilter:
            mask |= STAGE_POSTFILTER_PER_BAND if self.postfilter_per_band else STAGE_POSTFILTER
        if self.use_decay_cap:
            mask |= STAGE_DECAY_CAP
        return mask

    def reset(self) -> None:
        """Start a new stream: all state back to the initial zeros."""
        reset_analysis(self.analysis)
        for arr in self.synthesis:
            arr[...] = 0
        self.source.reset()
        self._hop[:] = 0.0
        self._hop_fill = 0
        self._fifo[:] = 0.0
        self._fifo_read = 0
        self._fifo_len = BLOCK_DELAY_SAMPLES
        self.frames_processed = 0

    def process(self, block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Process a block of any length; returns (or fills ``out`` with) as many samples."""
        block = np.asarray(block)
        if block.ndim != 1:
            raise ValueError(f"expected a mono block (1-D), got shape {block.shape}")
        n = block.shape[0]
        if out is None:
            out = np.empty(n, dtype=np.float64)
        pos = 0
        while pos < n:
            take = min(HOP_SIZE - self._hop_fill, n - pos)
            self._hop[self._hop_fill:self._hop_fill + take] = block[pos:pos + take]
            self._hop_fill += take
            if self._hop_fill == HOP_SIZE:
                self._run_frame()
                self._hop_fill = 0
            self._fifo_pop(out[pos:pos + take])
            pos += take
        return out

    def flush(self) -> np.ndarray:
        """The last ``delay_samples`` of output (feeds zeros); for whole-file processing."""
        return self.process(np.zeros(self.delay_samples))

    def _run_frame(self) -> None:
        a = self.analysis
        slot = analyze_hop(a, self._hop)
        self.source.frame(a, slot, self.gains, self.strengths)
        synthesize_frame(a, slot, self.gains, self.strengths, self.stages, self.dry_mix,
                         self.synthesis, self._frame_out)
        self._fifo_push(self._frame_out)
        self.frames_processed += 1

    def _fifo_push(self, samples: np.ndarray) -> None:
        size = self._fifo.shape[0]
        start = (self._fifo_read + self._fifo_len) % size
        first = min(samples.shape[0], size - start)
        self._fifo[start:start + first] = samples[:first]
        self._fifo[:samples.shape[0] - first] = samples[first:]
        self._fifo_len += samples.shape[0]

    def _fifo_pop(self, dest: np.ndarray) -> None:
        size = self._fifo.shape[0]
        m = dest.shape[0]
        first = min(m, size - self._fifo_read)
        dest[:first] = self._fifo[self._fifo_read:self._fifo_read + first]
        dest[first:] = self._fifo[:m - first]
        self._fifo_read = (self._fifo_read + m) % size
        self._fifo_len -= m


def process_signal(x: np.ndarray, processor: StreamProcessor) -> np.ndarray:
    """Run a whole 48 kHz mono signal through ``processor``; the output is aligned with the
    input (delay removed) and has the same length."""
    x = np.asarray(x, dtype=np.float64)
    y = processor.process(x)
    tail = processor.flush()
    return np.concatenate([y, tail])[processor.delay_samples:processor.delay_samples + x.shape[0]]
