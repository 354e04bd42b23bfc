"""EngineCore without devices: pass-through on error, telemetry rows, block sizes."""
from __future__ import annotations

import numpy as np
import pytest

from audio_fixtures import load_fixture
from model_fixtures import tiny_model

from percepnet.app.engine import DEMO_DEVICE, NULL_DEVICE, Engine, EngineCore
from percepnet.app.settings import PARAMS, STAGE_PARAMS, stage_defaults
from percepnet.app.telemetry import FrameRing, Telemetry
from percepnet.dsp.constants import ALGORITHMIC_DELAY_SAMPLES
from percepnet.dsp.denoiser import Denoiser


def _blocks(x, sizes):
    pos, k = 0, 0
    while pos < len(x):
        n = sizes[k % len(sizes)]
        yield x[pos:pos + n]
        pos += n
        k += 1


def test_core_matches_denoiser_and_fills_telemetry():
    model = tiny_model()
    speech = load_fixture("speech_fr.ogg")[:48000 * 2]
    core = EngineCore(model)
    assert core.blocks == 0 and core.telemetry.gains.written[0] == 0  # warm-up cleared
    outs = []
    for b in _blocks(speech.astype(np.float32), [480, 441, 1024]):
        o = np.zeros((len(b), 2), dtype=np.float32)
        core.process_block(b[:, None], o)
        assert np.array_equal(o[:, 0], o[:, 1])
        outs.append(o[:, 0])
    got = np.concatenate(outs)
    ref = Denoiser(model, **stage_defaults()).process(speech)
    assert core.errors == 0
    np.testing.assert_allclose(got, ref.astype(np.float32), atol=1e-5)
    frames = len(speech) // 480
    tel = core.telemetry
    assert tel.gains.written[0] == frames and tel.spec_out.written[0] == frames
    rows, last = tel.scalars.read_new(0)
    assert last == frames and rows.shape == (min(frames, tel.scalars.capacity - 1), 8)
    pitch = rows[:, Telemetry.field("pitch_hz")]
    assert np.any((pitch > 70) & (pitch < 400))
    spec, _ = tel.spec_in.read_new(0)
    assert spec.std() > 1.0


def test_without_spectra_the_output_and_other_rows_are_the_same():
    """The headless service has no window: it turns the spectra off. The output and every
    other telemetry row stay what they are with them on."""
    model = tiny_model()
    speech = load_fixture("speech_fr.ogg")[:48000].astype(np.float32)
    cores = {on: EngineCore(model, spectra=on) for on in (True, False)}
    outs = {on: [] for on in cores}
    for b in _blocks(speech, [480, 441, 1024]):
        for on, core in cores.items():
            o = np.zeros((len(b), 1), dtype=np.float32)
            core.process_block(b[:, None], o)
            outs[on].append(o[:, 0])
    np.testing.assert_array_equal(np.concatenate(outs[True]), np.concatenate(outs[False]))
    frames = len(speech) // 480
    on, off = cores[True].telemetry, cores[False].telemetry
    assert on.spec_in.written[0] == on.spec_out.written[0] == frames
    assert off.spec_in.written[0] == off.spec_out.written[0] == 0
    timing = Telemetry.field("processing_us")  # the one column that is a clock reading
    for name in ("gains", "strengths", "bands_in", "bands_out", "scalars"):
        a, b = getattr(on, name), getattr(off, name)
        assert a.written[0] == b.written[0] == frames, name
        keep = [c for c in range(a.width) if name != "scalars" or c != timing]
        np.testing.assert_array_equal(a.data[:, keep], b.data[:, keep], err_msg=name)


def test_the_service_builds_its_engine_without_spectra_and_the_window_with_them():
    import inspect

    from percepnet.app import service
    from percepnet.app.settings import Settings

    # `percepnet run` (the headless service) has no window to show spectra
    assert "spectra=False" in inspect.getsource(service.run)
    settings = Settings({"input_device": DEMO_DEVICE, "output_device": NULL_DEVICE})
    engine, _ = service.build_engine(settings)
    assert engine.core.spectra  # the window's engine (ui.app) keeps the default
    engine, _ = service.build_engine(settings, spectra=False)
    assert not engine.core.spectra


def test_stage_switches_start_at_the_registry_defaults_and_flip_live():
    """Every stage parameter (comb filter, postfilter, decay cap) reaches the denoiser, and
    flipping one changes what comes out from the next block on."""
    speech = load_fixture("speech_fr.ogg")[:48000].astype(np.float32)
    core = EngineCore(tiny_model())
    assert {n: core.stage(n) for n in STAGE_PARAMS} == stage_defaults()

    def run() -> np.ndarray:
        core.denoiser.reset()
        outs = []
        for b in _blocks(speech, [480]):
            o = np.zeros((len(b), 1), dtype=np.float32)
            core.process_block(b[:, None], o)
            outs.append(o[:, 0])
        assert core.errors == 0
        return np.concatenate(outs)

    base = run()
    for name in STAGE_PARAMS:
        core.set_stage(name, not PARAMS[name].default)
        assert getattr(core.denoiser, name) is (not PARAMS[name].default)
        assert np.max(np.abs(run() - base)) > 1e-4, name
        core.set_stage(name, PARAMS[name].default)
        np.testing.assert_array_equal(run(), base)
    with pytest.raises(ValueError, match="unknown stage"):
        core.set_stage("use_magic", True)


def test_core_passes_input_through_on_error():
    core = EngineCore(tiny_model())

    def boom(*a, **k):
        raise RuntimeError("kernel exploded")

    core.denoiser.process = boom
    x = (0.1 * np.sin(np.arange(480 * 8) / 5.0)).astype(np.float32)
    y = np.zeros_like(x)
    for k in range(8):
        out = np.zeros((480, 1), dtype=np.float32)
        core.process_block(x[k * 480:(k + 1) * 480, None], out)
        y[k * 480:(k + 1) * 480] = out[:, 0]
    assert core.errors == 8 and "kernel exploded" in core.last_error
    d = ALGORITHMIC_DELAY_SAMPLES  # the input, as late as the suppressor's output would be
    np.testing.assert_array_equal(y[d:], x[:-d])
    assert np.abs(y[d:]).max() > 0.05  # never silence


def test_core_nonfinite_input_gives_finite_output():
    core = EngineCore(tiny_model())
    x = np.full((480, 1), np.nan, dtype=np.float32)
    out = np.zeros((480, 1), dtype=np.float32)
    for _ in range(10):
        core.process_block(x, out)
        assert np.all(np.isfinite(out))
    assert core.nonfinite_samples == 4800 and core.errors == 0


def test_no_model_is_delayed_pass_through():
    core = EngineCore(None)
    x = np.random.default_rng(0).standard_normal(4800).astype(np.float32) * 0.1
    got = []
    for b in _blocks(x, [480, 100, 1000]):
        o = np.zeros((len(b), 1), dtype=np.float32)
        core.process_block(b[:, None], o)
        got.append(o[:, 0])
    got = np.concatenate(got)
    d = ALGORITHMIC_DELAY_SAMPLES
    np.testing.assert_allclose(got[d:], x[:-d], atol=1e-7)


def test_frame_ring_spsc_semantics():
    r = FrameRing(8, 3)
    rows, last = r.read_new(0)
    assert rows.shape == (0, 3) and last == 0
    for i in range(5):
        r.push([i, i, i])
    rows, last = r.read_new(0)
    assert last == 5 and rows[:, 0].tolist() == [0, 1, 2, 3, 4]
    for i in range(5, 20):
        r.push([i, i, i])
    rows, last = r.read_new(last)  # fell behind: the newest capacity-1 rows
    assert last == 20 and rows[:, 0].tolist() == list(range(13, 20))


def test_demo_engine_without_devices_runs_in_real_time():
    import time

    engine = Engine(tiny_model(), input_device=DEMO_DEVICE, output_device=NULL_DEVICE)
    with engine:
        time.sleep(1.5)
        diag = engine.diagnostics()
    assert diag.state == "running" and diag.errors == 0
    assert 100 <= diag.frames <= 170, diag.frames  # ~100 blocks per second
    assert engine.telemetry.spec_in.written[0] >= 100


def test_status_line_reports_replaced_samples_and_suppressor_resets_only_when_there_are_some():
    from percepnet.app.diagnostics import Diagnostics

    quiet = Diagnostics(state="running").status_line()
    assert "nonfinite" not in quiet and "resets" not in quiet and "resyncs=0" in quiet
    assert "restarts" not in quiet
    line = Diagnostics(state="running", nonfinite_samples=4800, denoiser_resets=2,
                       resyncs=1, restarts=3).status_line()
    assert "nonfinite-samples=4800" in line and "suppressor-resets=2" in line
    assert "resyncs=1" in line and "stream-restarts=3" in line
