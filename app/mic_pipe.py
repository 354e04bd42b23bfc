"""The named pipe (FIFO) behind a pipe-source virtual microphone, written in real time.

The sound server's ``module-pipe-source`` reads float32 mono 48 kHz samples from a FIFO and
offers them as an ordinary source ("PercepNet Microphone"); the engine writes each processed
10 ms block into it from its audio callback, so the cleaned voice needs no output stream and
no sink (nothing for apps to pick as a speaker). The two servers read differently
(docs/sound-servers.md, "The pipe source"): PulseAudio takes whatever is in the FIFO as soon as
it arrives (the fill stays near 0); PipeWire reads one quantum per graph cycle on its own clock
and plays silence when the FIFO is short, so the FIFO is primed with :data:`TARGET_FILL_MS`.

:class:`MicPipe` keeps the FIFO short:

- **nobody reading** (no app records the microphone: the server does not drain the FIFO):
  everything above the target is thrown away at once, so an app that starts recording later
  hears the present, not up to a third of a second of stale audio;
- **a backlog that stays** (the server drained more slowly than we wrote for a while, or a
  stall): when the lowest fill of :data:`RESYNC_AFTER_S` stays more than
  :data:`RESYNC_GROWTH_MS` above the lowest the pipe has had, the next quiet blocks are not
  written (a latency re-sync, counted), or failing a quiet block within
  :data:`RESYNC_MAX_WAIT_S` the excess is drained from the FIFO;
- **slack that is not needed** (PipeWire: where the engine's blocks fall between the
  server's reads is set by chance when the stream starts, so the lowest fill settles
  anywhere from 0 to a block): when the lowest fill of a window is above
  :data:`TRIM_ABOVE_MS`, the next quiet block is written short by the excess over the slack
  (:data:`TRIM_TO_MS` at first), a trim, counted apart from re-syncs. A FIFO found empty
  after a trim means the server may have run short: the slack grows by
  :data:`TRIM_STEP_MS`, up to :data:`TRIM_MAX_MS`.

:meth:`MicPipe.write` runs in the audio callback: no array allocation, no lock, no logging;
``os.write``/``os.readv`` on a non-blocking descriptor never wait. Everything else runs on the
control side. One :class:`MicPipe` per FIFO path and process (:meth:`MicPipe.for_path`), shared
by the engine (its writer) and the self-test (which mixes its tone into the engine's blocks
while the engine writes, or writes the tone itself when it does not).
"""
from __future__ import annotations

import array
import errno
import fcntl
import os
import stat
import termios
import threading
import time

import numpy as np

from percepnet.dsp.constants import SAMPLE_RATE_HZ

__all__ = ["MicPipe", "PIPE_PREFIX", "pipe_path", "TARGET_FILL_MS", "PIPE_CAPACITY_BYTES"]

#: An engine output device "pipe:<path>" writes into the FIFO at <path>.
PIPE_PREFIX = "pipe:"
#: bytes per sample: float32 mono
_SAMPLE_BYTES = 4
#: FIFO capacity asked of the kernel (``F_SETPIPE_SZ``): 32 KiB = 171 ms at 48 kHz float32.
#: A fill within one largest write of it means nobody reads in time (drained at once); below
#: that (128 ms) PipeWire's largest usual quantum (2048 samples, 43 ms) swings freely.
#: (Linux default: 64 KiB, 341 ms.)
PIPE_CAPACITY_BYTES = 32768
#: Priming and steady fill, ms. PipeWire reads a quantum per cycle and fills a short read
#: with silence; measured on the test session (1024-sample quantum, our blocks arriving in
#: pairs): 5 ms of priming gave no gap in 8 x 2 s windows of speech (the recording equal to
#: the input sample for sample), with a mic -> microphone delay of 16-22 ms outside the
#: engine. PulseAudio reads at once, so the priming just leaves within the first cycle.
TARGET_FILL_MS = 5.0
#: Re-sync when the lowest fill of RESYNC_AFTER_S stays this much above the lowest yet (ms).
RESYNC_GROWTH_MS = 20.0
RESYNC_AFTER_S = 2.0
#: ... at a quiet block (peak below RESYNC_QUIET_PEAK, -40 dBFS), or after this long anyway.
RESYNC_MAX_WAIT_S = 5.0
RESYNC_QUIET_PEAK = 0.01
#: Trim the lowest fill of a RESYNC_AFTER_S window when it is above TRIM_ABOVE_MS, down to
#: the slack (TRIM_TO_MS at first). Measured on the test PipeWire session (256-sample
#: quantum; our blocks every 10.7 ms, as the input stream gets 512 samples a time): the
#: lowest fill settled at 3.7-7 ms, a different figure each start, i.e. that much delay the
#: server does not need; the fill then swings 15 ms above its lowest (one block and one
#: quantum). The slack grows by TRIM_STEP_MS (up to TRIM_MAX_MS, at most once per
#: RESYNC_AFTER_S) each time the FIFO is found empty after a trim.
TRIM_ABOVE_MS = 3.0
TRIM_TO_MS = 1.5
TRIM_STEP_MS = 1.0
TRIM_MAX_MS = 8.0
#: No read seen for this long (s): nobody records the microphone; keep only the target.
IDLE_AFTER_S = 0.2
#: the largest block written at once (samples): 2 x 10 ms blocks (a rate adapter's output)
MAX_WRITE = 2048


def pipe_path(device: str) -> str | None:
    """The FIFO path of an engine output device "pipe:<path>", else None."""
    if isinstance(device, str) and device.startswith(PIPE_PREFIX):
        return device[len(PIPE_PREFIX):]
    return None


def _ms_to_bytes(ms: float) -> int:
    return int(round(ms * SAMPLE_RATE_HZ / 1000.0)) * _SAMPLE_BYTES


class MicPipe:
    """The writer of one FIFO. ``open``/``close``/``play`` on the control side, ``write`` in
    the audio callback. Statistics (read any time): ``fill_ms`` (FIFO content at the last
    write), ``resyncs``, ``trims``, ``dropped_ms`` (audio thrown away by re-syncs and trims),
    ``slack_ms`` (the lowest fill trims aim at), ``idle`` (nobody
    reads), ``overflows`` (blocks lost to a full FIFO), ``errors`` (writes that failed
    otherwise), ``last_error``."""

    _registry: dict[str, "MicPipe"] = {}
    _registry_lock = threading.Lock()

    @classmethod
    def for_path(cls, path: str) -> "MicPipe":
        """The process's one writer for ``path`` (created on first use)."""
        with cls._registry_lock:
            pipe = cls._registry.get(path)
            if pipe is None:
                pipe = cls._registry[path] = cls(path)
            return pipe

    def __init__(self, path: str, target_fill_ms: float = TARGET_FILL_MS) -> None:
        self.path = path
        self.fd = -1
        self._lock_fd = -1  # the writer's lock (see _lock_writer)
        self._target = _ms_to_bytes(target_fill_ms)
        self._n = array.array("i", [0])                 # FIONREAD result
        self._zeros = bytes(self._target)               # priming
        self._block_bytes = _ms_to_bytes(10.0)          # drain unit: one 10 ms block
        self._drain = bytearray(self._block_bytes)
        self._drain_bufs = [memoryview(self._drain)]    # os.readv's list, built once
        self._mix = np.zeros(MAX_WRITE, dtype=np.float32)  # block + self-test tone
        self._overlay: np.ndarray | None = None          # the self-test tone being mixed in
        self._overlay_pos = 0
        self._ceiling = PIPE_CAPACITY_BYTES
        self._reset_stats()

    def _reset_stats(self) -> None:
        self.fill_ms = 0.0
        self.resyncs = 0
        self.trims = 0
        self.dropped_ms = 0.0
        self.errors = 0
        self.overflows = 0
        self.last_error = ""
        self.idle = True
        self.last_write = 0.0
        self.max_write_gap_ms = 0.0  # the longest time between two writes (after the first)
        self._after_write = 0       # fill right after our last write (bytes)
        self._last_read = 0.0       # when the fill was last seen to go down
        self._win_min = 1 << 30     # lowest fill of the current window
        self._win_start = 0.0
        self._floor = 1 << 30       # lowest window minimum since open
        self._excess = 0            # bytes a pending re-sync or trim still has to drop
        self._excess_is_trim = False  # a trim waits for quiet for ever; a re-sync does not
        self._resync_since = 0.0
        self._slack = _ms_to_bytes(TRIM_TO_MS)
        self._slack_raised_at = 0.0

    # ------------------------------------------------------------------ control side
    @property
    def is_open(self) -> bool:
        return self.fd >= 0

    def open(self) -> None:
        """Open the FIFO for writing (and reading, to drain it: a FIFO opened read-write
        never blocks and never sees EPIPE) and prime it. Raises OSError with the reason
        (missing, not a FIFO)."""
        self.close()
        st = os.stat(self.path)
        if not stat.S_ISFIFO(st.st_mode):
            raise OSError(errno.EINVAL, f"{self.path} is not a FIFO")
        self._lock_writer()
        fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_CAPACITY_BYTES)
        except OSError:
            pass  # the default (64 KiB) works too; the guard keeps the fill short anyway
        try:
            capacity = fcntl.fcntl(fd, getattr(fcntl, "F_GETPIPE_SZ", 1032))
        except OSError:
            capacity = 65536
        # above this nobody can be reading in time: back to the target at once
        self._ceiling = max(self._target + 2 * self._block_bytes,
                            capacity - MAX_WRITE * _SAMPLE_BYTES)
        self._reset_stats()
        now = time.monotonic()
        self._last_read = self._win_start = now
        self.fd = fd
        self._priming()
        self._after_write = self._fill()

    def _priming(self) -> None:
        fill = self._fill()
        if fill < self._target:
            try:
                os.write(self.fd, self._zeros[: (self._target - fill) // 4 * 4])
            except OSError:
                pass

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        for f in (fd, self._lock_fd):
            if f >= 0:
                try:
                    os.close(f)  # closing the lock file's descriptor releases the lock
                except OSError:
                    pass
        self._lock_fd = -1

    def _lock_writer(self) -> None:
        """One writer per FIFO: two would interleave their blocks into garbage (a second
        PercepNet, or a self-test run from another process while the engine writes). An
        exclusive ``flock`` on ``<fifo>.lock`` beside it, holding the writer's pid; OSError
        (EBUSY) naming the other process when it is taken."""
        lock = self.path + ".lock"
        lfd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                pid = os.pread(lfd, 32, 0).decode(errors="replace").strip() or "?"
            finally:
                os.close(lfd)
            raise OSError(errno.EBUSY, f"another process (pid {pid}) already writes the "
                          f"virtual microphone ({self.path}): quit the other PercepNet, or "
                          "run the self-test from its window") from None
        os.ftruncate(lfd, 0)
        os.pwrite(lfd, str(os.getpid()).encode(), 0)
        self._lock_fd = lfd

    @property
    def slack_ms(self) -> float:
        """The lowest fill trims aim at (ms)."""
        return 1000.0 * self._slack / _SAMPLE_BYTES / SAMPLE_RATE_HZ

    @property
    def active(self) -> bool:
        """Whether a writer (the engine's callback) wrote within the last 0.2 s."""
        return self.is_open and time.monotonic() - self.last_write < 0.2

    def play(self, samples: np.ndarray, timeout_s: float = 3.0) -> None:
        """Mix ``samples`` (float32 mono 48 kHz) into the blocks the writer (the engine, or
        a stand-in) writes next; returns once they are all written. RuntimeError when
        nothing writes or the writer stopped midway."""
        x = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        if not self.active:
            raise RuntimeError("nothing writes the microphone's FIFO")
        deadline = time.monotonic() + timeout_s
        self._overlay_pos = 0
        self._overlay = x
        while self._overlay is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        if self._overlay is not None:
            self._overlay = None
            raise RuntimeError("the writer stopped while the tone was being played")

    # ------------------------------------------------------------------ audio callback
    def _fill(self) -> int:
        try:
            fcntl.ioctl(self.fd, termios.FIONREAD, self._n)
        except OSError:
            return 0
        return self._n[0]

    def _drop_from_fifo(self, nbytes: int) -> int:
        """Read (and discard) about ``nbytes`` of the oldest audio, in whole blocks."""
        dropped = 0
        while dropped + self._block_bytes <= nbytes:
            try:
                got = os.readv(self.fd, self._drain_bufs)
            except OSError:
                break
            if got <= 0:
                break
            dropped += got
        return dropped

    def write(self, block: np.ndarray) -> None:
        """Audio callback: write one block (1-D, any float dtype, at most :data:`MAX_WRITE`
        samples). Never raises, never waits; no allocation, no lock, no logging."""
        if self.fd < 0:
            return
        try:
            now = time.monotonic()
            gap_ms = 1000.0 * (now - self.last_write)
            if self.last_write > 0.0 and gap_ms > self.max_write_gap_ms:
                self.max_write_gap_ms = gap_ms
            fill = self._fill()
            if fill < self._after_write:
                self._last_read = now
            self.idle = now - self._last_read > IDLE_AFTER_S or fill > self._ceiling
            if self.idle:
                self._win_start, self._win_min = now, 1 << 30  # no backlog watch meanwhile
                if fill > self._target:
                    self._drop_from_fifo(fill - self._target)  # nobody listens: keep it fresh
                    fill = self._fill()
            else:
                fill -= self._resync_step(fill, now)
            frames = block.shape[0]
            out = self._mix[:frames]
            out[:] = block  # float32 for the FIFO, whatever the engine's dtype
            ov = self._overlay
            if ov is not None:
                k = min(frames, ov.shape[0] - self._overlay_pos)
                out[:k] += ov[self._overlay_pos:self._overlay_pos + k]
                self._overlay_pos += k
                if self._overlay_pos >= ov.shape[0]:
                    self._overlay = None
            elif self._excess > 0 and float(np.max(out)) < RESYNC_QUIET_PEAK \
                    and float(np.min(out)) > -RESYNC_QUIET_PEAK:
                # a quiet block left out, or its start (re-sync or trim)
                skip = min(frames, self._excess // _SAMPLE_BYTES)
                self._excess -= skip * _SAMPLE_BYTES
                self.dropped_ms += 1000.0 * skip / SAMPLE_RATE_HZ
                if self._excess < _SAMPLE_BYTES:
                    self._finish_resync()
                out = out[skip:]
            if out.shape[0]:
                os.write(self.fd, out)
            self._after_write = fill + out.shape[0] * _SAMPLE_BYTES
            self.fill_ms = 1000.0 * fill / _SAMPLE_BYTES / SAMPLE_RATE_HZ
            self.last_write = now
        except BlockingIOError:
            self.overflows += 1  # full: the guard drains it on the next block
        except Exception as exc:  # noqa: BLE001 - reported by the engine, never raised
            self.errors += 1
            self.last_error = str(exc) if not self.last_error else self.last_error

    def _resync_step(self, fill: int, now: float) -> int:
        """Backlog guard and slack trim (audio thread); returns the bytes drained from the
        FIFO."""
        if fill < self._win_min:
            self._win_min = fill
        if fill == 0 and self.trims and now - self._slack_raised_at >= RESYNC_AFTER_S \
                and self._slack < _ms_to_bytes(TRIM_MAX_MS):
            self._slack += _ms_to_bytes(TRIM_STEP_MS)  # the server may have run short
            self._slack_raised_at = now
        if now - self._win_start >= RESYNC_AFTER_S:
            m = self._win_min
            self._win_min = 1 << 30
            self._win_start = now
            if m < self._floor:
                self._floor = m
            # a pending re-sync runs its course; a pending trim follows each window's figure
            if self._excess <= 0 or self._excess_is_trim:
                if m - self._floor > _ms_to_bytes(RESYNC_GROWTH_MS):
                    self._excess, self._excess_is_trim = m - self._floor, False  # over a trim
                    self._resync_since = now
                elif m > _ms_to_bytes(TRIM_ABOVE_MS) and m > self._slack + _ms_to_bytes(1.0):
                    self._excess, self._excess_is_trim = m - self._slack, True
                else:
                    self._excess = 0
        if self._excess > 0 and not self._excess_is_trim \
                and now - self._resync_since > RESYNC_MAX_WAIT_S:
            drained = self._drop_from_fifo(self._excess)
            self.dropped_ms += 1000.0 * drained / _SAMPLE_BYTES / SAMPLE_RATE_HZ
            self._finish_resync()
            return drained
        return 0

    def _finish_resync(self) -> None:
        self._excess = 0
        if self._excess_is_trim:
            self.trims += 1
        else:
            self.resyncs += 1
        self._win_min = 1 << 30
        self._win_start = time.monotonic()
