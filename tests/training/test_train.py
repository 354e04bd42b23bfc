"""The training loop (training/train.py) on tiny shards made from the committed fixtures:
the loss, learning on tiny data, exact resume from a checkpoint, and an exported model that
the runtime loads and runs."""
from training_extras import require_training_extras

require_training_extras()

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from percepnet.app.models import load_model
from percepnet.dsp.denoiser import Denoiser
from percepnet.dsp.features import compute_features_and_targets

from audio_fixtures import load_fixture, mix_at_snr
from model_fixtures import TINY_ARCH
from training.train import (ShardSet, TrainConfig, epoch_crops, feature_stats, main,
                            percepnet_loss, train)

EXAMPLE_FRAMES = 150


def _examples():
    out = []
    for speech, noise, snr in (("speech_ru.ogg", "noise_vacuum.ogg", 5.0),
                               ("speech_fr.ogg", "noise_kettle.ogg", 0.0),
                               ("speech_da.ogg", "noise_vacuum.ogg", 15.0)):
        clean = load_fixture(speech)
        ft = compute_features_and_targets(clean, mix_at_snr(clean, load_fixture(noise), snr))
        arrays = [np.asarray(a, np.float32) for a in (ft.features, ft.gains, ft.strengths,
                                                       ft.mask)]
        for s in range(0, arrays[0].shape[0] - EXAMPLE_FRAMES + 1, EXAMPLE_FRAMES):
            out.append([a[s:s + EXAMPLE_FRAMES] for a in arrays])
    return out


def _write_shards(directory, examples, per_shard=4):
    directory.mkdir(parents=True)
    for k in range(0, len(examples), per_shard):
        part = examples[k:k + per_shard]
        np.savez(directory / f"shard-{k // per_shard:05d}.npz",
                 **{name: np.stack([e[i] for e in part])
                    for i, name in enumerate(("features", "gains", "strengths", "mask"))})
    (directory / "meta.json").write_text(json.dumps({"examples": len(examples), "test": True}))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    ex = _examples()
    assert len(ex) >= 6
    _write_shards(root / "train", ex[1:])
    _write_shards(root / "val", ex[:1] + ex[-1:])
    return root


def _cfg(shards, tmp_path, **kw):
    base = dict(train_dir=str(shards / "train"), val_dir=str(shards / "val"), arch=TINY_ARCH,
                epochs=3, batch=4, seq_frames=100, out_dir=str(tmp_path / "out"), name="tiny",
                checkpoints=str(tmp_path / "ckpt"), seed=5, lr=3e-3, lr_min=1e-4, quiet=True,
                threads=1)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_zero_for_perfect_predictions_and_ignores_masked_bands():
    rng = np.random.default_rng(0)
    g = torch.as_tensor(rng.uniform(0, 1, (2, 50, 34)), dtype=torch.float32)
    r = torch.as_tensor(rng.uniform(0, 1, (2, 50, 34)), dtype=torch.float32)
    mask = torch.ones_like(g)
    mask[..., 20:] = 0
    assert float(percepnet_loss(g, r, g, r, mask)) == pytest.approx(0.0, abs=1e-5)
    # garbage in the masked bands changes nothing
    g2, r2 = g.clone(), r.clone()
    g2[..., 20:], r2[..., 20:] = 1 - g[..., 20:], 1 - r[..., 20:]
    assert float(percepnet_loss(g, r, g2, r2, mask)) == pytest.approx(0.0, abs=1e-5)
    # an error in a kept band is seen, with the PercepNet loss's value: d^2 + 10 d^4 for the
    # gain term
    g3 = g.clone()
    g3[0, 0, 0] = 0.0
    g[0, 0, 0] = 1.0
    d = 1.0
    expected = (d**2 + 10 * d**4) / float(mask.sum())
    assert float(percepnet_loss(g, r, g3, r, mask)) == pytest.approx(expected, rel=1e-3)
    # nothing kept: 0, not NaN
    assert float(percepnet_loss(g, r, g3, r, torch.zeros_like(mask))) == 0.0


def test_strength_weight_scales_only_the_strength_term():
    rng = np.random.default_rng(1)
    shape = (2, 30, 34)
    g, r, gh, rh = (torch.as_tensor(rng.uniform(0, 1, shape), dtype=torch.float32)
                    for _ in range(4))
    mask = torch.ones(shape)
    full = float(percepnet_loss(g, r, gh, rh, mask))
    gains_only = float(percepnet_loss(g, r, gh, r, mask))  # strength term exactly 0
    strength_only = full - gains_only
    assert strength_only > 0.01
    assert float(percepnet_loss(g, r, gh, rh, mask, 0.25)) == pytest.approx(
        gains_only + 0.25 * strength_only, rel=1e-5)
    assert float(percepnet_loss(g, r, gh, rh, mask, 0.0)) == pytest.approx(gains_only, rel=1e-5)


def test_loss_is_finite_with_finite_gradients_for_extreme_inputs():
    shape = (3, 20, 34)
    targets = [torch.zeros(shape), torch.ones(shape), torch.full(shape, -1.0),
               torch.full(shape, 2.0)]
    preds = [torch.zeros(shape), torch.ones(shape), torch.full(shape, 1e-30),
             torch.full(shape, 1 - 1e-9)]
    for t in targets:
        for p in preds:
            ph = p.clone().requires_grad_(True)
            rh = p.clone().requires_grad_(True)
            loss = percepnet_loss(t, t, ph, rh, torch.ones(shape))
            loss.backward()
            assert torch.isfinite(loss)
            assert torch.isfinite(ph.grad).all() and torch.isfinite(rh.grad).all()
    # saturated logits through a sigmoid
    logits = torch.tensor([-1e4, -50.0, 0.0, 50.0, 1e4]).repeat(34, 1).T[None].requires_grad_()
    loss = percepnet_loss(torch.rand(1, 5, 34), torch.rand(1, 5, 34), torch.sigmoid(logits),
                          torch.sigmoid(-logits), torch.ones(1, 5, 34))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_shards_stats_and_crops(shards):
    data = ShardSet(shards / "train")
    assert len(data) >= 5 and data.meta["test"] is True
    mean, std = feature_stats(data)
    allf = np.concatenate([e[0] for e in data.examples]).astype(np.float64)
    np.testing.assert_allclose(mean, allf.mean(axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(std, allf.std(axis=0), rtol=1e-4, atol=1e-5)
    a = epoch_crops(data, 100, seed=1, epoch=0)
    assert a == epoch_crops(data, 100, seed=1, epoch=0)
    assert a != epoch_crops(data, 100, seed=1, epoch=1)
    assert all(0 <= s <= EXAMPLE_FRAMES - 100 for _, s in a)
    # crops past the end of an example are padded with mask 0
    f, g, r, m = data.crop(0, EXAMPLE_FRAMES - 10, 30)
    assert f.shape == (30, 70) and m[10:].sum() == 0


def test_training_lowers_loss_and_exports_a_runnable_model(shards, tmp_path):
    cfg = _cfg(shards, tmp_path, epochs=6)
    summary = train(cfg)
    hist = summary["history"]
    assert summary["completed"] and len(hist) == 6
    assert hist[-1]["train_loss"] < 0.8 * hist[0]["train_loss"], hist
    assert all(np.isfinite(h["val_loss"]) for h in hist)
    # the normalisation comes from the training shards and is in the exported model
    model = load_model(summary["manifest"])
    mean, std = feature_stats(ShardSet(shards / "train"))
    np.testing.assert_allclose(model.weights["feat_mean"], mean, rtol=1e-5, atol=1e-6)
    manifest = json.loads((tmp_path / "out" / "tiny.json").read_text())
    assert manifest["training"]["steps"] == summary["step"]
    assert manifest["training"]["train_data"]["meta"]["test"] is True
    assert manifest["validation"]["gain_mae"] == pytest.approx(summary["validation"]["gain_mae"])
    den = Denoiser(model)
    noisy = mix_at_snr(load_fixture("speech_da.ogg")[:48_000], load_fixture("noise_kettle.ogg"),
                       5.0)
    out = den.process(noisy)
    assert out.shape == noisy.shape and np.isfinite(out).all()


def _params(model_path):
    w = load_model(model_path).weights
    return {k: np.asarray(v) for k, v in w.items()}


def test_resume_reproduces_an_uninterrupted_run(shards, tmp_path):
    full = train(_cfg(shards, tmp_path / "a"))
    ckpt_full = torch.load(tmp_path / "a" / "ckpt" / "last.pt", weights_only=True)
    # the same run stopped after every batch (mid-epoch and at epoch ends) and resumed
    first = train(_cfg(shards, tmp_path / "b", max_minutes=1e-9))
    assert not first["completed"] and first["step"] == 1
    stops = 1
    while True:
        part = train(_cfg(shards, tmp_path / "b", resume=True, max_minutes=1e-9, export=False))
        stops += 1
        if part["step"] >= full["step"] - 1:
            break
    assert stops == full["step"] - 1 > 3
    rc = main(["--train", str(shards / "train"), "--val", str(shards / "val"),
               "--arch", "small", "--epochs", "3", "--batch", "4", "--seq-frames", "100",
               "--out", str(tmp_path / "c"), "--checkpoints", str(tmp_path / "c-ckpt"),
               "--max-minutes", "1e-9", "--threads", "1", "--quiet"])
    assert rc == 0 and (tmp_path / "c" / "small.json").exists()
    resumed = train(_cfg(shards, tmp_path / "b", resume=True))
    assert resumed["completed"] and resumed["step"] == full["step"]
    ckpt_res = torch.load(tmp_path / "b" / "ckpt" / "last.pt", weights_only=True)
    for k, v in ckpt_full["model"].items():
        assert torch.equal(v, ckpt_res["model"][k]), k
    a, b = _params(full["manifest"]), _params(resumed["manifest"])
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert [h["val_loss"] for h in full["history"]] == [h["val_loss"] for h in resumed["history"]]


def test_resume_refuses_a_checkpoint_of_another_configuration(shards, tmp_path):
    train(_cfg(shards, tmp_path, epochs=1, export=False))
    with pytest.raises(ValueError, match="different configuration"):
        train(_cfg(shards, tmp_path, epochs=2, resume=True, export=False))


def test_strength_weight_is_recorded_and_part_of_the_run(shards, tmp_path):
    """A run with another strength weight is another configuration (no silent resume across
    it), and the manifest records the weight."""
    done = train(_cfg(shards, tmp_path, epochs=1, strength_weight=0.25))
    loss = json.loads(open(done["manifest"]).read())["training"]["loss"]
    assert loss["strength_weight"] == 0.25 and loss["gamma"] == 0.5
    assert "val_gain_loss" in done["history"][0]
    with pytest.raises(ValueError, match="different configuration"):
        train(_cfg(shards, tmp_path, epochs=1, resume=True, export=False))


def test_several_shard_directories_are_combined(shards):
    import os

    one, two = ShardSet(shards / "train"), ShardSet(shards / "val")
    both = ShardSet(f"{shards / 'train'}{os.pathsep}{shards / 'val'}")
    assert len(both) == len(one) + len(two) and both.n_frames == one.n_frames + two.n_frames
    np.testing.assert_array_equal(both.examples[len(one)][0], two.examples[0][0])
    assert [p["dir"] for p in both.meta["parts"]] == [str(shards / "train"), str(shards / "val")]


def test_init_fine_tunes_from_a_checkpoint(shards, tmp_path):
    """--init starts from the checkpoint's weights and normalisation (its first validation is
    not that of a fresh model) with a fresh schedule, and records where it started."""
    first = train(_cfg(shards, tmp_path / "a", epochs=3))
    ckpt = tmp_path / "a" / "ckpt" / "last.pt"
    fresh = train(_cfg(shards, tmp_path / "b", epochs=1, export=False))
    tuned = train(_cfg(shards, tmp_path / "c", epochs=1, init=str(ckpt)))
    assert tuned["step"] == fresh["step"]  # its own schedule, not the checkpoint's
    assert tuned["history"][0]["val_loss"] < fresh["history"][0]["val_loss"]
    # with a vanishing learning rate it is exactly the checkpoint's model
    still = train(_cfg(shards, tmp_path / "d", epochs=1, init=str(ckpt), lr=1e-12, lr_min=1e-12,
                       export=False))
    assert still["history"][0]["val_loss"] == pytest.approx(first["history"][-1]["val_loss"],
                                                            abs=1e-6)
    init = json.loads(open(tuned["manifest"]).read())["training"]["init"]
    assert init["checkpoint"] == str(ckpt) and init["steps"] == first["step"]
    assert [h["val_loss"] for h in init["history"]] == [h["val_loss"] for h in first["history"]]


def test_schedule_minutes_ends_the_run_on_time_and_anneals(shards, tmp_path):
    """--schedule-minutes: the run stops when the training time is spent (long before its
    epoch bound), is validated and exported, counts as completed, and its learning rate
    followed the wall-clock cosine (the last step's rate is near lr_min, not the peak)."""
    import time

    t0 = time.monotonic()
    done = train(_cfg(shards, tmp_path, epochs=10_000, schedule_minutes=0.05))
    assert time.monotonic() - t0 < 60
    assert done["completed"] and done["manifest"] and 1 <= done["epoch"] < 10_000
    info = json.loads(open(done["manifest"]).read())["training"]
    assert info["optimiser"]["schedule"] == "cosine over 0.05 min of training"
    assert info["device"] == "cpu"
    state = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    lr_last = state["optimiser"]["param_groups"][0]["lr"]
    assert lr_last < 0.2 * 1e-3
    assert state["fingerprint"]["schedule_minutes"] == 0.05


def test_device_option_is_checked(shards, tmp_path, capsys):
    """--device names a torch device; an unknown name, or CUDA on a machine without it, is a
    usage error (exit 2) before any data is read."""
    base = ["--train", str(shards / "train"), "--val", str(shards / "val"), "--epochs", "1",
            "--out", str(tmp_path), "--checkpoints", str(tmp_path / "c"), "--quiet"]
    with pytest.raises(SystemExit) as exc:
        main(base + ["--device", "no-such-device"])
    assert exc.value.code == 2 and "--device" in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as exc:
            main(base + ["--device", "cuda"])
        assert exc.value.code == 2 and "no CUDA device" in capsys.readouterr().err


def test_export_best_exports_the_epoch_with_the_lowest_validation_loss(shards, tmp_path):
    """--export-best: the exported model is the epoch whose validation loss was lowest (the
    export's own validation equals that epoch's), and the manifest says which epoch.

    Which epoch is lowest depends on the CPU's float path, so the test does not assume one: it
    trains the same run (same seed, one thread) once plainly, and checks that --export-best
    exports different weights from the plain run exactly when the lowest epoch is not the
    last."""
    kw = dict(epochs=5, lr=0.1, lr_min=0.1)
    plain = train(_cfg(shards, tmp_path / "plain", **kw))
    done = train(_cfg(shards, tmp_path / "best", export_best=True, **kw))
    losses = [h["val_loss"] for h in done["history"]]
    assert losses == pytest.approx([h["val_loss"] for h in plain["history"]], rel=1e-6)
    best = int(np.argmin(losses))
    info = json.loads(open(done["manifest"]).read())
    assert info["training"]["exported_epoch"] == best + 1
    assert info["validation"]["loss"] == pytest.approx(losses[best], abs=1e-6)
    plain_info = json.loads(open(plain["manifest"]).read())
    assert plain_info["training"]["exported_epoch"] == len(losses)
    with np.load(Path(done["manifest"]).with_suffix(".npz")) as a, \
            np.load(Path(plain["manifest"]).with_suffix(".npz")) as b:
        same = all(np.array_equal(a[k], b[k]) for k in a.files)
    assert same == (best == len(losses) - 1)