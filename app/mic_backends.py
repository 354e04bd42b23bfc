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

    Linux (and other Unix): on a local server that answers (PipeWire or PulseAudio), a pipe
    source (``virtual_mic_pipe``: no sink to offer as a speaker, no output stream); on a
    server on another machine (``PULSE_SERVER`` names a network address, which cannot open
    our FIFO) or when no server answers yet, the null sink + remap source
    (``virtual_mic_pulse``: it works on both and is rebuilt when the server comes).
    ``darwin`` → BlackHole; ``win32`` → VB-Cable. ``kwargs`` go to the back-end's
    constructor.
    """
    platform = platform or sys.platform
    if platform == "darwin":
        from percepnet.app.virtual_mic_cable import BLACKHOLE, CableVirtualMic

        return CableVirtualMic(BLACKHOLE, **kwargs)
    if platform.startswith("win"):
        from percepnet.app.virtual_mic_cable import VB_CABLE, CableVirtualMic

        return CableVirtualMic(VB_CABLE, **kwargs)
    server = kwargs.get("server") or os.environ.get("PULSE_SERVER") or ""
    local = not server or all(a.startswith(("unix:", "/")) for a in server.split())
    if local and _server_answers(server or None):
        from percepnet.app.virtual_mic_pipe import PipeVirtualMic

        return PipeVirtualMic(**kwargs)
    from percepnet.app.virtual_mic_pulse import PulseVirtualMic

    return PulseVirtualMic(**kwargs)


def _server_answers(server: str | None) -> bool:
    """Whether a sound server (PulseAudio or PipeWire's pulse server) answers at ``server``
    (None: the default)."""
    try:
        from percepnet.app.devices import pulse_client

        pulse = pulse_client("percepnet-probe", server)
    except Exception:  # noqa: BLE001
        return False
    try:
        return bool(pulse.server_info().server_name)
    except Exception:  # noqa: BLE001
        return False
    finally:
        pulse.close()
