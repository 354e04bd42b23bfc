"""A child process that makes a virtual microphone the way ``percepnet run`` does, for the
start/stop and ``kill -9`` tests of each back-end."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time

_SCRIPT = textwrap.dedent("""
    import importlib, sys, time
    module, cls = sys.argv[2].rsplit(".", 1)
    mic = getattr(importlib.import_module(module), cls)()
    st = mic.ensure()
    if sys.argv[1] == "supervise":
        mic.start_supervision(interval_s=0.2)
    print("present" if st.present else "absent: " + st.detail, flush=True)
    if sys.argv[1] == "supervise":
        time.sleep(60)
""")


def mic_child(server, backend: str, mode: str) -> subprocess.Popen:
    """Start the child: ``backend`` is "module.Class"; ``mode`` "exit" (ensure, print, exit:
    the exit handler removes the device) or "supervise" (ensure, supervise, sleep)."""
    return subprocess.Popen([sys.executable, "-c", _SCRIPT, mode, backend],
                            env=server.child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run_exit_child(server, backend: str) -> tuple[int, str, str]:
    """One child in "exit" mode to the end: (return code, stdout, stderr)."""
    proc = mic_child(server, backend, "exit")
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def passing_self_test(mic, label: str):
    """Run ``mic.self_test()`` and check it passed within 3 s, at the played level and
    frequency; prints the figures; returns the result."""
    t0 = time.monotonic()
    res = mic.self_test()
    took = time.monotonic() - t0
    print(f"\n{label}: self-test {res.detail}; level {res.level_db:.2f} dBFS (played "
          f"{res.expected_db:.2f}), {res.freq_hz:.1f} Hz, SNR {res.snr_db:.1f} dB, {took:.2f} s")
    assert res.ok, res.detail
    assert abs(res.level_db - res.expected_db) < 0.5
    assert abs(res.freq_hz - 1000.0) < 2.0
    assert took < 3.0
    return res
