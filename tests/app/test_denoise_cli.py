import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from percepnet.cli import main
from percepnet.app.models import load_model
from percepnet.app.settings import stage_defaults
from percepnet.dsp.constants import ALGORITHMIC_DELAY_SAMPLES
from percepnet.dsp.denoiser import Denoiser

from audio_fixtures import load_fixture, mix_at_snr
from model_fixtures import write_tiny_model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("denoise")
    model = write_tiny_model(d / "models")
    clean = load_fixture("speech_ru.ogg")[: 3 * 48000]
    noisy = mix_at_snr(clean, load_fixture("noise_kettle.ogg"), 5.0)
    sf.write(d / "noisy.wav", noisy, 48000, subtype="FLOAT")
    return d, model, noisy


@pytest.mark.parametrize("block", [128, 441, 480, 1000])
def test_api_in_blocks_equals_cli(setup, block):
    d, model_path, noisy = setup
    out = d / f"cli_{block}.wav"
    assert main(["denoise", str(d / "noisy.wav"), str(out), "--model", str(model_path)]) == 0
    y_cli, rate = sf.read(out)
    den = Denoiser(load_model(model_path), **stage_defaults())
    x = np.concatenate([noisy, np.zeros(ALGORITHMIC_DELAY_SAMPLES)])
    y_api = np.concatenate([den.process(x[i:i + block]) for i in range(0, x.shape[0], block)])
    y_api = y_api[ALGORITHMIC_DELAY_SAMPLES:]
    assert rate == 48000 and y_cli.shape == noisy.shape
    assert np.max(np.abs(y_cli - y_api.astype(np.float32))) < 1e-6


def test_folder_mode_rates_channels_and_errors(setup, tmp_path):
    d, model_path, noisy = setup
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    sf.write(src / "a.flac", noisy[:48000], 48000)
    import soxr

    x44 = soxr.resample(noisy[:48000], 48000, 44100)  # 1 s at 44.1 kHz
    sf.write(src / "sub" / "b.wav", np.stack([x44, -x44], axis=1), 44100, subtype="PCM_16")
    (src / "broken.wav").write_bytes(b"RIFF....garbage")
    res = subprocess.run([sys.executable, "-m", "percepnet", "denoise", str(src), str(tmp_path / "out"),
                          "--model", str(model_path)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 1  # one file failed
    assert "broken.wav" in res.stderr and res.stderr.count("percepnet: error:") == 1
    a, ra = sf.read(tmp_path / "out" / "a.flac")
    b, rb = sf.read(tmp_path / "out" / "sub" / "b.wav", always_2d=True)
    assert ra == 48000 and a.shape == (48000,)
    assert rb == 44100 and b.shape == (44100, 2)
    assert not (tmp_path / "out" / "broken.wav").exists()


def test_refuses_to_overwrite_input_and_reports_missing_model(setup, tmp_path, monkeypatch, capsys):
    d, model_path, noisy = setup
    target = tmp_path / "x.wav"
    sf.write(target, noisy[:4800], 48000)
    before = target.read_bytes()
    assert main(["denoise", str(target), str(target), "--model", str(model_path)]) == 2
    assert target.read_bytes() == before
    res = subprocess.run([sys.executable, "-m", "percepnet", "denoise", str(target), str(tmp_path / "y.wav"),
                          "--model", str(tmp_path / "nope.json")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "not found" in res.stderr and not (tmp_path / "y.wav").exists()
    # With no model installed, the default cannot be found: a clear one-line error.
    import percepnet.app.models as models

    empty = tmp_path / "no-weights"
    empty.mkdir()
    monkeypatch.setattr(models, "_weights_dir", lambda: empty)
    capsys.readouterr()
    assert main(["denoise", str(target), str(tmp_path / "y.wav")]) == 2
    assert "no trained model is installed" in capsys.readouterr().err
    assert not (tmp_path / "y.wav").exists()


@pytest.mark.parametrize("flags, kwargs", [
    (["--no-use-comb"], {"use_comb": False}),
    (["--no-use-postfilter", "--atten-limit-db", "12"], {"use_postfilter": False,
                                                          "atten_limit_db": 12.0}),
    (["--use-comb", "--use-postfilter"], {"use_comb": True, "use_postfilter": True}),
    (["--use-decay-cap"], {"use_decay_cap": True}),
])
def test_stage_and_limit_flags_reach_the_denoiser(setup, tmp_path, flags, kwargs):
    """The CLI's flags come from the settings registry and act like the API's arguments."""
    d, model_path, noisy = setup
    out = tmp_path / "o.wav"
    assert main(["denoise", str(d / "noisy.wav"), str(out), "--model", str(model_path), *flags]) == 0
    opts = {**stage_defaults(), **kwargs}
    den = Denoiser(load_model(model_path), **opts)
    y_api = den.process(np.concatenate([noisy, np.zeros(ALGORITHMIC_DELAY_SAMPLES)]))
    np.testing.assert_allclose(sf.read(out)[0], y_api[ALGORITHMIC_DELAY_SAMPLES:], atol=1e-6)


def test_out_of_range_limit_is_refused(setup, tmp_path, capsys):
    d, model_path, _ = setup
    with pytest.raises(SystemExit) as exc:
        main(["denoise", str(d / "noisy.wav"), str(tmp_path / "o.wav"), "--model",
              str(model_path), "--atten-limit-db", "500"])
    assert exc.value.code == 2 and "outside 0..100" in capsys.readouterr().err
    assert not (tmp_path / "o.wav").exists()
