"""The honest development set (benchmarks/devset_unseen.py) shares no speaker, language,
package or noise file with training (training/sources.py, training/tts.py), and its plan
has the promised shape. Declarations and a tiny synthetic signal only: no download."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from benchmarks import devset_unseen as D
from benchmarks.quality_unseen import seg_snr_bands
from training import sources as S
from training import tts as T


def _training_real_languages() -> set[str]:
    """Languages of the real training speech: the tuxpaint languages and the extra voices
    (their speaker names end in the language code: festvox-ru, ast-en ...)."""
    langs = set(S.LANGUAGES)
    for speaker, _ in S.EXTRA_SPEECH.values():
        m = re.search(r"-([a-z]{2})$", speaker)
        assert m, f"cannot read the language of training speaker {speaker!r}"
        langs.add(m.group(1))
    return langs


def _training_tts_languages() -> set[str]:
    return {lang.split("-")[0] for lang in T.ESPEAK_LANGUAGES} | {"en"}  # flite: English


def _dev_languages() -> set[str]:
    return {s.language for s in D.speakers()}


def test_no_language_of_the_real_training_speech():
    overlap = _dev_languages() & _training_real_languages()
    assert not overlap, f"development languages also in the training speech: {overlap}"


def test_languages_shared_with_the_tts_voices_are_exactly_the_named_ones():
    shared = _dev_languages() & _training_tts_languages()
    assert shared == set(D.TTS_ONLY_LANGUAGES), shared


def test_no_speaker_or_package_of_training():
    dev_names = {s.name for s in D.speakers()}
    assert len(dev_names) == len(D.speakers())
    train_speakers = set(S.LANGUAGES) | {spk for spk, _ in S.EXTRA_SPEECH.values()}
    assert not dev_names & train_speakers
    assert not any(n.startswith(S.TTS_PREFIX) for n in dev_names)
    training_packages = (set(S.BASE_PACKAGES) | set(S.EXTRA_SPEECH) | {S.MUSIC_PACKAGE}
                         | set(T.ESPEAK_PACKAGES) | set(T.FLITE_PACKAGES))
    dev_packages = set(D.SPEECH_PACKAGES) | set(D.NOISE_PACKAGES)
    assert not dev_packages & training_packages, dev_packages & training_packages
    # the noises come from the dev noise packages only, never from a training package
    assert {pkg for pkg, _ in D.NOISE_GLOBS.values()} <= set(D.NOISE_PACKAGES)


def _training_globs() -> list[str]:
    """The globs that ``training.sources.build_manifest`` lists its clips with, under the
    Debian unpack root."""
    return ([f"{S.STAMPS_DIR}/**/*.ogg", S.KEYS_GLOB, S.MUSIC_GLOB]
            + [pattern for _, pattern in S.EXTRA_SPEECH.values()]
            + [pattern for globs in S.EXTRA_NOISE.values() for pattern in globs])


def _cached_manifest_files() -> set[str]:
    """Every file of each training manifest cached on this machine (none where none was built)."""
    files: set[str] = set()
    for path in sorted(S.cache_dir().glob("manifest-v*.json")):
        m = json.loads(path.read_text())
        listed = ([c["path"] for c in m["speech"]] + [c["path"] for c in m["noises"]]
                  + list(m["keys"]) + list(m["music"]))
        assert listed, path
        files.update(listed)
    for path in sorted(S.cache_dir().glob("extra-noises-v*.json")):
        files.update(c["path"] for c in json.loads(path.read_text()))
    return files


def _static_prefix(pattern: str) -> str:
    """A glob up to its first wildcard."""
    return re.split(r"[*?\[]", pattern, maxsplit=1)[0]


def test_no_noise_file_of_the_training_manifest():
    """No path training reads (its declared globs, and the files of any manifest cached
    here) lies under a directory the set reads its speech or noise from, and no built item
    of the set used a file of a cached manifest."""
    dev_dirs = [str(Path(p).parent) + "/" for _, p in D.NOISE_GLOBS.values()]
    dev_dirs += ["usr/share/games/hedgewars/", "audio/voice/"]
    bad = [g for g in _training_globs() for d in dev_dirs
           if d.startswith(_static_prefix(g)) or _static_prefix(g).startswith(d)]
    trained = _cached_manifest_files()
    bad += [f for f in trained if any(d in f for d in dev_dirs)]
    assert not bad, bad[:3]
    for meta in D.data_dir().glob("items-*/*.json"):
        used = json.loads(meta.read_text())["noise_files"]
        assert not set(used) & trained, meta


def test_no_package_training_reads_is_one_the_set_reads():
    training = (set(S.BASE_PACKAGES) | set(S.EXTRA_SPEECH) | set(S.EXTRA_NOISE)
                | {S.MUSIC_PACKAGE})
    held_out = set(D.SPEECH_PACKAGES) | set(D.NOISE_PACKAGES) | set(D.TTS_PYPI)
    assert training and held_out and not training & held_out, training & held_out


def test_plan_shape():
    items = D.plan()
    assert len(items) >= 100 and D.ITEM_SECONDS >= 9.0
    by_cond = {}
    for it in items:
        by_cond.setdefault(it.condition, []).append(it)
    assert set(by_cond) == {"-5 dB", "+0 dB", "+5 dB", "+10 dB", "+20 dB", "clean"}
    assert all(len(v) == D.ITEMS_PER_CONDITION for v in by_cond.values())
    assert all(it.noise_kind is None and not it.room for it in by_cond["clean"])
    rooms = sum(it.room for it in items)
    assert rooms >= len(items) / 4
    assert {it.style for it in items} == {"running", "words"}
    assert {it.noise_kind for it in items if it.snr_db is not None} == set(D.NOISE_KINDS)
    # deterministic
    assert [it.name for it in D.plan()] == [it.name for it in items]


def test_seg_snr_bands_sees_a_band_limited_error():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=48_000)
    # an error only above 16 kHz: the two lower bands are untouched, the top one is not
    spec = np.fft.rfft(rng.normal(size=48_000))
    spec[: 16_000 + 500] = 0
    err = np.fft.irfft(spec, 48_000) * 0.3
    s = seg_snr_bands(ref, ref + err, bandwidth_hz=24_000)
    assert s["seg_0_8"] == pytest.approx(35.0) and s["seg_8_16"] == pytest.approx(35.0)
    assert s["seg_16_24"] < 20.0
    # a band the reference does not reach is not scored
    assert np.isnan(seg_snr_bands(ref, ref, bandwidth_hz=11_000)["seg_16_24"])


def test_the_report_breaks_the_noisy_items_down_by_noise_kind_and_source(tmp_path):
    from benchmarks.quality_unseen import build_report

    rows = []
    for i, item in enumerate(D.plan()):
        # ours scores 1 + the index of the item's noise kind: a per-kind mean to check
        ours = 1.0 + D.NOISE_KINDS.index(item.noise_kind) if item.noise_kind else 4.5
        scores = {s: {"pesq": v, "estoi": 0.5, "ovrl": 2.0} for s, v in
                  (("noisy", 1.0), ("ours", ours))}
        rows.append({"name": f"{i:03d}", "snr_db": item.snr_db,
                     "condition": D.condition_label(item.snr_db), "source": item.source,
                     "style": item.style, "noise_kind": item.noise_kind, "room": item.room,
                     "bandwidth_hz": 24000.0, "scores": scores})
    comp = {"items": len(rows), "seconds": D.ITEM_SECONDS, "speakers": 17,
            "condition": {}, "source": {}, "language": {}, "noise_kind": {}, "room": {}}
    meta = {"model": "m", "command": "c", "seed": 0, "composition": comp, "timing": "t"}
    text = "\n".join(build_report(rows, ["noisy", "ours"], meta, tmp_path))
    kinds = text.split("## By noise kind (noisy items)")[1].split("\n## ")[0]
    for k, kind in enumerate(D.NOISE_KINDS):
        n = sum(r["noise_kind"] == kind for r in rows)
        block = kinds.split(f"{kind} ({n} items):")[1].split(" items):")[0]
        assert f"| ours | **{1.0 + k:.2f}** |" in block, block
    sources = text.split("## By source of the voices (noisy items)")[1].split("\n## ")[0]
    for source in set(D.SOURCE_CYCLE):
        n = sum(r["source"] == source and r["snr_db"] is not None for r in rows)
        assert f"{source} ({n} items):" in sources
