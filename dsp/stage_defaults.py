"""The chain's stage switches and their product defaults, defined once.

``StreamProcessor``, ``Denoiser``, the settings registry (and through it the command line,
the config file and the window) all read this table, so every caller that does not choose
runs the chain the product ships.

- ``use_comb`` off: with the shipped model the pitch-tracked comb filter costs 0.07 PESQ-WB
  on 40 held-out mixtures at 0-10 dB (``weights/README.md``); kept for A/B listening.
- ``use_postfilter`` on: the envelope postfilter sharpens the gains on speech.
- ``use_decay_cap`` off: capping how fast a band's gain may fall (0.6x per 10 ms) holds
  gains up for ~100 ms after speech and lets noise through; on held-out mixtures it lowers
  PESQ-WB, STOI and SI-SDR alike.
"""
from __future__ import annotations

__all__ = ["STAGE_DEFAULTS"]

#: stage switch -> product default (``Denoiser`` / ``StreamProcessor`` keyword arguments)
STAGE_DEFAULTS: dict[str, bool] = {
    "use_comb": False,
    "use_postfilter": True,
    "use_decay_cap": False,
}
