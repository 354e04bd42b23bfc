"""The int8 numba runtime against the float PyTorch model on real feature sequences:
max abs gain difference <= 0.02 and mean <= 0.005 (issue acceptance), strengths likewise."""
from training_extras import require_training_extras

require_training_extras()

import numpy as np
import pytest
import torch

from percepnet.app.models import load_model
from percepnet.dsp.features import compute_features
from percepnet.dsp.model_config import ARCHITECTURES
from percepnet.dsp.network import Network, vnni_available

from audio_fixtures import load_fixture, mix_at_snr
from model_fixtures import TINY_ARCH
from training.export import write_model
from training.model import PercepNetModel


@pytest.fixture(scope="module")
def features():
    """Real features: three fixture mixtures at 0-10 dB, 8 s in all."""
    seqs = []
    for speech, noise, snr in (("speech_ru.ogg", "noise_vacuum.ogg", 5.0),
                               ("speech_fr.ogg", "noise_kettle.ogg", 0.0),
                               ("speech_da.ogg", "noise_vacuum.ogg", 10.0)):
        clean = load_fixture(speech)
        seqs.append(compute_features(mix_at_snr(clean, load_fixture(noise), snr)))
    return np.concatenate(seqs)


def _model(arch, features, seed):
    torch.manual_seed(seed)
    model = PercepNetModel(arch)
    with torch.no_grad():  # spread the random init to the full +-0.5 training range
        for name, p in model.named_parameters():
            if "weight" in name:
                p.uniform_(-0.5, 0.5).mul_(min(1.0, 3.0 / np.sqrt(p.shape[-1])))
    model.set_normalisation(features.mean(axis=0), features.std(axis=0))
    model.eval()
    return model


@pytest.mark.parametrize("arch_name", ["tiny", "small", "full"])
@pytest.mark.parametrize("use_vnni", [False, True])
def test_int8_runtime_matches_float_pytorch(features, tmp_path, arch_name, use_vnni):
    if use_vnni and not vnni_available():
        pytest.skip("this CPU has no AVX-512 VNNI; the portable path is tested above")
    arch = TINY_ARCH if arch_name == "tiny" else ARCHITECTURES[arch_name]
    model = _model(arch, features, seed=3)
    with torch.no_grad():
        g_ref, r_ref = (t[0].numpy() for t in model(torch.as_tensor(features[None], dtype=torch.float32)))
    loaded = load_model(write_model(model, tmp_path, arch_name))
    net = Network(loaded.arch, loaded.weights, use_vnni=use_vnni)
    assert net.uses_vnni == use_vnni
    gains, strengths = np.zeros((len(features), 34)), np.zeros((len(features), 34))
    for t, f in enumerate(features):
        net.step(f, gains[t], strengths[t])
    for name, ours, ref in (("gains", gains, g_ref), ("strengths", strengths, r_ref)):
        err = np.abs(ours - ref)
        print(f"{arch_name} vnni={use_vnni} {name}: max {err.max():.4f} mean {err.mean():.5f}")
        assert err.max() <= 0.02 and err.mean() <= 0.005, (name, err.max(), err.mean())
    # The comparison is not vacuous: outputs vary over time and across bands.
    assert g_ref.std() > 0.02 and r_ref.std() > 0.02
