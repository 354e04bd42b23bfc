"""Oracle gain source: gains and strengths computed from the clean signal.

Runs a second analysis on the clean signal in lock-step with the noisy one and takes the
training targets of each frame (``features.frame_targets``) as the "network output". This
shows how good the representation can sound with a perfect network.

Stages (``percepnet oracle --stages``): ``gains`` uses the plain band gains
sqrt(E_x/E_y) and no pitch filtering; ``comb`` and ``all`` use the strengths r_b and the
gains with the extra attenuation g_att, exactly the targets a network is trained on.
"""
from __future__ import annotations

import numpy as np

from .constants import HOP_SIZE, N_BANDS
from .features import Analysis, analyze_hop, frame_targets, make_analysis, reset_analysis
from .processor import StreamProcessor, process_signal

__all__ = ["OracleSource", "STAGES", "oracle_enhance"]

#: Stage name -> (use_comb, use_postfilter).
STAGES = {"gains": (False, False), "comb": (True, False), "all": (True, True)}


class OracleSource:
    """Gain source that reads the clean reference (48 kHz mono, aligned with the noisy input).

    The n-th call to :meth:`frame` advances the clean analysis by the n-th hop of ``clean``
    (zeros past its end), so it must be driven by the processor that is fed the noisy signal
    from its first sample.
    """

    def __init__(self, clean: np.ndarray, *, with_comb: bool = True) -> None:
        self.clean = np.ascontiguousarray(clean, dtype=np.float64)
        if self.clean.ndim != 1:
            raise ValueError("the clean reference must be mono")
        self.with_comb = with_comb
        self.analysis = make_analysis()
        self._hop = np.zeros(HOP_SIZE)
        self._n = 0
        self._scratch = np.zeros((2, N_BANDS))
        self._plain = np.zeros(N_BANDS)
        self._mask = np.zeros(N_BANDS)

    def reset(self) -> None:
        reset_analysis(self.analysis)
        self._n = 0

    def frame(self, analysis: Analysis, slot: int, gains: np.ndarray,
              strengths: np.ndarray) -> None:
        lo = self._n * HOP_SIZE
        chunk = self.clean[lo:lo + HOP_SIZE]
        self._hop[:] = 0.0
        self._hop[:chunk.shape[0]] = chunk
        self._n += 1
        clean_slot = analyze_hop(self.analysis, self._hop)
        if clean_slot != slot:
            raise RuntimeError("oracle and noisy analyses are out of step")
        frame_targets(self.analysis, analysis, slot, N_BANDS - 1, self._scratch[0],
                      self._scratch[1], self._plain, gains, strengths, self._mask)
        if not self.with_comb:
            gains[:] = self._plain
            strengths[:] = 0.0


def oracle_enhance(clean: np.ndarray, noisy: np.ndarray, stage: str = "all", *,
                   postfilter_per_band: bool = False) -> np.ndarray:
    """Enhance a 48 kHz mono ``noisy`` signal with oracle gains from ``clean``.

    Runs the real streaming processor; the result is aligned with the input (delay removed)
    and has its length. stage: "gains", "comb" or "all" (see module docstring);
    postfilter_per_band: use DeepFilterNet's per-band postfilter instead of the paper's.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose one of {', '.join(STAGES)}")
    use_comb, use_postfilter = STAGES[stage]
    source = OracleSource(clean, with_comb=use_comb)
    proc = StreamProcessor(source, use_comb=use_comb, use_postfilter=use_postfilter,
                           postfilter_per_band=postfilter_per_band)
    return process_signal(noisy, proc)
