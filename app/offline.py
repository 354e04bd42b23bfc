"""File-level runs of the chain: the oracle command and the bundled demo."""
from __future__ import annotations

import errno
import multiprocessing
import os
import signal
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from queue import Empty

import numpy as np

from percepnet.app.audio_io import (
    AudioFileError,
    audio_suffixes,
    format_for,
    from_model_rate,
    read_audio,
    to_model_rate,
    write_audio,
)
from percepnet.dsp.constants import SAMPLE_RATE_HZ
from percepnet.dsp.oracle import oracle_enhance

__all__ = ["run_oracle_files", "run_demo", "demo_mixture", "denoise_signal", "denoise_file",
           "denoise_paths", "FileResult", "usable_cores", "Interrupted", "check_stop",
           "stop_on_signals"]

#: Clean and noisy may differ by this much in length after resampling (rounding only).
_LENGTH_TOLERANCE_S = 0.01


def run_oracle_files(clean_path: Path, noisy_path: Path, out_path: Path, stage: str) -> None:
    """Oracle-enhance ``noisy_path`` using ``clean_path``; write ``out_path``.

    Each channel is processed independently; a mono clean reference serves every channel
    of the noisy file. The output has the noisy file's rate, channels and length.
    """
    clean, clean_rate, _ = read_audio(clean_path)
    noisy, noisy_rate, subtype = read_audio(noisy_path)
    clean_duration = clean.shape[0] / clean_rate
    noisy_duration = noisy.shape[0] / noisy_rate
    if abs(clean_duration - noisy_duration) > _LENGTH_TOLERANCE_S:
        raise AudioFileError(
            f"{clean_path} lasts {clean_duration:.3f} s but {noisy_path} lasts "
            f"{noisy_duration:.3f} s; the clean reference must be aligned with the noisy input")
    if clean.shape[1] not in (1, noisy.shape[1]):
        raise AudioFileError(
            f"{clean_path} has {clean.shape[1]} channels and {noisy_path} has {noisy.shape[1]};"
            " give a mono clean reference or one with the same channel count")
    clean48 = to_model_rate(clean, clean_rate)
    noisy48 = to_model_rate(noisy, noisy_rate)
    n48 = noisy48.shape[0]
    fitted = np.zeros((n48, clean48.shape[1]))
    m = min(n48, clean48.shape[0])
    fitted[:m] = clean48[:m]
    out48 = np.empty_like(noisy48)
    for ch in range(noisy48.shape[1]):
        ref = fitted[:, ch if fitted.shape[1] > 1 else 0]
        out48[:, ch] = oracle_enhance(ref, noisy48[:, ch], stage)
    out = from_model_rate(out48, noisy_rate, noisy.shape[0])
    write_audio(out_path, out, noisy_rate, subtype=subtype, protect=(clean_path, noisy_path))


def _asset(name: str) -> np.ndarray:
    ref = resources.files("percepnet.app").joinpath("assets", name)
    with resources.as_file(ref) as path:
        data, rate, _ = read_audio(path)
    return to_model_rate(data, rate)[:, 0]


def demo_mixture(snr_db: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """The bundled demo: (clean, noisy) 48 kHz mono, speech plus looped noise at ``snr_db``."""
    clean = _asset("demo_speech.ogg")
    noise = _asset("demo_noise.ogg")
    noise = np.resize(noise, clean.shape[0])
    gain = np.sqrt(np.mean(clean**2) / (np.mean(noise**2) * 10.0 ** (snr_db / 10.0)))
    return clean, clean + gain * noise


def run_demo(out_dir: Path) -> None:
    """Write the demo's clean, noisy and oracle outputs to ``out_dir`` and print SNRs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clean, noisy = demo_mixture()

    def snr(y: np.ndarray) -> float:
        return 10.0 * np.log10(np.sum(clean**2) / max(np.sum((y - clean) ** 2), 1e-20))

    print("The streaming chain with oracle gains (computed from the clean speech: an upper "
          "bound for the trained model) on the bundled demo clip.")
    write_audio(out_dir / "clean.wav", clean[:, None], SAMPLE_RATE_HZ)
    write_audio(out_dir / "noisy.wav", noisy[:, None], SAMPLE_RATE_HZ)
    print(f"  noisy input        SNR {snr(noisy):6.2f} dB  -> {out_dir / 'noisy.wav'}")
    for stage in ("gains", "comb", "all"):
        y = oracle_enhance(clean, noisy, stage)
        path = out_dir / f"oracle_{stage}.wav"
        write_audio(path, y[:, None], SAMPLE_RATE_HZ)
        print(f"  oracle {stage:<6}      SNR {snr(y):6.2f} dB  -> {path}")


#: Files longer than this show a progress bar (when stderr is a terminal).
_PROGRESS_MIN_S = 20.0
_CHUNK = SAMPLE_RATE_HZ  # 1 s blocks between progress updates


def _progress(label: str, done: float, total: float) -> None:
    if not sys.stderr.isatty():
        return
    width = 30
    filled = int(width * done / total) if total > 0 else width
    sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {100 * done / total:5.1f} %")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


class Interrupted(BaseException):
    """A stop was requested (SIGINT/SIGTERM under :func:`stop_on_signals`); raised from
    plain Python code between 1 s blocks, so every ``finally`` runs (no partial file).
    ``signum``: the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_stop_signal = [0]  # the signal that asked to stop (0: none); set by the handler only


def _request_stop(signum, frame) -> None:  # noqa: ARG001
    # only a flag: raising here could land inside a ctypes callback (numba compiling),
    # where Python prints and ignores the exception and the work goes on
    _stop_signal[0] = signum


def check_stop() -> None:
    """Raise :class:`Interrupted` if a stop was requested."""
    if _stop_signal[0]:
        raise Interrupted(_stop_signal[0])


@contextmanager
def stop_on_signals(*signums: int):
    """While inside: SIGINT/SIGTERM (or ``signums``) request a stop that denoising honours
    within one block (:class:`Interrupted`), instead of killing mid-write. Main thread only."""
    signums = signums or (signal.SIGINT, signal.SIGTERM)
    _stop_signal[0] = 0
    old = {s: signal.signal(s, _request_stop) for s in signums}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _stop_signal[0] = 0


def denoise_signal(x48: np.ndarray, model, *, atten_limit_db: float | None = None,
                   use_comb: bool | None = None, use_postfilter: bool | None = None,
                   use_decay_cap: bool | None = None, label: str | None = None) -> np.ndarray:
    """Denoise a 48 kHz mono signal with a fresh :class:`Denoiser`; output aligned with the
    input and of its length (the same samples as streaming it and dropping the delay).
    Controls left as None take the product default (``settings.PARAMS``)."""
    from percepnet.app.settings import or_defaults
    from percepnet.dsp.denoiser import Denoiser

    atten_limit_db, use_comb, use_postfilter, use_decay_cap = or_defaults(
        atten_limit_db=atten_limit_db, use_comb=use_comb, use_postfilter=use_postfilter,
        use_decay_cap=use_decay_cap)

    den = Denoiser(model, atten_limit_db=atten_limit_db, use_comb=use_comb,
                   use_postfilter=use_postfilter, use_decay_cap=use_decay_cap)
    n = x48.shape[0]
    out = np.empty(n + den.delay_samples)
    show = label is not None and n > _PROGRESS_MIN_S * SAMPLE_RATE_HZ
    for start in range(0, n, _CHUNK):
        check_stop()
        stop = min(n, start + _CHUNK)
        den.process(x48[start:stop], out[start:stop])
        if show:
            _progress(label, stop, n)
    den.process(np.zeros(den.delay_samples), out[n:])
    return out[den.delay_samples:]


def denoise_file(in_path: Path, out_path: Path, model, *, atten_limit_db: float | None = None,
                 use_comb: bool | None = None, use_postfilter: bool | None = None,
                 use_decay_cap: bool | None = None, overwrite: bool = True,
                 progress: bool = True) -> None:
    """Denoise one file: any format libsndfile reads, any rate (soxr to 48 kHz and back),
    each channel independently; written in the format ``out_path``'s extension names,
    keeping the input's rate, channels, length and (where that format takes it) subtype.
    ``overwrite=False`` refuses an existing ``out_path``; ``progress`` allows the progress
    bar (shown only on a terminal, for long files)."""
    if out_path.exists() and out_path.resolve() == in_path.resolve():
        raise AudioFileError(f"{out_path}: refusing to overwrite the input file")
    if not overwrite and out_path.exists():
        raise AudioFileError(f"{out_path}: the file exists (give --overwrite to replace it)")
    format_for(out_path)  # an unwritable format is refused before the work, not after
    data, rate, subtype = read_audio(in_path)
    x48 = to_model_rate(data, rate)
    y48 = np.empty_like(x48)
    for ch in range(x48.shape[1]):
        label = f"{in_path.name} ch{ch + 1}" if x48.shape[1] > 1 else in_path.name
        y48[:, ch] = denoise_signal(x48[:, ch], model, atten_limit_db=atten_limit_db,
                                    use_comb=use_comb, use_postfilter=use_postfilter,
                                    use_decay_cap=use_decay_cap,
                                    label=label if progress else None)
    out = from_model_rate(y48, rate, data.shape[0])
    check_stop()
    write_audio(out_path, out, rate, subtype=subtype, protect=(in_path,), overwrite=overwrite)


@dataclass(frozen=True)
class FileResult:
    """One file of a folder run: ``error`` is "" when it was written; ``worker_pid`` is the
    process that did the work."""

    source: Path
    target: Path
    error: str = ""
    worker_pid: int = 0


#: errors that concern the target rather than one file: a folder run stops at the first
_TARGET_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


def _target_failed(exc: AudioFileError) -> bool:
    return getattr(exc, "errno", None) in _TARGET_ERRNOS


def _denoise_one(src: Path, dst: Path, model, overwrite: bool, progress: bool,
                 options: dict) -> FileResult:
    try:
        denoise_file(src, dst, model, overwrite=overwrite, progress=progress, **options)
    except AudioFileError as exc:
        if _target_failed(exc):
            raise
        return FileResult(src, dst, str(exc), os.getpid())
    return FileResult(src, dst, "", os.getpid())


def _worker(pairs: list[tuple[Path, Path]], model, overwrite: bool, options: dict,
            results) -> None:
    """A ``--jobs`` process: denoise its share of the files, one result per file on
    ``results``; a target error (disk full, read-only) ends the share. SIGTERM (the
    parent's ``terminate``) stops it within one block, leaving no temporary file."""
    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent stops us (SIGTERM)
    for src, dst in pairs:
        try:
            results.put(_denoise_one(src, dst, model, overwrite, False, options))
        except Interrupted:
            return
        except AudioFileError as exc:
            results.put(FileResult(src, dst, str(exc), -1))
            return
        except Exception as exc:  # noqa: BLE001 - reported, never a silent worker death
            results.put(FileResult(src, dst, f"{src}: {type(exc).__name__}: {exc}", os.getpid()))


def _shares(pairs: list[tuple[Path, Path]], n: int) -> list[list[tuple[Path, Path]]]:
    """``pairs`` split into ``n`` non-empty shares of about equal total input size (the
    largest files first, each to the least loaded share)."""
    shares: list[list[tuple[Path, Path]]] = [[] for _ in range(n)]
    load = [0] * n
    for pair in sorted(pairs, key=lambda p: p[0].stat().st_size, reverse=True):
        i = load.index(min(load))
        shares[i].append(pair)
        load[i] += max(pair[0].stat().st_size, 1)
    return shares


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def denoise_paths(in_path: Path, out_path: Path, model, *, jobs: int | None = None,
                  overwrite: bool = False, report=print, **options) -> list[FileResult]:
    """File -> file, or folder -> folder (every file in a format libsndfile reads, sub-folders
    mirrored, each output in its input's format).

    ``jobs``: processes for a folder (default: one per CPU core, at most one per file).
    ``overwrite=False``: existing outputs are refused before any work (one error). A target
    that cannot take the files (read-only, full) stops the run with one AudioFileError;
    a file that cannot be read is reported through ``report`` ("percepnet: error: ...") and
    the others go on. Returns one :class:`FileResult` per file (folder mode), [] for a file.
    options: ``denoise_file``'s (atten_limit_db, use_comb, use_postfilter, use_decay_cap).
    """
    if not in_path.is_dir():
        denoise_file(in_path, out_path, model, overwrite=overwrite, **options)
        return []
    if out_path.exists() and out_path.resolve() == in_path.resolve():
        raise AudioFileError(f"{out_path}: output folder must differ from the input folder")
    suffixes = audio_suffixes()
    out_abs = out_path.resolve()
    files = sorted(p for p in in_path.rglob("*") if p.suffix.lower() in suffixes and p.is_file()
                   and not p.resolve().is_relative_to(out_abs))  # OUT may lie inside IN
    if not files:
        raise AudioFileError(f"{in_path}: no sound files in this folder (looked for "
                             f"{' '.join(suffixes)})")
    pairs = [(f, out_path / f.relative_to(in_path)) for f in files]
    if not overwrite:
        existing = [dst for _, dst in pairs if dst.exists()]
        if existing:
            more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
            raise AudioFileError(f"{existing[0]}{more}: the output exists (give --overwrite to "
                                 "replace)")
    for folder in sorted({dst.parent for _, dst in pairs}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AudioFileError(f"{folder}: cannot create the output folder "
                                 f"({exc.strerror or exc})") from None
    jobs = max(1, min(jobs or usable_cores(), len(pairs)))
    results: list[FileResult] = []

    def note(res: FileResult) -> None:
        results.append(res)
        report(f"percepnet: error: {res.error}" if res.error else f"wrote {res.target}")

    if jobs == 1:
        for src, dst in pairs:
            check_stop()
            note(_denoise_one(src, dst, model, overwrite, True, options))
        return results
    ctx = multiprocessing.get_context()
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(share, model, overwrite, options, queue),
                         name=f"percepnet-denoise-{i}", daemon=True)
             for i, share in enumerate(_shares(pairs, jobs))]
    for p in procs:
        p.start()
    try:
        while len(results) < len(pairs):
            check_stop()
            try:
                res = queue.get(timeout=0.2)
            except Empty:
                if not any(p.is_alive() for p in procs) and queue.empty():
                    dead = [p for p in procs if p.exitcode]
                    raise AudioFileError(f"{in_path}: a worker process died (exit code "
                                         f"{dead[0].exitcode if dead else '?'})") from None
                continue
            if res.worker_pid == -1:  # the target failed: stop everyone, one line
                raise AudioFileError(res.error)
            note(res)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=10.0)
            if p.is_alive():  # stuck in a kernel that ignores signals: no choice left
                p.kill()
                p.join()
    return results
