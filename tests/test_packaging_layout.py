"""The repository's top-level folders are the subpackages of `percepnet`."""
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_shipped_folder_is_a_listed_package():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = {"percepnet"}
    for top in ("dsp", "app", "ui", "weights"):
        for d in [ROOT / top, *(ROOT / top).rglob("*")]:
            if d.is_dir() and d.name != "__pycache__" and any(d.iterdir()):
                found.add(".".join(("percepnet",) + d.relative_to(ROOT).parts))
    assert found == listed  # code packages and data folders (dsp/data, app/assets)


def test_console_command_reports_version():
    import percepnet

    exe = Path(sys.executable).with_name("percepnet")
    res = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    assert res.stdout.strip() == f"percepnet {percepnet.__version__}"
    res = subprocess.run([sys.executable, "-m", "percepnet", "--version"], capture_output=True,
                         text=True, timeout=60)
    assert res.stdout.strip() == f"percepnet {percepnet.__version__}"


def test_numba_cache_goes_to_the_user_cache_and_follows_the_dsp_sources(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path)
    code = "import percepnet, os; print(os.environ['NUMBA_CACHE_DIR'])"
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    path = Path(res.stdout.strip())
    assert path.parent == tmp_path / "percepnet" / "numba"
    assert len(path.name) == 16  # digest of the dsp/ sources
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "mine")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert res.stdout.strip() == str(tmp_path / "mine")  # an explicit setting wins
