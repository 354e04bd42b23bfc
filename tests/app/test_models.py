import json

import numpy as np
import pytest

from percepnet.app.models import ModelError, load_model

from model_fixtures import TINY_ARCH, write_tiny_model


@pytest.fixture
def model_path(tmp_path):
    return write_tiny_model(tmp_path)


def test_loads_by_json_or_npz_path(model_path):
    for p in (model_path, model_path.with_suffix(".npz")):
        m = load_model(p)
        assert m.arch == TINY_ARCH and m.name == "tiny"
        assert m.weights["dense.w_q"].dtype == np.int8


def _edit_manifest(path, **changes):
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("changes,message", [
    ({"format_version": 2}, "format version"),
    ({"hop_size": 512}, "hop_size"),
    ({"band_edges_bins": list(range(34))}, "band layout"),
    ({"sha256": "0" * 64}, "checksum"),
    ({"weights_file": "missing.npz"}, "cannot read"),
])
def test_bad_manifests_are_refused_clearly(model_path, changes, message):
    _edit_manifest(model_path, **changes)
    with pytest.raises(ModelError, match=message):
        load_model(model_path)


def test_truncated_or_garbage_weights_are_refused(model_path):
    npz = model_path.with_suffix(".npz")
    blob = npz.read_bytes()
    npz.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelError, match="checksum"):
        load_model(model_path)
    # Even with a matching checksum a broken archive gives a clear error.
    import hashlib

    _edit_manifest(model_path, sha256=hashlib.sha256(npz.read_bytes()).hexdigest())
    with pytest.raises(ModelError, match="cannot load"):
        load_model(model_path)


def test_wrong_shapes_are_refused(tmp_path):
    path = write_tiny_model(tmp_path)
    m = json.loads(path.read_text())
    arch = dict(m["architecture"], dense=17)
    _edit_manifest(path, architecture=arch)
    with pytest.raises(ModelError):
        load_model(path)


def test_unknown_name_and_corrupt_json(tmp_path):
    with pytest.raises(ModelError, match="no model named"):
        load_model("definitely-not-a-model")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ModelError, match="unreadable"):
        load_model(bad)


def test_an_ensemble_loads_its_members(tmp_path):
    from model_fixtures import write_tiny_ensemble

    path = write_tiny_ensemble(tmp_path)
    m = load_model(path)
    assert m.name == "duo" and m.arch == {} and m.weights == {}
    assert [p.name for p in m.members] == ["duo-a", "duo-b"]
    assert all(p.arch == TINY_ARCH and p.weights["dense.w_q"].dtype == np.int8 for p in m.members)
    assert not np.array_equal(m.members[0].weights["dense.w_q"], m.members[1].weights["dense.w_q"])
    assert m.manifest["n_weights"] == 2 * m.members[0].manifest["n_weights"] > 0
    assert m.manifest["training"]["completed"] is False  # the tiny members record no run


def test_a_broken_ensemble_is_refused_clearly(tmp_path):
    from model_fixtures import write_tiny_ensemble

    path = write_tiny_ensemble(tmp_path)
    good = json.loads(path.read_text())
    cases = [
        ({"members": [{"name": "duo-a", "sha256": "0" * 64}, good["members"][1]]}, "other weights"),
        ({"members": [{"name": "nowhere", "sha256": "0" * 64}]}, "not found"),
        ({"members": [{"name": "../duo-a", "sha256": "0" * 64}]}, "not a model name"),
        ({"members": good["members"] * 2}, "1 to 2 members"),
        ({"members": []}, "1 to 2 members"),
        ({"members": "duo-a"}, "1 to 2 members"),
        ({"members": [{"name": "duo", "sha256": "0" * 64}]}, "itself an ensemble"),
    ]
    for changes, message in cases:
        _edit_manifest(path, **changes)
        with pytest.raises(ModelError, match=message):
            load_model(path)
    # a member whose weights file was replaced is caught by the member's own checksum
    _edit_manifest(path, members=good["members"])
    load_model(path)
    npz = tmp_path / "duo-b.npz"
    npz.write_bytes(npz.read_bytes()[:100])
    with pytest.raises(ModelError, match="checksum"):
        load_model(path)
