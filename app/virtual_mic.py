"""The virtual microphone: one small interface, one back-end per platform.

Meeting apps (Zoom, Meet, Teams) record from a microphone; the engine writes the cleaned
voice into a virtual device that such apps can pick as their microphone, "PercepNet
Microphone". Every back-end implements :class:`VirtualMic`:

- :meth:`VirtualMic.ensure` creates the device if needed (idempotent; repairs a stale or
  half-built one left by a crashed run) and returns a :class:`MicStatus`;
- :meth:`VirtualMic.remove` takes it away (Linux removes it at exit by itself);
- :meth:`VirtualMic.status` reports without changing anything;
- :meth:`VirtualMic.self_test` plays a short 1 kHz tone through the chain and reads it back
  from the microphone side (a :class:`SelfTestResult`, never an exception);
- :meth:`VirtualMic.output_route` / :meth:`VirtualMic.output_device` say how the engine opens
  its output stream so that it lands in the device;
- :meth:`VirtualMic.start_supervision` keeps it alive (Linux: recreated after a sound-server
  restart).

Back-ends (:func:`percepnet.app.mic_backends.get_backend` picks one by platform):

- Linux, PulseAudio or PipeWire through its pulse server: ``virtual_mic_pulse.PulseVirtualMic``,
  a null sink ``percepnet_mic_sink`` plus a ``module-remap-source`` ``percepnet_mic`` over its
  monitor (a real mono 48 kHz source; browsers ignore monitor sources).
- macOS, BlackHole; Windows, VB-Audio Virtual Cable: ``virtual_mic_cable.CableVirtualMic``,
  which finds the installed driver in the PortAudio device list and says plainly what to
  install when it is missing.

:func:`preferred_stream_device` picks the PortAudio device for our own streams on Linux
(PipeWire's native ALSA device where present: about 25 ms round trip and steady, against
40-60 ms and creeping through the ``pulse`` plugin; see docs/sound-servers.md, 'Latency').
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from percepnet.dsp.constants import SAMPLE_RATE_HZ

__all__ = [
    "MIC_DESCRIPTION", "SINK_NAME", "SOURCE_NAME", "PULSE_CLIENT_NAME", "TONE_FREQ_HZ",
    "TONE_SECONDS",
    "MicStatus", "SelfTestResult", "VirtualMic", "preferred_stream_device",
    "make_tone", "analyse_tone",
]

#: what users pick in their meeting app
MIC_DESCRIPTION = "PercepNet Microphone"
#: Linux: the null sink the engine writes to, and the remap source over its monitor
SINK_NAME = "percepnet_mic_sink"
SOURCE_NAME = "percepnet_mic"
#: Linux: the client name of our own connections to the sound server
PULSE_CLIENT_NAME = "percepnet-virtual-mic"

#: self-test tone: 1 kHz sine, 0.5 s, peak 0.5 (RMS -9.0 dBFS), 10 ms raised-cosine fades
TONE_FREQ_HZ = 1000.0
TONE_SECONDS = 0.5
TONE_PEAK = 0.5
_FADE_S = 0.010
#: accepted read-back: frequency within 5 Hz, level within 6 dB of what was played, tone
#: band 10 dB above everything else (leaves room for the engine's voice mixed into the sink),
#: and at least 80 % of the tone's length present (dropouts fail the test)
_FREQ_TOL_HZ = 5.0
_LEVEL_TOL_DB = 6.0
_MIN_SNR_DB = 10.0
_MIN_PRESENT_FRACTION = 0.8


@dataclass(frozen=True)
class MicStatus:
    """What is known about the virtual microphone, one fact per field.

    ``present`` is True only when the complete chain exists (Linux: exactly one null sink and
    one remap source of ours, correctly linked; macOS/Windows: both ends of the driver found).
    ``detail`` says in one line what is wrong and what to do (empty when all is well).
    """

    present: bool
    backend: str                     # "pulse", "blackhole", "vb-cable"
    sink_name: str | None            # where the engine's output goes
    source_name: str | None          # what meeting apps record from
    description: str = MIC_DESCRIPTION  # the name users see in their meeting app
    detail: str = ""
    server: str = ""                 # e.g. "PulseAudio 16.1"
    readers: tuple[str, ...] | None = None  # applications recording from it now (None: unknown)
    writers: tuple[str, ...] | None = None  # streams playing into it now (None: unknown)
    repaired: bool = False           # ensure() rebuilt a stale or half-built chain
    warnings: tuple[str, ...] = ()   # present but suspicious (muted, volume turned down)
    reachable: bool = True           # False: no sound server / driver answered at all
    #: other applications' streams just moved off the internal sink (their speaker was set
    #: to it): a notice from the supervisor, not a change of the microphone itself
    moved: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """Human-readable, one line per fact (``percepnet mic status``)."""
        out = [f"backend: {self.backend}" + (f" ({self.server})" if self.server else "")]
        if self.present:
            out.append(f"virtual microphone: present, pick \"{self.description}\" in your "
                       "meeting app")
        else:
            out.append("virtual microphone: absent")
        if self.source_name:
            out.append(f"microphone device: {self.source_name}")
        if self.sink_name:
            out.append(f"engine output: {self.sink_name}")
        if self.present and self.readers is not None:
            out.append("recording from it: " + (", ".join(self.readers) or "nobody"))
        if self.present and self.writers is not None:
            out.append("playing into it: " + (", ".join(self.writers) or "nothing"))
        if self.repaired:
            out.append("repaired: a stale or half-built instance was rebuilt")
        out.extend(f"warning: {w}" for w in self.warnings)
        out.extend(f"moved: {m}" for m in self.moved)
        if self.detail:
            out.append(f"detail: {self.detail}")
        return out


@dataclass(frozen=True)
class SelfTestResult:
    """Outcome of :meth:`VirtualMic.self_test`; ``detail`` is one line for the user."""

    ok: bool
    level_db: float | None = None      # RMS of the tone read back, dBFS
    expected_db: float | None = None   # RMS of the tone played, dBFS
    freq_hz: float | None = None       # strongest frequency read back
    snr_db: float | None = None        # tone band over everything else
    detail: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"self-test: {'OK' if self.ok else 'FAILED'}"]
        if self.level_db is not None:
            exp = f" (played {self.expected_db:.1f} dBFS)" if self.expected_db is not None else ""
            out.append(f"tone level read back: {self.level_db:.1f} dBFS{exp}")
        if self.freq_hz is not None:
            out.append(f"tone frequency read back: {self.freq_hz:.1f} Hz "
                       f"(played {TONE_FREQ_HZ:.0f} Hz)")
        if self.snr_db is not None:
            out.append(f"tone above other sound: {self.snr_db:.1f} dB")
        if self.detail:
            out.append(f"detail: {self.detail}")
        return out


#: callback type for self_test: plays mono float32 samples at the given rate into the chain
PlayFn = Callable[[np.ndarray, int], None]


class _NoSupervision:
    """What :meth:`VirtualMic.start_supervision` returns where there is nothing to watch."""

    running = False

    def stop(self, timeout_s: float = 2.0) -> None:
        return None


class VirtualMic(abc.ABC):
    """The interface every back-end implements (see the module docstring)."""

    #: short back-end name ("pulse", "blackhole", "vb-cable")
    backend: str = ""
    #: where the engine's output must go (PulseAudio sink name, or PortAudio device name)
    sink_name: str | None = None
    #: the device meeting apps record from
    source_name: str | None = None
    description: str = MIC_DESCRIPTION

    @abc.abstractmethod
    def ensure(self) -> MicStatus:
        """Create the device if needed, repair a broken one; idempotent, never raises."""

    @abc.abstractmethod
    def remove(self) -> int:
        """Remove what this back-end created; returns how many objects were removed."""

    @abc.abstractmethod
    def status(self) -> MicStatus:
        """Report without changing anything; never raises."""

    @abc.abstractmethod
    def self_test(self, play_device_fn: PlayFn | None = None,
                  timeout_s: float = 3.0) -> SelfTestResult:
        """Play a 1 kHz tone into the chain and read it back; never raises.

        ``play_device_fn(samples, rate_hz)`` plays mono float32 samples into the engine's
        output (blocking until played); by default the back-end plays them itself.
        """

    def output_route(self) -> dict[str, str]:
        """Environment variables to set while opening the engine's output stream."""
        return {}

    def output_device(self, devices: Sequence[Mapping[str, Any]] | None = None) -> str | int | None:
        """The PortAudio output device for the engine (None: the default device)."""
        return None

    def start_supervision(self, interval_s: float = 0.5,
                          on_change: Callable[[MicStatus], None] | None = None) -> Any:
        """Keep the device alive in a background thread; returns an object with ``stop()``."""
        return _NoSupervision()


def _has_io(dev: Mapping[str, Any]) -> bool:
    return int(dev.get("max_input_channels", 0)) > 0 and int(dev.get("max_output_channels", 0)) > 0


def preferred_stream_device(devices: Iterable[Mapping[str, Any]]) -> str:
    """PortAudio device name for our streams on Linux, from a ``query_devices()``-style list.

    ``'pipewire'`` (PipeWire's native ALSA plugin) when listed, else ``'pulse'`` (the ALSA
    pulse plugin, PulseAudio or pipewire-pulse), else ``'default'``. A device counts only
    when it has both input and output channels.
    """
    names = {str(d.get("name", "")).strip().lower() for d in devices if _has_io(d)}
    for name in ("pipewire", "pulse"):
        if name in names:
            return name
    return "default"


# --------------------------------------------------------------------------- tone test

def make_tone(rate_hz: int = SAMPLE_RATE_HZ, freq_hz: float = TONE_FREQ_HZ,
              seconds: float = TONE_SECONDS, peak: float = TONE_PEAK) -> np.ndarray:
    """The self-test tone: float32 mono, raised-cosine fades at both ends."""
    n = int(round(seconds * rate_hz))
    t = np.arange(n) / rate_hz
    x = peak * np.sin(2 * np.pi * freq_hz * t)
    nf = int(round(_FADE_S * rate_hz))
    fade = 0.5 - 0.5 * np.cos(np.pi * np.arange(nf) / nf)
    x[:nf] *= fade
    x[n - nf:] *= fade[::-1]
    return x.astype(np.float32)


def _db(power: float) -> float:
    return float(10.0 * np.log10(max(power, 1e-20)))


def analyse_tone(recorded: np.ndarray, rate_hz: int = SAMPLE_RATE_HZ,
                 freq_hz: float = TONE_FREQ_HZ, played: np.ndarray | None = None) -> SelfTestResult:
    """Judge a recording that should contain the self-test tone somewhere in it.

    The tone band (±200 Hz) is split off with an FFT mask; 10 ms frames whose tone power is
    within 10 dB of the loudest frame are the tone's frames; level, SNR (tone band over the
    rest, in those frames) and the strongest frequency (zero-padded FFT) are measured there.
    """
    played = make_tone(rate_hz, freq_hz) if played is None else played
    expected_db = _db(float(np.mean(np.asarray(played, np.float64) ** 2)))
    x = np.asarray(recorded, np.float64).reshape(-1)
    hop = rate_hz // 100
    if x.size < 4 * hop:
        return SelfTestResult(False, expected_db=expected_db,
                              detail=f"only {x.size} samples read back from the microphone")
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(x.size, 1.0 / rate_hz)
    band = np.abs(f - freq_hz) <= 200.0  # wide enough for the fades' skirts (SNR 60 dB clean)
    tone = np.fft.irfft(np.where(band, spec, 0), n=x.size)
    rest = x - tone
    n_frames = x.size // hop
    tp = np.mean(tone[: n_frames * hop].reshape(n_frames, hop) ** 2, axis=1)
    rp = np.mean(rest[: n_frames * hop].reshape(n_frames, hop) ** 2, axis=1)
    if tp.max() < 1e-12:
        return SelfTestResult(False, level_db=_db(float(tp.max())), expected_db=expected_db,
                              detail="silence: the tone did not come back from the microphone")
    on = tp >= tp.max() * 0.1
    level_db = _db(float(tp[on].mean()))
    snr_db = level_db - _db(float(rp[on].mean()))
    mask = np.zeros(x.size, bool)
    mask[: n_frames * hop] = np.repeat(on, hop)
    seg = x[mask]
    nfft = max(1 << 18, 1 << int(np.ceil(np.log2(seg.size))))
    mag = np.abs(np.fft.rfft(seg * np.hanning(seg.size), n=nfft))
    fr = np.fft.rfftfreq(nfft, 1.0 / rate_hz)
    mag[fr < 50.0] = 0.0
    peak_hz = float(fr[int(np.argmax(mag))])
    present_s = float(on.sum()) * hop / rate_hz
    expected_s = (played.size / rate_hz) - _FADE_S
    res = dict(level_db=level_db, expected_db=expected_db, freq_hz=peak_hz, snr_db=snr_db,
               extra={"tone_seconds": present_s})
    problems = []
    if abs(peak_hz - freq_hz) > _FREQ_TOL_HZ:
        problems.append(f"strongest frequency {peak_hz:.0f} Hz, not {freq_hz:.0f} Hz")
    if abs(level_db - expected_db) > _LEVEL_TOL_DB:
        problems.append(f"level {level_db:.1f} dBFS where {expected_db:.1f} dBFS was played "
                        "(is the microphone or its sink muted or turned down?)")
    if snr_db < _MIN_SNR_DB:
        problems.append(f"tone only {snr_db:.1f} dB above other sound (noise or distortion)")
    if present_s < _MIN_PRESENT_FRACTION * expected_s:
        problems.append(f"tone present for {present_s:.2f} s of {expected_s:.2f} s (dropouts)")
    if problems:
        return SelfTestResult(False, detail="; ".join(problems), **res)
    return SelfTestResult(True, detail=f"a {freq_hz:.0f} Hz tone went through the virtual "
                          f"microphone and came back at {level_db:.1f} dBFS", **res)
