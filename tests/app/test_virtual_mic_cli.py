"""``percepnet mic {status,self-test,remove}`` (app/mic_cli.py) against the real server.

The command is driven through its own argparse parser mounted on a fresh top-level parser,
as cli.py (percepnet.cli) mounts it.
"""
from __future__ import annotations

import argparse
import re
from functools import partial

import pytest

from percepnet.app import mic_cli
from percepnet.app.virtual_mic import MIC_DESCRIPTION, SINK_NAME, SOURCE_NAME
from percepnet.app.virtual_mic_pipe import PipeVirtualMic
from percepnet.app.virtual_mic_pulse import PulseVirtualMic


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="percepnet")
    sub = parser.add_subparsers(dest="command")
    mic_cli.add_parser(sub)
    return parser.parse_args(list(argv))


def _cli(capsys, *argv: str, mic=None) -> tuple[int, list[str]]:
    """Run ``percepnet mic ...``: on the back-end a user gets (``get_backend``: the pipe
    source on a local server), or on ``mic``."""
    code = mic_cli.run(parse("mic", *argv), mic)
    out = capsys.readouterr().out
    return code, out.splitlines()


@pytest.fixture(params=["pipe", "null-sink"])
def mic(request, pulse_server):
    """The microphone under test: the pipe source (what ``get_backend`` gives on a local
    server: the CLI finds it itself) or the null-sink chain (a remote server's; handed in)."""
    m = PipeVirtualMic() if request.param == "pipe" else PulseVirtualMic()
    m.remove()
    yield m
    m.remove()


def test_status_self_test_remove_cycle(mic, pulse_server, capsys):
    pipe = isinstance(mic, PipeVirtualMic)
    cli = partial(_cli, mic=None if pipe else mic)
    code, lines = cli(capsys, "status")
    assert code == 1
    assert "virtual microphone: absent" in lines
    assert "detail: not created: start PercepNet (it creates the microphone)" in lines

    code, lines = cli(capsys, "self-test")
    assert code == 1 and "self-test: FAILED" in lines

    assert mic.ensure().present
    code, lines = cli(capsys, "status")
    assert code == 0
    assert lines[0].startswith(f"backend: {mic.backend} (PulseAudio "), lines
    assert f'virtual microphone: present, pick "{MIC_DESCRIPTION}" in your meeting app' in lines
    assert f"microphone device: {SOURCE_NAME}" in lines
    assert f"engine output: {mic.sink_name}" in lines
    assert "recording from it: nobody" in lines

    code, lines = cli(capsys, "self-test")
    assert code == 0, lines
    assert lines[0] == "self-test: OK"
    level = next(line for line in lines if line.startswith("tone level read back: "))
    m = re.fullmatch(r"tone level read back: (-?[\d.]+) dBFS \(played (-?[\d.]+) dBFS\)", level)
    assert m and abs(float(m[1]) - float(m[2])) < 0.5, level
    freq = next(line for line in lines if line.startswith("tone frequency read back: "))
    assert abs(float(freq.split()[4]) - 1000.0) < 2.0, freq

    code, lines = cli(capsys, "remove")
    assert code == 0 and lines == [f"removed: {1 if pipe else 2} module(s) of the virtual "
                                   "microphone"]
    assert SOURCE_NAME not in pulse_server.pactl("list", "short", "sources").stdout
    code, lines = cli(capsys, "remove")
    assert code == 0 and lines == ["nothing to remove: no virtual microphone of ours was loaded"]
    code, _ = cli(capsys, "status")
    assert code == 1


def test_broken_mic_is_reported_with_exit_1(pulse_server, capsys):
    mic = PulseVirtualMic()
    mic.remove()
    pulse_server.pactl("load-module", "module-null-sink", f"sink_name={SINK_NAME}",
                       "rate=48000", "channels=1")
    try:
        code, lines = _cli(capsys, "status", mic=mic)
    finally:
        mic.remove()
    assert code == 1
    assert any(line.startswith("detail: broken: source percepnet_mic missing") for line in lines)


def test_no_server_is_exit_1_with_a_clear_line(pulse_server, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PULSE_SERVER", f"unix:{tmp_path}/nothing-here")
    for action in ("status", "self-test", "remove"):
        code, lines = _cli(capsys, action)
        assert code == 1, action
        assert any(line.startswith("detail: no PulseAudio/PipeWire server reachable: ")
                   for line in lines), lines


def test_usage_errors_exit_2(capsys):
    assert mic_cli.run(parse("mic")) == 2
    assert "choose an action" in capsys.readouterr().err
    assert mic_cli.run(parse("mic", "self-test", "--timeout", "0")) == 2
    with pytest.raises(SystemExit) as exc:
        parse("mic", "explode")
    assert exc.value.code == 2
