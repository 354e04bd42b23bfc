"""Raising the audio threads' priority (app/thread_priority.py) on real threads: as far as
this process may (root in CI), through the real rtkit-daemon on a private system bus (what a
desktop user's process gets), and the reasons when neither works (an unprivileged child)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from percepnet.app.thread_priority import AUDIO_NICE, raise_priority, rtkit_raise, thread_ids


def _parked_thread():
    ready, stop = threading.Event(), threading.Event()
    box = {}

    def run():
        box["tid"] = threading.get_native_id()
        ready.set()
        stop.wait(10)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    ready.wait(5)
    return box["tid"], stop, t


def test_only_the_given_threads_are_raised_as_far_as_allowed():
    before = thread_ids()
    tid, stop, t = _parked_thread()
    try:
        new = thread_ids() - before
        assert new == {tid}
        main_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        res = raise_priority(new)
        if os.geteuid() == 0:
            assert res == f"nice {AUDIO_NICE} (1 thread)", res
            assert os.getpriority(os.PRIO_PROCESS, tid) == AUDIO_NICE
        else:
            assert res.startswith("not raised: no permission"), res
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_nice
    finally:
        stop.set()
        t.join(5)
    assert raise_priority(set()).startswith("not raised")


_UNPRIVILEGED = """
import os, resource, threading
from percepnet.app.thread_priority import raise_priority, thread_ids
resource.setrlimit(resource.RLIMIT_NICE, (0, 0))  # no lowering of nice without privilege
if os.geteuid() == 0:
    os.setgid(65534); os.setuid(65534)  # nobody: no CAP_SYS_NICE
os.setpriority(os.PRIO_PROCESS, 0, 0)
b = thread_ids(); e = threading.Event()
t = threading.Thread(target=e.wait, daemon=True); t.start()
print(raise_priority(thread_ids() - b)); e.set()
"""


def test_without_permission_the_reason_is_reported():
    res = subprocess.run([sys.executable, "-c", _UNPRIVILEGED], capture_output=True, text=True,
                         timeout=60, cwd="/")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().startswith("not raised: no permission for nice -11"), res.stdout


# rtkit: a private system bus with the real polkitd and rtkit-daemon on it -----------------

_BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""


def _first_existing(*paths: str) -> str:
    for p in paths:
        if os.path.exists(p):
            return p
    raise AssertionError(f"none of {paths} exists: packaging/system-deps.sh --test installs "
                         "rtkit and polkitd")


@pytest.fixture
def rtkit_bus():
    """The address of a private system bus on which the real polkitd and rtkit-daemon run
    (as they do on a desktop, where rtkit and polkit answer on the system bus). Needs root:
    rtkit-daemon changes other processes' threads, and polkit grants root every action."""
    if os.geteuid() != 0:
        pytest.skip("rtkit-daemon must run as root to raise threads (CI runs as root)")
    polkitd = _first_existing("/usr/lib/polkit-1/polkitd", "/usr/libexec/polkitd",
                              "/usr/lib/policykit-1/polkitd")
    rtkitd = _first_existing("/usr/libexec/rtkit-daemon", "/usr/lib/rtkit/rtkit-daemon")
    tmp = tempfile.mkdtemp(prefix="pn-sysbus-")
    os.chmod(tmp, 0o755)  # the unprivileged test's child reaches the socket too
    socket = os.path.join(tmp, "system_bus_socket")
    conf = os.path.join(tmp, "bus.conf")
    with open(conf, "w") as f:
        f.write(_BUS_CONF.format(socket=socket))
    address = f"unix:path={socket}"
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address}
    procs = [subprocess.Popen(["dbus-daemon", "--nofork", f"--config-file={conf}"],
                              stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)]
    try:
        _wait_for(lambda: os.path.exists(socket), "dbus-daemon's socket", procs[0])
        procs.append(subprocess.Popen([polkitd, "--no-debug"], env=env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        _wait_for(lambda: _on_bus(env, "org.freedesktop.PolicyKit1"), "polkitd", procs[1])
        # --no-limit-resources: with its file-size limit of 0 it dies writing to a pipe'd stderr
        procs.append(subprocess.Popen([rtkitd, "--no-canary", "--no-limit-resources"], env=env,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE))
        _wait_for(lambda: _on_bus(env, "org.freedesktop.RealtimeKit1"), "rtkit-daemon",
                  procs[2])
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def _on_bus(env, name: str) -> bool:
    res = subprocess.run(["busctl", "--system", "status", name], env=env, capture_output=True,
                         stdin=subprocess.DEVNULL, timeout=10)
    return res.returncode == 0


def _wait_for(ready, what: str, proc: subprocess.Popen, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited ({proc.returncode}): "
                                 f"{proc.stderr.read().decode(errors='replace')[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not ready after {timeout_s} s")
        time.sleep(0.05)


def test_rtkit_raises_this_processes_threads(rtkit_bus, monkeypatch):
    """What an unprivileged desktop process gets: the real rtkit-daemon raises the given
    thread (polkit grants root here; on a desktop it grants the active session)."""
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", rtkit_bus)
    tid, stop, t = _parked_thread()
    try:
        main_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert os.getpriority(os.PRIO_PROCESS, tid) > AUDIO_NICE
        assert rtkit_raise({tid}) is None
        assert os.getpriority(os.PRIO_PROCESS, tid) == AUDIO_NICE
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_nice
    finally:
        stop.set()
        t.join(5)


def test_an_unprivileged_process_asks_rtkit_and_reports_its_answer(rtkit_bus):
    """``setpriority`` refused, the threads go to rtkit; polkit refuses a process outside any
    login session (nobody, here) and both reasons are reported."""
    env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": rtkit_bus}
    res = subprocess.run([sys.executable, "-c", _UNPRIVILEGED], capture_output=True, text=True,
                         timeout=60, cwd="/", env=env)
    assert res.returncode == 0, res.stderr
    out = res.stdout.strip()
    assert out.startswith("not raised: no permission for nice -11"), out
    print("\n" + out)
    assert "rtkit refused" in out and "Failed to connect" not in out, out


def test_without_a_system_bus_rtkit_is_reported_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/no-bus")
    tid, stop, t = _parked_thread()
    try:
        why = rtkit_raise({tid})
    finally:
        stop.set()
        t.join(5)
    print("\n" + why if why else "")
    assert why is not None and why, why
