"""The real-time audio engine: the sounddevice stream(s) around an :class:`EngineCore`.

:class:`Engine` owns devices and streams (48 kHz, 480-sample blocks), the live controls
(suppression, attenuation limit, stage toggles, device switching), a supervisor thread that
detects a dead or stalled stream (device unplugged, sound server restarted) and reopens it
until the device is back, keeps the end-to-end delay from creeping up (a latency re-sync),
and a :class:`Diagnostics` snapshot. Its parts live beside it: the per-block work in
``engine_core``, the audio-thread callbacks in ``engine_callbacks``, the routing on the sound
server in ``stream_routing``, "listen to myself" in ``monitor_output``, the snapshot in
``diagnostics``, the demo clip in ``demo``, the pipe-source microphone's FIFO in ``mic_pipe``.

Input sources: a device (``input_device``: a PulseAudio/PipeWire source name, a PortAudio
device name, or "" for the default) or the bundled demo clip (``input_device = "demo"``),
looped, played through the output device; with no output device either (or into the
microphone's FIFO), a pacing thread stands in for the sound card ("null output") so the
window still shows the suppressor. Output "pipe:<fifo>" (the pipe-source virtual microphone)
opens no output stream: the input stream's callback writes each block into the FIFO.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import numpy as np

from percepnet.dsp.constants import ALGORITHMIC_DELAY_MS, SAMPLE_RATE_HZ

from .demo import DemoSource, demo_clip
from .devices import DEMO_DEVICE, NULL_DEVICE
from .diagnostics import Diagnostics
from .engine_callbacks import LATE_FRACTION, AudioThread
from .engine_core import BLOCK_SIZE, MAX_BLOCK, TIMING_HISTORY, EngineCore
from .engine_supervisor import Supervisor
from .latency_tracker import LatencyTracker
from .mic_pipe import MicPipe, pipe_path
from .thread_priority import raise_priority, thread_ids
from .monitor_output import MonitorOutput
from .rate_adapter import RateAdapter, choose_device_rate
from .settings import or_defaults
from .stream_routing import StreamRouter, close_quietly, rescan_portaudio, sounddevice
from .telemetry import Telemetry

__all__ = ["EngineCore", "Engine", "Diagnostics", "DEMO_DEVICE", "NULL_DEVICE", "BLOCK_SIZE",
           "TIMING_HISTORY", "demo_clip"]

log = logging.getLogger("percepnet.engine")

class Engine(AudioThread):
    """Devices + stream + supervisor around an :class:`EngineCore`.

    ``input_device``: "" (default), :data:`DEMO_DEVICE`, a PulseAudio/PipeWire source name
    (routed through PortAudio's ``pulse`` device), or a PortAudio device name/index.
    ``output_device``: "" (default), :data:`NULL_DEVICE`, a sink name, a PortAudio device, or
    "pipe:<fifo>" (a pipe-source virtual microphone: no output stream, each block is written
    into the FIFO by :class:`mic_pipe.MicPipe`).
    ``on_status``: optional callable(Diagnostics) called by the supervisor about once a second.
    ``spectra``: compute the spectra the window shows (see :class:`EngineCore`).
    """

    def __init__(self, model=None, *, input_device: str = "", output_device: str = "",
                 atten_limit_db: float | None = None, suppression: bool | None = None,
                 use_comb: bool | None = None, use_postfilter: bool | None = None,
                 use_decay_cap: bool | None = None, latency_ms: float | None = None,
                 device_rate_hz: int | None = None, telemetry: Telemetry | None = None,
                 on_status: Callable[[Diagnostics], None] | None = None,
                 prepare_in_background: bool = False, spectra: bool = True) -> None:
        latency_ms, device_rate_hz = or_defaults(latency_ms=latency_ms,
                                                 device_rate_hz=device_rate_hz)
        self.core = EngineCore(model, atten_limit_db=atten_limit_db, suppression=suppression,
                               use_comb=use_comb, use_postfilter=use_postfilter,
                               use_decay_cap=use_decay_cap, telemetry=telemetry,
                               prepare_in_background=prepare_in_background, spectra=spectra)
        self.input_device = input_device
        self.output_device = output_device
        self.latency_ms = latency_ms
        #: the rate devices are opened at: 0 = 48 kHz where they take it, else theirs
        self.device_rate_hz = device_rate_hz
        #: the duplex stream's rate; another than 48 kHz runs the core behind an adapter
        self._rate = SAMPLE_RATE_HZ
        self._adapter: RateAdapter | None = None
        self._pipe: MicPipe | None = None  # the FIFO written instead of an output stream
        #: what raising the stream's threads' priority did (thread_priority.raise_priority)
        self.audio_priority = "not raised: no stream yet"
        # the core's output buffer there (MAX_BLOCK covers any stream block, adapted or not)
        self._pipe_out = np.zeros((MAX_BLOCK, 1), dtype=np.float32)
        self.on_status = on_status
        self._stream = None
        self._pacer: threading.Thread | None = None
        self._pacer_stop = threading.Event()
        self._lock = threading.RLock()  # control-side only; never taken by the callback
        self._supervisor: Supervisor | None = None
        self._state = "stopped"
        self._demo = DemoSource(MAX_BLOCK)
        self._last_callback = 0.0
        self._stream_started = 0.0
        self._callbacks_since_open = 0
        self._timing_clean = False
        # "listen to myself": a second output stream fed from an SPSC ring of the output
        self.monitor_device = ""
        self._mon = MonitorOutput()
        self._monitor_request = False  # what the user asked for; applied under the lock
        self._router = StreamRouter(id(self))
        self._started_at = 0.0
        self.restarts = 0
        self.resyncs = 0
        self.xruns = 0
        self.xruns_startup = 0
        self.input_overflows = 0
        self.output_underflows = 0
        self.late_callbacks = 0
        self.callback_errors = 0  # errors outside the core's block processing
        self._latency = LatencyTracker()
        self.warnings: list[str] = []
        self._reconnect_tries = 0  # failed reopenings in a row

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
    def _token(self) -> str:
        """The tag our streams carry on the sound server (``percepnet.stream``)."""
        return self._router.token

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

    @property
    def _monitor(self) -> bool:
        """Whether "listen to myself" is applied (the request may still be waiting)."""
        return self._mon.enabled

    def _apply_monitor(self) -> None:
        """Open or close the monitor stream as requested; called with the lock held."""
        on = self._monitor_request
        if on == self._mon.enabled:
            return
        if on:
            self._mon.enable()
            if self._state != "stopped":
                self._open_monitor()
        else:
            self._mon.enabled = False
            self._mon.close()

    def _open_monitor(self) -> None:
        sd = sounddevice()

        def make(callback):
            dev, env = self._router.pa_device(self.monitor_device, "output")
            return self._router.open_with_env(env, lambda: sd.OutputStream(
                device=dev, samplerate=SAMPLE_RATE_HZ, blocksize=BLOCK_SIZE, channels=1,
                dtype="float32", latency=self.latency_ms / 1000.0, callback=callback))
        threads_before = thread_ids()
        warning = self._mon.open(make)
        if warning:
            self.warnings.append(warning)
        elif self._mon.stream is not None:  # its threads as the main stream's
            log.info("monitor stream threads: %s", raise_priority(thread_ids() - threads_before))

    def set_devices(self, input_device: str | None = None,
                    output_device: str | None = None) -> None:
        """Switch devices live: the stream is reopened, the Denoiser keeps running."""
        with self._lock:
            if input_device is not None:
                self.input_device = input_device
            if output_device is not None:
                self.output_device = output_device
            self._router.gone = set()  # a new choice: try it as it is
            self._latency.new_choice()
            if self._state != "stopped":
                self._close_stream()
                self._open_stream()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "Engine":
        with self._lock:
            if self._state != "stopped":
                return self
            self._started_at = time.monotonic()
            self._open_stream()
            self._supervisor = Supervisor(self)
            self._supervisor.start()
        return self

    def stop(self) -> None:
        sup = self._supervisor
        if sup is not None:
            sup.stop()
        with self._lock:
            self._close_stream()
            self._state = "stopped"
        self._router.drop()

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
        self._latency.reset()  # a new stream has new buffers
        router = self._router
        # which devices the sound server routes (looked up once per open, not per check)
        src, snk = router.update_routed("" if self._uses_demo() else self.input_device,
                                        self.output_device)
        if (src or snk) and not router.pulse_device_listed():
            log.info("PortAudio does not list the sound server yet; re-scanning devices")
            self._rescan()
            router.update_routed("" if self._uses_demo() else self.input_device,
                                 self.output_device)
        self._note_missing()
        self._rate = SAMPLE_RATE_HZ  # the demo's and the pacer's; a duplex stream sets its own
        threads_before = thread_ids()
        try:
            if self._uses_demo():
                self._demo.load()
                if self.output_device == NULL_DEVICE or pipe_path(self.output_device):
                    self._open_pipe()
                    self._start_pacer()
                else:
                    self._stream = self._make_output_stream()
                    self._stream.start()
            elif pipe_path(self.output_device):
                self._stream = self._make_pipe_stream()
                self._stream.start()
            else:
                self._stream = self._make_duplex_stream()
                self._stream.start()
            now = time.monotonic()
            self._stream_started = now
            self._last_callback = now
            self._state = "running"
            if self._stream is not None:  # its threads ahead of the browser's (thread_priority)
                self.audio_priority = raise_priority(thread_ids() - threads_before)
                log.info("audio threads: %s", self.audio_priority)
            if self._mon.enabled and self._mon.stream is None:
                self._open_monitor()
        except Exception as exc:  # noqa: BLE001 - reported, retried by the supervisor
            self._state = "reconnecting"
            self.core.last_error = f"cannot open audio device: {type(exc).__name__}: {exc}"
            log.warning("%s", self.core.last_error)
            self._close_stream()
            # a chosen device that vanished since the check above: run on the default
            if self._note_missing():
                self._open_stream()

    def _note_missing(self) -> bool:
        """A chosen sound-server device that does not exist (unplugged before start, or a
        stale config) must not leave the audio path dead: it is left out of the routing, the
        server's default plays its part, and the route check moves the stream to it when it
        appears. True if a device was newly found missing."""
        msg = self._router.take_missing()
        if msg:
            self.core.last_error = msg
            log.warning("%s", msg)
        return bool(msg)

    def _close_stream(self) -> None:
        self._stop_pacer()
        self._mon.close()
        st, self._stream = self._stream, None
        close_quietly(st)
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()

    def _make_duplex_stream(self):
        sd = sounddevice()
        din, env_in = self._router.pa_device(self.input_device, "input")
        dout, env_out = self._router.pa_device(self.output_device, "output")
        in_ch = self._channels(din, "input")
        out_ch = self._channels(dout, "output")
        # devices the sound server routes take 48 kHz (it converts); others may not
        rate = choose_device_rate(sd, None if env_in else din, None if env_out else dout,
                                  (in_ch, out_ch), self.device_rate_hz)
        self._set_rate(rate)
        block = BLOCK_SIZE if self._adapter is None else self._adapter.block_size
        return self._router.open_with_env({**env_in, **env_out}, lambda: sd.Stream(
            device=(din, dout), samplerate=rate, blocksize=block,
            channels=(in_ch, out_ch), dtype="float32", latency=self.latency_ms / 1000.0,
            callback=self._callback, finished_callback=None))

    def _make_pipe_stream(self):
        """An input-only stream whose callback writes the cleaned voice into the FIFO of a
        pipe-source microphone (opened here, primed; an error says why)."""
        sd = sounddevice()
        self._open_pipe()
        din, env_in = self._router.pa_device(self.input_device, "input")
        in_ch = self._channels(din, "input")
        rate = choose_device_rate(sd, None if env_in else din, None, (in_ch, 1),
                                  self.device_rate_hz)
        self._set_rate(rate)
        block = BLOCK_SIZE if self._adapter is None else self._adapter.block_size
        return self._router.open_with_env(env_in, lambda: sd.InputStream(
            device=din, samplerate=rate, blocksize=block, channels=in_ch, dtype="float32",
            latency=self.latency_ms / 1000.0, callback=self._pipe_callback))

    def _open_pipe(self) -> None:
        """The FIFO of a pipe-source microphone (``output_device`` "pipe:<path>"), opened and
        primed; None otherwise."""
        path = pipe_path(self.output_device)
        self._pipe = MicPipe.for_path(path) if path else None
        if self._pipe is not None:
            self._pipe.open()

    def _set_rate(self, rate: int) -> None:
        """The stream's rate; another than 48 kHz runs the core behind a rate adapter."""
        if rate == SAMPLE_RATE_HZ:
            self._adapter = None
        elif self._adapter is None or self._adapter.device_rate_hz != rate:
            self._adapter = RateAdapter(self.core, rate)  # here, never in the callback
        self._rate = rate

    def _make_output_stream(self):
        sd = sounddevice()
        dout, env_out = self._router.pa_device(self.output_device, "output")
        out_ch = self._channels(dout, "output")
        return self._router.open_with_env(env_out, lambda: sd.OutputStream(
            device=dout, samplerate=SAMPLE_RATE_HZ, blocksize=BLOCK_SIZE, channels=out_ch,
            dtype="float32", latency=self.latency_ms / 1000.0, callback=self._demo_callback))

    @staticmethod
    def _channels(device, kind: str) -> int:
        """Always 1 (mono): every device we open takes mono; a failed query also gives 1."""
        sd = sounddevice()
        try:
            info = sd.query_devices(device, kind)
            avail = int(info[f"max_{kind}_channels"])
        except Exception:  # noqa: BLE001
            return 1
        return 1 if avail >= 1 else max(avail, 1)

    def _reinit(self, rescan: bool = True, resync: bool = False) -> None:
        """Close the stream, re-scan devices (PortAudio terminate/initialize, unless the
        device is routed by the sound server and only has to be reopened) and reopen.
        ``resync``: a latency re-sync, counted apart from restarts."""
        self._close_stream()
        self._state = "reconnecting"
        if rescan and not self._rescan():
            time.sleep(0.3)
            return
        self._open_stream()
        if self._state == "running":
            self._reconnect_tries = 0
            if resync:
                self.resyncs += 1
            else:
                self.restarts += 1
                log.info("audio stream running again (restart %d)", self.restarts)
        else:
            time.sleep(0.3)

    def _rescan(self) -> bool:
        """PortAudio re-initialised (streams closed); False, the reason in ``last_error``."""
        err = rescan_portaudio()
        self.core.last_error = err or self.core.last_error
        return not err

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
        pipe = self._pipe if self._pipe is not None and self._pipe.is_open else None
        if pipe is not None and st is not None:  # input stream only; the FIFO: the output
            dev_lat = (dev_lat[1], pipe.fill_ms / 1000.0)
        measured = self._latency.median_s()  # the input's age only, for an input stream
        io = (measured + (dev_lat[1] if pipe is not None else 0.0)) if measured \
            else sum(dev_lat)
        ad = self._adapter
        audio_s = core.samples / SAMPLE_RATE_HZ
        rtf = core.processing_s_total / audio_s if audio_s > 0 else 0.0
        insufficient = (p99 > LATE_FRACTION * 1000.0 * BLOCK_SIZE / SAMPLE_RATE_HZ
                        or self.late_callbacks > 10 or rtf > 0.5)
        return Diagnostics(
            state=self._state, input_device=self.input_device, output_device=self.output_device,
            model=core.model_name, suppression=core.suppression,
            atten_limit_db=core.atten_limit_db, xruns=self.xruns,
            xruns_startup=self.xruns_startup, input_overflows=self.input_overflows,
            output_underflows=self.output_underflows, late_callbacks=self.late_callbacks,
            callback_p50_ms=p50, callback_p99_ms=p99, cpu_load=cpu,
            latency_ms=1000.0 * io + ALGORITHMIC_DELAY_MS + (ad.delay_ms if ad else 0.0),
            sample_rate=self._rate, block_size=ad.block_size if ad else BLOCK_SIZE,
            device_latency_ms=(1000.0 * dev_lat[0], 1000.0 * dev_lat[1]), model_rtf=rtf,
            insufficient_resources=insufficient,
            errors=core.errors + self.callback_errors + (pipe.errors if pipe else 0),
            last_error=(core.last_error or core.prepare_error
                        or (pipe.last_error if pipe else "")), suppressor_ready=core.ready,
            restarts=self.restarts, resyncs=self.resyncs + (pipe.resyncs if pipe else 0),
            trims=pipe.trims if pipe else 0,
            nonfinite_samples=core.nonfinite_samples, denoiser_resets=core.denoiser_resets,
            uptime_s=time.monotonic() - self._started_at if self._started_at else 0.0,
            frames=core.blocks, warnings=list(self.warnings),
            fallback=self._router.fallback(), audio_priority=self.audio_priority)
