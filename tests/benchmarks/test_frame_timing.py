"""The cost benchmarks' frame timer: back to back, or paced one call per period like a live
stream (what the paced rows of ``benchmarks.runtime_cost`` rest on)."""
import time

import numpy as np

from benchmarks.dsp_cost import _time_frames


def test_paced_calls_are_one_per_period_and_time_only_the_call():
    starts = []

    def call(i):
        starts.append(time.perf_counter())
        time.sleep(0.002)

    t0 = time.perf_counter()
    t_us = _time_frames(call, 20, period_s=0.01)
    wall_s = time.perf_counter() - t0
    assert t_us.shape == (20,)
    # the 20 calls span 20 periods of real time, each started about one period after the last
    assert wall_s >= 0.19
    assert np.median(np.diff(starts)) >= 0.0095
    # each figure is the call alone (2 ms of sleep), not the wait before it
    assert np.all(t_us >= 1900) and np.median(t_us) < 8000


def test_back_to_back_calls_do_not_wait():
    t0 = time.perf_counter()
    t_us = _time_frames(lambda i: None, 1000)
    assert t_us.shape == (1000,) and time.perf_counter() - t0 < 0.5
