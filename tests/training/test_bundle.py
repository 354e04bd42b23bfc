"""training.bundle: the cached corpus packed into parts and unpacked on another machine, where
training.data then runs offline (how the corpus reached the lent GPU machine)."""
from __future__ import annotations

from training_extras import require_training_extras

require_training_extras()

import json
import shutil

import pytest

from audio_fixtures import FIXTURES

from training import bundle
from training.corpus import load_corpus
from training.sources import BASE_PACKAGES, EXTRA_SPEECH, MANIFEST_VERSION, load48

STAMPS = "usr/share/tuxpaint/stamps"


def _fake_cache(root):
    """A data directory as training.sources leaves it: unpacked files, stamps, manifest."""
    tree = root / "tree"
    speech, noises = [], []
    for lang, split in (("fr", "train"), ("ru", "train"), ("da", "val")):
        for i in range(3):
            p = tree / STAMPS / "animals" / f"thing{i}_desc_{lang}.ogg"
            p.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(FIXTURES / f"speech_{lang}.ogg", p)
            speech.append({"path": str(p), "speaker": lang, "split": split,
                           "duration": 3.0, "bandwidth_hz": 20000.0})
    fest = tree / "usr/share/festival/voices/russian/x/wav/a.wav"
    fest.parent.mkdir(parents=True, exist_ok=True)
    fest.write_bytes(b"not carried")
    speech.append({"path": str(fest), "speaker": "festvox-ru", "split": "train",
                   "duration": 1.0, "bandwidth_hz": 7000.0})
    for name, split in (("noise_kettle", "train"), ("noise_vacuum", "val")):
        p = tree / STAMPS / "household" / f"{name}.ogg"
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / f"{name}.ogg", p)
        noises.append({"path": str(p), "speaker": "household", "split": split,
                       "duration": 2.0, "bandwidth_hz": 22050.0})
    for pkg in BASE_PACKAGES + tuple(EXTRA_SPEECH):
        (tree / f".{pkg}.unpacked").touch()
    manifest = {"version": MANIFEST_VERSION, "speech": speech, "noises": noises, "keys": [],
                "music": [], "speaker_bandwidth_hz": {}}
    (root / f"manifest-v{MANIFEST_VERSION}.json").write_text(json.dumps(manifest))
    return manifest


def test_pack_and_unpack_carry_the_corpus_to_another_data_directory(tmp_path, monkeypatch):
    src, dst, parts_dir = tmp_path / "src", tmp_path / "dst", tmp_path / "parts"
    src.mkdir()
    original = _fake_cache(src)
    monkeypatch.setenv("PERCEPNET_DATA_DIR", str(src))
    info = bundle.pack(parts_dir, part_mb=0.1, subsample={"ru": 2})
    assert len(info["parts"]) > 1  # cut into parts of at most 0.1 MB
    assert all((parts_dir / p.split("/")[-1]).stat().st_size <= 100_000 for p in info["parts"])
    # festvox is skipped by default, every second "ru" clip kept
    assert info["speakers"] == {"fr": 3, "ru": 2, "da": 3}

    monkeypatch.setenv("PERCEPNET_DATA_DIR", str(dst))
    manifest_path = bundle.unpack(sorted(parts_dir.iterdir()))
    assert manifest_path == dst / f"manifest-v{MANIFEST_VERSION}.json"
    carried = json.loads(manifest_path.read_text())
    assert [c["speaker"] for c in carried["speech"]] == ["fr"] * 3 + ["ru"] * 2 + ["da"] * 3
    for clip in carried["speech"] + carried["noises"]:
        assert clip["path"].startswith(str(dst))
        src_path = clip["path"].replace(str(dst), str(src), 1)
        assert open(clip["path"], "rb").read() == open(src_path, "rb").read()
    assert carried["noises"][1]["split"] == original["noises"][1]["split"] == "val"
    # training.sources now works there without fetching anything
    train = load_corpus("train")
    assert train.speakers == ["fr", "ru"] and len(train.noises) == 1
    assert load48(train.speech[0].path).size > 48_000
    assert load_corpus("val").speakers == ["da"]


def test_unpack_refuses_an_incomplete_set_of_parts(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.mkdir()
    _fake_cache(src)
    monkeypatch.setenv("PERCEPNET_DATA_DIR", str(src))
    info = bundle.pack(tmp_path / "parts", part_mb=0.1)
    parts = sorted((tmp_path / "parts").iterdir())
    assert len(parts) == len(info["parts"]) > 2
    with pytest.raises(ValueError, match="in full"):
        bundle.unpack(parts[:1] + parts[2:], tmp_path / "dst")
