"""The latency re-sync decision on made-up round trips (the live re-sync is tested in
test_engine_pulse.py)."""
from __future__ import annotations

from types import SimpleNamespace

from percepnet.app.latency_tracker import (IO_LATENCY_HISTORY, RESYNC_AFTER_S,
                                           RESYNC_MAX_WAIT_S, LatencyTracker)

REQUESTED_S = 0.03


def _feed(tracker: LatencyTracker, io_s: float, n: int = IO_LATENCY_HISTORY) -> None:
    for _ in range(n):
        tracker.record(SimpleNamespace(inputBufferAdcTime=1.0, outputBufferDacTime=1.0 + io_s,
                                       currentTime=1.001))


def _run(tracker, t0: float, t1: float, quiet: bool, step: float = 0.1) -> float | None:
    """Tick from t0 to t1; the time of the first re-sync, or None."""
    t = t0
    while t <= t1:
        if tracker.check(running_s=t, now=t, quiet=quiet, requested_s=REQUESTED_S) > 0:
            return t
        t += step
    return None


def test_steady_latency_never_resyncs():
    tr = LatencyTracker()
    _feed(tr, 0.060)
    assert _run(tr, 0.0, 60.0, quiet=True) is None
    assert abs(tr.median_s() - 0.060) < 1e-9


def test_growth_resyncs_after_two_seconds_at_a_quiet_moment():
    tr = LatencyTracker()
    _feed(tr, 0.060)
    assert _run(tr, 2.0, 10.0, quiet=True) is None
    _feed(tr, 0.075)  # +15 ms: within the allowance
    assert _run(tr, 10.0, 20.0, quiet=True) is None
    _feed(tr, 0.090)  # +30 ms
    t = _run(tr, 20.0, 40.0, quiet=True)
    assert t is not None and RESYNC_AFTER_S <= t - 20.0 <= RESYNC_AFTER_S + 0.25


def test_growth_while_speaking_waits_for_quiet_then_resyncs_anyway():
    tr = LatencyTracker()
    _feed(tr, 0.060)
    _run(tr, 2.0, 5.0, quiet=False)
    _feed(tr, 0.100)
    t = _run(tr, 5.0, 30.0, quiet=False)
    assert t is not None and t - 5.0 >= RESYNC_AFTER_S + RESYNC_MAX_WAIT_S - 0.15


def test_a_backlog_from_the_start_is_resynced_once_per_device_choice():
    tr = LatencyTracker()
    _feed(tr, 1.3)  # an idle monitor delivered its first second in one burst
    assert _run(tr, 0.0, 10.0, quiet=True) is not None
    tr.reset()  # the reopened stream: still high (the device is just slow) -> no loop
    _feed(tr, 1.3)
    assert _run(tr, 0.0, 60.0, quiet=True) is None
    tr.new_choice()  # the user picks a device: checked again
    _feed(tr, 1.3)
    assert _run(tr, 0.0, 10.0, quiet=True) is not None


def test_no_figure_before_the_stream_settles():
    tr = LatencyTracker()
    assert tr.median_s() == 0.0
    _feed(tr, 0.5, n=10)
    assert tr.median_s(50) == 0.0 and abs(tr.median_s() - 0.5) < 1e-9
    assert _run(tr, 0.0, 1.9, quiet=True) is None


def test_an_input_only_stream_records_the_age_of_its_input():
    """No DAC time (the pipe-source microphone's input-only stream): the figure is how old
    the input block is when the callback runs."""
    tr = LatencyTracker()
    for _ in range(IO_LATENCY_HISTORY):
        tr.record(SimpleNamespace(inputBufferAdcTime=5.0, outputBufferDacTime=0.0,
                                  currentTime=5.012))
    assert abs(tr.median_s() - 0.012) < 1e-9
