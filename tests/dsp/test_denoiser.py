import numpy as np
import pytest

from percepnet.dsp.constants import ALGORITHMIC_DELAY_SAMPLES
from percepnet.dsp.denoiser import CROSSFADE_FRAMES, Denoiser

from audio_fixtures import load_fixture, mix_at_snr
from model_fixtures import tiny_model

D = ALGORITHMIC_DELAY_SAMPLES


@pytest.fixture(scope="module")
def noisy():
    clean = load_fixture("speech_fr.ogg")[:96000]
    return mix_at_snr(clean, load_fixture("noise_vacuum.ogg"), 5.0)


def _stream(den, x, block):
    return np.concatenate([den.process(x[i:i + block]) for i in range(0, x.shape[0], block)])


def test_block_size_does_not_change_the_output(noisy):
    ref = _stream(Denoiser(tiny_model()), noisy, 480)
    for block in (128, 441, 1000):
        assert np.array_equal(_stream(Denoiser(tiny_model()), noisy, block), ref)


def test_zero_attenuation_limit_passes_the_input_through(noisy):
    y = _stream(Denoiser(tiny_model(), atten_limit_db=0.0), noisy, 480)
    assert np.max(np.abs(y[D:] - noisy[:-D])) < 1e-6


def test_processing_changes_the_signal_and_stays_finite(noisy):
    y = _stream(Denoiser(tiny_model()), noisy, 480)
    assert np.all(np.isfinite(y))
    assert np.max(np.abs(y[D:] - noisy[:-D])) > 1e-2


def test_bypass_crossfades_without_a_click(noisy):
    den = Denoiser(tiny_model())
    x = noisy
    half = 48000
    first = den.process(x[:half])
    den.bypass = True
    second = den.process(x[half:])
    y = np.concatenate([first, second])
    # After the ramp, bypass is the input delayed by exactly 40 ms.
    settled = half + D + 480 * (CROSSFADE_FRAMES + 2)
    assert np.max(np.abs(y[settled:] - x[settled - D:-D])) < 1e-6
    # No click: the largest sample-to-sample step around the switch is no larger than the
    # largest step of either signal alone.
    zone = slice(half + D - 2000, settled + 2000)
    step = np.max(np.abs(np.diff(y[zone])))
    assert step <= 1.05 * max(np.max(np.abs(np.diff(x))), np.max(np.abs(np.diff(first))))


def test_attenuation_limit_is_live_and_validated(noisy):
    den = Denoiser(tiny_model())
    den.process(noisy[:4800])
    den.atten_limit_db = 6.0
    assert den.atten_limit_db == 6.0
    for bad in (-1.0, 100.5):
        with pytest.raises(ValueError):
            den.atten_limit_db = bad
    den.process(noisy[4800:9600])
    assert den.dry_mix == pytest.approx(10 ** (-6 / 20))


def test_digital_silence_skips_the_network_and_keeps_its_state(noisy):
    den = Denoiser(tiny_model())
    den.process(noisy[:24000])
    den.process(np.zeros(4800))  # the frames that still overlap audio run the network
    assert den.info.silent
    state = [np.array(a, copy=True) for a in den.network.state]
    den.process(np.zeros(48000))
    assert den.info.silent
    after = den.network.state
    assert all(np.array_equal(a, b) for a, b in zip(state, after))
    den.process(noisy[24000:48000])
    assert not all(np.array_equal(a, b) for a, b in zip(state, den.network.state))
    assert not den.info.silent


def test_frame_info_for_the_ui(noisy):
    seen = []
    den = Denoiser(tiny_model(), on_frame=lambda info: seen.append(info.frame_index))
    den.process(noisy)
    info = den.info
    assert seen == list(range(1, noisy.shape[0] // 480 + 1))
    assert info.band_gains.shape == (34,) and np.all(info.band_gains >= 0)
    assert np.all((info.strengths >= 0) & (info.strengths <= 1))
    assert 62.0 <= info.pitch_hz <= 800.0 and 0.0 <= info.voicing <= 1.0
    assert np.all(np.isfinite(info.input_band_db)) and np.all(np.isfinite(info.output_band_db))
    assert 0.0 <= info.speech_presence <= 1.0 + 1e-9
    assert info.processing_us > 0


def test_reset_restarts(noisy):
    den = Denoiser(tiny_model())
    a = den.process(noisy[:20000])
    den.process(noisy[20000:40000])
    den.reset()
    assert np.array_equal(den.process(noisy[:20000]), a)


def test_nan_and_inf_input_never_poison_the_stream(noisy):
    """Non-finite samples act as zeros: the output equals that of the same stream with the
    burst zeroed, so it is finite throughout and back to normal right after the burst."""
    broken, zeroed = noisy.copy(), noisy.copy()
    broken[20000:20500] = np.nan
    broken[30000:30010] = np.inf
    broken[30010:30020] = -np.inf
    zeroed[20000:20500] = 0.0
    zeroed[30000:30020] = 0.0
    y_broken = _stream(Denoiser(tiny_model()), broken, 441)
    y_zeroed = _stream(Denoiser(tiny_model()), zeroed, 441)
    assert np.all(np.isfinite(y_broken))
    assert np.array_equal(y_broken, y_zeroed)


@pytest.mark.parametrize("kind", ["square", "dc", "huge", "denormal"])
def test_extreme_inputs_give_finite_bounded_output(kind):
    n = 48000
    t = np.arange(n)
    x = {
        "square": np.where((t // 96) % 2 == 0, 1.0, -1.0),
        "dc": np.full(n, 0.9),
        "huge": 1e6 * np.sin(2 * np.pi * 440 * t / 48000),
        "denormal": np.full(n, 1e-310),
    }[kind]
    y = _stream(Denoiser(tiny_model()), x, 480)
    assert np.all(np.isfinite(y))
    assert np.max(np.abs(y)) <= 1.5  # the output limit


def test_smooth_band_gains_averages_neighbours():
    from percepnet.dsp.denoiser import GAIN_BAND_SMOOTHING as w, smooth_band_gains

    g = np.zeros(34)
    g[10] = 1.0
    g[0] = g[33] = 0.5
    smooth_band_gains(g)
    assert np.isclose(g[10], 1.0 - 2.0 * w) and np.isclose(g[9], w) and np.isclose(g[11], w)
    assert g[12] == 0.0 and g[8] == 0.0
    assert g[0] == 0.5 and g[33] == 0.5 and np.isclose(g[1], w * 0.5)  # edges kept
    ramp = np.linspace(0.0, 1.0, 34)
    smoothed = ramp.copy()
    smooth_band_gains(smoothed)
    assert np.allclose(smoothed, ramp)  # a straight ramp is left as it is


def test_bands_from_8_to_15_khz_are_lifted_and_no_other_moves():
    from percepnet.dsp.bands import BAND_EDGES
    from percepnet.dsp.constants import BIN_HZ
    from percepnet.dsp.denoiser import (HIGH_BAND_FIRST as lo, HIGH_BAND_GAIN_EXPONENT as p,
                                        HIGH_BAND_STOP as hi, lift_high_bands,
                                        shape_band_gains, smooth_band_gains)

    centres_hz = BAND_EDGES * BIN_HZ
    assert centres_hz[lo - 1] <= 8000.0 < centres_hz[lo] and centres_hz[hi - 1] <= 15000.0
    assert centres_hz[hi] > 15000.0 and 0.0 < p < 1.0
    g = np.linspace(0.0, 1.0, 34)
    lifted = g.copy()
    lift_high_bands(lifted)
    np.testing.assert_array_equal(lifted[:lo], g[:lo])
    np.testing.assert_array_equal(lifted[hi:], g[hi:])
    np.testing.assert_allclose(lifted[lo:hi], g[lo:hi] ** p)
    assert np.all(lifted[lo:hi] > g[lo:hi])
    edge = np.array([0.0, 1.0] * 17)
    lift_high_bands(edge)  # 0 and 1 stay where they are, nothing leaves [0, 1]
    np.testing.assert_array_equal(edge, [0.0, 1.0] * 17)
    # shaping = smoothing, then the lift
    x = np.random.default_rng(1).random(34)
    a, b = x.copy(), x.copy()
    shape_band_gains(a)
    smooth_band_gains(b)
    lift_high_bands(b)
    np.testing.assert_array_equal(a, b)


def test_denoiser_synthesises_with_the_network_gains_shaped(noisy):
    """The gains the chain uses are the network's own output, smoothed across bands and
    lifted above 8 kHz: step the same int8 network by hand on the features the Denoiser
    computed."""
    from percepnet.dsp.constants import LOOKAHEAD_FRAMES
    from percepnet.dsp.denoiser import shape_band_gains
    from percepnet.dsp.network import Network

    model = tiny_model(3)
    den = Denoiser(model)
    feats, used = [], []
    den.on_frame = lambda info: (feats.append(den._features.copy()), used.append(den.gains.copy()))
    den.process(noisy[:48000])
    net = Network(model.arch, model.weights, use_vnni=den.network.uses_vnni)
    raw, strengths = np.zeros(34), np.zeros(34)
    rough = 0.0
    for i in range(LOOKAHEAD_FRAMES, len(feats)):
        net.step(feats[i], raw, strengths)
        expect = raw.copy()
        shape_band_gains(expect)
        np.testing.assert_allclose(used[i], expect, atol=1e-12)
        rough = max(rough, float(np.max(np.abs(used[i] - raw))))
    assert rough > 1e-3  # the shaping changed something (the check above can tell)


def test_an_ensemble_denoiser_uses_the_mean_of_both_networks(noisy):
    """An ensemble model (``.members``): both networks run on the same features and the
    chain uses the mean of their gains and strengths, then the band shaping; checked by
    stepping two independent copies of the int8 networks by hand."""
    from types import SimpleNamespace

    from percepnet.dsp.constants import LOOKAHEAD_FRAMES
    from percepnet.dsp.denoiser import shape_band_gains
    from percepnet.dsp.network import Network

    members = (tiny_model(3), tiny_model(4))
    den = Denoiser(SimpleNamespace(members=members))
    assert len(den.networks) == 2 and den.network is den.networks[0]
    feats, used, used_r = [], [], []
    den.on_frame = lambda info: (feats.append(den._features.copy()),
                                 used.append(den.gains.copy()), used_r.append(den.strengths.copy()))
    den.process(noisy[:48000])
    nets = [Network(m.arch, m.weights, use_vnni=den.network.uses_vnni) for m in members]
    outs = [(np.zeros(34), np.zeros(34)) for _ in nets]
    spread = 0.0
    for i in range(LOOKAHEAD_FRAMES, len(feats)):
        for net, (g, r) in zip(nets, outs):
            net.step(feats[i], g, r)
        expect = 0.5 * (outs[0][0] + outs[1][0])
        shape_band_gains(expect)
        np.testing.assert_allclose(used[i], expect, atol=1e-12)
        np.testing.assert_allclose(used_r[i], 0.5 * (outs[0][1] + outs[1][1]), atol=1e-12)
        spread = max(spread, float(np.max(np.abs(outs[0][0] - outs[1][0]))))
    assert spread > 1e-2  # the members differ, so the mean is not either one
    den.reset()
    assert all(np.count_nonzero(n.state.act) == 0 for n in den.networks)
    with pytest.raises(ValueError, match="one or two"):
        Denoiser(SimpleNamespace(members=members * 2))
