"""The engine core behind a device at another rate: the conversions keep the signal, the
timeline and the 40 ms alignment, whatever block sizes PortAudio hands over; its kernels
allocate nothing; an error passes the input through as late as the output."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from audio_fixtures import tone_fit

from percepnet.app.engine_core import EngineCore
from percepnet.app.rate_adapter import RateAdapter, choose_device_rate
from percepnet.dsp.constants import ALGORITHMIC_DELAY_MS


def _tone(rate: int, seconds: float, f: float = 1000.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * f * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def _stream(ad: RateAdapter, x: np.ndarray, block: int) -> np.ndarray:
    out = np.zeros((block, 1), dtype=np.float32)
    ys = []
    for i in range(0, len(x) - block + 1, block):
        ad.process_block(x[i:i + block, None], out)
        ys.append(out[:, 0].copy())
    return np.concatenate(ys)


@pytest.mark.parametrize("rate,block", [(44_100, 441), (44_100, 512), (16_000, 160),
                                        (22_050, 220), (96_000, 960), (44_100, 64)])
def test_pass_through_core_keeps_a_tone_without_gaps(rate, block):
    """No model: the core passes the input through 40 ms late; around it the two
    conversions must neither drop nor repeat samples (a gap would show as a residual)."""
    ad = RateAdapter(EngineCore(None), rate)
    y = _stream(ad, _tone(rate, 2.0), block)[rate // 10:]
    amp, resid_db = tone_fit(y.astype(np.float64), 1000.0, rate)
    assert abs(20 * np.log10(amp / 0.5)) < 0.01
    assert resid_db < -90.0, resid_db
    assert ad.underruns == 0


@pytest.mark.parametrize("block,extra_ms", [(441, 0.0), (512, 10.0)])
def test_delay_is_the_algorithmic_delay_plus_what_the_adapter_reports(block, extra_ms):
    """Conversions about 3 ms; blocks other than 10 ms (the engine's 512) add 10 ms of
    priming, and the reported delay says so."""
    rate = 44_100
    ad = RateAdapter(EngineCore(None), rate)
    assert ad.block_size == 512
    x = np.zeros(rate, dtype=np.float32)
    x[10_000] = 0.5
    y = _stream(ad, x, block)
    lag_ms = 1000.0 * (int(np.argmax(np.abs(y))) - 10_000) / rate
    assert abs(lag_ms - (ALGORITHMIC_DELAY_MS + ad.delay_ms)) < 0.05, (lag_ms, ad.delay_ms)
    assert 2.0 + extra_ms < ad.delay_ms < 4.0 + extra_ms


def test_the_conversion_kernels_allocate_nothing():
    """Everything the adapter does per block besides slicing runs in these kernels: call
    them from an njit loop with numba's allocation counters on (a subprocess: the counters
    must be enabled before numba is imported)."""
    code = textwrap.dedent("""
        import os
        os.environ["NUMBA_NRT_STATS"] = "1"
        import numpy as np
        from numba import njit
        from numba.core.runtime import rtsys
        from percepnet.app.rate_adapter import _delay, _fifo_pop, _fifo_push
        from percepnet.dsp.resample import Resampler, _convert

        up, down = Resampler(44100, 48000, 441), Resampler(48000, 44100, 480)

        @njit
        def run(n_blocks, x, a, b, bank_a, bank_b, hist_a, hist_b, st_a, st_b, fifo, line,
                out48, out44, tmp, allocate):
            count = 0
            for _ in range(n_blocks):
                _delay(line, 1930, x, tmp, 441)
                k = _convert(x, 441, bank_a, a[0], a[1], hist_a, st_a, out48)
                m = _convert(out48, k, bank_b, b[0], b[1], hist_b, st_b, out44)
                count = _fifo_push(fifo, count, out44, m)
                count -= _fifo_pop(fifo, count, tmp, 441)
                if allocate:
                    t = np.empty(4)  # control: proves the counter sees allocations
                    tmp[0] += t.shape[0] * 0.0
            return count

        args = (np.ones(441), np.array([up.up, up.down]), np.array([down.up, down.down]),
                up.bank, down.bank, up._hist, down._hist, up._state, down._state,
                np.zeros(4096), np.zeros(1930 + 4096), np.zeros(up.max_out),
                np.zeros(down.max_out), np.zeros(4096))

        def count(n, allocate):
            before = rtsys.get_allocation_stats().alloc
            run(n, *args, allocate)
            return rtsys.get_allocation_stats().alloc - before

        for allocate in (False, True):
            run(1, *args, allocate)  # compile
            print(allocate, count(200, allocate) - count(0, allocate))
        """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    counts = dict(line.split() for line in res.stdout.strip().splitlines())
    assert int(counts["False"]) == 0, res.stdout
    assert int(counts["True"]) >= 200, res.stdout


@pytest.mark.parametrize("block", [441, 512])
def test_an_error_passes_the_input_through_aligned(block):
    rate = 44_100
    ad = RateAdapter(EngineCore(None), rate)
    x = np.zeros(rate // 2, dtype=np.float32)
    x[10_000] = 0.5
    ad._prime(block)  # as the first callback does
    delay_ms = ad.delay_ms
    ad.to_device = None  # breaks the way back: every block fails inside the adapter
    y = _stream(ad, x, block)
    assert ad.core.errors > 0 and "rate conversion" in ad.core.last_error
    lag_ms = 1000.0 * (int(np.argmax(np.abs(y))) - 10_000) / rate
    assert abs(lag_ms - (ALGORITHMIC_DELAY_MS + delay_ms)) < 0.05
    assert abs(float(np.max(np.abs(y))) - 0.5) < 1e-6


def test_a_rate_below_8_khz_is_refused():
    with pytest.raises(ValueError):
        RateAdapter(EngineCore(None), 4_000)


def test_the_default_devices_and_a_requested_rate_need_no_query():
    import sounddevice as sd

    assert choose_device_rate(sd, None, None, (1, 1)) == 48_000
    assert choose_device_rate(sd, None, None, (1, 1), requested_hz=44_100) == 44_100
