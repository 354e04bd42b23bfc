"""Audio files in and out: any rate and channel count, converted to 48 kHz float for dsp/.

Errors are :class:`AudioFileError` with a one-line message naming the file; writing goes
through a temporary file in the destination folder, so a failed run (read-only folder, full
disk) leaves no partial output and never damages an existing file, and an input file is
never overwritten. Any format libsndfile reads is accepted; the output format follows the
output file's extension (:data:`EXTENSIONS`, limited to what this libsndfile writes).
"""
from __future__ import annotations

import io
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from percepnet.dsp.constants import SAMPLE_RATE_HZ

__all__ = ["AudioFileError", "read_audio", "write_audio", "to_model_rate", "from_model_rate",
           "EXTENSIONS", "audio_suffixes", "format_for"]

#: libsndfile major format -> the file extensions it goes by. Left out: RAW (header-less,
#: unreadable without being told its layout) and SD2 (its header lives in a macOS resource
#: fork).
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "WAV": (".wav",), "FLAC": (".flac",), "OGG": (".ogg", ".oga", ".opus"), "MP3": (".mp3",),
    "AIFF": (".aiff", ".aif", ".aifc"), "AU": (".au", ".snd"), "CAF": (".caf",),
    "W64": (".w64",), "RF64": (".rf64",), "VOC": (".voc",), "IRCAM": (".sf",),
    "NIST": (".nist", ".sph"), "SVX": (".8svx", ".iff", ".svx"), "PAF": (".paf",),
    "XI": (".xi",), "AVR": (".avr",), "SDS": (".sds",), "MPC2K": (".mpc2k",),
    "WVE": (".wve",), "PVF": (".pvf",), "HTK": (".htk",), "MAT5": (".mat",),
}
#: lossy codecs: kept from the input only when the output is their own container
_CODEC_CONTAINERS = {"VORBIS": ("OGG",), "OPUS": ("OGG",), "MPEG_LAYER_I": ("MP3",),
                     "MPEG_LAYER_II": ("MP3",), "MPEG_LAYER_III": ("MP3",)}


class AudioFileError(Exception):
    """A file that cannot be read or written, with a message fit for the user. ``errno`` is
    the OS error number when the target refused a write (else None)."""

    errno: int | None = None


def audio_suffixes() -> tuple[str, ...]:
    """The file extensions (lower case, with the dot) of every format this libsndfile reads."""
    have = sf.available_formats()
    return tuple(ext for major, exts in EXTENSIONS.items() if major in have for ext in exts)


def format_for(path: str | os.PathLike) -> str:
    """The libsndfile major format a file named ``path`` is written as; AudioFileError when
    its extension names no format this libsndfile writes."""
    ext = Path(path).suffix.lower()
    have = sf.available_formats()
    for major, exts in EXTENSIONS.items():
        if ext in exts and major in have:
            return major
    raise AudioFileError(f"{path}: unsupported output format {Path(path).suffix or '(none)'};"
                         f" use one of {' '.join(audio_suffixes())}")


def _output_subtype(major: str, ext: str, subtype: str | None) -> str:
    """The input's subtype where the output format takes it (a lossy codec only into its own
    container), else the format's default (32-bit float where the format has it: no
    clipping)."""
    if ext == ".opus":
        return "OPUS"
    if subtype is not None:
        containers = _CODEC_CONTAINERS.get(subtype)
        if major in containers if containers is not None else sf.check_format(major, subtype):
            return subtype
    if major in ("WAV", "W64", "RF64", "CAF", "AIFF") and sf.check_format(major, "FLOAT"):
        return "FLOAT"
    return sf.default_subtype(major)


def _umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
                subtype: str | None = None, protect: tuple[Path, ...] = (),
                overwrite: bool = True) -> None:
    """Write (n, channels) float audio atomically (temp file + rename), in the format the
    extension names (:func:`format_for`), with permissions from the umask like any new file.

    ``subtype``: the input's, kept where the format takes it. ``protect``: input paths that
    must never be overwritten. ``overwrite=False``: an existing ``path`` is refused (checked
    atomically: the file is linked into place, not renamed over). Integer and coded subtypes
    clip to [-1, 1]. Raises AudioFileError on any failure (one line; its ``errno`` is set when
    the target refused the bytes: read-only, full, no permission), leaving no partial file
    and any existing ``path`` untouched.
    """
    path = Path(path)
    for p in protect:
        if p.exists() and path.exists() and path.resolve() == Path(p).resolve():
            raise AudioFileError(f"{path}: refusing to overwrite an input file")
    if not overwrite and path.exists():
        raise AudioFileError(f"{path}: the file exists (give --overwrite to replace it)")
    major = format_for(path)
    ext = path.suffix.lower()
    subtype = _output_subtype(major, ext, subtype)
    if subtype not in ("FLOAT", "DOUBLE"):  # integer and coded samples wrap, not clip
        data = np.clip(data, -1.0, 1.0)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise AudioFileError(f"{path}: folder {directory} does not exist")
    # encode in memory first: a codec's complaint (a rate MP3 cannot take) is told apart
    # from the target's (disk full, read-only), which then carries its errno
    buf = io.BytesIO()
    try:
        sf.write(buf, data, rate, subtype=subtype, format=major)
    except (OSError, sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        why = (getattr(exc, "error_string", "") or getattr(exc, "strerror", "")
               or str(exc)).strip()
        err = AudioFileError(f"{path}: could not write {major} {subtype} at {rate} Hz with "
                             f"{data.shape[1]} channel(s) ({why})")
        err.errno = getattr(exc, "errno", None)
        raise err from None
    encoded = buf.getbuffer()
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=ext, dir=directory)
        try:
            os.fchmod(fd, 0o666 & ~_umask())
            view = memoryview(encoded)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if path appeared meanwhile: never clobbered
            except FileExistsError:
                raise AudioFileError(f"{path}: the file exists (give --overwrite to replace "
                                     "it)") from None
            except OSError:  # no hard links here (some network/FAT file systems)
                if path.exists():
                    raise AudioFileError(f"{path}: the file exists (give --overwrite to "
                                         "replace it)") from None
                os.replace(tmp, path)
    except OSError as exc:
        err = AudioFileError(f"{path}: could not write in {directory} ({exc.strerror or exc})")
        err.errno = exc.errno
        raise err from None
    finally:  # also on Ctrl-C during a long write: no temp file left behind
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
