"""``pacat`` (pulseaudio-utils): the command-line client the virtual microphone's helpers run.

The keep-alive (:mod:`percepnet.app.mic_keep_alive`) and the self-test
(:mod:`percepnet.app.mic_self_test`) move raw mono 48 kHz audio in and out of the sound
server with a ``pacat`` child each; this module finds the binary and builds its command line,
so that both speak to the server the same way (explicit ``--device``, ``--server`` when one
is given, a client name to recognise the stream by).
"""
from __future__ import annotations

import shutil

from percepnet.dsp.constants import SAMPLE_RATE_HZ

__all__ = ["find_pacat", "pacat_argv"]


def find_pacat() -> str | None:
    """The ``pacat`` executable on ``PATH``, or None."""
    return shutil.which("pacat")


def pacat_argv(direction: str, device: str, sample_format: str, latency_ms: int,
               client_name: str, server: str | None = None) -> list[str]:
    """The command line of a raw mono 48 kHz ``pacat`` stream.

    ``direction``: ``"record"`` or ``"playback"``; ``sample_format``: pacat's name of it
    (``float32le``, ``s16le``). Raises FileNotFoundError, saying what to install, when pacat
    is missing.
    """
    exe = find_pacat()
    if exe is None:
        raise FileNotFoundError("pacat not found (install pulseaudio-utils)")
    return [exe, f"--{direction}", "--raw", f"--device={device}", f"--format={sample_format}",
            f"--rate={SAMPLE_RATE_HZ}", "--channels=1", f"--latency-msec={latency_ms}",
            f"--client-name={client_name}", *([f"--server={server}"] if server else [])]
