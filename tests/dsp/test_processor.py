import numpy as np
import pytest

from percepnet.dsp.constants import ALGORITHMIC_DELAY_MS, ALGORITHMIC_DELAY_SAMPLES, SAMPLE_RATE_HZ
from percepnet.dsp.processor import StreamProcessor, UnitSource, process_signal

from audio_fixtures import load_fixture


def _speech_plus_noise(rng):
    speech = load_fixture("speech_fr.ogg")[: SAMPLE_RATE_HZ]
    return 0.5 * speech + 0.01 * rng.normal(size=speech.shape[0])


def test_documented_delay_is_40_ms():
    assert ALGORITHMIC_DELAY_SAMPLES == 1920 and ALGORITHMIC_DELAY_MS == 40.0
    assert StreamProcessor().delay_samples == ALGORITHMIC_DELAY_SAMPLES


@pytest.mark.parametrize("block", [128, 256, 441, 480, 512, 1024])
def test_unit_gains_give_input_delayed_by_exactly_40_ms(block, rng):
    x = _speech_plus_noise(rng)
    proc = StreamProcessor(UnitSource(), use_comb=True, use_postfilter=False)
    y = np.concatenate([proc.process(x[i:i + block]) for i in range(0, x.shape[0], block)])
    assert y.shape == x.shape  # same number of samples back, every call
    d = ALGORITHMIC_DELAY_SAMPLES
    assert np.max(np.abs(y[:d])) < 1e-12
    assert np.max(np.abs(y[d:] - x[:-d])) < 1e-4
    # A different delay would not match (the test can fail).
    assert np.max(np.abs(y[d + 1:] - x[:-d - 1])) > 1e-2


def test_every_call_returns_its_block_length(rng):
    proc = StreamProcessor()
    for n in rng.integers(0, 2000, size=40):
        assert proc.process(rng.normal(size=int(n)) * 0.1).shape == (int(n),)


def test_reset_restarts_the_stream(rng):
    x = _speech_plus_noise(rng)[:20000]
    proc = StreamProcessor()
    first = proc.process(x)
    proc.process(rng.normal(size=5000))
    proc.reset()
    assert np.array_equal(proc.process(x), first)


def test_whole_signal_helper_aligns_and_keeps_length(rng):
    x = _speech_plus_noise(rng)[:30001]
    y = process_signal(x, StreamProcessor(UnitSource(), use_postfilter=False))
    assert y.shape == x.shape
    assert np.max(np.abs(y - x)) < 1e-4


def test_zero_gains_silence_the_output(rng):
    class Zero(UnitSource):
        def frame(self, analysis, slot, gains, strengths):
            gains[:] = 0.0
            strengths[:] = 0.0

    x = _speech_plus_noise(rng)
    y = process_signal(x, StreamProcessor(Zero(), use_postfilter=False))
    assert np.max(np.abs(y)) < 1e-6


def test_decay_cap_limits_how_fast_gains_fall(rng):
    class Step(UnitSource):
        n = 0

        def frame(self, analysis, slot, gains, strengths):
            gains[:] = 1.0 if self.n < 50 else 0.0
            strengths[:] = 0.0
            self.n += 1

    x = 0.1 * rng.normal(size=48000)
    free = process_signal(x, StreamProcessor(Step(), use_postfilter=False, use_decay_cap=False))
    capped = process_signal(x, StreamProcessor(Step(), use_postfilter=False, use_decay_cap=True))
    # The source's call n serves frame n - 2, so gains drop to 0 from frame 48 on; frame l
    # covers aligned samples [480 (l - 1), 480 (l + 1)). Samples [480*60, 480*61) mix frames
    # 60 and 61: silent without the cap, about 0.6**13.5 (-60 dB) with it.
    seg = slice(480 * 60, 480 * 61)
    assert np.max(np.abs(free[seg])) < 1e-9
    ratio = np.std(capped[seg]) / np.std(x[seg])
    assert 0.5 * 0.6**13.5 < ratio < 2 * 0.6**13.5
