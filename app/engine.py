"""The real-time audio engine: a PortAudio callback feeding 10 ms blocks through the Denoiser.

Two layers:

- :class:`EngineCore` is the per-block work, with no device in sight: mixdown, the Denoiser,
  fan-out, telemetry rows (spectra, gains, pitch, levels) and timing statistics. Its
  :meth:`EngineCore.process_block` is what the PortAudio callback calls; it never allocates
  arrays, locks, logs or touches Qt, and on any error it passes the input through and raises
  a flag instead of going silent.
- :class:`Engine` owns the sounddevice stream(s): devices, 48 kHz / 480-sample blocks,
  live controls (suppression, attenuation limit, stage toggles, device switching), a
  supervisor thread that detects a dead or stalled stream (device unplugged, sound server
  restarted) and re-initialises PortAudio until the device is back, and a diagnostics
  snapshot (xruns, callback p50/p99, CPU load, end-to-end latency, real-time factor,
  "insufficient resources").

Input sources: a device (``input_device``: a PulseAudio/PipeWire source name, a PortAudio
device name, or "" for the default) or the bundled demo clip (``input_device = "demo"``),
looped, played through the output device; with no output device either, a pacing thread
stands in for the sound card ("null output") so the window still shows the suppressor.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from percepnet.dsp.blockops import fan_out, mixdown, peak_abs, ring_write
from percepnet.dsp.constants import (ALGORITHMIC_DELAY_MS, ALGORITHMIC_DELAY_SAMPLES,
                                     HOP_SIZE, N_BINS, SAMPLE_RATE_HZ, WINDOW_SIZE)
from percepnet.dsp.denoiser import Denoiser, FrameInfo
from percepnet.dsp.pitch import VOICING_THRESHOLD
from percepnet.dsp.spectrum import SPECTRUM_FLOOR_DB, log_spectrum_db, make_spectrum_state

from .devices import DEMO_DEVICE, NULL_DEVICE, pulse_client, routed_env  # noqa: F401
from .settings import STAGE_PARAMS, or_defaults
from .telemetry import SCALAR_FIELDS, Telemetry

__all__ = ["EngineCore", "Engine", "Diagnostics", "DEMO_DEVICE", "NULL_DEVICE", "BLOCK_SIZE",
           "demo_clip"]

log = logging.getLogger("percepnet.engine")

#: The engine's native block: one 10 ms hop at 48 kHz.
BLOCK_SIZE = HOP_SIZE
#: Most blocks a callback may bring (PortAudio may deliver more than asked for).
MAX_BLOCK = 8192
#: Callback-duration history for p50/p99: 1000 callbacks = 10 s at 10 ms blocks.
TIMING_HISTORY = 1000
#: Xruns and late callbacks in the first second after a stream starts are start-up noise
#: (the sound server fills its buffers), counted apart.
STARTUP_GRACE_S = 1.0
#: A callback that takes longer than this share of its block period is "late".
LATE_FRACTION = 0.8
#: "Listen to myself" ring: 0.5 s; the monitor output keeps at most 60 ms of backlog.
MONITOR_RING = SAMPLE_RATE_HZ // 2
MONITOR_TARGET_LAG = 2 * BLOCK_SIZE
MONITOR_MAX_LAG = 6 * BLOCK_SIZE
#: A stream whose callback has not run for this long is considered dead.
STALL_TIMEOUT_S = 0.75
#: ... and one that has not delivered its first callback this long after opening (the
#: sound server may take a moment to start a stream).
FIRST_CALLBACK_TIMEOUT_S = 3.0
#: Until a stream has delivered this many blocks (1 s of audio) it is still starting: the
#: sound server runs the first few callbacks at once to fill its buffers, then may pause up
#: to about a second before the device clock takes over (measured with PulseAudio's
#: module-sine-source: 3 callbacks, then 0.85 s of nothing), so the start-up timeout applies.
STARTUP_BLOCKS = SAMPLE_RATE_HZ // BLOCK_SIZE
#: End-to-end latency is reported as the median of the last 100 callbacks' device round trip
#: (1 s at 10 ms blocks): one callback's timestamps jitter by a block or more when the sound
#: server reschedules, and the median keeps the figure the user reads steady.
IO_LATENCY_HISTORY = 100

_SC = {name: i for i, name in enumerate(SCALAR_FIELDS)}


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


# ---------------------------------------------------------------------------- core

class EngineCore:
    """Per-block processing shared by every driver (PortAudio callback, pacing thread,
    tests). Controls are plain attributes, safe to set from any thread between blocks."""

    def __init__(self, model=None, *, atten_limit_db: float | None = None,
                 suppression: bool | None = None, use_comb: bool | None = None,
                 use_postfilter: bool | None = None, use_decay_cap: bool | None = None,
                 telemetry: Telemetry | None = None,
                 prepare_in_background: bool = False) -> None:
        """Controls left as None take the product default (``settings.PARAMS``).

        ``prepare_in_background``: build the Denoiser and compile its kernels on a worker
        thread (about 30 s on an empty numba cache, 1-2 s from the cache) while
        :meth:`process_block` already passes the input through, delayed by the suppressor's
        40 ms so the switch-over keeps the timing; :attr:`ready` turns True when the
        suppressor takes over (one reference assignment: the callback takes no lock)."""
        atten_limit_db, suppression, use_comb, use_postfilter, use_decay_cap = or_defaults(
            atten_limit_db=atten_limit_db, suppression=suppression, use_comb=use_comb,
            use_postfilter=use_postfilter, use_decay_cap=use_decay_cap)
        self.telemetry = telemetry or Telemetry()
        self.denoiser: Denoiser | None = None
        self._model = model
        self._controls = {"atten_limit_db": atten_limit_db, "use_comb": use_comb,
                          "use_postfilter": use_postfilter, "use_decay_cap": use_decay_cap}
        self.model_name = getattr(model, "name", None) or "none (pass-through)"
        self._suppression = suppression
        #: False while the suppressor is being prepared (the input passes through, aligned)
        self.ready = True
        #: why preparing failed ("" when it did not): the input then keeps passing through
        self.prepare_error = ""
        self.output_gain = 1.0
        # preallocated work buffers
        self._in = np.zeros(MAX_BLOCK)
        self._out = np.zeros(MAX_BLOCK)
        self._hist_in = np.zeros(WINDOW_SIZE + ALGORITHMIC_DELAY_SAMPLES + MAX_BLOCK)
        self._hist_out = np.zeros(WINDOW_SIZE + MAX_BLOCK)
        self._hist_out_view = np.zeros(WINDOW_SIZE)
        self._delay_line = np.zeros(ALGORITHMIC_DELAY_SAMPLES + MAX_BLOCK)
        self._delayed = np.zeros(MAX_BLOCK)  # the input, 40 ms late (see _pass_delayed)
        self._pos_in = 0
        self._pos_out = 0
        self._since_spec = 0
        self._spec_state = make_spectrum_state()
        self._spec_in_row = np.zeros(N_BINS)
        self._spec_out_row = np.zeros(N_BINS)
        self._hist_in_view = np.zeros(WINDOW_SIZE)
        # statistics (written by the audio thread only)
        self.blocks = 0
        self.samples = 0
        self.errors = 0
        self.nonfinite_samples = 0
        self.last_error = ""
        self.callback_s = np.zeros(TIMING_HISTORY)
        self.processing_s_total = 0.0
        self._prepare_thread: threading.Thread | None = None
        if model is None:
            self._compile_kernels(None)
        elif prepare_in_background:
            self.ready = False
            self._prepare_thread = threading.Thread(target=self._prepare, daemon=True,
                                                    name="percepnet-prepare")
            self._prepare_thread.start()
        else:  # here, on the caller's thread; a model that cannot run raises
            den = self._new_denoiser()
            self._compile_kernels(den)
            self.denoiser = den

    def _new_denoiser(self) -> Denoiser:
        den = Denoiser(self._model, on_frame=self._on_frame, **self._controls)
        den.bypass = not self._suppression
        return den

    def _prepare(self) -> None:
        """Worker thread: build the suppressor and compile its kernels on scratch buffers
        (the callback never sees them), then hand it over."""
        try:
            den = self._new_denoiser()
            self._compile_kernels(den)
        except Exception as exc:  # noqa: BLE001 - keep passing through, and say why
            self.prepare_error = f"{type(exc).__name__}: {exc}"
            log.error("the suppressor could not be prepared: %s", self.prepare_error)
            return
        self.denoiser = den  # the hand-over: one reference assignment
        self.ready = True
        # controls set while it compiled went to self._controls only
        for name, value in self._controls.items():
            setattr(den, name, value)
        den.bypass = not self._suppression

    def _compile_kernels(self, den: Denoiser | None) -> None:
        """Compile (or load from the numba cache) every kernel the callback uses, on scratch
        buffers, so the callback never compiles; then clear what that wrote (the Denoiser's
        state, the per-frame telemetry rows)."""
        rng = np.random.default_rng(0)
        block = (1e-3 * rng.standard_normal((BLOCK_SIZE, 1))).astype(np.float32)
        out = np.zeros((BLOCK_SIZE, 1), dtype=np.float32)
        x, y = np.zeros(BLOCK_SIZE), np.zeros(BLOCK_SIZE)
        hist, view, row = np.zeros(WINDOW_SIZE * 2), np.zeros(WINDOW_SIZE), np.zeros(N_BINS)
        state = make_spectrum_state()
        for _ in range(3):
            mixdown(block, x)
            if den is not None:
                den.process(x, out=y)
            fan_out(y, out, 1.0)
            peak_abs(x)
            ring_write(hist, 0, x)
            log_spectrum_db(state, view, 0, row)
        if den is not None:
            den.reset()
        tel = self.telemetry
        for ring in (tel.gains, tel.strengths, tel.bands_in, tel.bands_out, tel.scalars):
            ring.written[0] = 0

    def wait_ready(self, timeout_s: float | None = None) -> bool:
        """Block (not on the audio thread) until the suppressor is prepared; True if ready."""
        t = self._prepare_thread
        if t is not None:
            t.join(timeout_s)
        return self.ready

    # ------------------------------------------------------------------ controls
    @property
    def suppression(self) -> bool:
        return self._suppression

    @suppression.setter
    def suppression(self, on: bool) -> None:
        self._suppression = bool(on)
        den = self.denoiser
        if den is not None:
            den.bypass = not self._suppression  # crossfaded inside the Denoiser

    @property
    def atten_limit_db(self) -> float:
        return float(self._controls["atten_limit_db"]) if self._model is not None else 0.0

    @atten_limit_db.setter
    def atten_limit_db(self, value: float) -> None:
        self._controls["atten_limit_db"] = value
        den = self.denoiser
        if den is not None:
            den.atten_limit_db = value

    def set_stage(self, name: str, on: bool) -> None:
        if name not in STAGE_PARAMS:
            raise ValueError(f"unknown stage {name!r}")
        self._controls[name] = bool(on)
        den = self.denoiser
        if den is not None:
            setattr(den, name, bool(on))

    def stage(self, name: str) -> bool:
        return bool(self._controls.get(name, False)) if self._model is not None else False

    # ------------------------------------------------------------------ processing
    def process_block(self, indata: np.ndarray, outdata: np.ndarray) -> None:
        """indata: float32 (n, ch_in); outdata: float32 (n, ch_out), written completely.

        Never raises: on an error the input is passed through (mono mixdown) and
        :attr:`errors` / :attr:`last_error` record it.
        """
        t0 = time.perf_counter()
        n = indata.shape[0]
        if n > MAX_BLOCK:  # PortAudio never does this at our settings; stay safe anyway
            self.errors += 1
            self.last_error = f"block of {n} samples exceeds {MAX_BLOCK}"
            outdata[:] = 0.0
            k = min(indata.shape[1], outdata.shape[1])
            outdata[:, :k] = indata[:, :k]
            return
        x = self._in[:n]
        y = self._out[:n]
        if not self.ready:  # the suppressor is being prepared: pass through, aligned
            self._pass_through_preparing(indata, outdata, x, y)
        else:
            self._process(indata, outdata, x, y)
        dt = time.perf_counter() - t0
        self.callback_s[self.blocks % TIMING_HISTORY] = dt
        self.processing_s_total += dt
        self.blocks += 1
        self.samples += n

    def _pass_through_preparing(self, indata, outdata, x, y) -> None:
        """The input delayed by 40 ms with plain numpy (no kernel that may still need
        compiling; no allocation: in-place ops and views only)."""
        try:
            k = indata.shape[1]
            x[:] = indata[:, 0]
            for c in range(1, k):
                x += indata[:, c]
            if k > 1:
                x *= 1.0 / k
            np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            self._pass_delayed(x, y)
            outdata[:] = y[:, None]
        except Exception as exc:  # noqa: BLE001 - the audio path must never go silent
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            outdata[:] = 0.0

    def _process(self, indata, outdata, x, y) -> None:
        raw = self._delayed[:x.shape[0]]
        try:
            self.nonfinite_samples += mixdown(indata, x)
            # the input 40 ms late, kept current every block: the output without a model,
            # and what an error passes through
            self._pass_delayed(x, raw)
            den = self.denoiser
            if den is not None:
                den.process(x, out=y)
            else:
                y[:] = raw
            self.nonfinite_samples += fan_out(y, outdata, self.output_gain)
            self._telemetry_block(x, y)
        except Exception as exc:  # noqa: BLE001 - the audio path must never go silent
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            try:  # the input, aligned with what the suppressor outputs (40 ms)
                outdata[:] = raw[:, None]
            except Exception:  # noqa: BLE001
                outdata[:] = 0.0

    def _pass_delayed(self, x: np.ndarray, y: np.ndarray) -> None:
        # The input, delayed like the Denoiser's output (40 ms); called once per block.
        d = ALGORITHMIC_DELAY_SAMPLES
        n = x.shape[0]
        line = self._delay_line
        line[d:d + n] = x
        y[:] = line[:n]
        line[:d] = line[n:n + d]

    def _on_frame(self, info: FrameInfo) -> None:
        tel = self.telemetry
        tel.gains.push(info.band_gains)
        tel.strengths.push(info.strengths)
        tel.bands_in.push(info.input_band_db)
        tel.bands_out.push(info.output_band_db)
        row = tel.scalars.slot()
        # the pitch track shows voiced frames only (the comb filter's own voicing decision)
        row[_SC["pitch_hz"]] = info.pitch_hz if info.voicing >= VOICING_THRESHOLD else 0.0
        row[_SC["voicing"]] = info.voicing
        row[_SC["speech_presence"]] = info.speech_presence
        row[_SC["processing_us"]] = info.processing_us
        row[_SC["bypass"]] = 1.0 if (self.denoiser is not None and self.denoiser.bypass) else 0.0
        row[_SC["silent"]] = 1.0 if info.silent else 0.0
        # levels are filled from the time-domain blocks in _telemetry_block
        row[_SC["input_db"]] = self._level_in
        row[_SC["output_db"]] = self._level_out
        tel.scalars.commit()

    _level_in = SPECTRUM_FLOOR_DB
    _level_out = SPECTRUM_FLOOR_DB

    def _telemetry_block(self, x: np.ndarray, y: np.ndarray) -> None:
        pi = peak_abs(x)
        po = peak_abs(y)
        self._level_in = 20.0 * math.log10(pi) if pi > 1e-6 else SPECTRUM_FLOOR_DB
        self._level_out = 20.0 * math.log10(po) if po > 1e-6 else SPECTRUM_FLOOR_DB
        self._pos_in = ring_write(self._hist_in, self._pos_in, x)
        self._pos_out = ring_write(self._hist_out, self._pos_out, y)
        self._since_spec += x.shape[0]
        tel = self.telemetry
        while self._since_spec >= HOP_SIZE:
            # one spectrum per completed 10 ms hop, oldest first; the input one from 40 ms
            # earlier so both views line up in time
            self._since_spec -= HOP_SIZE
            back = self._since_spec
            size_in = self._hist_in.shape[0]
            start = (self._pos_in - back - WINDOW_SIZE - ALGORITHMIC_DELAY_SAMPLES) % size_in
            ring_view_copy(self._hist_in, start, self._hist_in_view)
            log_spectrum_db(self._spec_state, self._hist_in_view, 0, self._spec_in_row)
            tel.spec_in.push(self._spec_in_row)
            size_out = self._hist_out.shape[0]
            start = (self._pos_out - back - WINDOW_SIZE) % size_out
            ring_view_copy(self._hist_out, start, self._hist_out_view)
            log_spectrum_db(self._spec_state, self._hist_out_view, 0, self._spec_out_row)
            tel.spec_out.push(self._spec_out_row)
            if self.denoiser is None:
                row = tel.scalars.slot()
                row[:] = 0.0
                row[_SC["input_db"]] = self._level_in
                row[_SC["output_db"]] = self._level_out
                row[_SC["bypass"]] = 1.0
                tel.scalars.commit()

    # ------------------------------------------------------------------ statistics
    def reset_timing(self) -> None:
        """Forget the callback durations so far (the stream's start-up second)."""
        self._timing_base = self.blocks
        self.callback_s[:] = 0.0

    _timing_base = 0

    def callback_percentiles_ms(self) -> tuple[float, float]:
        n = min(self.blocks - self._timing_base, TIMING_HISTORY)
        if n == 0:
            return 0.0, 0.0
        v = self.callback_s[:n] * 1e3
        return float(np.percentile(v, 50)), float(np.percentile(v, 99))


def ring_view_copy(ring: np.ndarray, start: int, out: np.ndarray) -> None:
    """``out`` = ``len(out)`` samples of ``ring`` from ``start`` (wrapping)."""
    n = out.shape[0]
    first = min(n, ring.shape[0] - start)
    out[:first] = ring[start:start + first]
    out[first:] = ring[:n - first]


# ---------------------------------------------------------------------------- engine

@dataclass
class Diagnostics:
    """A snapshot for the status bar and the service's status line."""

    state: str = "stopped"  # stopped | running | reconnecting | error
    input_device: str = ""
    output_device: str = ""
    model: str = ""
    suppression: bool = True
    atten_limit_db: float = 100.0
    sample_rate: int = SAMPLE_RATE_HZ
    block_size: int = BLOCK_SIZE
    xruns: int = 0  # PortAudio status flags after the start-up second
    xruns_startup: int = 0
    input_overflows: int = 0
    output_underflows: int = 0
    late_callbacks: int = 0
    callback_p50_ms: float = 0.0
    callback_p99_ms: float = 0.0
    cpu_load: float = 0.0  # PortAudio's estimate, 0..1 of one core
    latency_ms: float = 0.0  # end to end: device in + algorithmic + device out
    device_latency_ms: tuple[float, float] = (0.0, 0.0)
    model_rtf: float = 0.0  # processing time / audio time
    insufficient_resources: bool = False
    errors: int = 0
    last_error: str = ""
    restarts: int = 0
    uptime_s: float = 0.0
    frames: int = 0
    warnings: list[str] = field(default_factory=list)
    #: chosen devices that are missing, so the sound server's default plays their part:
    #: "", "input", "output" or "input and output"
    fallback: str = ""
    #: False while the suppressor is being prepared (first start: its kernels compile in
    #: the background and the input passes through, aligned)
    suppressor_ready: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def cpu_share(self) -> float:
        """Share of one core the audio processing takes (0..1): PortAudio's load, or the
        processing time per audio time where that is higher (the paced demo with no output
        has no PortAudio stream to measure). What the status line and the window show."""
        return max(self.cpu_load, self.model_rtf)

    def status_line(self) -> str:
        state = self.state
        if state == "running" and not self.suppressor_ready:
            state = "running (preparing the suppressor, first start only: passing through)"
        return (f"{state}: in={self.input_device or 'default'} "
                f"out={self.output_device or 'default'} "
                f"suppression={'on' if self.suppression else 'off'} "
                f"limit={self.atten_limit_db:g}dB latency={self.latency_ms:.0f}ms "
                f"cb p50/p99={self.callback_p50_ms:.2f}/{self.callback_p99_ms:.2f}ms "
                f"cpu={100 * self.cpu_share:.1f}% rtf={self.model_rtf:.3f} xruns={self.xruns} "
                f"errors={self.errors}" + (" INSUFFICIENT-RESOURCES"
                                          if self.insufficient_resources else "")
                + (f" MISSING-{self.fallback.upper().replace(' ', '-')}-DEVICE(using default)"
                   if self.fallback else ""))


def _sd():
    import sounddevice as sd  # imported lazily: dsp/ and the offline CLI never need it

    return sd


class Engine:
    """Devices + stream + supervisor around an :class:`EngineCore`.

    ``input_device``: "" (default), :data:`DEMO_DEVICE`, a PulseAudio/PipeWire source name
    (routed through PortAudio's ``pulse`` device), or a PortAudio device name/index.
    ``output_device``: "" (default), :data:`NULL_DEVICE`, a sink name, or a PortAudio device.
    ``on_status``: optional callable(Diagnostics) called by the supervisor about once a second.
    """

    def __init__(self, model=None, *, input_device: str = "", output_device: str = "",
                 atten_limit_db: float | None = None, suppression: bool | None = None,
                 use_comb: bool | None = None, use_postfilter: bool | None = None,
                 use_decay_cap: bool | None = None, latency_ms: float | None = None,
                 telemetry: Telemetry | None = None,
                 on_status: Callable[[Diagnostics], None] | None = None,
                 prepare_in_background: bool = False) -> None:
        (latency_ms,) = or_defaults(latency_ms=latency_ms)
        self.core = EngineCore(model, atten_limit_db=atten_limit_db, suppression=suppression,
                               use_comb=use_comb, use_postfilter=use_postfilter,
                               use_decay_cap=use_decay_cap, telemetry=telemetry,
                               prepare_in_background=prepare_in_background)
        self.input_device = input_device
        self.output_device = output_device
        self.latency_ms = latency_ms
        self.on_status = on_status
        self._stream = None
        self._pacer: threading.Thread | None = None
        self._pacer_stop = threading.Event()
        self._lock = threading.RLock()  # control-side only; never taken by the callback
        self._supervisor: threading.Thread | None = None
        self._stop = threading.Event()
        self._state = "stopped"
        self._demo: np.ndarray | None = None
        self._demo_pos = 0
        self._demo_block = np.zeros((MAX_BLOCK, 1), dtype=np.float32)
        self._last_callback = 0.0
        self._stream_started = 0.0
        self._callbacks_since_open = 0
        self._timing_clean = False
        # "listen to myself": a second output stream fed from an SPSC ring of the output
        self.monitor_device = ""
        self._monitor = False
        self._monitor_request = False  # what the user asked for; applied under the lock
        self._mon_stream = None
        self._mon_ring = np.zeros(MONITOR_RING, dtype=np.float64)
        self._mon_written = np.zeros(1, dtype=np.int64)  # audio thread only
        self._mon_read = np.zeros(1, dtype=np.int64)  # monitor callback only
        self._started_at = 0.0
        self.restarts = 0
        self.xruns = 0
        self.xruns_startup = 0
        self.input_overflows = 0
        self.output_underflows = 0
        self.late_callbacks = 0
        self._io_latency_s = np.zeros(IO_LATENCY_HISTORY)  # seconds, ring of recent callbacks
        self._io_latency_n = 0  # samples written since the stream opened
        self.warnings: list[str] = []
        self._token = f"{os.getpid()}-{id(self):x}"
        self._routed = ("", "")
        self._pulse = None  # supervisor's pulsectl connection (lazy)
        self._last_route_check = 0.0
        # PULSE_SOURCE / PULSE_SINK whose chosen device vanished: left out when opening, so
        # the stream runs on the server's default until the device is back
        self._gone: set[str] = set()
        self._reconnect_tries = 0

    # ------------------------------------------------------------------ controls
    @property
    def telemetry(self) -> Telemetry:
        return self.core.telemetry

    @property
    def suppression(self) -> bool:
        return self.core.suppression

    @suppression.setter
    def suppression(self, on: bool) -> None:
        self.core.suppression = on

    @property
    def atten_limit_db(self) -> float:
        return self.core.atten_limit_db

    @atten_limit_db.setter
    def atten_limit_db(self, value: float) -> None:
        self.core.atten_limit_db = value

    def set_stage(self, name: str, on: bool) -> None:
        self.core.set_stage(name, on)

    @property
    def monitor(self) -> bool:
        """"Listen to myself": also play the processed voice on ``monitor_device`` (the
        user's speakers while the main output is the virtual microphone)."""
        return self._monitor_request

    @monitor.setter
    def monitor(self, on: bool) -> None:
        """Never blocks the caller (the window's thread): while the supervisor holds the
        engine lock (reopening a stream can take seconds) the request waits for its next
        tick (0.1 s), where the supervisor applies it."""
        self._monitor_request = bool(on)
        if self._lock.acquire(blocking=False):
            try:
                self._apply_monitor()
            finally:
                self._lock.release()

    def _apply_monitor(self) -> None:
        """Open or close the monitor stream as requested; called with the lock held."""
        on = self._monitor_request
        if on == self._monitor:
            return
        if on:
            self._mon_read[0] = self._mon_written[0]
            self._monitor = True
            if self._state != "stopped":
                self._open_monitor()
        else:
            self._monitor = False
            self._close_monitor()

    def _open_monitor(self) -> None:
        sd = _sd()
        try:
            dev, env = self._pa_device(self.monitor_device, "output")
            self._mon_stream = self._open_with_env(env, lambda: sd.OutputStream(
                device=dev, samplerate=SAMPLE_RATE_HZ, blocksize=BLOCK_SIZE, channels=1,
                dtype="float32", latency=self.latency_ms / 1000.0,
                callback=self._monitor_callback))
            self._mon_stream.start()
        except Exception as exc:  # noqa: BLE001 - the main path keeps running
            self._mon_stream = None
            self.warnings.append(f"listen-to-myself unavailable: {exc}")
            log.warning("listen-to-myself output failed: %s", exc)

    def _close_monitor(self) -> None:
        st, self._mon_stream = self._mon_stream, None
        if st is not None:
            try:
                st.abort(ignore_errors=True)
                st.close(ignore_errors=True)
            except Exception:  # noqa: BLE001
                pass

    def _monitor_callback(self, outdata, frames, time_info, status) -> None:
        r = self._mon_read[0]
        avail = self._mon_written[0] - r
        if avail > MONITOR_MAX_LAG:  # fell behind (clock drift, start-up): catch up
            r = self._mon_written[0] - MONITOR_TARGET_LAG
            avail = MONITOR_TARGET_LAG
        m = min(frames, avail)
        start = r % MONITOR_RING
        first = min(m, MONITOR_RING - start)
        outdata[:first, 0] = self._mon_ring[start:start + first]
        outdata[first:m, 0] = self._mon_ring[:m - first]
        outdata[m:, 0] = 0.0  # nothing new yet: silence on the monitor only
        self._mon_read[0] = r + m

    def set_devices(self, input_device: str | None = None,
                    output_device: str | None = None) -> None:
        """Switch devices live: the stream is reopened, the Denoiser keeps running."""
        with self._lock:
            if input_device is not None:
                self.input_device = input_device
            if output_device is not None:
                self.output_device = output_device
            self._gone = set()  # a new choice: try it as it is
            if self._state != "stopped":
                self._close_stream()
                self._open_stream()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "Engine":
        with self._lock:
            if self._state != "stopped":
                return self
            self._stop.clear()
            self._started_at = time.monotonic()
            self._open_stream()
            self._supervisor = threading.Thread(target=self._supervise, name="percepnet-supervisor",
                                                daemon=True)
            self._supervisor.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        sup = self._supervisor
        if sup is not None and sup is not threading.current_thread():
            sup.join(timeout=3.0)
        with self._lock:
            self._close_stream()
            self._state = "stopped"
        self._drop_pulse()

    close = stop

    def __enter__(self) -> "Engine":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._state == "running"

    # ------------------------------------------------------------------ streams
    def _uses_demo(self) -> bool:
        return self.input_device == DEMO_DEVICE

    def _open_stream(self) -> None:
        """Open and start the stream for the current devices; on failure the state is
        'reconnecting' and the supervisor retries."""
        self._callbacks_since_open = 0
        self._stream_started = time.monotonic()
        self._timing_clean = False
        # which devices the sound server routes (looked up once per open, not per check)
        self._routed = self._pulse_names()
        try:
            if self._uses_demo():
                if self._demo is None:
                    self._demo = demo_clip()
                if self.output_device == NULL_DEVICE:
                    self._start_pacer()
                else:
                    self._stream = self._make_output_stream()
                    self._stream.start()
            else:
                self._io_latency_n = 0  # a new stream has new buffers
                self._stream = self._make_duplex_stream()
                self._stream.start()
            now = time.monotonic()
            self._stream_started = now
            self._last_callback = now
            self._state = "running"
            if self._monitor and self._mon_stream is None:
                self._open_monitor()
        except Exception as exc:  # noqa: BLE001 - reported, retried by the supervisor
            self._state = "reconnecting"
            self.core.last_error = f"cannot open audio device: {type(exc).__name__}: {exc}"
            log.warning("%s", self.core.last_error)
            self._close_stream()
            # A chosen sound-server device that does not exist (unplugged before start, or a
            # stale config) must not leave the audio path dead: run on the server's default
            # and move to the chosen device when it appears (the supervisor's route check).
            missing = self._missing_routed() - self._gone
            if missing:
                self._gone |= missing
                src, snk = self._routed
                names = [n for n, var in ((src, "PULSE_SOURCE"), (snk, "PULSE_SINK"))
                         if var in missing]
                self.core.last_error = (f"{' and '.join(names)} not found on the sound server; "
                                        "using its default until it appears")
                log.warning("%s", self.core.last_error)
                self._open_stream()

    def _pulse_connection(self):
        """The supervisor's pulsectl connection (opened lazily), or None if the server is
        unreachable."""
        try:
            if self._pulse is None:
                self._pulse = pulse_client("percepnet-supervisor")
            return self._pulse
        except Exception:  # noqa: BLE001
            self._drop_pulse()
            return None

    def _drop_pulse(self) -> None:
        if self._pulse is not None:
            try:
                self._pulse.close()
            except Exception:  # noqa: BLE001
                pass
        self._pulse = None

    def _missing_routed(self) -> set[str]:
        """PULSE_SOURCE / PULSE_SINK whose chosen device the sound server does not have."""
        src, snk = self._routed
        p = self._pulse_connection() if (src or snk) else None
        if p is None:
            return set()
        try:
            missing = set()
            if src and src not in {d.name for d in p.source_list()}:
                missing.add("PULSE_SOURCE")
            if snk and snk not in {d.name for d in p.sink_list()}:
                missing.add("PULSE_SINK")
            return missing
        except Exception:  # noqa: BLE001
            self._drop_pulse()
            return set()

    def _close_stream(self) -> None:
        self._stop_pacer()
        self._close_monitor()
        st, self._stream = self._stream, None
        if st is not None:
            try:
                st.abort(ignore_errors=True)
                st.close(ignore_errors=True)
            except Exception:  # noqa: BLE001
                pass

    def _pa_device(self, name: str, kind: str) -> tuple[Any, dict[str, str]]:
        """(PortAudio device, env for libpulse) for a device setting."""
        sd = _sd()
        if name in ("", None):
            return None, {}
        try:
            index = int(name)
            return index, {}
        except ValueError:
            pass
        names = [d["name"] for d in sd.query_devices()]
        if name in names:
            return name, {}
        # anything else is a PulseAudio / PipeWire source or sink name, routed through the
        # ALSA 'pulse' device with libpulse's PULSE_SOURCE / PULSE_SINK (read at open time)
        var = "PULSE_SOURCE" if kind == "input" else "PULSE_SINK"
        dev = "pulse" if "pulse" in names else None
        return dev, {var: name}

    def _open_with_env(self, env: dict[str, str], factory):
        # tag our streams so the supervisor can find them on the sound server
        tagged = {**{k: v for k, v in env.items() if k not in self._gone},
                  "PULSE_PROP": (f"application.name=PercepNet media.role=phone "
                                 f"percepnet.stream={self._token}")}
        with routed_env(tagged, clear=("PULSE_SOURCE", "PULSE_SINK")):
            return factory()

    def _make_duplex_stream(self):
        sd = _sd()
        din, env_in = self._pa_device(self.input_device, "input")
        dout, env_out = self._pa_device(self.output_device, "output")
        in_ch = self._channels(din, "input")
        out_ch = self._channels(dout, "output")
        return self._open_with_env({**env_in, **env_out}, lambda: sd.Stream(
            device=(din, dout), samplerate=SAMPLE_RATE_HZ, blocksize=BLOCK_SIZE,
            channels=(in_ch, out_ch), dtype="float32", latency=self.latency_ms / 1000.0,
            callback=self._callback, finished_callback=None))

    def _make_output_stream(self):
        sd = _sd()
        dout, env_out = self._pa_device(self.output_device, "output")
        out_ch = self._channels(dout, "output")
        return self._open_with_env(env_out, lambda: sd.OutputStream(
            device=dout, samplerate=SAMPLE_RATE_HZ, blocksize=BLOCK_SIZE, channels=out_ch,
            dtype="float32", latency=self.latency_ms / 1000.0, callback=self._demo_callback))

    @staticmethod
    def _channels(device, kind: str) -> int:
        """Always 1 (mono): every device we open takes mono; a failed query also gives 1."""
        sd = _sd()
        try:
            info = sd.query_devices(device, kind)
            avail = int(info[f"max_{kind}_channels"])
        except Exception:  # noqa: BLE001
            return 1
        return 1 if avail >= 1 else max(avail, 1)

    # ------------------------------------------------------------------ callbacks
    def _note_status(self, status) -> None:
        if not status:
            return
        if time.monotonic() - self._stream_started < STARTUP_GRACE_S:
            self.xruns_startup += 1
            return
        self.xruns += 1
        if status.input_overflow:
            self.input_overflows += 1
        if status.output_underflow:
            self.output_underflows += 1

    def _after_block(self, frames: int, t_start: float) -> None:
        now = time.monotonic()
        self._last_callback = now
        self._callbacks_since_open += 1
        if not self._timing_clean and now - self._stream_started > STARTUP_GRACE_S:
            self._timing_clean = True
            self.core.reset_timing()  # start-up callbacks do not count toward p50/p99
        if (time.perf_counter() - t_start) > LATE_FRACTION * frames / SAMPLE_RATE_HZ \
                and now - self._stream_started > STARTUP_GRACE_S:
            self.late_callbacks += 1

    def _feed_monitor(self, frames: int) -> None:
        if self._monitor:
            w = self._mon_written[0]
            ring_write(self._mon_ring, w % MONITOR_RING, self.core._out[:frames])
            self._mon_written[0] = w + frames

    def _callback(self, indata, outdata, frames, time_info, status) -> None:
        t0 = time.perf_counter()
        self._note_status(status)
        self.core.process_block(indata, outdata)
        self._feed_monitor(frames)
        try:
            io = time_info.outputBufferDacTime - time_info.inputBufferAdcTime
            if 0.0 < io < 2.0:  # some hosts report zero timestamps
                n = self._io_latency_n
                self._io_latency_s[n % IO_LATENCY_HISTORY] = io
                self._io_latency_n = n + 1
        except Exception:  # noqa: BLE001
            pass
        self._after_block(frames, t0)

    def _next_demo_block(self, frames: int) -> np.ndarray:
        buf = self._demo_block[:frames]
        clip = self._demo
        pos = self._demo_pos
        filled = 0
        while filled < frames:
            take = min(frames - filled, clip.shape[0] - pos)
            buf[filled:filled + take, 0] = clip[pos:pos + take]
            filled += take
            pos = (pos + take) % clip.shape[0]
        self._demo_pos = pos
        return buf

    def _demo_callback(self, outdata, frames, time_info, status) -> None:
        t0 = time.perf_counter()
        self._note_status(status)
        self.core.process_block(self._next_demo_block(frames), outdata)
        self._feed_monitor(frames)
        self._after_block(frames, t0)

    # ------------------------------------------------------------------ null output
    def _start_pacer(self) -> None:
        self._pacer_stop.clear()
        self._pacer = threading.Thread(target=self._pace, name="percepnet-null-output", daemon=True)
        self._pacer.start()

    def _stop_pacer(self) -> None:
        p, self._pacer = self._pacer, None
        if p is not None:
            self._pacer_stop.set()
            if p is not threading.current_thread():
                p.join(timeout=2.0)

    def _pace(self) -> None:
        out = np.zeros((BLOCK_SIZE, 1), dtype=np.float32)
        period = BLOCK_SIZE / SAMPLE_RATE_HZ
        next_t = time.monotonic()
        while not self._pacer_stop.is_set():
            t0 = time.perf_counter()
            self.core.process_block(self._next_demo_block(BLOCK_SIZE), out)
            self._after_block(BLOCK_SIZE, t0)
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                self._pacer_stop.wait(delay)
            elif delay < -0.5:  # fell far behind (machine suspended): resynchronise
                next_t = time.monotonic()

    # ------------------------------------------------------------------ supervisor
    def _supervise(self) -> None:
        last_status = 0.0
        while not self._stop.wait(0.1):
            now = time.monotonic()
            with self._lock:
                if self._monitor_request != self._monitor:
                    self._apply_monitor()
                if self._state == "running":
                    st = self._stream
                    if self._callbacks_since_open < STARTUP_BLOCKS:
                        stalled = now - self._last_callback > FIRST_CALLBACK_TIMEOUT_S
                    else:
                        stalled = now - self._last_callback > STALL_TIMEOUT_S
                    dead = st is not None and (not st.active or stalled)
                    if dead:
                        log.warning("audio stream stopped (device gone or server restarted: "
                                    "%s); re-initialising",
                                    "stream inactive" if not st.active else
                                    f"no callback for {now - self._last_callback:.2f} s after "
                                    f"{self._callbacks_since_open} callbacks")
                        src, snk = self._routed
                        self._reinit(rescan=not (src or snk))
                    elif now - self._last_route_check >= 0.5:
                        self._last_route_check = now
                        route, gone = self._route_state()
                        if route == "back":
                            log.info("the chosen device is back; moving the stream to it")
                            self._gone = set()
                            self._reinit(rescan=False)
                        elif route == "gone" and not gone <= self._gone:
                            # Reopen on the server's default (the vanished device left out):
                            # a capture stream the server moved onto an idle source can
                            # replay stale buffer contents (the unplugged mic's last audio)
                            # for seconds, until the ALSA layer happens to recover.
                            log.warning("the chosen device disappeared; using the sound "
                                        "server's default until it is back")
                            self._gone |= gone
                            self._reinit(rescan=False)
                elif self._state == "reconnecting":
                    # a routed (sound-server) device only needs reopening; a PortAudio one
                    # needs a rescan to be seen again
                    src, snk = self._routed
                    self._reinit(rescan=not (src or snk) or self._reconnect_tries % 5 == 4)
                    self._reconnect_tries += 1
            if self.on_status is not None and now - last_status >= 1.0:
                last_status = now
                try:
                    self.on_status(self.diagnostics())
                except Exception:  # noqa: BLE001
                    log.exception("status callback failed")

    def _pulse_names(self) -> tuple[str, str]:
        """(source, sink) names routed through libpulse, "" where not."""
        def name(dev: str, kind: str) -> str:
            if dev in ("", DEMO_DEVICE, NULL_DEVICE):
                return ""
            try:
                _, env = self._pa_device(dev, kind)
            except Exception:  # noqa: BLE001
                return ""
            return env.get("PULSE_SOURCE" if kind == "input" else "PULSE_SINK", "")
        src = "" if self._uses_demo() else name(self.input_device, "input")
        return src, name(self.output_device, "output")

    def _is_ours(self, proplist: dict[str, str]) -> bool:
        """A server stream is this engine's when it carries our token *and* comes from this
        process (libpulse and pipewire-pulse record the client's pid): a child process that
        inherited the token can never pass for our capture stream."""
        pid = proplist.get("application.process.id")
        return (proplist.get("percepnet.stream") == self._token
                and (pid is None or pid == str(os.getpid())))

    def _route_state(self) -> tuple[str, set[str]]:
        """Where the sound server has our stream against the chosen source/sink: ("ok", {})
        (on it, or not routed), ("gone", vars) (a chosen device disappeared: vars are its
        PULSE_SOURCE / PULSE_SINK) or ("back", {}) (we are elsewhere and the chosen device
        exists again)."""
        src, snk = self._routed
        if not src and not snk:
            return "ok", set()
        gone: set[str] = set()
        p = self._pulse_connection()
        if p is None:
            return "ok", set()
        try:
            for name, streams, devices, attr, var in (
                    (src, p.source_output_list, p.source_list, "source", "PULSE_SOURCE"),
                    (snk, p.sink_input_list, p.sink_list, "sink", "PULSE_SINK")):
                if not name:
                    continue
                ours = [st for st in streams() if self._is_ours(st.proplist)]
                want = [d for d in devices() if d.name == name]
                if not want:
                    gone.add(var)
                elif var in self._gone or (ours and getattr(ours[0], attr) != want[0].index):
                    return "back", set()
        except Exception:  # noqa: BLE001 - server gone: the stall check handles it
            self._drop_pulse()
            return "ok", set()
        return ("gone", gone) if gone else ("ok", set())

    def _reinit(self, rescan: bool = True) -> None:
        """Close the stream, re-scan devices (PortAudio terminate/initialize, unless the
        device is routed by the sound server and only has to be reopened) and reopen."""
        self._close_stream()
        self._state = "reconnecting"
        sd = _sd()
        if rescan:
            try:
                sd._terminate()
                sd._initialize()
            except Exception as exc:  # noqa: BLE001
                self.core.last_error = f"PortAudio re-initialisation failed: {exc}"
                time.sleep(0.3)
                return
        self._open_stream()
        if self._state == "running":
            self._reconnect_tries = 0
            self.restarts += 1
            log.info("audio stream running again (restart %d)", self.restarts)
        else:
            time.sleep(0.3)

    # ------------------------------------------------------------------ diagnostics
    def diagnostics(self) -> Diagnostics:
        core = self.core
        p50, p99 = core.callback_percentiles_ms()
        st = self._stream
        cpu = 0.0
        dev_lat = (0.0, 0.0)
        if st is not None:
            try:
                cpu = float(st.cpu_load)
                lat = st.latency
                dev_lat = (float(lat[0]), float(lat[1])) if isinstance(lat, tuple) \
                    else (0.0, float(lat))
            except Exception:  # noqa: BLE001
                pass
        n = min(self._io_latency_n, IO_LATENCY_HISTORY)
        io = float(np.median(self._io_latency_s[:n])) if n else sum(dev_lat)
        audio_s = core.samples / SAMPLE_RATE_HZ
        rtf = core.processing_s_total / audio_s if audio_s > 0 else 0.0
        recent_xruns = self.xruns
        insufficient = (p99 > LATE_FRACTION * 1000.0 * BLOCK_SIZE / SAMPLE_RATE_HZ
                        or self.late_callbacks > 10 or rtf > 0.5)
        return Diagnostics(
            state=self._state, input_device=self.input_device, output_device=self.output_device,
            model=core.model_name, suppression=core.suppression,
            atten_limit_db=core.atten_limit_db, xruns=recent_xruns,
            xruns_startup=self.xruns_startup, input_overflows=self.input_overflows,
            output_underflows=self.output_underflows, late_callbacks=self.late_callbacks,
            callback_p50_ms=p50, callback_p99_ms=p99, cpu_load=cpu,
            latency_ms=1000.0 * io + ALGORITHMIC_DELAY_MS,
            device_latency_ms=(1000.0 * dev_lat[0], 1000.0 * dev_lat[1]), model_rtf=rtf,
            insufficient_resources=insufficient, errors=core.errors,
            last_error=core.last_error or core.prepare_error, suppressor_ready=core.ready,
            restarts=self.restarts,
            uptime_s=time.monotonic() - self._started_at if self._started_at else 0.0,
            frames=core.blocks, warnings=list(self.warnings),
            fallback=" and ".join(kind for kind, var in (("input", "PULSE_SOURCE"),
                                                          ("output", "PULSE_SINK"))
                                  if var in self._gone))
