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

    Linux (and other Unix): on a local PipeWire server a pipe source (``virtual_mic_pipe``);
    on PulseAudio, a server on another machine (``PULSE_SERVER`` names a network address,
    which cannot open our FIFO) or no server yet, the null sink + remap source
    (``virtual_mic_pulse``). PulseAudio's pipe source has no clock of its own: it posts what
    arrives when it arrives, and headless Chromium's capture of it came out garbled in 2 of
    4 runs (SI-SDR -17 dB; docs/sound-servers.md). ``darwin`` → BlackHole; ``win32`` →
    VB-Cable. ``kwargs`` go to the back-end's constructor.
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
    if local and _is_pipewire(server or None):
        from percepnet.app.virtual_mic_pipe import PipeVirtualMic

        return PipeVirtualMic(**kwargs)
    from percepnet.app.virtual_mic_pulse import PulseVirtualMic

    return PulseVirtualMic(**kwargs)


def _is_pipewire(server: str | None) -> bool:
    """Whether the sound server answering is PipeWire's pulse server (False when none
    answers: the null-sink chain works on both and is rebuilt when the server comes)."""
    try:
        from percepnet.app.devices import pulse_client

        pulse = pulse_client("percepnet-probe", server)
    except Exception:  # noqa: BLE001
        return False
    try:
        return "pipewire" in str(pulse.server_info().server_name).lower()
    except Exception:  # noqa: BLE001
        return False
    finally:
        pulse.close()
