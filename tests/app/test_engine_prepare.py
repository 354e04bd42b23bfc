"""First start: the engine passes audio through (40 ms late, like the suppressor) while the
suppressor's kernels compile in the background, then hands over; and on an error in the
suppressor the input passes through with the same 40 ms delay."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from model_fixtures import tiny_model

from percepnet.app.engine import BLOCK_SIZE, EngineCore
from percepnet.dsp.constants import ALGORITHMIC_DELAY_SAMPLES

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
D = ALGORITHMIC_DELAY_SAMPLES


def _kernel_cache_for_the_test(tmp_path: Path) -> str:
    """The suite's own numba cache when nothing is compiled there yet (a fresh clone, as in
    CI: this test runs first, see conftest.py, so its compile warms the cache for every later
    test instead of being paid twice), else an empty folder of its own."""
    suite = os.environ.get("NUMBA_CACHE_DIR", "")  # set by importing percepnet
    if suite and not any(Path(suite).rglob("*.nbi")):
        return suite
    return str(tmp_path / "numba-empty")


def test_empty_kernel_cache_passes_through_aligned_then_suppresses(tmp_path):
    """In a fresh process with an empty numba cache (nothing compiled yet)."""
    code = textwrap.dedent(f"""
        import json, sys, time
        import numpy as np
        sys.path[:0] = [{str(TESTS)!r}, {str(ROOT)!r}]
        from model_fixtures import tiny_model
        from percepnet.app.engine import BLOCK_SIZE, EngineCore
        from percepnet.app.settings import stage_defaults
        from percepnet.dsp.denoiser import Denoiser

        model = tiny_model()
        rng = np.random.default_rng(3)
        t0 = time.monotonic()
        core = EngineCore(model, prepare_in_background=True)
        built_s = time.monotonic() - t0
        cap = 15000
        x = (0.1 * rng.standard_normal(BLOCK_SIZE * cap)).astype(np.float32)
        outs, ready_at, k = [], None, 0
        while ready_at is None or k < ready_at + 50:
            o = np.zeros((BLOCK_SIZE, 1), np.float32)
            was_ready = core.ready
            core.process_block(x[k * BLOCK_SIZE:(k + 1) * BLOCK_SIZE, None], o)
            outs.append(o[:, 0])
            if was_ready and ready_at is None:
                ready_at = k
            k += 1
            if not core.ready:
                time.sleep(0.02)  # paced loosely while preparing (compiling takes ~30 s)
            if k >= cap - 60 or time.monotonic() - t0 > 400:
                break
        y = np.concatenate(outs)
        ref = Denoiser(model, **stage_defaults()).process(x[ready_at * BLOCK_SIZE:k * BLOCK_SIZE])
        json.dump({{"built_s": built_s, "ready_at": ready_at, "blocks": k,
                   "errors": core.errors, "prepare_error": core.prepare_error,
                   "first_blocks_before_ready": ready_at}}, open(sys.argv[1], "w"))
        np.save(sys.argv[2], y)
        np.save(sys.argv[3], x[:k * BLOCK_SIZE])
        np.save(sys.argv[4], ref)
    """)
    env = dict(os.environ, NUMBA_CACHE_DIR=_kernel_cache_for_the_test(tmp_path))
    files = [tmp_path / n for n in ("r.json", "y.npy", "x.npy", "ref.npy")]
    res = subprocess.run([sys.executable, "-c", code, *map(str, files)], env=env,
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    r = json.loads(files[0].read_text())
    y, x, ref = (np.load(f) for f in files[1:])
    assert r["errors"] == 0 and r["prepare_error"] == "", r
    assert r["ready_at"] is not None, f"the suppressor never became ready: {r}"
    # constructing the engine does not wait for the compiler; audio flows before it is done
    assert r["ready_at"] >= 5, r
    n = r["ready_at"] * BLOCK_SIZE
    np.testing.assert_array_equal(y[D:n], x[:n - D])  # pass-through, 40 ms late
    np.testing.assert_array_equal(y[:D], 0.0)
    # then the suppressor, from a fresh state at the hand-over
    np.testing.assert_allclose(y[n:], ref[: y.size - n], atol=1e-5)
    print(f"\nempty cache: engine built in {r['built_s']:.2f} s, suppressor ready after "
          f"{r['ready_at']} blocks")


def test_controls_set_while_preparing_reach_the_suppressor():
    core = EngineCore(tiny_model(), prepare_in_background=True, atten_limit_db=30.0)
    core.atten_limit_db = 12.0
    core.set_stage("use_comb", True)
    core.suppression = False
    assert core.wait_ready(300)
    assert core.denoiser.atten_limit_db == 12.0 and core.denoiser.use_comb
    assert core.denoiser.bypass and core.atten_limit_db == 12.0 and core.stage("use_comb")


class _Raising:
    """A suppressor that fails on every block (a real object in the callback's place)."""

    def process(self, x, out=None):
        raise RuntimeError("injected")


def test_an_error_passes_the_input_through_with_the_suppressors_delay():
    core = EngineCore(tiny_model())
    rng = np.random.default_rng(5)
    x = (0.1 * rng.standard_normal(BLOCK_SIZE * 40)).astype(np.float32)
    y = np.zeros_like(x)
    for k in range(40):
        if k == 20:
            core.denoiser = _Raising()
        o = np.zeros((BLOCK_SIZE, 1), np.float32)
        core.process_block(x[k * BLOCK_SIZE:(k + 1) * BLOCK_SIZE, None], o)
        y[k * BLOCK_SIZE:(k + 1) * BLOCK_SIZE] = o[:, 0]
    assert core.errors == 20 and "injected" in core.last_error
    s = 20 * BLOCK_SIZE
    np.testing.assert_array_equal(y[s:], x[s - D:x.size - D])  # no jump: still 40 ms late


def test_listen_to_myself_never_waits_for_the_supervisor():
    """The window's thread sets ``monitor`` while the supervisor holds the engine lock (as it
    does while reopening a stream, for seconds): the setter returns at once and the
    supervisor applies the request on its next tick."""
    import threading
    import time

    from percepnet.app.engine import DEMO_DEVICE, NULL_DEVICE, Engine

    engine = Engine(tiny_model(), input_device=DEMO_DEVICE, output_device=NULL_DEVICE)
    engine.monitor_device = NULL_DEVICE
    held, release = threading.Event(), threading.Event()

    def hold_the_lock():
        with engine._lock:
            held.set()
            release.wait(10)

    t = threading.Thread(target=hold_the_lock)
    t.start()
    assert held.wait(5)
    t0 = time.monotonic()
    engine.monitor = True
    waited = time.monotonic() - t0
    release.set()
    t.join(10)
    assert waited < 1.0, f"the setter waited {waited:.2f} s for the lock"
    assert engine.monitor is True  # the request is what the window reads back
    with engine._lock:  # what the supervisor does on its next tick
        engine._apply_monitor()
    assert engine._monitor is True
