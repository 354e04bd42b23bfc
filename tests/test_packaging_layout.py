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
