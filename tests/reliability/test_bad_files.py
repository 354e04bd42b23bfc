"""Bad input files and failing writes through ``percepnet denoise`` (issue 9, reliability).

Every case must end with exit status 2 (1 for a folder run with some bad files), one clear
``percepnet: error: <file>: <reason>`` line per failure, no traceback, and no output file:
neither OUT nor the temporary file it is written through.
"""
from __future__ import annotations

import struct

import numpy as np
import pytest
import soundfile as sf

from percepnet.app import audio_io
from percepnet.app.audio_io import AudioFileError, read_audio
from percepnet.cli import main
from percepnet.app.offline import denoise_file

from model_fixtures import tiny_model, write_tiny_model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("model"))


def _tone(seconds: float = 0.5, rate: int = 48000) -> np.ndarray:
    return 0.1 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)


def _wav_header(channels: int, rate: int = 48000, frames: int = 100, bits: int = 16) -> bytes:
    data = b"\0" * (frames * max(channels, 1) * bits // 8)
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * bits // 8,
                      channels * bits // 8, bits)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data"
            + struct.pack("<I", len(data)) + data)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _encoded(tmp_path, ext: str) -> bytes:
    p = tmp_path / f"src.{ext}"
    sf.write(p, _tone(), 48000)
    blob = p.read_bytes()
    p.unlink()
    return blob


def _bad_input(tmp_path, case: str):
    """(file name, bytes) of a broken input file."""
    if case == "empty":
        return "empty.wav", b""
    if case == "header_only":
        return "header_only.wav", _encoded(tmp_path, "wav")[:20]
    if case == "truncated_wav":
        blob = _encoded(tmp_path, "wav")
        return "truncated.wav", blob[: len(blob) // 2 + 1]
    if case == "truncated_flac":
        blob = _encoded(tmp_path, "flac")
        return "truncated.flac", blob[: len(blob) // 2]
    if case == "truncated_ogg":
        blob = _encoded(tmp_path, "ogg")
        return "truncated.ogg", blob[: len(blob) // 2]
    if case == "zero_channels":
        return "zero_channels.wav", _wav_header(0)
    if case == "zero_frames":
        return "zero_frames.wav", _wav_header(1, frames=0)
    if case == "zero_rate":
        return "zero_rate.wav", _wav_header(1, rate=0)
    if case == "text":
        return "notes.wav", b"this is a text file, not audio\n" * 20
    if case == "png_as_flac":
        return "picture.flac", b"\x89PNG\r\n\x1a\n" + bytes(300)
    raise ValueError(case)


#: case -> words the error line must contain
CASES = {
    "empty": "not a readable sound file",
    "header_only": "not a readable sound file",
    "truncated_wav": "truncated",
    "truncated_flac": "not a readable sound file",
    "truncated_ogg": "not a readable sound file",
    "zero_channels": "channel",
    "zero_frames": "no samples",
    "zero_rate": "not a readable sound file",
    "text": "not a readable sound file",
    "png_as_flac": "not a readable sound file",
}


def _assert_one_clear_line(err: str, *words: str) -> None:
    assert err.startswith("percepnet: error: "), err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    for w in words:
        assert w.lower() in err.lower(), (w, err)


def _leftovers(folder, keep=()):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_file_gives_one_clear_line_and_no_output(case, model_path, tmp_path, capsys):
    name, blob = _bad_input(tmp_path, case)
    src = tmp_path / name
    src.write_bytes(blob)
    out = tmp_path / "out.wav"
    capsys.readouterr()
    assert main(["denoise", str(src), str(out), "--model", str(model_path)]) == 2
    captured = capsys.readouterr()
    _assert_one_clear_line(captured.err, name, CASES[case])
    assert captured.out == ""
    assert _leftovers(tmp_path) == [name]  # no OUT, no temporary file
    assert src.read_bytes() == blob  # the input is untouched


def test_truncated_wav_is_refused_but_streamed_lengths_are_not(tmp_path):
    """A WAV cut short is an error; one whose header leaves the length open (written to a
    pipe: data size 0xFFFFFFFF) is read as far as it goes."""
    p = tmp_path / "piped.wav"
    sf.write(p, _tone(0.2), 48000, subtype="PCM_16")
    blob = bytearray(p.read_bytes())
    i = blob.index(b"data")
    blob[i + 4:i + 8] = struct.pack("<I", 0xFFFFFFFF)
    blob[4:8] = struct.pack("<I", 0xFFFFFFFF)
    p.write_bytes(bytes(blob))
    data, rate, _ = read_audio(p)
    assert rate == 48000 and data.shape == (9600, 1)
    cut = tmp_path / "cut.wav"
    sf.write(cut, _tone(0.2), 48000, subtype="PCM_16")
    cut.write_bytes(cut.read_bytes()[:-1000])
    with pytest.raises(AudioFileError, match="truncated"):
        read_audio(cut)


def test_missing_input_non_finite_samples_and_bad_outputs(model_path, tmp_path, capsys):
    good = tmp_path / "good.wav"
    sf.write(good, _tone(), 48000)
    nan = tmp_path / "nan.wav"
    x = _tone()
    x[100:110] = np.nan
    sf.write(nan, x, 48000, subtype="FLOAT")
    runs = [
        ([str(tmp_path / "missing.wav"), str(tmp_path / "o.wav")], ["missing.wav", "no such file"]),
        ([str(nan), str(tmp_path / "o.wav")], ["nan.wav", "NaN"]),
        ([str(good), str(tmp_path / "o.mp4")], ["o.mp4", "unsupported output format"]),
        ([str(good), str(tmp_path / "no" / "such" / "o.wav")], ["does not exist"]),
        ([str(good), str(good)], ["overwrite"]),
    ]
    before = _leftovers(tmp_path)
    for args, words in runs:
        capsys.readouterr()
        assert main(["denoise", *args, "--model", str(model_path)]) == 2, args
        _assert_one_clear_line(capsys.readouterr().err, *words)
        assert _leftovers(tmp_path) == before, args


def test_a_failing_write_leaves_no_partial_file(model_path, tmp_path, capsys, monkeypatch):
    src = tmp_path / "in.wav"
    sf.write(src, _tone(), 48000)
    out = tmp_path / "out.wav"
    real_write = sf.write

    def write_half_then_fail(path, data, *args, **kwargs):
        real_write(path, data[: len(data) // 2], *args, **kwargs)  # a partial file exists...
        raise OSError(28, "No space left on device")  # ...when the disk fills up

    monkeypatch.setattr(audio_io.sf, "write", write_half_then_fail)
    capsys.readouterr()
    assert main(["denoise", str(src), str(out), "--model", str(model_path)]) == 2
    _assert_one_clear_line(capsys.readouterr().err, "out.wav", "could not write", "No space left")
    assert _leftovers(tmp_path) == ["in.wav"]


def test_ctrl_c_during_the_write_leaves_no_partial_file(tmp_path, monkeypatch):
    src = tmp_path / "in.wav"
    sf.write(src, _tone(), 48000)
    real_write = sf.write

    def write_half_then_interrupt(path, data, *args, **kwargs):
        real_write(path, data[: len(data) // 2], *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(audio_io.sf, "write", write_half_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        denoise_file(src, tmp_path / "out.wav", tiny_model())
    assert _leftovers(tmp_path) == ["in.wav"]


def test_folder_with_bad_files_writes_only_the_good_ones(model_path, tmp_path, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    sf.write(src / "good.flac", _tone(), 48000)
    sf.write(src / "sub" / "good44.wav", np.stack([_tone(0.5, 44100)] * 2, axis=1), 44100)
    bad = ["empty", "truncated_wav", "zero_channels", "text"]
    names = []
    for case in bad:
        name, blob = _bad_input(tmp_path, case)
        (src / "sub" / name).write_bytes(blob)
        names.append(name)
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["denoise", str(src), str(out), "--model", str(model_path)]) == 1
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == len(bad) and all(l.startswith("percepnet: error: ") for l in lines)
    assert all(any(n in l for l in lines) for n in names) and "Traceback" not in err
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["good.flac", "sub/good44.wav"]  # nothing for the bad ones, no temp files
