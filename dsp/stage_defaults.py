"""The chain's stage switches and their product defaults, defined once.

``StreamProcessor``, ``Denoiser``, the settings registry (and through it the command line,
the config file and the window) all read this table, so every caller that does not choose
runs the chain the product ships.

- ``use_comb`` on since 2026-12-04: with the voicing gate (``comb.voicing_weight``: no comb
  on frames the pitch tracker does not call voiced) the comb filter raises PESQ-WB in every
  SNR bin of the unseen-voices set (all noisy items 1.60 -> 1.64) and DNSMOS OVRL (2.45 ->
  2.47), at a small cost on clean input (PESQ-WB 3.74 -> 3.70); it stops at 8 kHz
  (``comb.COMB_MAX_HZ``), where it only cost the highs; ``weights/README.md`` has the
  ablation. Without the gate it lost
  on the older sets and on clean input, and shipped off.
- ``use_postfilter`` on: the envelope postfilter sharpens the gains on speech.
- ``use_decay_cap`` off: capping how fast a band's gain may fall (0.6x per 10 ms) holds
  gains up for ~100 ms after speech and lets noise through; on held-out mixtures it lowers
  PESQ-WB, STOI and SI-SDR alike.
"""
from __future__ import annotations

__all__ = ["STAGE_DEFAULTS"]

#: stage switch -> product default (``Denoiser`` / ``StreamProcessor`` keyword arguments)
STAGE_DEFAULTS: dict[str, bool] = {
    "use_comb": True,
    "use_postfilter": True,
    "use_decay_cap": False,
}
