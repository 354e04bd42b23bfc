"""Audio files in and out: any rate and channel count, converted to 48 kHz float for dsp/.

Errors are :class:`AudioFileError` with a one-line message naming the file; writing goes
through a temporary file in the destination folder, so a failed run leaves no partial
output and an input file is never overwritten.
"""
from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from percepnet.dsp.constants import SAMPLE_RATE_HZ

__all__ = ["AudioFileError", "read_audio", "write_audio", "to_model_rate", "from_model_rate"]


class AudioFileError(Exception):
    """A file that cannot be read or written, with a message fit for the user."""


def _wav_shortfall(path: Path) -> tuple[int, int] | None:
    """(bytes announced, bytes present) of a RIFF/WAVE file whose data chunk is cut short,
    else None. libsndfile silently reads what is there, so a truncated WAV would otherwise
    pass as a shorter recording. A data size of 0 or of 2 GiB and more (the placeholders
    that tools writing to a pipe leave, length unknown) is not a truncation."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            pos = 12
            while pos + 8 <= size:
                fh.seek(pos)
                chunk, length = struct.unpack("<4sI", fh.read(8))
                if chunk == b"data":
                    present = size - pos - 8
                    if length == 0 or length >= 0x7FFF0000 or length <= present:
                        return None
                    return length, present
                pos += 8 + length + (length & 1)
    except OSError:
        return None
    return None


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int, str]:
    """Read a sound file as float64 (n_samples, n_channels) in [-1, 1].

    Returns (data, sample_rate_hz, subtype). Raises AudioFileError for a missing,
    unreadable, truncated, empty or non-finite file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    try:
        with sf.SoundFile(str(path)) as f:
            rate, channels, subtype = f.samplerate, f.channels, f.subtype
            data = f.read(dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioFileError(f"{path}: not a readable sound file ({exc})") from None
    if channels < 1 or data.shape[1] < 1:
        raise AudioFileError(f"{path}: the file has no audio channels")
    if data.shape[0] == 0:
        raise AudioFileError(f"{path}: the file holds no samples")
    short = _wav_shortfall(path)
    if short is not None:
        announced, present = short
        raise AudioFileError(f"{path}: the file is truncated (its header announces "
                             f"{announced * data.shape[0] / max(present, 1) / rate:.2f} s of "
                             f"audio, only {data.shape[0] / rate:.2f} s are there)")
    bad = ~np.isfinite(data)
    if bad.any():
        raise AudioFileError(f"{path}: {int(bad.sum())} samples are NaN or infinite")
    return data, int(rate), subtype


def to_model_rate(data: np.ndarray, rate: int) -> np.ndarray:
    """Resample (n, channels) float64 audio to 48 kHz (soxr, high quality)."""
    if rate == SAMPLE_RATE_HZ:
        return np.ascontiguousarray(data, dtype=np.float64)
    return np.ascontiguousarray(soxr.resample(data, rate, SAMPLE_RATE_HZ, quality="HQ"),
                                dtype=np.float64)


def from_model_rate(data: np.ndarray, rate: int, n_samples: int) -> np.ndarray:
    """Resample 48 kHz (n, channels) audio back to ``rate`` and fit it to n_samples."""
    if rate != SAMPLE_RATE_HZ:
        data = soxr.resample(data, SAMPLE_RATE_HZ, rate, quality="HQ")
    out = np.zeros((n_samples, data.shape[1]))
    m = min(n_samples, data.shape[0])
    out[:m] = data[:m]
    return out


def write_audio(path: str | os.PathLike, data: np.ndarray, rate: int, *,
                subtype: str | None = None, protect: tuple[Path, ...] = ()) -> None:
    """Write (n, channels) float audio atomically (temp file + rename).

    ``protect``: input paths that must never be overwritten. Integer subtypes clip to
    [-1, 1]. Raises AudioFileError on any failure, leaving no partial file behind.
    """
    path = Path(path)
    for p in protect:
        if p.exists() and path.exists() and path.resolve() == Path(p).resolve():
            raise AudioFileError(f"{path}: refusing to overwrite an input file")
    fmt = sf.available_formats()
    ext = path.suffix.lower().lstrip(".")
    major = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG"}.get(ext)
    if major is None or major not in fmt:
        raise AudioFileError(f"{path}: unsupported output format {path.suffix or '(none)'};"
                             " use .wav, .flac or .ogg")
    if subtype is not None and not sf.check_format(major, subtype):
        subtype = None
    if subtype is None:
        subtype = "FLOAT" if major == "WAV" else sf.default_subtype(major)
    if subtype.startswith("PCM") or major == "FLAC":
        data = np.clip(data, -1.0, 1.0)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise AudioFileError(f"{path}: folder {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".{ext}", dir=directory)
    os.close(fd)
    try:
        sf.write(tmp, data, rate, subtype=subtype, format=major)
        os.replace(tmp, path)
    except BaseException as exc:  # Ctrl-C during a long write must not leave the temp file
        if os.path.exists(tmp):
            os.unlink(tmp)
        if not isinstance(exc, Exception):
            raise
        raise AudioFileError(f"{path}: could not write ({exc})") from None
