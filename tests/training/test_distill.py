"""Ensemble distillation (training/distill.py) and the runtime-weights-to-PyTorch loader it
uses (training.export.model_from_arrays), on shards made from the committed
fixtures and small random models."""
from training_extras import require_training_extras

require_training_extras()

import json

import numpy as np
import pytest
import torch

from percepnet.dsp.features import compute_features_and_targets

from audio_fixtures import load_fixture, mix_at_snr
from model_fixtures import TINY_ARCH
from training.distill import blend_targets, distill_shards, main, teacher_mean
from percepnet.app.models import load_model
from training.export import model_from_arrays, model_to_arrays, write_model
from training.model import PercepNetModel
from training.train import ShardSet

FRAMES = 120
ARRAYS = ("features", "gains", "strengths", "mask")


def _random_model(seed: int) -> PercepNetModel:
    torch.manual_seed(seed)
    model = PercepNetModel(TINY_ARCH)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5)
    rng = np.random.default_rng(seed)
    model.set_normalisation(rng.normal(0, 1, 70), rng.uniform(0.5, 2, 70))
    return model.eval()


@pytest.fixture(scope="module")
def examples():
    clean = load_fixture("speech_fr.ogg")
    ft = compute_features_and_targets(clean, mix_at_snr(clean, load_fixture("noise_vacuum.ogg"),
                                                         5.0))
    arrays = [np.asarray(a, np.float32) for a in (ft.features, ft.gains, ft.strengths, ft.mask)]
    n = arrays[0].shape[0] // FRAMES
    assert n >= 3
    return [[a[k * FRAMES:(k + 1) * FRAMES] for a in arrays] for k in range(n)]


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory, examples):
    d = tmp_path_factory.mktemp("src")
    for k in range(0, len(examples), 2):
        part = examples[k:k + 2]
        np.savez(d / f"shard-{k // 2:05d}.npz",
                 **{name: np.stack([e[i] for e in part]) for i, name in enumerate(ARRAYS)})
    (d / "meta.json").write_text(json.dumps({"split": "train", "seed": 9}))
    return d


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    d = tmp_path_factory.mktemp("teachers")
    return [write_model(_random_model(s), d, f"t{s}") for s in (1, 2)]


def test_model_from_arrays_computes_what_the_exported_model_did(examples):
    model = _random_model(3)
    back = model_from_arrays(model_to_arrays(model), TINY_ARCH)
    # Every weight comes back within half an int8 step of its row (layout and scale right;
    # a transposed conv or swapped GRU matrix would be off by far more).
    source = dict(model.named_parameters())
    for name, p in back.named_parameters():
        w = source[name].detach()
        if "weight" in name:
            rows = w.reshape(w.shape[0], -1) if w.dim() == 2 else \
                w.permute(0, 2, 1).reshape(w.shape[0], -1)
            step = rows.abs().max(dim=1).values / 127.0
            err = (p.detach() - w).abs()
            err_rows = err.reshape(w.shape[0], -1) if w.dim() == 2 else \
                err.permute(0, 2, 1).reshape(w.shape[0], -1)
            assert bool((err_rows <= step[:, None] * 0.5 + 1e-6).all()), name
        else:
            assert torch.allclose(p, w), name
    x = torch.from_numpy(np.stack([e[0] for e in examples]))
    with torch.no_grad():
        g0, _ = model(x)
        g1, _ = back(x)
        g_other, _ = _random_model(4)(x)
    assert float((g0 - g1).abs().mean()) < 0.01
    assert float((g0 - g_other).abs().mean()) > 0.05
    assert torch.equal(back.feat_mean, model.feat_mean)


def test_a_damaged_teacher_is_refused_before_anything_is_written(shard_dir, tmp_path):
    manifest = write_model(_random_model(5), tmp_path / "m", "m")
    with np.load(tmp_path / "m" / "m.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["dense.b"] = arrays["dense.b"] + 1.0
    np.savez(tmp_path / "m" / "m.npz", **arrays)
    assert main(["--src", str(shard_dir), "--out", str(tmp_path / "out"),
                 "--teacher", str(manifest)]) == 2
    assert not (tmp_path / "out").exists()


def test_blend_targets_mixes_only_inside_the_mask():
    ideal = np.array([[1.0, 0.2, 0.5]], np.float32)
    teacher = np.array([[0.6, 0.6, 0.1]], np.float32)
    mask = np.array([[1.0, 1.0, 0.0]], np.float32)
    out = blend_targets(ideal, teacher, mask, 0.75)
    np.testing.assert_allclose(out, [[0.7, 0.5, 0.5]], atol=1e-6)
    np.testing.assert_array_equal(blend_targets(ideal, teacher, mask, 0.0), ideal)
    with pytest.raises(ValueError):
        blend_targets(ideal, teacher, mask, 1.5)


def test_distill_shards_writes_blended_targets_and_keeps_the_rest(shard_dir, teachers, tmp_path,
                                                                  examples):
    out = tmp_path / "out"
    meta = distill_shards(shard_dir, out, teachers, teacher_weight=0.6, batch=2, threads=1)
    assert meta["seed"] == 9  # the source's meta is carried over
    assert [t["name"] for t in meta["distilled"]["teachers"]] == ["t1", "t2"]
    assert meta["distilled"]["teacher_weight"] == 0.6
    assert meta["distilled"]["mean_abs_target_shift"] > 0.01

    models = [model_from_arrays(m.weights, m.arch) for m in map(load_model, teachers)]
    src, dst = ShardSet(shard_dir), ShardSet(out)
    assert len(dst) == len(src) == len(examples)
    for (f0, g0, s0, m0), (f1, g1, s1, m1) in zip(src.examples, dst.examples):
        np.testing.assert_array_equal(f0, f1)
        np.testing.assert_array_equal(s0, s1)
        np.testing.assert_array_equal(m0, m1)
        with torch.no_grad():
            t = np.mean([m(torch.from_numpy(f0[None]))[0].numpy()[0] for m in models], axis=0)
        want = np.where(m0 > 0, 0.4 * g0 + 0.6 * t, g0)
        np.testing.assert_allclose(g1, want, atol=1e-5)
        assert (g1 >= 0).all() and (g1 <= 1).all()
    np.testing.assert_allclose(teacher_mean(models, np.stack(src.examples[0][:1]), batch=1)[0],
                               np.mean([m(torch.from_numpy(src.examples[0][0][None]))[0]
                                        .detach().numpy()[0] for m in models], axis=0),
                               atol=1e-6)


def test_distill_shards_resumes_and_redoes_on_a_new_recipe(shard_dir, teachers, tmp_path):
    out = tmp_path / "out"
    distill_shards(shard_dir, out, teachers, teacher_weight=0.5, threads=1)
    first = out / "shard-00000.npz"
    stamp = first.stat().st_mtime_ns
    distill_shards(shard_dir, out, teachers, teacher_weight=0.5, threads=1)
    assert first.stat().st_mtime_ns == stamp  # same recipe: kept
    distill_shards(shard_dir, out, teachers[:1], teacher_weight=0.5, threads=1)
    assert first.stat().st_mtime_ns != stamp  # other teachers: relabelled


def test_cli_reports_bad_input_in_one_line(tmp_path, teachers, capsys):
    assert main(["--src", str(tmp_path / "none"), "--out", str(tmp_path / "o"),
                 "--teacher", str(teachers[0])]) == 2
    assert "no shard-*.npz" in capsys.readouterr().err
    (tmp_path / "src").mkdir()
    np.savez(tmp_path / "src" / "shard-00000.npz", features=np.zeros((1, 5, 70), np.float32))
    assert main(["--src", str(tmp_path / "src"), "--out", str(tmp_path / "o"),
                 "--teacher", str(teachers[0]), "--teacher-weight", "2"]) == 2


def test_write_ensemble_records_members_and_the_mean_models_figures(shard_dir, teachers,
                                                                    tmp_path):
    """training.ensemble: the manifest names both members with their checksums, loads as an
    ensemble, and its validation gain MAE is that of the members' mean prediction
    (recomputed here from teacher_mean, independently of training.train.evaluate)."""
    from training.ensemble import write_ensemble

    d = teachers[0].parent
    path = write_ensemble(d, "pair", ["t1", "t2"], val_dir=shard_dir, seq_frames=FRAMES, batch=2)
    m = load_model(path)
    assert [p.name for p in m.members] == ["t1", "t2"]
    assert m.manifest["members"] == [{"name": t.stem, "sha256": load_model(t).manifest["sha256"]}
                                     for t in teachers]
    v = m.manifest["validation"]
    data = ShardSet(shard_dir)
    floats = [model_from_arrays(p.weights, p.arch) for p in m.members]
    err = mask_sum = 0.0
    for feats, gains, _, mask in data.examples:
        pred = teacher_mean(floats, np.asarray(feats, np.float32)[None])[0]
        on = np.asarray(mask) > 0
        err += float(np.abs(np.clip(gains, 0, 1) - pred)[on].sum())
        mask_sum += float(on.sum())
    assert v["gain_mae"] == pytest.approx(err / mask_sum, rel=1e-4)
    single = [v["members"][k]["gain_mae"] for k in ("t1", "t2")]
    assert v["gain_mae"] != pytest.approx(single[0]) and v["gain_mae"] != pytest.approx(single[1])
    # as a distillation teacher the ensemble counts as its two members
    via_pair = distill_shards(shard_dir, tmp_path / "a", [path], batch=2, threads=1)
    distill_shards(shard_dir, tmp_path / "b", teachers, batch=2, threads=1)
    assert via_pair["distilled"]["mean_abs_target_shift"] > 0.01
    for x, y in zip(ShardSet(tmp_path / "a").examples, ShardSet(tmp_path / "b").examples):
        np.testing.assert_array_equal(x[1], y[1])
    with pytest.raises(ValueError, match="its own member"):
        write_ensemble(d, "t1", ["t1", "t2"])
    with pytest.raises(ValueError, match="1 to 2"):
        write_ensemble(d, "trio", ["t1", "t2", "t1"])
    with pytest.raises(ValueError, match="cannot be a member"):
        write_ensemble(d, "nested", ["pair"])
