"""The streaming resampler: flat pass band, aliases and images below -90 dB, the same
samples whatever the block sizes, and the delay it reports."""
import numpy as np
import pytest
from audio_fixtures import tone_fit

from percepnet.dsp.resample import Resampler

PAIRS = [(44_100, 48_000), (48_000, 44_100), (16_000, 48_000), (48_000, 16_000),
         (96_000, 48_000), (22_050, 48_000)]


def _run(r: Resampler, x: np.ndarray, blocks) -> np.ndarray:
    out = np.zeros(r.max_out)
    ys, i = [], 0
    for n in blocks:
        if i >= len(x):
            break
        k = r.process(x[i:i + n], out)
        ys.append(out[:k].copy())
        i += n
    return np.concatenate(ys)


@pytest.mark.parametrize("rate_in,rate_out", PAIRS)
def test_tones_in_the_pass_band_come_out_clean(rate_in, rate_out):
    low = min(rate_in, rate_out)
    for f in (100.0, 1000.0, 0.4 * low, 0.455 * low):
        r = Resampler(rate_in, rate_out, rate_in)
        x = 0.5 * np.sin(2 * np.pi * f * np.arange(rate_in) / rate_in)
        y = _run(r, x, [rate_in])[1000:-1000]
        amp, resid_db = tone_fit(y, f, rate_out)
        assert abs(20 * np.log10(amp / 0.5)) < 0.01, (f, amp)
        assert resid_db < -90.0, (f, resid_db)


@pytest.mark.parametrize("rate_in,rate_out", [p for p in PAIRS if p[0] > p[1]])
def test_tones_above_the_lower_nyquist_are_removed(rate_in, rate_out):
    f = 0.52 * rate_out
    r = Resampler(rate_in, rate_out, rate_in)
    x = 0.5 * np.sin(2 * np.pi * f * np.arange(rate_in) / rate_in)
    y = _run(r, x, [rate_in])[1000:-1000]
    assert 20 * np.log10(np.std(y) * np.sqrt(2) / 0.5) < -90.0


@pytest.mark.parametrize("rate_in,rate_out", PAIRS)
def test_block_sizes_do_not_change_the_samples(rate_in, rate_out):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(rate_in // 2)
    whole = _run(Resampler(rate_in, rate_out, len(x)), x, [len(x)])
    blocks = rng.integers(1, 1500, size=2000)
    pieces = _run(Resampler(rate_in, rate_out, 1500), x, blocks)
    assert len(whole) == len(pieces) == int(np.ceil(len(x) * rate_out / rate_in))
    assert np.array_equal(whole, pieces)


def test_ten_ms_blocks_map_one_to_one():
    """441 samples at 44.1 kHz are exactly one 480-sample block at 48 kHz, every block."""
    up = Resampler(44_100, 48_000, 441)
    down = Resampler(48_000, 44_100, 480)
    out = np.zeros(max(up.max_out, down.max_out))
    for _ in range(50):
        assert up.process(np.zeros(441), out) == 480
        assert down.process(np.zeros(480), out) == 441


def test_reported_delay_matches_an_impulse():
    r = Resampler(44_100, 48_000, 4096)
    x = np.zeros(4096)
    x[1000] = 1.0
    y = _run(r, x, [4096])
    peak_out = int(np.argmax(np.abs(y)))
    expected = (1000 + r.delay_in_samples) * 48_000 / 44_100
    assert abs(peak_out - expected) <= 1.0, (peak_out, expected)


def test_a_block_over_the_limit_is_refused():
    r = Resampler(44_100, 48_000, 441)
    with pytest.raises(ValueError):
        r.process(np.zeros(442), np.zeros(r.max_out + 10))
