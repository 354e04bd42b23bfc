"""The comb-headroom benchmark's gain source is the denoiser's chain, strengths apart."""
import numpy as np

from live_audio import noisy_speech
from percepnet.app.models import default_model_name, load_model
from percepnet.app.settings import stage_defaults
from percepnet.dsp.constants import ALGORITHMIC_DELAY_SAMPLES
from percepnet.dsp.denoiser import Denoiser
from percepnet.dsp.processor import StreamProcessor, process_signal

from benchmarks.comb_headroom import NetworkGains, run_item


def test_network_variant_is_the_denoiser_and_oracle_strengths_change_only_the_comb():
    model = load_model(default_model_name())
    clean, noisy = noisy_speech(3.0, snr_db=5.0)
    out = run_item(model, clean, noisy)
    d = ALGORITHMIC_DELAY_SAMPLES
    shipped = Denoiser(model, **stage_defaults()).process(np.concatenate([noisy, np.zeros(d)]))[d:]
    # the benchmark's "network" column is what the product outputs (float32 inside the kernels)
    assert np.max(np.abs(out["network"] - shipped)) < 1e-5
    # with the comb off the oracle's strengths are unused: the same output as "comb off"
    no_comb = process_signal(noisy, StreamProcessor(NetworkGains(model, clean),
                                                    **{**stage_defaults(), "use_comb": False}))
    np.testing.assert_allclose(no_comb, out["comb off"], atol=1e-9)
    # with it on they are used: the output moves
    assert np.max(np.abs(out["oracle strengths"] - out["network"])) > 1e-3
