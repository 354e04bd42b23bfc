"""dsp/ is pure signal processing: it must import neither Qt nor sounddevice."""
import ast
import subprocess
import sys
from pathlib import Path

DSP = Path(__file__).resolve().parents[1] / "dsp"
FORBIDDEN = ("PyQt6", "PyQt5", "PySide6", "pyqtgraph", "sounddevice", "pulsectl")


def test_dsp_sources_do_not_import_ui_or_audio_io():
    offenders = []
    for path in sorted(DSP.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders, offenders
    assert len(list(DSP.glob("*.py"))) >= 10


def test_importing_every_dsp_module_loads_no_ui_or_audio_io():
    modules = [f"percepnet.dsp.{p.stem}" for p in DSP.glob("*.py") if p.stem != "__init__"]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]\n"
        "print(len(sys.modules)); sys.exit(1 if bad else 0)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
