"""Scheduling priority for the threads of the audio path (control side, never the callback).

On a desktop the meeting app (a browser: several busy threads) runs beside us at the same
priority, and when the cores are full our callback waits its turn: measured in the browser
test with two spin loops on both cores, the engine's writes into the virtual microphone
stalled 82-167 ms in 4 of 18 runs, and those recordings scored -1.6 to 8.2 dB instead of
10.6 dB. With the engine's threads at nice -11 (what PulseAudio asks for its own threads)
the same runs showed at most 20 ms between writes, 12 of 12 runs passing.

Which threads: those that opening and starting the stream brought into the process
(PortAudio's callback thread and, on the ALSA ``pulse`` device, libpulse's mainloop thread),
found as the difference of ``/proc/self/task`` before and after. Only Linux; the raise is
``setpriority`` on each thread, which needs root, CAP_SYS_NICE or an ``RLIMIT_NICE`` that
allows it (``ulimit -e``; ``/etc/security/limits.d``, e.g. ``@audio - nice -11``).

A desktop user has none of these, so where ``setpriority`` is refused the threads are handed
to rtkit (RealtimeKit, the system D-Bus service through which PulseAudio and PipeWire raise
their own threads; polkit lets an active local session use it):
``MakeThreadHighPriorityWithPID(pid, tid, nice)``, called with ``busctl`` (systemd) so that no
D-Bus library is needed. Where that fails too (no system bus, no rtkit, polkit says no), the
threads stay as they are and both reasons are reported.
"""
from __future__ import annotations

import os
import shutil
import subprocess

from .devices import child_env

__all__ = ["AUDIO_NICE", "RTKIT_TIMEOUT_S", "thread_ids", "raise_priority", "rtkit_raise"]

#: The nice level asked for the audio threads: -11, PulseAudio's own default
#: (``high-priority`` with ``nice-level = -11`` in daemon.conf).
AUDIO_NICE = -11

_TASKS = "/proc/self/task"

#: rtkit's bus name, object path and interface
_RTKIT = ("org.freedesktop.RealtimeKit1", "/org/freedesktop/RealtimeKit1",
          "org.freedesktop.RealtimeKit1")

#: How long one rtkit call may take (s); it answers in milliseconds when it runs.
RTKIT_TIMEOUT_S = 2.0


def thread_ids() -> set[int]:
    """The ids of this process's threads (empty where ``/proc`` is missing)."""
    try:
        return {int(t) for t in os.listdir(_TASKS)}
    except OSError:
        return set()


def raise_priority(tids: set[int], nice: int = AUDIO_NICE) -> str:
    """Set each thread of ``tids`` to ``nice`` (never lower one already higher); returns what
    happened, for the diagnostics: ``"nice -11 (2 threads)"`` or ``"not raised: <why>"``."""
    if not tids:
        return "not raised: no new threads found (not Linux?)"
    raised = 0
    for tid in sorted(tids):
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) <= nice:
                raised += 1
                continue
            os.setpriority(os.PRIO_PROCESS, tid, nice)
            raised += 1
        except ProcessLookupError:
            continue  # a helper thread that has ended since
        except PermissionError:
            rest = {t for t in tids if t >= tid}
            why = rtkit_raise(rest, nice)
            if why is None:
                return f"nice {nice} via rtkit ({_threads(raised + len(rest))})"
            return (f"not raised: no permission for nice {nice} (needs root, CAP_SYS_NICE or "
                    f"RLIMIT_NICE) and rtkit refused ({why}); see docs/sound-servers.md")
        except OSError as exc:
            return f"not raised: {exc}"
    return f"nice {nice} ({_threads(raised)})" if raised else "not raised: the new threads ended"


def _threads(n: int) -> str:
    return f"{n} thread{'s' if n != 1 else ''}"


def rtkit_raise(tids: set[int], nice: int = AUDIO_NICE) -> str | None:
    """Ask rtkit for ``nice`` on each thread of ``tids`` (this process's); None when it
    granted all of them (threads that ended meanwhile are passed over), else why not, in a
    line. Control side only: one ``busctl`` call per thread, each at most RTKIT_TIMEOUT_S."""
    busctl = shutil.which("busctl")
    if busctl is None:
        return "busctl (systemd) not found"
    env = child_env()
    for tid in sorted(tids):
        argv = [busctl, "--system", f"--timeout={RTKIT_TIMEOUT_S:g}", "call", "--", *_RTKIT,
                "MakeThreadHighPriorityWithPID", "tti", str(os.getpid()), str(tid), str(nice)]
        try:
            res = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL,
                                 capture_output=True, text=True, timeout=RTKIT_TIMEOUT_S + 1.0)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"busctl: {exc}"
        if res.returncode != 0:
            if not os.path.exists(f"{_TASKS}/{tid}"):
                continue  # the thread ended meanwhile
            lines = (res.stderr or res.stdout).strip().splitlines()
            return lines[-1] if lines else f"busctl exited with {res.returncode}"
    return None
