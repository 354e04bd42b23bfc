"""The model shipped in weights/ is the default, passes every load check, and denoises."""
from __future__ import annotations

import numpy as np

from audio_fixtures import load_fixture, mix_at_snr

from percepnet.app.models import default_model_name, installed_models, load_model
from percepnet.dsp.denoiser import Denoiser
from percepnet.dsp.constants import ALGORITHMIC_DELAY_SAMPLES


def _snr_db(clean, x):
    a = np.dot(x, clean) / np.dot(clean, clean)
    return 10 * np.log10(np.sum((a * clean) ** 2) / np.sum((x - a * clean) ** 2))


def test_shipped_default_model_loads_and_denoises():
    """The default is the ensemble ``pair``: the CPU-trained ``small`` (``make train``) and
    the GPU-trained ``small-gpu``, both shipped, averaged per frame."""
    name = default_model_name()
    assert name == "pair" and name in installed_models()
    model = load_model(name)
    assert [m.name for m in model.members] == ["small", "small-gpu"]
    assert model.manifest["training"]["completed"] is True
    assert model.members[0].manifest["training"]["device"] == "cpu"
    assert model.members[1].manifest["training"]["device"].startswith("cuda")
    v = model.manifest["validation"]
    # on the same validation shards the mean of the two is better than either network
    assert v["gain_mae"] < 0.3
    assert all(v["loss"] < m["loss"] for m in v["members"].values())
    # a training speaker is fine here: this checks the shipped file works end to end
    clean = load_fixture("speech_ru.ogg")[:48000 * 4]
    noisy = mix_at_snr(clean, load_fixture("noise_vacuum.ogg")[:len(clean)], 5.0)
    d = ALGORITHMIC_DELAY_SAMPLES
    y = Denoiser(model).process(np.concatenate([noisy, np.zeros(d)]))[d:]
    assert np.all(np.isfinite(y)) and y.shape == noisy.shape
    assert _snr_db(clean[48000:], y[48000:]) > _snr_db(clean[48000:], noisy[48000:]) + 3.0


def test_every_shipped_model_loads_and_denoises():
    """The option models too (``full``, trained on a lent GPU machine): each passes the load
    checks, records a completed training run, and denoises (quality on held-out speakers is
    measured by benchmarks.quality, not here)."""
    names = installed_models()
    assert {"pair", "small", "small-gpu", "full"} <= set(names)
    clean = load_fixture("speech_ru.ogg")[:48000 * 4]
    noisy = mix_at_snr(clean, load_fixture("noise_kettle.ogg")[:len(clean)], 5.0)
    d = ALGORITHMIC_DELAY_SAMPLES
    assert load_model("full").manifest["training"]["device"].startswith("cuda")
    for name in names:
        model = load_model(name)
        training = model.manifest["training"]
        assert training["completed"] is True, name
        assert model.manifest["validation"]["gain_mae"] < 0.3, name
        y = Denoiser(model).process(np.concatenate([noisy, np.zeros(d)]))[d:]
        assert np.all(np.isfinite(y)), name
        gain_db = _snr_db(clean[48000:], y[48000:]) - _snr_db(clean[48000:], noisy[48000:])
        assert gain_db > 3.0, (name, gain_db)
