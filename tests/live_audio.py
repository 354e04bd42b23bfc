"""Helpers for tests that stream real audio through a real PulseAudio server."""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import soundfile as sf

from audio_fixtures import load_fixture, mix_at_snr
from percepnet.dsp.constants import SAMPLE_RATE_HZ

RATE = SAMPLE_RATE_HZ  # the one definition: percepnet.dsp.constants

__all__ = ["RATE", "start_silence_feeder", "noisy_speech", "Recorder", "play", "align",
           "snr_db", "segment_match", "realign", "realign_steps", "stream_clip",
           "engine_summary"]


def start_silence_feeder(server, sink: str, timeout_s: float = 10.0,
                         tone_hz: float | None = None) -> subprocess.Popen:
    """Play silence (or a ``tone_hz`` sine at -6 dBFS) into ``sink`` for good, and return
    once the sink is running: until then its monitor delivers audio in bursts of up to 2 s,
    and a stream that starts recording it then keeps that backlog as latency (measured: a
    live test's engine at 1.3 s). Terminating the returned pacat ends the tone too."""
    argv = ["pacat", "--playback", f"--device={sink}", "--format=float32le", f"--rate={RATE}",
            "--channels=1", "--latency-msec=10"]
    if tone_hz is None:
        proc = subprocess.Popen(argv + ["/dev/zero"], env=server.child_env(),
                                stdin=subprocess.DEVNULL)
    else:  # one second of a whole number of periods, written for ever (pacat paces it)
        gen = subprocess.Popen(
            [sys.executable, "-c", "import sys, numpy as np; "
             f"b = (0.5 * np.sin(2 * np.pi * {float(tone_hz)} * np.arange({RATE}) / {RATE}))"
             ".astype('<f4').tobytes()\nwhile True: sys.stdout.buffer.write(b)"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        proc = subprocess.Popen(argv, env=server.child_env(), stdin=gen.stdout)
        gen.stdout.close()  # pacat holds the pipe: when it exits the generator gets EPIPE
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(len(row) > 4 and row[1] == sink and row[4] == "RUNNING"
               for row in server.short_list("sinks")):
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"the feeder for {sink} exited ({proc.returncode})")
        time.sleep(0.02)
    proc.terminate()
    raise RuntimeError(f"{sink} not running {timeout_s} s after its feeder started")


def noisy_speech(seconds: float, snr_db: float = 5.0):
    speech = np.concatenate([load_fixture(f"speech_{x}.ogg") for x in ("fr", "ru", "da")])
    noise = load_fixture("noise_vacuum.ogg")
    n = int(seconds * RATE)
    speech = np.tile(speech, int(np.ceil(n / len(speech))))[:n]
    noise = np.tile(noise, int(np.ceil(n / len(noise))))[:n]
    speech = 0.25 * speech / np.max(np.abs(speech))
    noisy = mix_at_snr(speech, noise, snr_db)
    peak = np.max(np.abs(noisy))
    if peak > 0.9:
        speech, noisy = speech * 0.9 / peak, noisy * 0.9 / peak
    return speech, noisy


class Recorder:
    """``parecord`` from a source into a float32 WAV."""

    def __init__(self, server, source: str, path) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            ["parecord", f"--device={source}", "--format=float32le", f"--rate={RATE}",
             "--channels=1", "--latency-msec=10", "--file-format=wav", str(path)],
            env=server.child_env(), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> np.ndarray:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        x, sr = sf.read(self.path, dtype="float64")
        assert sr == RATE
        return x


def play(server, sink: str, path, wait: bool = True):
    proc = subprocess.Popen(["paplay", f"--device={sink}", "--latency-msec=10", str(path)],
                            env=server.child_env(), stdin=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    if wait:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    return proc


def align(ref: np.ndarray, rec: np.ndarray, max_lag: int) -> int:
    """Lag (samples) of ``ref`` inside ``rec`` by FFT cross-correlation."""
    n = 1 << int(np.ceil(np.log2(len(ref) + len(rec))))
    c = np.fft.irfft(np.fft.rfft(rec, n) * np.conj(np.fft.rfft(ref, n)), n)
    return int(np.argmax(c[:max_lag]))


def snr_db(clean: np.ndarray, x: np.ndarray) -> float:
    a = np.dot(x, clean) / np.dot(clean, clean)  # best scale
    err = x - a * clean
    return 10 * np.log10(np.sum((a * clean) ** 2) / np.sum(err ** 2))


def segment_match(ref: np.ndarray, rec: np.ndarray, seconds: float = 1.0,
                  skip: int = 1) -> list[float]:
    """Correlation of each ``seconds`` segment of ``ref`` with its best-aligned match in
    ``rec`` (each segment aligned on its own: a glitch may shift what follows)."""
    seg = int(seconds * RATE)
    lag = align(ref, rec, max_lag=max(len(rec) - len(ref), 1))
    out = []
    for k in range(skip, len(ref) // seg):
        a, b = k * seg, (k + 1) * seg
        r = ref[a:b]
        win = rec[max(lag + a - 4800, 0):lag + b + 4800]
        if len(win) < len(r):
            out.append(0.0)
            continue
        j = align(r, win, max_lag=len(win) - len(r) + 1)
        out.append(float(np.corrcoef(r, win[j:j + len(r)])[0, 1]))
    return out


def realign(ref: np.ndarray, rec: np.ndarray, seconds: float = 0.25) -> np.ndarray:
    """``rec`` cut into ``ref``'s time base: each ``seconds`` segment of ``ref`` gets the
    best-aligned piece of ``rec`` (a glitch of the sound server shifts what follows it by a
    few ms; one global lag would misalign the rest of the recording)."""
    seg = int(seconds * RATE)
    lag = align(ref, rec, max_lag=max(len(rec) - len(ref), 1))
    out = np.zeros_like(ref)
    for a in range(0, len(ref) - seg + 1, seg):
        r = ref[a:a + seg]
        lo = max(lag + a - 4800, 0)
        win = rec[lo:lag + a + seg + 4800]
        if len(win) < seg:
            continue
        j = align(r, win, max_lag=len(win) - seg + 1)
        out[a:a + seg] = win[j:j + seg]
    return out


def _local_lags(ref: np.ndarray, rec: np.ndarray, lag0: int, hop_s: float, win_s: float,
                search_ms: float, min_corr: float) -> list[tuple[int, int]]:
    """(centre, lag) of each ``win_s`` window of ``ref`` (every ``hop_s``) whose normalised
    correlation with ``rec`` peaks above ``min_corr`` within ``search_ms`` of the last lag
    found; quiet windows (below a tenth of the clip's RMS) are left out."""
    hop, win, srch = int(hop_s * RATE), int(win_s * RATE), int(search_ms * RATE / 1000)
    level = np.sqrt(np.mean(ref ** 2))
    prev, points = lag0, []
    for c in range(win // 2, len(ref) - win // 2 + 1, hop):
        r = ref[c - win // 2:c + win // 2]
        lo = c - win // 2 + prev - srch
        if np.sqrt(np.mean(r ** 2)) < level / 10 or lo < 0 or lo + win + 2 * srch > len(rec):
            continue
        seg = rec[lo:lo + win + 2 * srch]
        nc = np.correlate(seg, r, "valid") / (
            np.sqrt(np.convolve(seg ** 2, np.ones(win), "valid") * np.dot(r, r)) + 1e-20)
        j = int(np.argmax(nc))
        if nc[j] >= min_corr:
            prev = lo + j - (c - win // 2)
            points.append((c, prev))
    return points


def realign_steps(ref: np.ndarray, rec: np.ndarray, min_corr: float = 0.8,
                  one_lag: np.ndarray | None = None
                  ) -> tuple[np.ndarray, list[tuple[float, int]]]:
    """``rec`` mapped onto ``ref``'s time base with a lag that is constant between steps:
    a client that inserts or drops a few ms of audio to keep its own buffer level (Chromium
    does, on both servers) shifts everything after it, and each step is placed where it
    fits best (1 ms grid). Returns (the mapped recording, [(time_s, step_samples), ...]);
    a positive step is audio inserted, a negative one audio lost. Where audio was lost, the
    ``ref`` samples it held have no counterpart and count fully as error. ``one_lag``:
    ``realign(ref, rec)`` where the caller has it already (it fills the edges)."""
    lag0 = align(ref, rec, max_lag=max(len(rec) - len(ref), 1))
    points = _local_lags(ref, rec, lag0, 0.1, 0.2, 30.0, min_corr) or [(0, lag0)]
    lag = np.full(len(ref), points[0][1], dtype=np.int64)
    steps = []
    for (c1, l1), (c2, l2) in zip(points, points[1:]):
        lag[c1:] = l1
        if l1 == l2:
            continue
        grid = np.arange(c1, c2 + 1, RATE // 1000)
        idx = np.arange(c1, c2)

        def err(p, idx=idx, c1=c1, l1=l1, l2=l2):
            shift = np.where(idx < p, l1, l2)
            pos = np.clip(idx + shift, 0, len(rec) - 1)
            return float(np.sum((ref[c1:c2] - rec[pos]) ** 2))

        best = min(grid, key=err)
        lag[best:] = l2
        steps.append((best / RATE, int(l2 - l1)))
    pos = np.arange(len(ref)) + lag
    out = np.where((pos >= 0) & (pos < len(rec)), rec[np.clip(pos, 0, len(rec) - 1)], 0.0)
    # before the first and after the last window that matched: each 0.25 s on its own
    half = int(0.1 * RATE)
    edges = realign(ref, rec) if one_lag is None else one_lag
    first, last = points[0][0] - half, points[-1][0] + half
    out[:max(first, 0)] = edges[:max(first, 0)]
    out[last:] = edges[last:]
    return out, steps


def engine_summary(diag) -> str:
    """The engine's side of a live test's report, from its diagnostics."""
    return (f"engine restarts {diag.restarts}, xruns {diag.xruns} (+{diag.xruns_startup} at "
            f"start), re-syncs {diag.resyncs}, trims {diag.trims}, latency "
            f"{diag.latency_ms:.0f} ms")


def stream_clip(server, engine, play_sink: str, wav, rec_source: str, rec_path,
                settle_s: float = 0.4):
    """Start ``engine`` and a recorder on ``rec_source``, play ``wav`` into ``play_sink``,
    stop both; returns (recording, the engine's diagnostics just before it stopped)."""
    import time

    rec = Recorder(server, rec_source, rec_path)
    engine.start()
    try:
        time.sleep(settle_s)
        play(server, play_sink, wav)
        time.sleep(settle_s)
        diag = engine.diagnostics()
    finally:
        engine.stop()
        out = rec.stop()
    return out, diag
