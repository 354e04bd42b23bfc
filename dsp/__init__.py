"""Pure frame-based signal processing for PercepNet (no Qt, no sounddevice).

One module per stage of the signal chain: ``framing``, ``fft``, ``bands``, ``pitch``,
``comb``, ``strength``, ``postfilter``, ``features`` (features and training targets) and
``processor`` (the streaming frame processor with pluggable gain sources).
"""
