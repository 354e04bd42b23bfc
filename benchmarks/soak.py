"""Soak test of the streaming path: hours of audio through one ``Denoiser``, faster than
real time, checking that memory stays flat, the delay stays constant and nothing goes NaN.

    .venv/bin/python -m benchmarks.soak [--hours 2] [--model NAME|PATH] [--check-every-min 10]

The input is generated chunk by chunk (10 s each, so the source never grows): the committed
fixture speech (fr, ru, da) and noises (vacuum cleaner, kettle) plus pink/white noise and
mains hum, with random speech levels (-45...-10 dBFS), SNRs (-5...30 dB) and level jumps
within a chunk; some chunks are noise only, speech only or digital silence, and some are
abused with NaN / +-Inf bursts, full-scale square waves, DC, denormals and clipping. Every
chunk is fed in random block sizes (1-4096 samples, half of them the usual sound-card
sizes) with ``process(block, out)`` as an audio callback would.

Every ``--check-every-min`` minutes of audio a checkpoint
- measures the delay twice: an impulse sent through the bypass path must come out exactly
  ``ALGORITHMIC_DELAY_SAMPLES`` later, and on the processed path the cross-correlation
  peak between 5 s of speech at 20 dB SNR and the output must sit at the same lag;
- samples memory: resident set size (``/proc/self/statm``), Python's allocated blocks
  (``sys.getallocatedblocks``) and the number of objects the garbage collector tracks;
- counts non-finite output samples and the largest output magnitude so far.

Memory counts as flat when the RSS and the allocated blocks grow by less than 2 MiB /
10 000 blocks between the first checkpoint (warm) and the last. Writes ``OUT/soak.md`` and,
with matplotlib, ``OUT/soak.png``.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import gc  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import soxr  # noqa: E402

from benchmarks.report import write_report  # noqa: E402
from percepnet.dsp.constants import SAMPLE_RATE_HZ

RATE = SAMPLE_RATE_HZ  # the one definition: percepnet.dsp.constants
CHUNK_S = 10.0
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
SPEECH_FILES = ("speech_fr.ogg", "speech_ru.ogg", "speech_da.ogg")
NOISE_FILES = ("noise_vacuum.ogg", "noise_kettle.ogg")
COMMON_BLOCKS = (64, 128, 256, 441, 480, 512, 960, 1024, 2048)
#: memory growth allowed between the first and the last checkpoint
RSS_LIMIT_BYTES = 2 * 1024 * 1024
BLOCKS_LIMIT = 10_000
OUTPUT_LIMIT = 1.5


def _load(name: str) -> np.ndarray:
    data, sr = sf.read(str(FIXTURES / name), dtype="float64", always_2d=True)
    x = data.mean(axis=1)
    x = soxr.resample(x, sr, RATE) if sr != RATE else x
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)  # unit RMS


def _fixed_mmap_threshold() -> bool:
    """Pin glibc's mmap threshold (256 KiB): large buffers (the generated 10 s chunks) are
    then always mapped and returned to the system when freed, instead of glibc raising the
    threshold and keeping them on its heap, which makes the RSS jump by a chunk or two at
    random and hides a real trend. The Denoiser itself allocates nothing per frame."""
    try:
        import ctypes

        return bool(ctypes.CDLL("libc.so.6").mallopt(-3, 256 * 1024))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # not Linux: peak RSS is the best we have
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Source:
    """Endless test input, 10 s at a time (see the module docstring)."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.speech = [_load(n) for n in SPEECH_FILES]
        self.noises = [_load(n) for n in NOISE_FILES]
        self.n = int(CHUNK_S * RATE)
        self.counts: dict[str, int] = {}

    def _speech(self, n: int) -> np.ndarray:
        rng = self.rng
        out = np.zeros(n)
        pos = int(rng.integers(0, RATE // 2))
        while pos < n:
            s = self.speech[int(rng.integers(len(self.speech)))]
            take = min(len(s), n - pos)
            out[pos:pos + take] = s[:take]
            pos += take + int(rng.uniform(0.05, 0.8) * RATE)
        return out

    def _noise(self, n: int) -> np.ndarray:
        rng = self.rng
        kind = int(rng.integers(5))
        if kind < 2:
            x = self.noises[kind]
            return np.resize(np.roll(x, -int(rng.integers(len(x)))), n)
        if kind == 2:  # pink
            spec = np.fft.rfft(rng.standard_normal(n))
            f = np.arange(spec.shape[0], dtype=float)
            f[0] = 1.0
            x = np.fft.irfft(spec / np.sqrt(f), n)
        elif kind == 3:
            x = rng.standard_normal(n)
        else:  # mains hum
            t = np.arange(n) / RATE
            f0 = 50.0 if rng.random() < 0.5 else 60.0
            x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8))
        return x / (np.sqrt(np.mean(x**2)) + 1e-12)

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def chunk(self) -> np.ndarray:
        rng, n = self.rng, self.n
        level = 10 ** (rng.uniform(-45, -10) / 20)
        snr = rng.uniform(-5, 30)
        scene = rng.choice(["mix", "noise", "speech", "silence", "abuse"],
                           p=[0.6, 0.1, 0.1, 0.05, 0.15])
        self._count(str(scene))
        if scene == "silence":
            return np.zeros(n)
        speech = self._speech(n) * level if scene != "noise" else np.zeros(n)
        noise = self._noise(n) * level * 10 ** (-snr / 20) if scene != "speech" else np.zeros(n)
        x = speech + noise
        if rng.random() < 0.5:  # a level jump (someone leans in, a gain change)
            a = int(rng.integers(n))
            x[a:] *= 10 ** (rng.uniform(-20, 20) / 20)
        if scene == "abuse":
            for _ in range(int(rng.integers(1, 5))):
                a = int(rng.integers(n - RATE))
                m = int(rng.integers(1, RATE // 2))
                what = rng.choice(["nan", "inf", "square", "dc", "denormal", "clip"])
                self._count(f"abuse:{what}")
                if what == "nan":
                    x[a:a + m] = np.nan
                elif what == "inf":
                    x[a:a + m] = rng.choice([np.inf, -np.inf], size=m)
                elif what == "square":
                    x[a:a + m] = np.where((np.arange(m) // 48) % 2 == 0, 1.0, -1.0)
                elif what == "dc":
                    x[a:a + m] += rng.uniform(-1, 1)
                elif what == "denormal":
                    x[a:a + m] = 1e-310
                else:
                    x[a:a + m] = np.clip(30 * x[a:a + m], -1, 1)
        return x

    def blocks(self, n: int):
        """Random block boundaries covering n samples."""
        rng, pos = self.rng, 0
        while pos < n:
            b = int(rng.choice(COMMON_BLOCKS)) if rng.random() < 0.5 else int(rng.integers(1, 4097))
            yield pos, min(n, pos + b)
            pos += b


class Streamer:
    """Feeds a Denoiser like an audio callback and keeps the running statistics."""

    def __init__(self, den, source: Source) -> None:
        self.den = den
        self.source = source
        self.samples = 0
        self.process_s = 0.0
        self.nonfinite = 0
        self.max_abs = 0.0
        self.blocks = 0
        self.late_blocks = 0  # blocks >= 480 samples that took longer than their duration
        self.worst_frame_us = 0.0

    def feed(self, x: np.ndarray) -> np.ndarray:
        y = np.empty_like(x)
        den, clock = self.den, time.perf_counter
        for a, b in self.source.blocks(x.shape[0]):
            frames0 = den.frames_processed
            t0 = clock()
            den.process(x[a:b], y[a:b])
            dt = clock() - t0
            self.process_s += dt
            frames = den.frames_processed - frames0
            if frames:
                self.worst_frame_us = max(self.worst_frame_us, dt / frames * 1e6)
            if b - a >= 480 and dt > (b - a) / RATE:
                self.late_blocks += 1
            self.blocks += 1
        self.samples += x.shape[0]
        bad = ~np.isfinite(y)
        self.nonfinite += int(bad.sum())
        self.max_abs = max(self.max_abs, float(np.max(np.abs(np.where(bad, 0.0, y)))))
        return y


def probe_delays(streamer: Streamer, delay: int) -> tuple[int, int, float]:
    """(impulse lag through bypass, cross-correlation lag on the processed path, its
    normalised peak). Both lags should equal ``delay``."""
    from benchmarks.peers import xcorr_lag

    src, rng = streamer.source, streamer.source.rng
    # processed path: 5 s of speech at 20 dB SNR, -25 dBFS
    n = 5 * RATE
    s = src._speech(n)
    x = 0.056 * (s + 0.1 * rng.standard_normal(n) * np.sqrt(np.mean(s**2)))
    y = streamer.feed(x)
    lag, peak = xcorr_lag(x, y, max_lag=4 * delay)
    # bypass path: an impulse in silence after the crossfade has settled
    den = streamer.den
    den.bypass = True
    streamer.feed(0.05 * src._speech(RATE // 5))
    k = RATE // 10
    x = np.zeros(k + 1 + RATE // 10 + delay)
    x[k] = 0.5
    y = streamer.feed(x)
    impulse_lag = int(np.argmax(np.abs(y))) - k
    den.bypass = False
    return impulse_lag, lag, peak


def _plot(rows: list[dict], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    h = [r["audio_h"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ax[0].plot(h, [r["rss"] / 2**20 for r in rows], marker="o")
    ax[0].set_xlabel("audio streamed (h)")
    ax[0].set_ylabel("RSS (MiB)")
    ax[0].grid(alpha=0.3)
    ax[1].plot(h, [r["impulse_lag"] for r in rows], marker="o", label="bypass impulse")
    ax[1].plot(h, [r["xcorr_lag"] for r in rows], marker="x", label="processed (xcorr)")
    ax[1].set_xlabel("audio streamed (h)")
    ax[1].set_ylabel("delay (samples)")
    ax[1].legend()
    ax[1].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> str:
    from percepnet.app.models import ModelError, default_model_name, load_model
    from percepnet.dsp.constants import ALGORITHMIC_DELAY_SAMPLES
    from percepnet.dsp.denoiser import Denoiser

    ap = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=2.0, help="audio to stream (default: %(default)s)")
    ap.add_argument("--model", default=None, metavar="NAME|PATH",
                    help="installed model name or path to its .json/.npz (default: the shipped model)")
    ap.add_argument("--check-every-min", type=float, default=10.0,
                    help="minutes of audio between checkpoints (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)
    try:
        model = load_model(args.model if args.model is not None else default_model_name())
    except ModelError as exc:
        raise SystemExit(f"benchmarks.soak: {exc}") from None

    pinned = _fixed_mmap_threshold()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    t_start = time.perf_counter()
    delay = ALGORITHMIC_DELAY_SAMPLES
    den = Denoiser(model)
    source = Source(args.seed)
    streamer = Streamer(den, source)
    total = int(args.hours * 3600 * RATE)
    every = max(int(args.check_every_min * 60 * RATE), int(CHUNK_S * RATE))
    next_check = 0
    rows: list[dict] = []
    gen_s = 0.0
    while True:
        if streamer.samples >= next_check or streamer.samples >= total:
            impulse_lag, xlag, peak = probe_delays(streamer, delay)
            gc.collect()
            rows.append({"audio_h": streamer.samples / RATE / 3600,
                         "wall_s": time.perf_counter() - t_start, "rss": rss_bytes(),
                         "blocks": sys.getallocatedblocks(), "objects": len(gc.get_objects()),
                         "impulse_lag": impulse_lag, "xcorr_lag": xlag, "xcorr_peak": peak,
                         "nonfinite": streamer.nonfinite, "max_abs": streamer.max_abs,
                         "rtf": streamer.process_s / max(streamer.samples / RATE, 1e-9)})
            r = rows[-1]
            print(f"{r['audio_h'] * 60:7.1f} min audio, {r['wall_s']:6.0f} s wall: RSS "
                  f"{r['rss'] / 2**20:.1f} MiB, blocks {r['blocks']}, delay {impulse_lag}/{xlag} "
                  f"(r={peak:.2f}), non-finite {r['nonfinite']}, max |y| {r['max_abs']:.3f}",
                  flush=True)
            if streamer.samples >= total:
                break
            while next_check <= streamer.samples:
                next_check += every
        t0 = time.perf_counter()
        x = source.chunk()
        gen_s += time.perf_counter() - t0
        streamer.feed(x)
    wall = time.perf_counter() - t_start
    audio_s = streamer.samples / RATE

    first, last = rows[min(1, len(rows) - 1)], rows[-1]  # rows[0] is before any audio
    rss_growth = last["rss"] - first["rss"]
    blocks_growth = last["blocks"] - first["blocks"]
    hours_between = max(last["audio_h"] - first["audio_h"], 1e-9)
    checks = {
        "memory flat": (rss_growth < RSS_LIMIT_BYTES and blocks_growth < BLOCKS_LIMIT,
                        f"RSS {rss_growth / 1024:+.0f} KiB, Python blocks {blocks_growth:+d} from "
                        f"{first['audio_h'] * 60:.0f} to {last['audio_h'] * 60:.0f} min of audio "
                        f"({rss_growth / 1024 / hours_between:+.0f} KiB/h; {len(rows) - 2} "
                        "checkpoints in between, whose own records take ~25 blocks each)"),
        "delay constant": (all(r["impulse_lag"] == delay and r["xcorr_lag"] == delay for r in rows),
                           f"bypass impulse lags {sorted({r['impulse_lag'] for r in rows})}, processed-path "
                           f"xcorr lags {sorted({r['xcorr_lag'] for r in rows})}; expected {delay}"),
        "no NaN/Inf out": (streamer.nonfinite == 0,
                           f"{streamer.nonfinite} non-finite output samples"),
        "output bounded": (streamer.max_abs <= OUTPUT_LIMIT,
                           f"max |y| = {streamer.max_abs:.3f} (limit {OUTPUT_LIMIT})"),
        "faster than real time": (wall < audio_s,
                                  f"{audio_s / wall:.1f}x real time overall (incl. generating the "
                                  f"input), {audio_s / max(streamer.process_s, 1e-9):.1f}x for "
                                  "Denoiser.process alone"),
    }
    cmd = "python -m benchmarks.soak " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"# Soak: {audio_s / 3600:.2f} h of audio through one streaming Denoiser",
             "", f"Command: `{cmd.strip()}`"
             f"{'' if args.hours == 2 else ' (the full run: `python -m benchmarks.soak --hours 2`)'}. "
             f"Model `{model.path}`, {'VNNI' if den.network.uses_vnni else 'portable'} kernel; "
             f"{streamer.blocks} blocks of 1-4096 samples; glibc mmap threshold "
             f"{'pinned' if pinned else 'not pinned (RSS may jump by a chunk)'}; input scenes: " +
             ", ".join(f"{k} {v}" for k, v in sorted(source.counts.items())) + ".", "",
             "| check | result | detail |", "|---|---|---|"]
    for name, (ok, detail) in checks.items():
        lines.append(f"| {name} | {'PASS' if ok else 'FAIL'} | {detail} |")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    lines += ["", f"Wall time {wall:.0f} s for {audio_s:.0f} s of audio on {os.cpu_count()} "
              f"cores (1-minute load average {load_start[0]:.2f} at the start, {load[0]:.2f} "
              "at the end: other processes' share shows up in the worst frame): Denoiser.process "
              f"{streamer.process_s:.0f} s (real-time factor {streamer.process_s / audio_s:.4f}), "
              f"generating the input {gen_s:.0f} s. Worst frame {streamer.worst_frame_us:.0f} µs "
              f"(budget 10 000 µs); {streamer.late_blocks} blocks of >= 480 samples took longer "
              "than their own duration.", "",
              "| audio min | wall s | RSS MiB | Python blocks | GC objects | bypass impulse lag | "
              "xcorr lag (peak) | non-finite out | max abs out | RTF so far |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['audio_h'] * 60:.1f} | {r['wall_s']:.0f} | {r['rss'] / 2**20:.1f} | "
                     f"{r['blocks']} | {r['objects']} | {r['impulse_lag']} | {r['xcorr_lag']} "
                     f"({r['xcorr_peak']:.2f}) | {r['nonfinite']} | {r['max_abs']:.3f} | "
                     f"{r['rtf']:.4f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    if _plot(rows, args.out / "soak.png"):
        lines += ["", "![soak](soak.png)"]
    report = write_report(args.out, "soak.md", lines)
    if not all(ok for ok, _ in checks.values()):
        print("SOAK FAILED", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
