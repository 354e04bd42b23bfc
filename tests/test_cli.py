"""The ``percepnet`` command line (``percepnet.cli``): where it lives, what ``--help`` says,
``percepnet devices`` and device errors against a real PulseAudio server, the status line."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from percepnet.app.settings import PARAMS

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "percepnet"]


def _cli(*args: str, env=None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=REPO, stdin=subprocess.DEVNULL)


# ------------------------------------------------------------------ where it lives

def _imports(path: Path) -> list[str]:
    """Absolute module names ``path`` imports (relative imports resolved in percepnet)."""
    rel = path.relative_to(REPO).with_suffix("")
    package = ["percepnet", *rel.parts[:-1]]
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names += [mod] + [f"{mod}.{a.name}" for a in node.names]
    return names


def test_the_engine_layer_does_not_import_the_window_layer():
    offenders = {str(p.relative_to(REPO)): [n for n in _imports(p)
                                            if n == "percepnet.ui" or n.startswith("percepnet.ui.")]
                 for p in sorted((REPO / "app").rglob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}
    assert not (REPO / "app" / "cli.py").exists()
    # the dispatcher sits above both
    assert {"percepnet.app", "percepnet.ui"} <= {n.rsplit(".", 1)[0] if n.count(".") > 1 else n
                                                 for n in _imports(REPO / "cli.py")}


def test_entry_point_and_python_m_are_the_dispatcher():
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"percepnet": "percepnet.cli:main"}
    assert "percepnet.cli" in (REPO / "__main__.py").read_text()
    res = _cli("--version")
    assert res.returncode == 0 and res.stdout.startswith("percepnet ")


# ------------------------------------------------------------------ what --help says

def test_help_lists_user_commands_before_developer_tools():
    from percepnet.cli import DEVELOPER_COMMANDS, USER_COMMANDS

    res = _cli("--help")
    assert res.returncode == 0, res.stderr
    listed = re.findall(r"^ {4}(\w+) ", res.stdout, flags=re.M)
    assert listed == [*USER_COMMANDS, *DEVELOPER_COMMANDS], res.stdout
    assert set(USER_COMMANDS) >= {"gui", "run", "devices", "denoise", "mic"}
    assert set(DEVELOPER_COMMANDS) == {"oracle", "demo"}


def test_run_flags_are_the_registry_and_help_names_demo_and_null():
    res = _cli("run", "--help")
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    flags = set(re.findall(r"--[a-z][a-z0-9-]*", text))
    for p in PARAMS.values():
        if p.cli:
            assert p.flag in flags, p.name
            if p.kind is bool:
                assert "--no-" + p.flag[2:] in flags, p.name
        else:
            assert p.flag not in flags, p.name
    assert "--monitor" in flags
    assert "--input-device demo" in text and "--output-device null" in text
    assert "percepnet devices" in text


# ------------------------------------------------------------------ devices

@pytest.fixture
def pulse_devices(pulse_server):
    """A microphone (null source) and speakers (null sink) on the real server, defaults."""
    src = int(pulse_server.pactl("load-module", "module-null-source", "source_name=test_mic",
                                 "rate=48000", "channels=1").stdout)
    snk = pulse_server.load_null_sink("test_speakers", "Test_Speakers")
    pulse_server.pactl("set-default-source", "test_mic")
    pulse_server.pactl("set-default-sink", "test_speakers")
    try:
        yield pulse_server
    finally:
        pulse_server.unload_module(src)
        pulse_server.unload_module(snk)


def _sections(listing: str) -> dict[str, list[tuple[bool, str]]]:
    """{'input'|'output': [(is_default, name), ...]} from ``percepnet devices``."""
    out: dict[str, list[tuple[bool, str]]] = {}
    kind = None
    for line in listing.splitlines():
        head = re.match(r"^(input|output)s \(--(input|output)-device NAME\):$", line)
        if head:
            kind = head.group(1)
            out[kind] = []
        elif kind and line.startswith("  ") and not line.strip().startswith("("):
            out[kind].append((line[2] == "*", line[4:].split()[0]))
    return out


def test_devices_lists_the_names_run_accepts_and_an_unknown_one_is_one_error(
        pulse_devices, tmp_path):
    env = pulse_devices.child_env(PERCEPNET_CONFIG=str(tmp_path / "settings.json"))
    res = _cli("devices", env=env)
    assert res.returncode == 0, res.stderr
    sections = _sections(res.stdout)
    assert (True, "test_mic") in sections["input"], res.stdout
    assert (True, "test_speakers") in sections["output"], res.stdout
    assert (False, "demo") in sections["input"] and (False, "null") in sections["output"]
    assert "test_mic.monitor" not in res.stdout  # a monitor is no microphone
    # what it lists, run takes
    res = _cli("run", "--input-device", "test_mic", "--output-device", "test_speakers",
               "--duration", "1", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "running: input=test_mic output=test_speakers" in res.stdout
    # an unknown name: one line naming the choices, exit 2, at once (no retry loop)
    for args, words in ((["--input-device", "nosuchmic"], ["nosuchmic", "test_mic", "demo"]),
                        (["--output-device", "nosuchspk"], ["nosuchspk", "test_speakers", "null"]),
                        (["--input-device", "test_speakers"], ["is an output"]),
                        # null only paces the demo clip: with a microphone nothing would flow
                        (["--input-device", "test_mic", "--output-device", "null"],
                         ["null", "--input-device demo"])):
        res = _cli("run", *args, "--duration", "5", env=env, timeout=60)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("percepnet run: error: "), res.stderr
        assert all(w in lines[0] for w in words), lines[0]
        assert "Error querying" not in res.stdout + res.stderr and "running:" not in res.stdout


def test_devices_without_a_sound_server_still_lists_the_special_names(tmp_path):
    import os

    env = {**os.environ, "PULSE_SERVER": f"unix:{tmp_path / 'no-server'}",
           "PULSE_RUNTIME_PATH": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    res = _cli("devices", env=env)
    assert res.returncode == 0, res.stderr
    sections = _sections(res.stdout)
    assert ("demo" in [n for _, n in sections["input"]]
            and "null" in [n for _, n in sections["output"]]), res.stdout
    res = _cli("run", "--input-device", "nosuchmic", env=env, timeout=60)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "demo" in res.stderr


# ------------------------------------------------------------------ status figures

def test_status_line_cpu_is_the_windows_figure_in_demo_mode(tmp_path):
    """Paced demo (no PortAudio stream): cpu used to read 0.0 % while work was done."""
    config = tmp_path / "settings.json"
    res = _cli("run", "--input-device", "demo", "--output-device", "null", "--duration", "3",
               "--status-interval", "1", "--monitor", "--save", "--config", str(config))
    assert res.returncode == 0, res.stdout + res.stderr
    last = [x for x in res.stdout.splitlines() if x.startswith("stopped:")][-1]
    cpu = float(re.search(r"cpu=([\d.]+)%", last).group(1))
    rtf = float(re.search(r"rtf=([\d.]+)", last).group(1))
    assert rtf > 0 and cpu > 0, last
    assert cpu == pytest.approx(100 * rtf, abs=0.11), last  # the window's max(load, rtf)
    # --monitor is a flag now; without the virtual microphone it says it does not apply
    assert "note: --monitor" in res.stdout
    assert json.loads(config.read_text())["settings"]["monitor"] is True
