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
Otherwise the threads stay as they are and the reason is reported. (Asking rtkit over D-Bus,
as PulseAudio clients do, is not implemented.)
"""
from __future__ import annotations

import os

__all__ = ["AUDIO_NICE", "thread_ids", "raise_priority"]

#: The nice level asked for the audio threads: -11, PulseAudio's own default
#: (``high-priority`` with ``nice-level = -11`` in daemon.conf).
AUDIO_NICE = -11

_TASKS = "/proc/self/task"


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
            return (f"not raised: no permission for nice {nice} (needs root, CAP_SYS_NICE or "
                    f"RLIMIT_NICE; see docs/sound-servers.md)")
        except OSError as exc:
            return f"not raised: {exc}"
    return f"nice {nice} ({raised} thread{'s' if raised != 1 else ''})" if raised \
        else "not raised: the new threads ended"
