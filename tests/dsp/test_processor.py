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
