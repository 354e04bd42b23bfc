"""Streaming sample-rate conversion between a device's rate and the 48 kHz the chain runs at.

A sound card that does not take 48 kHz (many ALSA ``hw:`` devices run at 44.1 kHz only) is
opened at its own rate; the engine converts each block to 48 kHz on the way in and back on
the way out. The converter is a rational polyphase resampler: ratio ``up / down`` (44.1 ->
48 kHz is 160 / 147), a Kaiser-windowed sinc low-pass designed once at construction, and a
per-block kernel that keeps its history and fractional position between calls, so a stream
cut into blocks of any size gives the same samples as one long call.

Filter, for the lower of the two rates f_low:
- pass band to ``PASSBAND_FRACTION`` x f_low / 2 (20.1 kHz at 44.1 kHz; flat within 0.01 dB);
- stop band from f_low / 2, attenuated by ``STOPBAND_DB`` (Kaiser beta from the attenuation,
  length from Kaiser's formula for the transition width);
- delay: half the filter, ``delay_in_samples`` (about 1.4 ms each way for 44.1 <-> 48 kHz).

Real-time contract of :meth:`Resampler.process`: no allocation, no lock, no logging; the
work arrays are made in the constructor for blocks of up to ``max_block`` input samples.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["Resampler", "PASSBAND_FRACTION", "STOPBAND_DB"]

#: Pass-band edge as a share of the lower rate's Nyquist frequency: 0.91 keeps speech to
#: 20 kHz at 44.1 kHz while leaving a 9 % transition band for a filter of moderate length.
PASSBAND_FRACTION = 0.91
#: Stop-band attenuation of the anti-aliasing / anti-imaging filter: images and aliases end
#: below the 16-bit noise floor of most consumer devices (~-90 dBFS) for full-scale input.
STOPBAND_DB = 90.0


def _kaiser_beta(atten_db: float) -> float:
    """Kaiser's window parameter for a stop-band attenuation (Kaiser 1974)."""
    if atten_db > 50.0:
        return 0.1102 * (atten_db - 8.7)
    if atten_db >= 21.0:
        return 0.5842 * (atten_db - 21.0) ** 0.4 + 0.07886 * (atten_db - 21.0)
    return 0.0


def design_filter(up: int, down: int) -> tuple[np.ndarray, int]:
    """Polyphase low-pass for ``up / down`` conversion: (taps laid out as ``[phase, tap]``,
    shape (up, taps_per_phase), gain ``up`` so the level is kept; taps_per_phase)."""
    # cut-off and transition width in cycles per sample of the up-sampled signal
    nyquist_low = 0.5 / max(up, down)
    cutoff = nyquist_low * (1.0 + PASSBAND_FRACTION) / 2.0
    transition = nyquist_low * (1.0 - PASSBAND_FRACTION)
    n_total = int(math.ceil((STOPBAND_DB - 7.95) / (14.36 * transition))) + 1
    taps_per_phase = max(2, -(-n_total // up))
    n = taps_per_phase * up
    m = np.arange(n) - (n - 1) / 2.0
    h = 2.0 * cutoff * np.sinc(2.0 * cutoff * m) * np.kaiser(n, _kaiser_beta(STOPBAND_DB))
    # zero-stuffing by `up` divides the level by `up`: a DC gain of `up` restores it (each
    # phase then sums to about 1)
    h *= up / h.sum()
    # phase p holds taps p, p + up, p + 2 up, ...: the ones that meet real input samples
    bank = np.ascontiguousarray(h.reshape(taps_per_phase, up).T)
    return bank, taps_per_phase


@njit(cache=True, nogil=True)
def _convert(x, n, bank, up, down, hist, state, out):
    """Convert ``x[:n]``; writes the outputs to ``out`` and returns their count.

    ``hist``: the last taps-1 inputs followed by room for ``n`` new ones; ``state[0]``: the
    position of the next output in units of 1/up input sample, relative to x[0]."""
    taps = bank.shape[1]
    keep = taps - 1
    for i in range(n):
        hist[keep + i] = x[i]
    pos = state[0]
    limit = n * up
    k = 0
    while pos < limit:
        i = pos // up
        p = pos - i * up
        acc = 0.0
        base = keep + i
        for t in range(taps):
            acc += bank[p, t] * hist[base - t]
        out[k] = acc
        k += 1
        pos += down
    state[0] = pos - limit
    for j in range(keep):
        hist[j] = hist[n + j]
    return k


class Resampler:
    """Streaming conversion from ``rate_in_hz`` to ``rate_out_hz`` (any integer rates).

    :meth:`process` takes up to ``max_block`` samples a call and returns how many outputs it
    wrote: ``ceil``/``floor`` of n x out/in, never more than :attr:`max_out`."""

    def __init__(self, rate_in_hz: int, rate_out_hz: int, max_block: int) -> None:
        if rate_in_hz <= 0 or rate_out_hz <= 0:
            raise ValueError(f"sample rates must be positive, got {rate_in_hz} -> {rate_out_hz}")
        g = math.gcd(int(rate_in_hz), int(rate_out_hz))
        self.rate_in_hz, self.rate_out_hz = int(rate_in_hz), int(rate_out_hz)
        self.up, self.down = self.rate_out_hz // g, self.rate_in_hz // g
        self.bank, self.taps = design_filter(self.up, self.down)
        self.max_block = int(max_block)
        self.max_out = -(-self.max_block * self.up // self.down) + 1
        self._hist = np.zeros(self.taps - 1 + self.max_block)
        self._state = np.zeros(1, dtype=np.int64)

    @property
    def delay_in_samples(self) -> float:
        """Group delay of the filter, in input samples."""
        return (self.taps * self.up - 1) / 2.0 / self.up

    def reset(self) -> None:
        self._hist[:] = 0.0
        self._state[0] = 0

    def process(self, x: np.ndarray, out: np.ndarray) -> int:
        """x: float (n,) with n <= max_block; out: float64 (>= max_out,). Returns the count
        written to ``out``."""
        n = x.shape[0]
        if n > self.max_block:
            raise ValueError(f"block of {n} samples exceeds {self.max_block}")
        return _convert(x, n, self.bank, self.up, self.down, self._hist, self._state, out)
