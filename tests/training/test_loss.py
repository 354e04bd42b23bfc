"""The compressed, activity-weighted gain loss against over-suppression (training/train.py),
on tiny tensors."""
from training_extras import require_training_extras

require_training_extras()

import pytest
import torch

from training.train import TrainConfig, compressed_loss, percepnet_loss, speech_activity

B = 34


def _frames(values):
    """[1, T, 34] gains: frame t has values[t] in band 5, 0.02 elsewhere."""
    g = torch.full((1, len(values), B), 0.02)
    for t, v in enumerate(values):
        g[0, t, 5] = v
    return g


def test_zero_at_a_perfect_prediction_and_positive_otherwise():
    g = _frames([0.9, 0.3, 0.0])
    r = torch.full_like(g, 0.4)
    m = torch.ones_like(g)
    assert float(compressed_loss(g, r, g.clone(), r.clone(), m)) == pytest.approx(0.0, abs=1e-7)
    assert float(compressed_loss(g, r, g * 0.5, r.clone(), m)) > 1e-3


def test_cutting_speech_costs_more_than_letting_the_same_amount_through():
    """Same distance in the compressed domain, below and above the target: below (over-
    attenuation) costs more with the penalty, the same without it."""
    g = _frames([0.6])
    m = torch.ones_like(g)
    r = torch.zeros_like(g)
    delta = 0.1
    under, over = g.clone(), g.clone()
    under[0, 0, 5] = (0.6 ** 0.25 - delta) ** 4
    over[0, 0, 5] = (0.6 ** 0.25 + delta) ** 4
    lu = float(compressed_loss(g, r, under, r, m, over_weight=1.0))
    lo = float(compressed_loss(g, r, over, r, m, over_weight=1.0))
    assert lu > 1.3 * lo
    lu0 = float(compressed_loss(g, r, under, r, m, over_weight=0.0))
    lo0 = float(compressed_loss(g, r, over, r, m, over_weight=0.0))
    assert lu0 == pytest.approx(lo0, rel=1e-4)


def test_speech_frames_weigh_more_than_noise_frames():
    g = _frames([0.8, 0.0])  # frame 0 speech, frame 1 noise only
    m = torch.ones_like(g)
    r = torch.zeros_like(g)
    err_speech, err_noise = g.clone(), g.clone()
    err_speech[0, 0, 7] = 0.3  # the same error in a band at 0.02, in each frame
    err_noise[0, 1, 7] = 0.3
    ls = float(compressed_loss(g, r, err_speech, r, m, over_weight=0.0))
    ln = float(compressed_loss(g, r, err_noise, r, m, over_weight=0.0))
    assert ls == pytest.approx(6.0 * ln, rel=1e-4)  # weight 1 + 5 x activity 1 against 1


def test_speech_activity_reads_the_targets_and_ignores_masked_bands():
    g = _frames([0.05, 0.25, 0.9])
    m = torch.ones_like(g)
    v = speech_activity(g, m)
    assert v.shape == (1, 3)
    assert v[0, 0] == 0.0 and 0.4 < v[0, 1] < 0.6 and v[0, 2] == 1.0
    m[0, :, 5] = 0.0  # band 5 masked: nothing left above 0.1
    assert torch.all(speech_activity(g, m) == 0.0)


def test_masked_bands_do_not_count_and_an_empty_mask_gives_zero():
    g = _frames([0.8, 0.8])
    r = torch.zeros_like(g)
    pred = g.clone()
    pred[0, :, 20] = 1.0
    m = torch.ones_like(g)
    m[0, :, 20] = 0.0
    assert float(compressed_loss(g, r, pred, r, m)) == pytest.approx(0.0, abs=1e-7)
    pred.requires_grad_(True)
    loss = compressed_loss(g, r, pred, r, torch.zeros_like(g))
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.isfinite(pred.grad).all()


def test_the_spec_loss_is_unchanged_and_the_choice_is_part_of_the_fingerprint():
    g = _frames([0.5])
    r = torch.zeros_like(g)
    m = torch.ones_like(g)
    d = 0.5 ** 0.5 - 0.25 ** 0.5
    pred = g.clone()
    pred[0, 0, 5] = 0.25
    expected = (d * d + 10 * d ** 4) / B
    assert float(percepnet_loss(g, r, pred, r, m)) == pytest.approx(expected, rel=1e-4)
    base = TrainConfig("a", "b")
    assert "loss" not in base.fingerprint()
    assert TrainConfig("a", "b", loss="compressed").fingerprint() != base.fingerprint()
