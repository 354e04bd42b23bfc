"""The per-frame chain allocates nothing: run it from an njit loop with numba's NRT
allocation counters on (they must be enabled before numba is imported: a subprocess)."""
import subprocess
import sys
import textwrap

CODE = textwrap.dedent(
    """
    import os
    os.environ["NUMBA_NRT_STATS"] = "1"
    import numpy as np
    from numba import njit
    from numba.core.runtime import rtsys
    from percepnet.dsp.features import analyze_hop, frame_features, make_analysis
    from percepnet.dsp.processor import STAGE_COMB, STAGE_DECAY_CAP, STAGE_POSTFILTER, make_synthesis, synthesize_frame
    ALL_STAGES = STAGE_COMB | STAGE_POSTFILTER | STAGE_DECAY_CAP

    @njit
    def run(a, s, x, n_frames, gains, strengths, feats, out, allocate):
        for n in range(n_frames):
            slot = analyze_hop(a, x[n * 480:(n + 1) * 480])
            frame_features(a, slot, feats)
            synthesize_frame(a, slot, gains, strengths, ALL_STAGES, 0.0, s, out)
            if allocate:
                tmp = np.empty(4)  # control: proves the counter sees allocations
                out[0] += tmp.shape[0] * 0.0

    rng = np.random.default_rng(1)
    x = rng.normal(size=480 * 200) * 0.1
    state = (make_analysis(), make_synthesis(), x)
    rest = (np.full(34, 0.5), np.full(34, 0.3), np.zeros(70), np.zeros(480))

    def count(n_frames, allocate):
        before = rtsys.get_allocation_stats().alloc
        run(*state, n_frames, *rest, allocate)
        return rtsys.get_allocation_stats().alloc - before

    for allocate in (False, True):
        run(*state, 1, *rest, allocate)  # compile
        # Passing arrays in from Python costs a fixed number of NRT records per call:
        # subtract a zero-frame call to keep only what the frames themselves allocate.
        print(allocate, count(200, allocate) - count(0, allocate))
    """
)


def test_frame_chain_does_not_allocate():
    res = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    counts = dict(line.split() for line in res.stdout.strip().splitlines())
    assert int(counts["False"]) == 0, res.stdout
    assert int(counts["True"]) >= 200, res.stdout  # the control loop allocated every frame
