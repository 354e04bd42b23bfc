"""The cost benchmarks' paced timer (what the paced table of ``benchmarks.runtime_cost``
rests on): one call per period, as a live stream calls it, the systems taking turns."""
import time

import numpy as np

from benchmarks.dsp_cost import time_paced


def test_paced_calls_take_turns_one_per_period_and_time_only_the_call():
    log = []

    def system(name, sleep_s):
        def call(i):
            log.append((name, i, time.perf_counter()))
            time.sleep(sleep_s)
        return call

    t0 = time.perf_counter()
    t_us = time_paced({"a": system("a", 0.002), "b": system("b", 0.0)}, 6, period_s=0.01,
                      turn=4)
    wall_s = time.perf_counter() - t0
    # each system's frames in order, in turns of 4: a0-a3, b0-b3, a4-a5, b4-b5
    assert [(n, i) for n, i, _ in log] == (
        [("a", i) for i in range(4)] + [("b", i) for i in range(4)]
        + [("a", 4), ("a", 5), ("b", 4), ("b", 5)])
    # 12 calls, one per period of real time
    assert wall_s >= 0.115
    assert np.median(np.diff([t for _, _, t in log])) >= 0.0095
    # each figure is the call alone, not the wait before it
    assert t_us["a"].shape == t_us["b"].shape == (6,)
    assert np.all(t_us["a"] >= 1900) and np.median(t_us["a"]) < 8000
    assert np.median(t_us["b"]) < 1000
