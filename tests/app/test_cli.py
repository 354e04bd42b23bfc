import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr

from percepnet.cli import main

from audio_fixtures import load_fixture, mix_at_snr

CLI = [sys.executable, "-m", "percepnet"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 44.1 kHz stereo noisy file, its mono clean reference, and a 16 kHz pair."""
    d = tmp_path_factory.mktemp("cli")
    clean48 = load_fixture("speech_da.ogg")[: 2 * 48000]
    noise48 = load_fixture("noise_vacuum.ogg")
    noisy48 = mix_at_snr(clean48, noise48, 5.0)
    c44 = soxr.resample(clean48, 48000, 44100)
    n44 = soxr.resample(noisy48, 48000, 44100)
    sf.write(d / "clean.wav", c44, 44100, subtype="PCM_16")
    sf.write(d / "noisy_stereo.wav", np.stack([n44, 0.5 * n44], axis=1), 44100, subtype="PCM_16")
    sf.write(d / "clean16.flac", soxr.resample(clean48, 48000, 16000), 16000)
    sf.write(d / "noisy16.flac", soxr.resample(noisy48, 48000, 16000), 16000)
    return d


def _snr(ref, y):
    return 10 * np.log10(np.sum(ref**2) / np.sum((y - ref) ** 2))


def test_oracle_keeps_rate_channels_length_and_denoises(files):
    out = files / "out.wav"
    assert main(["oracle", "--clean", str(files / "clean.wav"), "--noisy",
                 str(files / "noisy_stereo.wav"), "-o", str(out)]) == 0
    y, rate = sf.read(out, always_2d=True)
    noisy, _ = sf.read(files / "noisy_stereo.wav", always_2d=True)
    clean, _ = sf.read(files / "clean.wav")
    assert rate == 44100 and y.shape == noisy.shape
    assert _snr(clean, y[:, 0]) > _snr(clean, noisy[:, 0]) + 3.0
    # Output is aligned with the input: a 40 ms shift would destroy the SNR gain.
    assert _snr(clean, y[:, 0]) > _snr(clean[:-1920], y[1920:, 0]) + 3.0


@pytest.mark.parametrize("stage", ["gains", "comb", "all"])
def test_oracle_stages_at_16_khz_flac(files, stage):
    out = files / f"out16_{stage}.flac"
    assert main(["oracle", "--clean", str(files / "clean16.flac"), "--noisy",
                 str(files / "noisy16.flac"), "-o", str(out), "--stages", stage]) == 0
    y, rate = sf.read(out)
    noisy, _ = sf.read(files / "noisy16.flac")
    clean, _ = sf.read(files / "clean16.flac")
    assert rate == 16000 and y.shape == noisy.shape
    assert _snr(clean, y) > _snr(clean, noisy) + 2.0


def _run(*args):
    return subprocess.run(CLI + list(map(str, args)), capture_output=True, text=True, timeout=300)


def test_version():
    res = _run("--version")
    assert res.returncode == 0 and res.stdout.startswith("percepnet ")


def test_missing_and_unreadable_files_give_one_line_errors(files, tmp_path):
    bogus = tmp_path / "bogus.wav"
    bogus.write_bytes(b"this is not audio at all")
    out = tmp_path / "o.wav"
    for clean, noisy in ((tmp_path / "nope.wav", files / "noisy16.flac"), (files / "clean16.flac", bogus)):
        res = _run("oracle", "--clean", clean, "--noisy", noisy, "-o", out)
        assert res.returncode == 2
        assert res.stderr.startswith("percepnet: error: ") and res.stderr.count("\n") == 1
        assert "Traceback" not in res.stderr
        assert not out.exists()


def test_non_finite_and_mismatched_inputs_are_refused(files, tmp_path):
    x = np.zeros(48000)
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, 48000, subtype="FLOAT")
    out = tmp_path / "o.wav"
    res = _run("oracle", "--clean", files / "clean16.flac", "--noisy", tmp_path / "nan.wav", "-o", out)
    assert res.returncode == 2 and "NaN" in res.stderr and not out.exists()
    sf.write(tmp_path / "short.wav", np.zeros(8000), 16000)
    res = _run("oracle", "--clean", tmp_path / "short.wav", "--noisy", files / "noisy16.flac", "-o", out)
    assert res.returncode == 2 and "aligned" in res.stderr and not out.exists()
    res = _run("oracle", "--clean", files / "clean16.flac", "--noisy", files / "noisy16.flac", "-o",
               tmp_path / "o.mp4")
    assert res.returncode == 2 and "unsupported output format" in res.stderr


def test_never_overwrites_its_input(files, tmp_path):
    target = tmp_path / "noisy.flac"
    target.write_bytes((files / "noisy16.flac").read_bytes())
    before = target.read_bytes()
    res = _run("oracle", "--clean", files / "clean16.flac", "--noisy", target, "-o", target)
    assert res.returncode == 2 and "overwrite" in res.stderr
    assert target.read_bytes() == before


def test_demo_writes_the_three_stages(tmp_path):
    res = _run("demo", "--out-dir", tmp_path)
    assert res.returncode == 0, res.stderr
    for name in ("clean", "noisy", "oracle_gains", "oracle_comb", "oracle_all"):
        data, rate = sf.read(tmp_path / f"{name}.wav")
        assert rate == 48000 and data.shape[0] > 48000
    assert "oracle gains" in res.stdout and "not built yet" not in res.stdout
