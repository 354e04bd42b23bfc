"""Runs the 48 kHz engine core behind a device that runs at another rate (44.1 kHz sound
cards, 16 kHz headsets): the device's blocks are converted to 48 kHz, processed in 10 ms
blocks, and converted back, inside the PortAudio callback.

Per callback of ``n`` device samples: mixdown -> :class:`~percepnet.dsp.resample.Resampler`
to 48 kHz -> FIFO -> :meth:`EngineCore.process_block` on every whole 480-sample block ->
Resampler back to the device rate -> FIFO -> ``n`` samples out. With blocks of exactly 10 ms
of the device rate (441 at 44.1 kHz) each callback would turn into one core block; the engine
asks for a power of two instead (512: what sound cards and ALSA plugins take natively),
served through the FIFOs, the output delayed by one more 10 ms block of silence
(:meth:`RateAdapter._prime`).

Real-time contract of :meth:`RateAdapter.process_block`: no array allocation, no lock, no
logging; every buffer is made in the constructor, which also compiles the kernels.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from percepnet.dsp.blockops import fan_out, mixdown
from percepnet.dsp.constants import ALGORITHMIC_DELAY_MS, SAMPLE_RATE_HZ
from percepnet.dsp.resample import Resampler

from .engine_core import BLOCK_SIZE, MAX_BLOCK, EngineCore

__all__ = ["RateAdapter", "choose_device_rate", "MIN_DEVICE_RATE_HZ"]

#: Lowest device rate served: 8 kHz telephone-band headsets.
MIN_DEVICE_RATE_HZ = 8_000


@njit(cache=True, nogil=True)
def _fifo_push(fifo, count, src, n):
    """Append ``src[:n]`` to ``fifo`` holding ``count`` samples; returns the new count (what
    does not fit is dropped: the FIFOs are sized so that never happens)."""
    room = fifo.shape[0] - count
    if n > room:
        n = room
    for i in range(n):
        fifo[count + i] = src[i]
    return count + n


@njit(cache=True, nogil=True)
def _delay(line, d, x, y, n):
    """``y[:n]`` = ``x[:n]`` delayed by ``d`` samples through ``line`` (d + n or longer)."""
    for i in range(n):
        line[d + i] = x[i]
    for i in range(n):
        y[i] = line[i]
    for i in range(d):
        line[i] = line[n + i]


@njit(cache=True, nogil=True)
def _fifo_pop(fifo, count, dst, n):
    """Move the first ``n`` samples (at most ``count``) of ``fifo`` into ``dst`` and shift
    the rest down; returns how many were moved."""
    if n > count:
        n = count
    for i in range(n):
        dst[i] = fifo[i]
    for i in range(count - n):
        fifo[i] = fifo[n + i]
    return n


class RateAdapter:
    """The core behind a device at ``device_rate_hz``; blocks of up to ``MAX_BLOCK`` device
    samples a callback."""

    def __init__(self, core: EngineCore, device_rate_hz: int) -> None:
        if device_rate_hz < MIN_DEVICE_RATE_HZ:
            raise ValueError(f"device rate {device_rate_hz} Hz is below "
                             f"{MIN_DEVICE_RATE_HZ} Hz")
        self.core = core
        self.device_rate_hz = int(device_rate_hz)
        self.to_core = Resampler(self.device_rate_hz, SAMPLE_RATE_HZ, MAX_BLOCK)
        max48 = self.to_core.max_out
        self.to_device = Resampler(SAMPLE_RATE_HZ, self.device_rate_hz, max48 + BLOCK_SIZE)
        #: samples of 10 ms at the device rate (one core block's worth)
        self.hop_samples = max(1, self.device_rate_hz // 100)
        #: the stream's block: the power of two nearest 10 ms (512 at 44.1 kHz). Sound cards
        #: and ALSA plugins take such periods natively; asked for 441, PortAudio through the
        #: ALSA pulse plugin at 44.1 kHz underflowed (1-7 times per 10 s, two runs in four
        #: re-synced or recorded nothing) where 512 ran clean. The FIFOs absorb the mismatch
        #: with one 10 ms block of priming.
        self.block_size = 1 << max(0, round(math.log2(self.device_rate_hz / 100.0)))
        self.underruns = 0
        self._x = np.zeros(MAX_BLOCK)
        self._x48 = np.zeros(max48)
        self._fifo48 = np.zeros(max48 + BLOCK_SIZE)
        self._n48 = 0
        self._blk_in = np.zeros((BLOCK_SIZE, 1), dtype=np.float32)
        self._blk_out = np.zeros((BLOCK_SIZE, 1), dtype=np.float32)
        #: this callback's 48 kHz output (the monitor's feed): ``out48[:produced48]``
        self.out48 = np.zeros(max48 + BLOCK_SIZE)
        self.produced48 = 0
        self._y = np.zeros(self.to_device.max_out)
        self._fifo_dev = np.zeros(self.to_device.max_out + 2 * MAX_BLOCK)
        self._n_dev = 0
        self._y_dev = np.zeros(MAX_BLOCK)
        # the input at the device rate, as late as the processed output: what an error
        # passes through
        self._delay_samples = int(round((ALGORITHMIC_DELAY_MS + self.delay_ms) / 1000.0
                                        * self.device_rate_hz))
        self._delay_line = np.zeros(self._delay_samples + self.hop_samples + 2 + MAX_BLOCK)
        self._raw = np.zeros(MAX_BLOCK)
        self._warm_up()

    _prime_samples = 0  # silence put ahead of the output (_prime)

    @property
    def delay_ms(self) -> float:
        """What the adapter adds to the end-to-end delay: the two conversions and the
        priming silence (once the first block has come)."""
        return 1000.0 * (self.to_core.delay_in_samples / self.device_rate_hz
                         + self.to_device.delay_in_samples / SAMPLE_RATE_HZ
                         + self._prime_samples / self.device_rate_hz)

    def _warm_up(self) -> None:
        """Compile the kernels here, not in the callback; then clear their state."""
        scratch = np.zeros(4)
        _fifo_push(scratch, 0, scratch, 2)
        _fifo_pop(scratch, 2, scratch, 1)
        _delay(self._delay_line, self._delay_samples, scratch, self._raw, 1)
        self._delay_line[:] = 0.0
        self.to_core.process(self._x[:self.hop_samples], self._x48)
        self.to_device.process(self._x48[:BLOCK_SIZE], self._y)
        self.to_core.reset()
        self.to_device.reset()

    _primed = False

    def _prime(self, n: int) -> None:
        """First callback: a block size other than 10 ms of an integer-per-10-ms rate makes
        whole core blocks arrive unevenly; one 10 ms block of silence ahead keeps the output
        from running short (the conversions alone keep the timeline when it is 10 ms)."""
        self._primed = True
        if n == self.hop_samples and self.device_rate_hz % 100 == 0:
            return
        self._prime_samples = self.hop_samples + 2
        self._y_dev[:self._prime_samples] = 0.0
        self._n_dev = _fifo_push(self._fifo_dev, self._n_dev, self._y_dev, self._prime_samples)
        self._delay_samples += self._prime_samples  # what an error passes through, aligned

    def process_block(self, indata: np.ndarray, outdata: np.ndarray) -> int:
        """indata: float32 (n, ch_in) at the device rate; outdata: float32 (n, ch_out),
        written completely. Returns the number of 48 kHz output samples this call produced
        (in :attr:`out48`). Never raises: the core passes audio through on its own errors,
        and on an error here the input is passed through as late as the processed output
        (the error counted by the core)."""
        core = self.core
        n = indata.shape[0]
        try:
            if not self._primed:
                self._prime(n)
            x = self._x[:n]
            core.nonfinite_samples += mixdown(indata, x)
            _delay(self._delay_line, self._delay_samples, x, self._raw, n)
            k = self.to_core.process(x, self._x48)
            self._n48 = _fifo_push(self._fifo48, self._n48, self._x48, k)
            produced = 0
            while self._n48 >= BLOCK_SIZE:
                self._n48 -= _fifo_pop(self._fifo48, self._n48, self._blk_in[:, 0],
                                       BLOCK_SIZE)
                core.process_block(self._blk_in, self._blk_out)
                self.out48[produced:produced + BLOCK_SIZE] = self._blk_out[:, 0]
                produced += BLOCK_SIZE
            self.produced48 = produced
            m = self.to_device.process(self.out48[:produced], self._y)
            self._n_dev = _fifo_push(self._fifo_dev, self._n_dev, self._y, m)
            got = _fifo_pop(self._fifo_dev, self._n_dev, self._y_dev, n)
            self._n_dev -= got
            if got < n:
                self.underruns += 1
                self._y_dev[got:n] = 0.0
            core.nonfinite_samples += fan_out(self._y_dev[:n], outdata, 1.0)
            return produced
        except Exception as exc:  # noqa: BLE001 - the callback must never raise
            core.errors += 1
            core.last_error = f"rate conversion: {type(exc).__name__}: {exc}"
            try:
                fan_out(self._raw[:n], outdata, 1.0)
            except Exception:  # noqa: BLE001
                outdata[:] = 0.0
            self.produced48 = 0
            return 0


def choose_device_rate(sd, device_in, device_out, channels: tuple[int, int],
                       requested_hz: int = 0) -> int:
    """The rate to open a duplex stream at: ``requested_hz`` when set (not 0); else 48 kHz
    when both devices take it, else the rate of the device that refused (its PortAudio
    default: a 44.1 kHz-only sound card gives 44100). ``None`` devices are the defaults,
    which on a desktop are the sound server's and take any rate."""
    if requested_hz:
        return int(requested_hz)
    for device, kind, ch in ((device_in, "input", channels[0]),
                             (device_out, "output", channels[1])):
        if device is None:
            continue
        check = sd.check_input_settings if kind == "input" else sd.check_output_settings
        try:
            check(device=device, channels=ch, samplerate=SAMPLE_RATE_HZ, dtype="float32")
        except Exception:  # noqa: BLE001 - refused 48 kHz (or unknown: the open will say)
            try:
                return int(sd.query_devices(device, kind)["default_samplerate"])
            except Exception:  # noqa: BLE001
                return SAMPLE_RATE_HZ
    return SAMPLE_RATE_HZ
