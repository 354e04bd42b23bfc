"""Oracle quality on the committed fixtures: every stage must beat the noisy input on
PESQ-WB (ITU-T P.862.2, 16 kHz). Larger development-set figures are in `make bench`."""
import numpy as np
import pytest
import soxr
from pesq import pesq

from percepnet.dsp.oracle import oracle_enhance

from audio_fixtures import load_fixture, mix_at_snr


def pink_noise(n, rng):
    spec = np.fft.rfft(rng.normal(size=n))
    f = np.arange(spec.shape[0])
    spec[1:] /= np.sqrt(f[1:])
    return np.fft.irfft(spec, n)


MIXTURES = {
    "ru+vacuum@5dB": ("speech_ru.ogg", "noise_vacuum.ogg", 5.0),
    "fr+kettle@0dB": ("speech_fr.ogg", "noise_kettle.ogg", 0.0),
    "da+pink@5dB": ("speech_da.ogg", None, 5.0),
}


def pesq_wb(ref48, deg48):
    return pesq(16000, soxr.resample(ref48, 48000, 16000), soxr.resample(deg48, 48000, 16000), "wb")


@pytest.fixture(scope="module")
def scores():
    rng = np.random.default_rng(7)
    table = {}
    for name, (speech, noise, snr) in MIXTURES.items():
        clean = load_fixture(speech)
        n = load_fixture(noise) if noise else pink_noise(clean.shape[0], rng)
        noisy = mix_at_snr(clean, n, snr)
        row = {"noisy": pesq_wb(clean, noisy)}
        for stage in ("gains", "comb", "all"):
            row[stage] = pesq_wb(clean, oracle_enhance(clean, noisy, stage))
        table[name] = row
    print("\nPESQ-WB oracle on fixtures:")
    for name, row in table.items():
        print(f"  {name:16s} " + "  ".join(f"{k} {v:.2f}" for k, v in row.items()))
    return table


@pytest.mark.parametrize("mixture", list(MIXTURES))
@pytest.mark.parametrize("stage", ["gains", "comb", "all"])
def test_each_oracle_stage_improves_pesq(scores, mixture, stage):
    row = scores[mixture]
    assert row[stage] > row["noisy"] + 0.2, row
