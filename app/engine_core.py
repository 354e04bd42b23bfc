"""The engine's per-block work, with no device in sight: mixdown, the Denoiser, fan-out,
telemetry rows (spectra, gains, pitch, levels) and timing statistics.

:meth:`EngineCore.process_block` is what the PortAudio callback calls. Real-time contract:
it allocates no arrays, takes no lock, logs nothing and never touches Qt; on any error it
passes the input through, delayed by the suppressor's 40 ms so the timing does not jump, and
records the error instead of going silent. Every driver (the PortAudio callback, the null
output's pacing thread, tests, benchmarks) uses it the same way.
"""
from __future__ import annotations

import logging
import math
import threading
import time

import numpy as np

from percepnet.dsp.blockops import fan_out, mixdown, peak_abs, ring_write
from percepnet.dsp.constants import (ALGORITHMIC_DELAY_SAMPLES, HOP_SIZE, N_BINS,
                                     WINDOW_SIZE)
from percepnet.dsp.denoiser import Denoiser, FrameInfo
from percepnet.dsp.pitch import VOICING_THRESHOLD
from percepnet.dsp.spectrum import SPECTRUM_FLOOR_DB, log_spectrum_db, make_spectrum_state

from .settings import STAGE_PARAMS, or_defaults
from .telemetry import SCALAR_FIELDS, Telemetry

__all__ = ["EngineCore", "BLOCK_SIZE", "MAX_BLOCK", "TIMING_HISTORY", "ERRORS_BEFORE_RESET",
           "ring_view_copy"]

log = logging.getLogger("percepnet.engine")

#: The engine's native block: one 10 ms hop at 48 kHz.
BLOCK_SIZE = HOP_SIZE
#: Most samples a callback may bring (PortAudio may deliver more than asked for).
MAX_BLOCK = 8192
#: Callback-duration history for p50/p99: 1000 callbacks = 10 s at 10 ms blocks.
TIMING_HISTORY = 1000
#: Consecutive failed blocks (0.1 s at 10 ms) after which the Denoiser's state is cleared:
#: a state poisoned by one bad input (a value no finite check caught) would otherwise fail
#: every block after it and leave the user on pass-through for good.
ERRORS_BEFORE_RESET = 10

_SC = {name: i for i, name in enumerate(SCALAR_FIELDS)}


class EngineCore:
    """Per-block processing shared by every driver (PortAudio callback, pacing thread,
    tests). Controls are plain attributes, safe to set from any thread between blocks."""

    def __init__(self, model=None, *, atten_limit_db: float | None = None,
                 suppression: bool | None = None, use_comb: bool | None = None,
                 use_postfilter: bool | None = None, use_decay_cap: bool | None = None,
                 telemetry: Telemetry | None = None,
                 prepare_in_background: bool = False, spectra: bool = True) -> None:
        """Controls left as None take the product default (``settings.PARAMS``).

        ``spectra``: compute the input and output spectra the window's spectrograms show
        (two 481-bin spectra per 10 ms hop: 56-71 µs a block on a live stream, 0.6-0.7 % of
        a core); the headless service, which has no window, turns them off. Every other
        telemetry row (band gains, pitch, levels) is written either way.

        ``prepare_in_background``: build the Denoiser and compile its kernels on a worker
        thread (about 30 s on an empty numba cache, 1-2 s from the cache) while
        :meth:`process_block` already passes the input through, delayed by the suppressor's
        40 ms so the switch-over keeps the timing; :attr:`ready` turns True when the
        suppressor takes over (one reference assignment: the callback takes no lock)."""
        atten_limit_db, suppression, use_comb, use_postfilter, use_decay_cap = or_defaults(
            atten_limit_db=atten_limit_db, suppression=suppression, use_comb=use_comb,
            use_postfilter=use_postfilter, use_decay_cap=use_decay_cap)
        self.telemetry = telemetry or Telemetry()
        self.spectra = spectra
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
        self.denoiser_resets = 0
        #: NaN/Inf samples replaced by zeros on the way in or out (shown in the diagnostics)
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
            self._error_run = 0
        except Exception as exc:  # noqa: BLE001 - the audio path must never go silent
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            try:  # the input, aligned with what the suppressor outputs (40 ms)
                outdata[:] = raw[:, None]
            except Exception:  # noqa: BLE001
                outdata[:] = 0.0
            self._after_error()

    _error_run = 0  # consecutive failed blocks

    def _after_error(self) -> None:
        """After :data:`ERRORS_BEFORE_RESET` failed blocks in a row, clear the Denoiser's
        state (in place: no allocation) so a poisoned state cannot keep it failing."""
        self._error_run += 1
        den = self.denoiser
        if den is not None and self._error_run >= ERRORS_BEFORE_RESET:
            self._error_run = 0
            self.denoiser_resets += 1
            try:
                den.reset()
            except Exception:  # noqa: BLE001 - still passing through; counted above
                pass

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

    @property
    def input_level_db(self) -> float:
        """Peak of the last input block (dBFS; the spectrum floor for silence)."""
        return self._level_in

    def _telemetry_block(self, x: np.ndarray, y: np.ndarray) -> None:
        pi = peak_abs(x)
        po = peak_abs(y)
        self._level_in = 20.0 * math.log10(pi) if pi > 1e-6 else SPECTRUM_FLOOR_DB
        self._level_out = 20.0 * math.log10(po) if po > 1e-6 else SPECTRUM_FLOOR_DB
        spectra = self.spectra
        if spectra:
            self._pos_in = ring_write(self._hist_in, self._pos_in, x)
            self._pos_out = ring_write(self._hist_out, self._pos_out, y)
        self._since_spec += x.shape[0]
        tel = self.telemetry
        while self._since_spec >= HOP_SIZE:
            self._since_spec -= HOP_SIZE
            if spectra:
                self._push_spectra(tel, self._since_spec)
            if self.denoiser is None:
                row = tel.scalars.slot()
                row[:] = 0.0
                row[_SC["input_db"]] = self._level_in
                row[_SC["output_db"]] = self._level_out
                row[_SC["bypass"]] = 1.0
                tel.scalars.commit()

    def _push_spectra(self, tel: Telemetry, back: int) -> None:
        """One input and one output spectrum for the hop that ended ``back`` samples before
        the newest; the input one from 40 ms earlier so both views line up in time."""
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
