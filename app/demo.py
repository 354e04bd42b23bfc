"""The bundled demo clip: what the engine plays when there is no microphone (``input_device
= "demo"``) and what ``make run`` shows on a machine without one."""
from __future__ import annotations

import numpy as np

from percepnet.dsp.constants import SAMPLE_RATE_HZ

__all__ = ["demo_clip", "DemoSource"]


def demo_clip(snr_db: float = 5.0) -> np.ndarray:
    """The bundled demo: speech mixed with noise at ``snr_db``, 48 kHz mono float32."""
    from importlib.resources import files

    from .audio_io import read_audio

    assets = files("percepnet.app.assets")
    speech, sr, _ = read_audio(str(assets / "demo_speech.ogg"))
    noise, sr2, _ = read_audio(str(assets / "demo_noise.ogg"))
    import soxr

    def mono48(x, rate):
        x = x.mean(axis=1) if x.ndim == 2 else x
        return soxr.resample(x, rate, SAMPLE_RATE_HZ) if rate != SAMPLE_RATE_HZ else x

    s, n = mono48(speech, sr), mono48(noise, sr2)
    reps = int(np.ceil(len(s) / max(len(n), 1)))
    n = np.tile(n, reps)[:len(s)]
    ps, pn = np.mean(s ** 2), np.mean(n ** 2) + 1e-12
    mix = s + n * np.sqrt(ps / pn / 10 ** (snr_db / 10))
    mix *= 0.3 / (np.max(np.abs(mix)) + 1e-9)
    # a short fade at both ends so the loop point does not click
    fade = np.linspace(0.0, 1.0, 480)
    mix[:480] *= fade
    mix[-480:] *= fade[::-1]
    return mix.astype(np.float32)


class DemoSource:
    """The demo clip as an endless input: :meth:`next_block` hands out the next ``frames``
    samples, looping, from a preallocated buffer (no allocation: it runs in the callback)."""

    def __init__(self, max_block: int) -> None:
        self.clip: np.ndarray | None = None
        self._pos = 0
        self._block = np.zeros((max_block, 1), dtype=np.float32)

    def load(self) -> None:
        """Read and mix the clip once (not on the audio thread)."""
        if self.clip is None:
            self.clip = demo_clip()

    def next_block(self, frames: int) -> np.ndarray:
        """float32 (frames, 1), a view of the preallocated buffer."""
        buf = self._block[:frames]
        clip = self.clip
        pos = self._pos
        filled = 0
        while filled < frames:
            take = min(frames - filled, clip.shape[0] - pos)
            buf[filled:filled + take, 0] = clip[pos:pos + take]
            filled += take
            pos = (pos + take) % clip.shape[0]
        self._pos = pos
        return buf
