"""Raising the audio threads' priority (app/thread_priority.py) on real threads: as far as
this process may (root in CI), and the reason when it may not (an unprivileged child)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

from percepnet.app.thread_priority import AUDIO_NICE, raise_priority, thread_ids


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
