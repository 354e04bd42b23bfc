"""The layers as contracts (``[tool.importlinter]`` in pyproject.toml): ui > app > dsp, dsp
imports no app/ui/training/torch/sounddevice/Qt/pulsectl, app no ui/training/torch/Qt,
nothing imports benchmarks, no import cycles. ``lint-imports`` checks them on the sources."""
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    exe = Path(sys.executable).with_name("lint-imports")
    assert exe.exists() or shutil.which("lint-imports"), \
        "import-linter is not installed (it is in the test extra)"
    res = subprocess.run([str(exe if exe.exists() else "lint-imports"), "--no-cache"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "5 kept, 0 broken" in res.stdout, res.stdout[-2000:]


def test_importing_the_dsp_loads_no_ui_audio_io_or_torch():
    """At run time too (import-linter reads the sources; this imports them)."""
    modules = sorted(f"percepnet.dsp.{p.stem}" for p in (ROOT / "dsp").glob("*.py")
                     if p.stem != "__init__")
    forbidden = ("PyQt6", "pyqtgraph", "sounddevice", "pulsectl", "torch")
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({forbidden!r})))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]", res.stdout
    assert len(modules) >= 10
