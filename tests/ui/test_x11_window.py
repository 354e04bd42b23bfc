"""The window on a real X server (Xvfb) through Qt's xcb platform plugin, not the offscreen
one: a system library the plugin needs (libxcb-cursor0, libxkbcommon-x11-0, ...) that is
missing makes Qt abort here, as it would on a user's X11 desktop."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.fixture
def xvfb(tmp_path):
    """A private Xvfb display; a missing Xvfb is an error (``make test`` installs it)."""
    exe = shutil.which("Xvfb")
    assert exe, "Xvfb is not installed (Debian: xvfb; packaging/system-deps.sh --test)"
    # -displayfd: the server picks a free display number and writes it to us
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen([exe, "-displayfd", str(write_fd), "-screen", "0", "1280x800x24",
                             "-nolisten", "tcp"], pass_fds=(write_fd,),
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "xvfb.log").open("w"))
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as f:
            number = f.readline().strip()
        assert number.isdigit(), f"Xvfb did not start: {(tmp_path / 'xvfb.log').read_text()}"
        yield f":{number}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_window_opens_on_a_real_x_server(xvfb, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "PULSE_SERVER")}
    env.update(DISPLAY=xvfb, QT_QPA_PLATFORM="xcb", QT_DEBUG_PLUGINS="0",
               XDG_RUNTIME_DIR=str(tmp_path / "run"),
               PERCEPNET_CONFIG=str(tmp_path / "config" / "settings.json"))
    Path(env["XDG_RUNTIME_DIR"]).mkdir(mode=0o700)
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "percepnet", "gui", "--self-test", "3"],
                         env=env, capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "Qt platform xcb" in out, out[-3000:]
    assert "self-test: OK" in out
    print(f"\nwindow self-test on Xvfb (xcb) in {time.monotonic() - t0:.1f} s")
