import subprocess
import sys
from pathlib import Path

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


# ------------------------------------------------------------------ formats, jobs, targets

def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "percepnet", *map(str, args)],
                          capture_output=True, text=True, timeout=600, **kw)


def _one_error_line(res) -> str:
    """The whole of stderr: exactly one 'percepnet: error:' line, no traceback."""
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("percepnet: error: "), res.stderr
    return lines[0]


@pytest.fixture(scope="module")
def clip():
    """1 s of noisy speech at 44.1 kHz, stereo (the fixtures, not synthetic noise)."""
    import soxr

    clean = load_fixture("speech_fr.ogg")[:48000]
    noisy = mix_at_snr(clean, load_fixture("noise_vacuum.ogg"), 5.0)
    x = soxr.resample(noisy, 48000, 44100)
    return np.stack([x, 0.7 * x], axis=1) * 0.5


def test_mp3_in_wav_out_and_wav_in_mp3_out(setup, clip, tmp_path):
    assert "MP3" in sf.available_formats(), "libsndfile >= 1.1 writes mp3"
    d, model_path, _ = setup
    sf.write(tmp_path / "in.mp3", clip, 44100, format="MP3")
    frames = sf.info(str(tmp_path / "in.mp3")).frames
    res = _cli("denoise", tmp_path / "in.mp3", tmp_path / "out.wav", "--model", model_path)
    assert res.returncode == 0, res.stderr
    y, rate = sf.read(tmp_path / "out.wav", always_2d=True)
    assert rate == 44100 and y.shape == (frames, 2) and np.all(np.isfinite(y))
    assert np.std(y) > 1e-3  # audio, not silence
    res = _cli("denoise", tmp_path / "out.wav", tmp_path / "back.mp3", "--model", model_path)
    assert res.returncode == 0, res.stderr
    info = sf.info(str(tmp_path / "back.mp3"))
    assert info.format == "MP3" and info.samplerate == 44100 and info.channels == 2


def test_folder_mode_takes_every_format_file_mode_does(setup, clip, tmp_path):
    """mp3, aiff, au, caf, w64 used to be skipped silently; each keeps its own format."""
    d, model_path, _ = setup
    src = tmp_path / "in"
    src.mkdir()
    names = {"a.wav": "WAV", "b.flac": "FLAC", "c.ogg": "OGG", "d.mp3": "MP3", "e.aiff": "AIFF",
             "f.au": "AU", "g.caf": "CAF", "h.w64": "W64", "I.WAV": "WAV"}
    for name, fmt in names.items():
        sf.write(src / name, clip[:22050], 44100, format=fmt)
    (src / "notes.txt").write_text("not audio")
    res = _cli("denoise", src, tmp_path / "out", "--model", model_path, "--jobs", "1")
    assert res.returncode == 0, res.stderr
    for name, fmt in names.items():
        info = sf.info(str(tmp_path / "out" / name))
        assert info.format == fmt and info.samplerate == 44100 and info.channels == 2, name
        assert info.frames == sf.info(str(src / name)).frames
    assert not (tmp_path / "out" / "notes.txt").exists()
    assert res.stdout.count("wrote ") == len(names)
    # an output folder inside the input folder: its files are outputs, not inputs
    res = _cli("denoise", src, src / "clean", "--model", model_path, "--jobs", "1")
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("wrote ") == len(names)
    res = _cli("denoise", src, src / "clean", "--model", model_path, "--overwrite")
    assert res.returncode == 0 and not (src / "clean" / "clean").exists(), res.stderr


def test_jobs_uses_that_many_processes_and_gives_the_same_samples(setup, clip, tmp_path):
    import os

    from percepnet.app.offline import denoise_paths

    d, model_path, _ = setup
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        sf.write(src / f"f{i}.wav", np.roll(clip, 1000 * i, axis=0), 44100, subtype="FLOAT")
    model = load_model(model_path)
    serial = denoise_paths(src, tmp_path / "one", model, jobs=1, report=lambda _: None)
    parallel = denoise_paths(src, tmp_path / "two", model, jobs=2, report=lambda _: None)
    assert {r.worker_pid for r in serial} == {os.getpid()}
    pids = {r.worker_pid for r in parallel}
    assert len(pids) == 2 and os.getpid() not in pids
    assert not any(r.error for r in serial + parallel)
    for i in range(3):
        a = sf.read(tmp_path / "one" / f"f{i}.wav")[0]
        b = sf.read(tmp_path / "two" / f"f{i}.wav")[0]
        np.testing.assert_array_equal(a, b)
    res = _cli("denoise", src, tmp_path / "cli", "--model", model_path, "--jobs", "2")
    assert res.returncode == 0 and res.stdout.count("wrote ") == 3, res.stderr
    np.testing.assert_array_equal(sf.read(tmp_path / "cli" / "f2.wav")[0],
                                  sf.read(tmp_path / "one" / "f2.wav")[0])
    res = _cli("denoise", src, tmp_path / "zero", "--model", model_path, "--jobs", "0")
    assert res.returncode == 2 and "--jobs" in res.stderr


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_output_files_honour_the_umask(setup, tmp_path, umask, mode):
    d, model_path, noisy = setup
    src = tmp_path / "x.wav"
    sf.write(src, noisy[:4800], 48000)
    res = _cli("denoise", src, tmp_path / "y.flac", "--model", model_path, umask=umask)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "y.flac").stat().st_mode & 0o777 == mode


def test_an_existing_output_needs_overwrite(setup, tmp_path):
    d, model_path, noisy = setup
    src = tmp_path / "x.wav"
    sf.write(src, noisy[:9600], 48000)
    out = tmp_path / "y.wav"
    out.write_bytes(b"precious")
    res = _cli("denoise", src, out, "--model", model_path)
    assert res.returncode == 2 and "--overwrite" in _one_error_line(res)
    assert out.read_bytes() == b"precious"
    res = _cli("denoise", src, out, "--model", model_path, "--overwrite")
    assert res.returncode == 0, res.stderr
    assert sf.info(str(out)).frames == 9600
    # folder mode: refused before any file is written
    (tmp_path / "in").mkdir()
    for name in ("a.wav", "b.wav"):
        sf.write(tmp_path / "in" / name, noisy[:4800], 48000)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.wav").write_bytes(b"precious")
    res = _cli("denoise", tmp_path / "in", tmp_path / "out", "--model", model_path)
    assert res.returncode == 2 and "b.wav" in _one_error_line(res)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b.wav"]
    assert (tmp_path / "out" / "b.wav").read_bytes() == b"precious"


def _in_private_mount(script: str, tmp_path) -> subprocess.CompletedProcess:
    """Run a shell script in its own user + mount namespace (a tmpfs can be mounted there
    without privileges and vanishes with it); skip where the kernel forbids namespaces."""
    import shutil

    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no user namespaces here: {probe.stderr.strip()}")
    return subprocess.run(["unshare", "-rm", "sh", "-euc", script], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)


def _target_script(tmp_path, model_path, mount: str, args: str) -> str:
    """Mount ``mount`` (a tmpfs holding keep.wav) on tmp_path/target, run denoise ``args``,
    then print the exit status and what the target holds (name and sha256 per file)."""
    target = tmp_path / "target"
    target.mkdir(exist_ok=True)
    return f"""
mount -t tmpfs -o {mount} tmpfs {target}
cp {tmp_path / 'keep.wav'} {target}/keep.wav
[ -n "${{REMOUNT:-}}" ] && mount -o remount,ro {target}
set +e
{sys.executable} -m percepnet denoise {args} --model {model_path} 2>{tmp_path / 'err.txt'}
echo "rc=$?"
cd {target} && ls -A | while read f; do echo "file=$f $(sha256sum "$f" | cut -c1-16)"; done
"""


def _target_result(res, tmp_path):
    assert res.returncode == 0, res.stderr
    rc = int(next(x for x in res.stdout.splitlines() if x.startswith("rc="))[3:])
    files = dict(x[5:].split(" ") for x in res.stdout.splitlines() if x.startswith("file="))
    err = (tmp_path / "err.txt").read_text()
    return rc, files, err


@pytest.mark.parametrize("case", ["read-only", "full"])
def test_a_read_only_or_full_target_is_one_error_line_and_loses_nothing(setup, tmp_path, case):
    import hashlib

    d, model_path, noisy = setup
    sf.write(tmp_path / "keep.wav", noisy[:4800], 48000)  # already in the target
    keep = hashlib.sha256((tmp_path / "keep.wav").read_bytes()).hexdigest()[:16]
    sf.write(tmp_path / "x.wav", noisy, 48000, subtype="FLOAT")  # 3 s: 576 kB of float
    (tmp_path / "in").mkdir()
    for i in range(3):
        sf.write(tmp_path / "in" / f"f{i}.wav", noisy, 48000, subtype="FLOAT")
    # a tmpfs that holds keep.wav and little more, or a read-only one
    mount = "size=64k" if case == "full" else "size=4m"
    env = "REMOUNT=1 " if case == "read-only" else ""
    target = tmp_path / "target"
    for args in (f"{tmp_path / 'x.wav'} {target / 'new.wav'}",
                 f"{tmp_path / 'x.wav'} {target / 'keep.wav'} --overwrite",
                 f"{tmp_path / 'in'} {target} --jobs 2"):
        script = env + "export REMOUNT\n" if env else ""
        res = _in_private_mount(script + _target_script(tmp_path, model_path, mount, args),
                                tmp_path)
        rc, files, err = _target_result(res, tmp_path)
        assert rc == 2, (args, err)
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("percepnet: error: "), (args, err)
        why = "Read-only file system" if case == "read-only" else "No space left on device"
        assert why in lines[0], lines[0]
        # nothing lost, nothing half-written left behind
        assert files == {"keep.wav": keep}, (args, files)


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                pass
    return kids


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_stopping_a_jobs_run_stops_its_workers_and_leaves_no_partial_file(setup, tmp_path,
                                                                          signame):
    import os
    import signal
    import time

    d, model_path, _ = setup
    src = tmp_path / "in"
    src.mkdir()
    x = np.resize(load_fixture("noise_kettle.ogg"), 48000 * 300) * 0.3  # 5 min each
    for i in range(2):
        sf.write(src / f"long{i}.wav", x, 48000, subtype="PCM_16")
    proc = subprocess.Popen([sys.executable, "-m", "percepnet", "denoise", str(src),
                             str(tmp_path / "out"), "--model", str(model_path), "--jobs", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = _children(proc.pid)
    assert len(workers) >= 2 and proc.poll() is None
    # each file takes seconds here; 0.3 s lets the workers install their signal handlers
    time.sleep(0.3)
    sig = getattr(signal, signame)
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # Ctrl-C reaches the whole foreground group
    else:
        proc.send_signal(sig)  # kill / systemd: the parent only
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (130, 128 + signal.SIGTERM), (proc.returncode, err)
    assert "Traceback" not in err, err[-3000:]
    assert "interrupted" in err
    # nothing half-written: no temporary file, and a file that is there is whole
    for f in (tmp_path / "out").iterdir():
        assert not f.name.startswith("."), f
        assert sf.info(str(f)).frames == 48000 * 300, f
    time.sleep(0.5)
    assert [w for w in workers if Path(f"/proc/{w}").exists()
            and "zombie" not in Path(f"/proc/{w}/status").read_text()] == []
