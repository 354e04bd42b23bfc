"""Which virtual-microphone back-end this platform uses. A module of its own so that the
back-ends import the shared interface (``percepnet.app.virtual_mic``) and nothing imports
back the other way."""
from __future__ import annotations

import os
import sys
from typing import Any

from percepnet.app.virtual_mic import VirtualMic

__all__ = ["get_backend"]


def get_backend(platform: str | None = None, **kwargs: Any) -> VirtualMic:
    """The back-end for ``platform`` (default ``sys.platform``).

    Linux (and other Unix) → PulseAudio/PipeWire: a pipe source (``virtual_mic_pipe``), or
    where the server is not local (``PULSE_SERVER`` names a network address) the null sink +
    remap source (``virtual_mic_pulse``); ``darwin`` → BlackHole; ``win32`` → VB-Cable. ``kwargs`` go to the back-end's constructor.
    """
    platform = platform or sys.platform
    if platform == "darwin":
        from percepnet.app.virtual_mic_cable import BLACKHOLE, CableVirtualMic

        return CableVirtualMic(BLACKHOLE, **kwargs)
    if platform.startswith("win"):
        from percepnet.app.virtual_mic_cable import VB_CABLE, CableVirtualMic

        return CableVirtualMic(VB_CABLE, **kwargs)
    server = kwargs.get("server") or os.environ.get("PULSE_SERVER") or ""
    if server and not all(a.startswith(("unix:", "/")) for a in server.split()):
        # a server on another machine cannot open our FIFO: the null sink + remap chain
        from percepnet.app.virtual_mic_pulse import PulseVirtualMic

        return PulseVirtualMic(**kwargs)
    from percepnet.app.virtual_mic_pipe import PipeVirtualMic

    return PipeVirtualMic(**kwargs)
