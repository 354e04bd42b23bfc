"""Which virtual-microphone back-end this platform uses. A module of its own so that the
back-ends import the shared interface (``percepnet.app.virtual_mic``) and nothing imports
back the other way."""
from __future__ import annotations

import sys
from typing import Any

from percepnet.app.virtual_mic import VirtualMic

__all__ = ["get_backend"]


def get_backend(platform: str | None = None, **kwargs: Any) -> VirtualMic:
    """The back-end for ``platform`` (default ``sys.platform``).

    Linux (and other Unix) → PulseAudio/PipeWire; ``darwin`` → BlackHole; ``win32`` →
    VB-Cable. ``kwargs`` go to the back-end's constructor.
    """
    platform = platform or sys.platform
    if platform == "darwin":
        from percepnet.app.virtual_mic_cable import BLACKHOLE, CableVirtualMic

        return CableVirtualMic(BLACKHOLE, **kwargs)
    if platform.startswith("win"):
        from percepnet.app.virtual_mic_cable import VB_CABLE, CableVirtualMic

        return CableVirtualMic(VB_CABLE, **kwargs)
    from percepnet.app.virtual_mic_pulse import PulseVirtualMic

    return PulseVirtualMic(**kwargs)
