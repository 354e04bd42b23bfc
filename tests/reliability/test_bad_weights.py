"""Bad model files (issue 9, reliability): every way a model can be broken gives a
``ModelError`` with a one-line message that names the file and the problem, and through
``percepnet denoise`` exit status 2 with that line and no output file.

Models are the tiny random-weight one (tests/model_fixtures.py), written to tmp_path.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import soundfile as sf

from percepnet.cli import main
from percepnet.app.models import ModelError, load_model

from model_fixtures import write_tiny_model


def _manifest(path):
    return json.loads(path.read_text())


def _write_manifest(path, manifest):
    path.write_text(json.dumps(manifest))


def _resign(path):
    """Make the manifest's checksum match the (edited) weights file again, so the check
    under test is the one after the checksum."""
    m = _manifest(path)
    m["sha256"] = hashlib.sha256(path.with_suffix(".npz").read_bytes()).hexdigest()
    _write_manifest(path, m)


def _edit_arrays(path, edit):
    npz = path.with_suffix(".npz")
    with np.load(npz) as data:
        arrays = {k: data[k] for k in data.files}
    edit(arrays)
    np.savez(npz, **arrays)
    _resign(path)


def _edit_manifest(**changes):
    def apply(path):
        m = _manifest(path)
        for k, v in changes.items():
            if v is KeyError:
                m.pop(k, None)
            else:
                m[k] = v
        _write_manifest(path, m)
    return apply


def _truncate(resign: bool):
    def apply(path):
        npz = path.with_suffix(".npz")
        blob = npz.read_bytes()
        npz.write_bytes(blob[: len(blob) // 3])
        if resign:
            _resign(path)
    return apply


def _flip_a_byte(path):
    npz = path.with_suffix(".npz")
    blob = bytearray(npz.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    npz.write_bytes(bytes(blob))


def _compressed_and_corrupt(path):
    npz = path.with_suffix(".npz")
    with np.load(npz) as data:
        arrays = {k: data[k] for k in data.files}
    np.savez_compressed(npz, **arrays)
    blob = bytearray(npz.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    npz.write_bytes(bytes(blob))
    _resign(path)


def _first_scale(arrays):
    return sorted(k for k in arrays if k.endswith("_scale"))[0]


def _nan_scale(arrays):
    k = _first_scale(arrays)
    arrays[k] = arrays[k].copy()
    arrays[k][0] = np.nan


def _arch_change(**changes):
    def apply(path):
        m = _manifest(path)
        m["architecture"] = dict(m["architecture"], **changes)
        _write_manifest(path, m)
    return apply


#: case -> (break the model written at path, words the message must contain)
CASES = {
    "truncated_npz": (_truncate(resign=False), ["tiny.npz", "checksum mismatch"]),
    "truncated_npz_resigned": (_truncate(resign=True), ["tiny.npz", "cannot load the weights"]),
    "checksum_mismatch": (_flip_a_byte, ["tiny.npz", "checksum mismatch"]),
    "compressed_corrupt_resigned": (_compressed_and_corrupt, ["tiny.npz", "cannot load the weights"]),
    "empty_npz": (lambda p: p.with_suffix(".npz").write_bytes(b""), ["checksum mismatch"]),
    "missing_npz": (lambda p: p.with_suffix(".npz").unlink(), ["tiny.npz", "cannot read the weights"]),
    "missing_manifest": (lambda p: p.unlink(), ["tiny.json", "manifest not found"]),
    "garbage_manifest": (lambda p: p.write_bytes(b"\xff\xfe{garbage"), ["tiny.json", "unreadable model manifest"]),
    "manifest_not_object": (lambda p: p.write_text("[1, 2, 3]"), ["tiny.json", "not a JSON object"]),
    "version_2": (_edit_manifest(format_version=2), ["tiny.json", "format version 2 is not supported"]),
    "version_missing": (_edit_manifest(format_version=KeyError), ["format version None is not supported"]),
    "version_true": (_edit_manifest(format_version=True), ["format version True is not supported"]),
    "version_string": (_edit_manifest(format_version="1"), ["format version '1' is not supported"]),
    "other_rate": (_edit_manifest(sample_rate_hz=16000), ["sample_rate_hz = 16000"]),
    "other_lookahead": (_edit_manifest(lookahead_frames=3), ["lookahead_frames = 3"]),
    "other_bands": (_edit_manifest(band_edges_bins=list(range(35))), ["another band layout"]),
    "no_architecture": (_edit_manifest(architecture=KeyError), ["no architecture"]),
    "sha_missing": (_edit_manifest(sha256=KeyError), ["checksum mismatch"]),
    "arch_wider": (_arch_change(dense=17), ["tiny.npz", "shape", "expected"]),
    "arch_malformed": (_arch_change(gru="wide"), ["tiny.npz", "gru"]),
    "arch_negative": (_arch_change(conv1=-4), ["tiny.npz", "conv1"]),
    "array_wrong_shape": (lambda p: _edit_arrays(p, lambda a: a.update({"dense.w_q": a["dense.w_q"][:, :-1]})),
                          ["dense.w_q has shape", "expected"]),
    "array_wrong_dtype": (lambda p: _edit_arrays(p, lambda a: a.update({"dense.w_q": a["dense.w_q"].astype(np.float32)})),
                          ["dense.w_q has dtype float32, expected int8"]),
    "array_missing": (lambda p: _edit_arrays(p, lambda a: a.pop("dense.w_q")), ["missing 1 array", "dense.w_q"]),
    "array_nan": (lambda p: _edit_arrays(p, _nan_scale), ["non-finite values"]),
    "array_pickled": (lambda p: _edit_arrays(p, lambda a: a.update({"dense.w_q": np.array([{}], dtype=object)})),
                      ["cannot load the weights", "allow_pickle"]),
}


@pytest.fixture
def broken(request, tmp_path):
    path = write_tiny_model(tmp_path / "model")
    load_model(path)  # sound before it is broken
    damage, words = CASES[request.param]
    damage(path)
    return path, words


@pytest.mark.parametrize("broken", sorted(CASES), indirect=True)
def test_broken_model_raises_a_clear_model_error(broken):
    path, words = broken
    with pytest.raises(ModelError) as info:
        load_model(path)
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 400, msg
    for w in words:
        assert w in msg, (w, msg)


@pytest.mark.parametrize("broken", ["truncated_npz", "version_2", "array_wrong_shape",
                                    "checksum_mismatch", "missing_manifest"], indirect=True)
def test_denoise_with_a_broken_model_fails_cleanly(broken, tmp_path, capsys):
    path, words = broken
    src = tmp_path / "in.wav"
    sf.write(src, 0.1 * np.sin(np.arange(24000) / 7), 48000)
    out = tmp_path / "out.wav"
    capsys.readouterr()
    assert main(["denoise", str(src), str(out), "--model", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("percepnet: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and all(w in err for w in words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "model"]  # no output
