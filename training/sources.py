"""Training audio from the allowed sources (docs/training-data.md), fetched and cached.

Debian packages are downloaded with ``apt-get download`` and unpacked with ``dpkg-deb -x`` into
the user cache (platformdirs ``percepnet/data``, or ``$PERCEPNET_DATA_DIR``), never into the
repository. The clip listing is written once to a JSON manifest in that cache.

- clean speech: tuxpaint-stamps-default ``*_desc_<lang>.ogg``, one speaker per language
  ("es" is excluded: every file is clipped). Whole speakers are held apart for validation
  (``VALIDATION_SPEAKERS``). Each clip's real bandwidth is measured and stored (the bandwidth
  trap);
- extra band-limited training speakers (loss masked above their ≈7 kHz bandwidth; they teach
  the low bands, which carry most of the speech energy): ``festvox-ru`` (one studio male) and
  the ``asterisk-core-sounds-{en,fr,it,ru}-g722`` IVR voices (four professionals; G.722 is
  decoded with the ``g722`` package). Never used for validation;
- noise: tuxpaint non-``_desc`` sounds outside ``symbols/``, bucklespring key one-shots
  (typing is synthesised in ``training.data``), optionally wesnoth-1.16-music (large);
  procedural kinds are generated in ``training.data``.

A ``Corpus`` can also be built from a list of local files (``Corpus.from_files``), which is
what the tests do.
"""
from __future__ import annotations

import functools
import glob
import json
import os
import subprocess
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import platformdirs
import soundfile as sf
import soxr
from percepnet.dsp.constants import SAMPLE_RATE_HZ

RATE = SAMPLE_RATE_HZ  # the one definition: percepnet.dsp.constants
SPEECH_PACKAGE = "tuxpaint-stamps-default"
KEYS_PACKAGE = "bucklespring-data"
MUSIC_PACKAGE = "wesnoth-1.16-music"
BASE_PACKAGES = (SPEECH_PACKAGE, KEYS_PACKAGE)
#: where build_manifest finds its clips, under the Debian unpack root
STAMPS_DIR = "usr/share/tuxpaint/stamps"  # speech (*_desc_<lang>.ogg) and household noises
KEYS_GLOB = "usr/share/buckle/wav/*.wav"
MUSIC_GLOB = "usr/share/games/wesnoth/1.16/data/core/music/*.ogg"
#: extra noise recordings (``build_manifest(extra_noise=True)``): package -> globs under the
#: unpack root. None of them is a package the unseen-voices development set draws its noises
#: from (``benchmarks.devset_unseen.NOISE_PACKAGES``); its test checks that.
EXTRA_NOISE = {
    # ambient drones and hums, vinyl hiss, a 3D printer, loops, percussion
    "sonic-pi-samples": ("usr/share/sonic-pi/samples/*.flac",),
    # effects, applause and a crowd, loops, pads and instruments (not the breath sample:
    # a talker's own breath is not noise to remove)
    "lmms-common": tuple(f"usr/share/lmms/samples/{d}/*.ogg" for d in (
        "effects", "misc", "beats", "bassloops", "stringsnpads", "instruments", "latin")),
    # helicopter, jet and prop engines, gear and flaps, thunder (11 kHz band-limited)
    "searchandrescue-data": ("usr/share/games/searchandrescue/sounds/*.wav",),
}
EXTRA_NOISE_EXCLUDE = ("breath",)
#: extra noise files shorter than this (seconds) are one-shots that would loop audibly
EXTRA_NOISE_MIN_S = 1.0
#: extra clean-speech packages: package -> (speaker name, glob under the unpack root)
EXTRA_SPEECH = {
    "festvox-ru": ("festvox-ru",
                   "usr/share/festival/voices/russian/msu_ru_nsh_clunits/wav/*.wav"),
    "asterisk-core-sounds-en-g722": ("ast-en", "usr/share/asterisk/sounds/en_US_f_Allison/**/*.g722"),
    "asterisk-core-sounds-fr-g722": ("ast-fr", "usr/share/asterisk/sounds/fr_CA_f_June/**/*.g722"),
    "asterisk-core-sounds-it-g722": ("ast-it", "usr/share/asterisk/sounds/it_IT_m_Carlo/**/*.g722"),
    "asterisk-core-sounds-ru-g722": ("ast-ru", "usr/share/asterisk/sounds/ru_RU_f_IvrvoiceRU/**/*.g722"),
}
#: G.722 as shipped by asterisk: 16 kHz audio at 64 kbit/s
G722_RATE = 16_000
G722_BITRATE = 64_000
LANGUAGES = ("ru", "fr", "da", "be", "ro", "bg", "ca", "lt", "nl", "el")
VALIDATION_SPEAKERS = ("da", "bg")
#: speaker-name prefix of the text-to-speech voices (``training.tts``), training split only
TTS_PREFIX = "tts-"
MANIFEST_VERSION = 2
#: fraction of recorded noise files held out for validation (chosen by a hash of the name)
NOISE_VAL_FRACTION = 0.15


def cache_dir() -> Path:
    d = Path(os.environ.get("PERCEPNET_DATA_DIR",
                            Path(platformdirs.user_cache_dir("percepnet", appauthor=False)) / "data"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def fetch_packages(packages: Iterable[str] = BASE_PACKAGES) -> Path:
    """Download and unpack Debian packages once (idempotent); returns the unpack root."""
    root = cache_dir()
    debs, tree = root / "debs", root / "tree"
    debs.mkdir(exist_ok=True)
    tree.mkdir(exist_ok=True)
    for pkg in packages:
        stamp = tree / f".{pkg}.unpacked"
        if stamp.exists():
            continue
        if not glob.glob(str(debs / f"{pkg}_*.deb")):
            cmd = ["apt-get", "download", pkg]
            if subprocess.run(cmd, cwd=debs).returncode != 0:
                subprocess.run(["apt-get", "update", "-qq"], check=False)
                subprocess.run(cmd, cwd=debs, check=True)
        deb = sorted(glob.glob(str(debs / f"{pkg}_*.deb")))[-1]
        subprocess.run(["dpkg-deb", "-x", deb, str(tree)], check=True)
        stamp.touch()
    return tree


# --------------------------------------------------------------------------- audio helpers

def _read_any(path: str) -> tuple[np.ndarray, int]:
    """Mono float64 samples and rate of a soundfile-readable or raw G.722 (``.g722``) file."""
    if path.endswith(".g722"):
        import G722  # the ``g722`` package (data extra)
        pcm = np.asarray(G722.G722(G722_RATE, G722_BITRATE).decode(Path(path).read_bytes()))
        return pcm.astype(np.float64) / 32768.0, G722_RATE
    data, sr = sf.read(path, dtype="float64", always_2d=True)
    return data.mean(axis=1), sr


@functools.lru_cache(maxsize=4096)
def _load_cached(path: str) -> np.ndarray:
    x, sr = _read_any(path)
    if sr != RATE:
        x = soxr.resample(x, sr, RATE)
    x.setflags(write=False)
    return x


def load48(path: str | Path) -> np.ndarray:
    """Mono float64 at 48 kHz (cached per process; read-only array)."""
    return _load_cached(str(path))


def trim_silence(x: np.ndarray, floor_db: float = -45.0) -> np.ndarray:
    """Drop leading/trailing 10 ms frames quieter than floor_db below the loudest frame."""
    n = len(x) // 480 * 480
    if n == 0:
        return x
    level = 10 * np.log10(np.mean(x[:n].reshape(-1, 480) ** 2, axis=1) + 1e-20)
    active = np.nonzero(level > level.max() + floor_db)[0]
    if active.size == 0:
        return x
    return x[active[0] * 480:(active[-1] + 1) * 480]


def long_term_spectrum(x: np.ndarray, rate: int = RATE, nfft: int = 2048
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(freqs, mean power) of 2048-point Hann frames with 50 % overlap."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if len(x) < nfft:
        x = np.pad(x, (0, nfft - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, nfft)[::nfft // 2] * np.hanning(nfft)
    return np.fft.rfftfreq(nfft, 1.0 / rate), np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, 0)


def bandwidth_from_spectrum(freqs: np.ndarray, psd: np.ndarray, range_db: float = 60.0,
                            smooth_hz: float = 1000.0, edge_hz: float = 200.0) -> float:
    """Highest frequency where the spectrum lies within ``range_db`` of its peak and at least
    10 dB above its lowest level (the empty band a codec or resampler leaves above its
    cut-off). The peak is taken on the spectrum smoothed over ``smooth_hz`` (so one pitch
    harmonic does not set it); the crossing on a finer ``edge_hz`` smoothing (a sharp edge
    is not smeared upwards by more than edge_hz / 2)."""
    df = freqs[1] - freqs[0]

    def smoothed_db(hz):
        width = max(1, int(round(hz / df)))
        return 10 * np.log10(np.convolve(psd, np.ones(width) / width, mode="same") + 1e-30)

    coarse, fine = smoothed_db(smooth_hz), smoothed_db(edge_hz)
    valid = (freqs >= 100.0) & (freqs <= freqs[-1] - smooth_hz / 2)
    peak = coarse[valid].max()
    floor = coarse[valid].min()
    # a flat spectrum (white noise) has no floor to speak of: never ask for more than 20 dB
    threshold = max(peak - range_db, min(floor + 10.0, peak - 20.0))
    hits = np.nonzero((freqs >= 100.0) & (fine >= threshold))[0]
    if hits.size == 0:
        return float(freqs[1])
    return float(freqs[hits[-1]])


def measure_bandwidth(x: np.ndarray, rate: int = RATE, range_db: float = 60.0) -> float:
    """Effective bandwidth of a clip in Hz (see ``bandwidth_from_spectrum``).

    The long-term spectrum is smoothed over 1 kHz, so single pitch harmonics do not set the
    peak; 60 dB (rather than 50 on a finely resolved spectrum) matches the bandwidths
    measured on the packages (docs/training-data.md) on the smoothed spectrum.
    """
    freqs, psd = long_term_spectrum(x, rate)
    return bandwidth_from_spectrum(freqs, psd, range_db)


# --------------------------------------------------------------------------- corpus

@dataclass(frozen=True)
class Clip:
    path: str
    speaker: str  # language code for speech; noise kind for noises
    split: str  # "train" or "val"
    duration: float
    bandwidth_hz: float


@dataclass
class Corpus:
    """The audio one split draws from. speech: clean clips; noises: recorded noise files
    (non-stationary SFX); keys: keyboard one-shots; music: music files; babble: clean clips
    babble may use (training speakers)."""

    split: str
    speech: list[Clip]
    noises: list[Clip] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    music: list[str] = field(default_factory=list)
    babble: list[Clip] = field(default_factory=list)
    #: more recorded noises (``EXTRA_NOISE``), drawn as their own kind, "sfx"
    extra_noises: list[Clip] = field(default_factory=list)

    @property
    def speakers(self) -> list[str]:
        return sorted({c.speaker for c in self.speech})

    def speaker_bandwidths(self) -> dict[str, float]:
        """Median clip bandwidth of each speaker."""
        out: dict[str, list[float]] = {}
        for c in self.speech:
            out.setdefault(c.speaker, []).append(c.bandwidth_hz)
        return {k: float(np.median(v)) for k, v in out.items()}

    def clips_of(self, speaker: str) -> list[Clip]:
        return [c for c in self.speech if c.speaker == speaker]

    @classmethod
    def from_files(cls, speech: dict[str, Sequence[str | Path]],
                   noises: Sequence[str | Path] = (), keys: Sequence[str | Path] = (),
                   music: Sequence[str | Path] = (), split: str = "train",
                   bandwidths: dict[str, float] | None = None) -> "Corpus":
        """A corpus from local files. speech: speaker -> files. Bandwidths are measured
        unless given per speaker."""
        clips = []
        for spk, files in speech.items():
            for f in files:
                x = load48(f)
                bw = (bandwidths or {}).get(spk)
                clips.append(Clip(str(f), spk, split, len(x) / RATE,
                                  float(bw if bw is not None else measure_bandwidth(x))))
        noise_clips = [Clip(str(f), Path(f).stem, split, len(load48(f)) / RATE, RATE / 2)
                       for f in noises]
        return cls(split, clips, noise_clips, [str(k) for k in keys], [str(m) for m in music],
                   list(clips))


def _stable_fraction(name: str) -> float:
    return zlib.crc32(name.encode()) / 2**32


def _split_of_noise(name: str) -> str:
    return "val" if _stable_fraction(name) < NOISE_VAL_FRACTION else "train"


def _measure_file(path: str) -> tuple[float, float]:
    x, sr = _read_any(path)
    return len(x) / sr, measure_bandwidth(trim_silence(x), sr)


def extra_noise_clips() -> list[dict]:
    """The EXTRA_NOISE recordings as clips (readable, long enough, not excluded; speaker:
    the folder they sit in; split by file hash), listed once and cached as JSON in the data
    dir, beside the manifest they extend."""
    path = cache_dir() / f"extra-noises-v{MANIFEST_VERSION}.json"
    if path.exists():
        return json.loads(path.read_text())
    tree = fetch_packages(tuple(EXTRA_NOISE))
    clips = []
    for pattern in (p for globs in EXTRA_NOISE.values() for p in globs):
        for f in sorted(glob.glob(str(tree / pattern))):
            if any(x in Path(f).name for x in EXTRA_NOISE_EXCLUDE):
                continue
            try:
                info = sf.info(f)
            except sf.LibsndfileError:  # lmms ships a malformed scratch01.ogg
                continue
            if info.duration >= EXTRA_NOISE_MIN_S:
                rel = os.path.relpath(f, tree)
                clips.append(asdict(Clip(f, rel.split("/")[-2], _split_of_noise(rel),
                                         info.duration, info.samplerate / 2)))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(clips, indent=1))
    tmp.replace(path)
    return clips


def build_manifest(music: bool = False, workers: int = 2, extra_noise: bool = False) -> dict:
    """Fetch the packages, list and measure every clip; cached as JSON in the data dir.
    ``extra_noise``: the same manifest plus the EXTRA_NOISE recordings ("extra_noises")."""
    if extra_noise:
        return dict(build_manifest(music=music, workers=workers),
                    extra_noises=extra_noise_clips())
    packages = BASE_PACKAGES + tuple(EXTRA_SPEECH) + ((MUSIC_PACKAGE,) if music else ())
    tree = fetch_packages(packages)
    path = cache_dir() / f"manifest-v{MANIFEST_VERSION}{'-music' if music else ''}.json"
    if path.exists():
        return json.loads(path.read_text())
    stamps = tree / STAMPS_DIR
    speech_files = []
    for lang in LANGUAGES:
        for f in sorted(glob.glob(str(stamps / "**" / f"*_desc_{lang}.ogg"), recursive=True)):
            speech_files.append((f, lang))
    for speaker, pattern in EXTRA_SPEECH.values():
        for f in sorted(glob.glob(str(tree / pattern), recursive=True)):
            speech_files.append((f, speaker))
    noise_files = sorted(
        f for f in glob.glob(str(stamps / "**" / "*.ogg"), recursive=True)
        if "_desc" not in Path(f).name and "/symbols/" not in f)
    keys = sorted(glob.glob(str(tree / KEYS_GLOB)))
    music_files = sorted(glob.glob(str(tree / MUSIC_GLOB))) if music else []
    if workers > 1:
        from multiprocessing import Pool
        with Pool(workers) as pool:
            measured = pool.map(_measure_file, [f for f, _ in speech_files], chunksize=32)
    else:
        measured = [_measure_file(f) for f, _ in speech_files]
    speech = [asdict(Clip(f, lang, "val" if lang in VALIDATION_SPEAKERS else "train", d, bw))
              for (f, lang), (d, bw) in zip(speech_files, measured)]
    noises = []
    for f in noise_files:
        info = sf.info(f)
        rel = os.path.relpath(f, stamps)
        noises.append(asdict(Clip(f, rel.split("/")[0], _split_of_noise(rel), info.duration,
                                  info.samplerate / 2)))
    manifest = {"version": MANIFEST_VERSION, "speech": speech, "noises": noises, "keys": keys,
                "music": music_files,
                "speaker_bandwidth_hz": {lang: float(np.median([c["bandwidth_hz"] for c in speech
                                                                 if c["speaker"] == lang]))
                                         for lang in sorted({c["speaker"] for c in speech})}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(path)
    return manifest

