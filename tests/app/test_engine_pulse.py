"""The real-time engine against a real PulseAudio server, and the main cases also against a
real PipeWire session (no mocks).

A null sink plays the role of the microphone (``pn_mic_sim``: we play noisy speech into it,
the engine records its monitor) and another is the engine's output (``pn_engine_out``: we
record its monitor). Tests need the ``pulseaudio`` binary (installed by ``make test``).
"""
from __future__ import annotations

import os
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf

from live_audio import (RATE, Recorder, noisy_speech as _noisy_speech, play as _play,
                        realign, segment_match, snr_db as _snr_db, start_silence_feeder)

from percepnet.app.engine import Engine
from percepnet.app.settings import stage_defaults
from percepnet.dsp.constants import ALGORITHMIC_DELAY_MS, ALGORITHMIC_DELAY_SAMPLES
from percepnet.dsp.denoiser import Denoiser


@pytest.fixture
def pulse_server(request):
    """PulseAudio, or each server in turn for the tests marked :data:`BOTH_SERVERS`."""
    server = request.getfixturevalue(f"{getattr(request, 'param', 'pulseaudio')}_session")
    with server.active():
        yield server


#: The engine tests that also run on PipeWire (through pipewire-pulse, what current desktops
#: run): the live stream, a device at 44.1 kHz, either device unplugged and back, a device
#: missing at start. The rest is about the engine, not the server, and runs on PulseAudio.
BOTH_SERVERS = pytest.mark.parametrize("pulse_server", ["pulseaudio", "pipewire"],
                                       indirect=True)


@pytest.fixture
def sinks(pulse_server):
    mods = [pulse_server.load_null_sink("pn_mic_sim", "Simulated_Mic"),
            pulse_server.load_null_sink("pn_engine_out", "Engine_Output")]
    # A real microphone delivers samples all the time; a null sink's monitor does so only
    # while something plays into it (else it is drained in bursts of up to 2 s).
    feeders = [start_silence_feeder(pulse_server, "pn_mic_sim")]
    if pulse_server.kind == "pipewire":  # what _load_sine_mic remaps there
        mods.append(pulse_server.load_null_sink(_SINE_SINK, "Sine_Source"))
        feeders.append(start_silence_feeder(pulse_server, _SINE_SINK, tone_hz=440.0))
    yield pulse_server
    for feeder in feeders:
        feeder.terminate()
        feeder.wait(timeout=5)
    for m in mods:
        try:
            pulse_server.unload_module(m)
        except Exception:  # the sink may have been removed by the test already
            pass


@pytest.fixture(scope="module")
def shipped_or_tiny():
    from percepnet.app.models import ModelError, default_model_name, load_model

    try:
        return load_model(default_model_name()), True
    except ModelError:
        pytest.fail("no trained model in weights/: the engine test needs the shipped model")


def _denoise_live(sinks, tmp_path, model, seconds: float, **engine_kw):
    """Noisy speech played into the simulated mic, the engine's output recorded: (SNR of the
    input, SNR of the recording after its first second, diagnostics, xruns at 1 s)."""
    clean, noisy = _noisy_speech(seconds, snr_db=5.0)
    wav = tmp_path / "noisy.wav"
    sf.write(wav, noisy.astype(np.float32), RATE, subtype="FLOAT")
    engine = Engine(model, input_device="pn_mic_sim.monitor", output_device="pn_engine_out",
                    **engine_kw)
    rec = Recorder(sinks, "pn_engine_out.monitor", tmp_path / "rec.wav")
    engine.start()
    try:
        time.sleep(0.4)
        player = _play(sinks, "pn_mic_sim", wav, wait=False)
        # xruns are counted from the first second of the clip on: its start re-plans the
        # server's buffers (a new stream joins the sink the engine records)
        time.sleep(1.0)
        xruns_at_1s = engine.diagnostics().xruns
        assert player.wait(timeout=60) == 0
        time.sleep(0.4)
        diag = engine.diagnostics()
    finally:
        engine.stop()
        out = rec.stop()
    assert diag.state == "running", diag
    assert diag.errors == 0, diag.last_error
    # the recording holds the whole clip, denoised: bring it onto the input's time base
    # (segment by segment, aligned on the noisy input itself, not on the clean speech) and
    # compare SNRs against the clean speech after the first second
    seg = realign(noisy, out)
    skip = RATE
    snr_in = _snr_db(clean[skip:], noisy[skip:])
    snr_out = _snr_db(clean[skip:], seg[skip:])
    print(f"live stream: SNR noisy {snr_in:.1f} dB -> recorded output {snr_out:.1f} dB; "
          f"{diag.status_line()} in-overflows={diag.input_overflows} "
          f"out-underflows={diag.output_underflows} xruns at 1 s={xruns_at_1s}")
    return snr_in, snr_out, diag, xruns_at_1s, noisy, out


@BOTH_SERVERS
def test_engine_denoises_live_stream(sinks, tmp_path, shipped_or_tiny):
    """20 s of noisy speech on PulseAudio (what the engine's issue asked for); 10 s on
    PipeWire, whose longer runs are the minute-long soak's (tests/app/test_service.py)."""
    model, _ = shipped_or_tiny
    seconds = 20.0 if sinks.kind == "pulseaudio" else 10.0
    snr_in, snr_out, diag, xruns_at_1s, _, _ = _denoise_live(sinks, tmp_path, model, seconds)
    assert snr_out > snr_in + 3.0, (snr_in, snr_out)
    # xruns after the first second: none (start-up glitches are counted apart)
    assert diag.xruns - xruns_at_1s == 0, (xruns_at_1s, diag)
    # the engine reports a latency: 40 ms algorithmic + the device buffers. How accurate it is
    # is checked against an independent probe in test_measured_latency_within_budget; here
    # only that it is there and sane: 70 ms on an idle 2-core box; the sound server grows its
    # buffers on a loaded machine (one callback's figure read 123 ms once in CI)
    assert ALGORITHMIC_DELAY_MS + 5.0 <= diag.latency_ms <= ALGORITHMIC_DELAY_MS + 150.0, diag
    assert diag.callback_p99_ms < 10.0, diag


@BOTH_SERVERS
def test_device_at_44k1_is_converted_inside_the_engine(sinks, tmp_path, shipped_or_tiny):
    """A device opened at 44.1 kHz (what a 44.1 kHz-only sound card forces; asked for here,
    since the test's server takes any rate): the stream runs at 44.1 kHz, the engine
    converts to 48 kHz and back around the suppressor, and what comes out is the suppressor's
    output for that voice, segment by segment, with no callback over budget.

    Compared segment by segment with offline denoising (median correlation), not by one SNR
    over the clip: at 44.1 kHz the server's buffering moves enough that the engine re-synced
    its latency mid-clip in 2 of 6 loaded runs, which shifts the rest of the recording past
    what a whole-clip alignment follows (the SNR read 0.5 and 7.1 dB there, 10.4-10.9 dB in
    the runs without one)."""
    model, _ = shipped_or_tiny
    snr_in, snr_out, diag, xruns_at_1s, noisy, out = _denoise_live(
        sinks, tmp_path, model, 6.0, device_rate_hz=44_100)
    assert diag.sample_rate == 44_100 and "device-rate=44100Hz" in diag.status_line(), diag
    d = ALGORITHMIC_DELAY_SAMPLES
    expected = Denoiser(model, **stage_defaults()).process(
        np.concatenate([noisy, np.zeros(d)]))[d:]
    corr = segment_match(expected, out, seconds=0.25, skip=4)
    print(f"44.1 kHz device: median segment correlation with offline denoising "
          f"{np.median(corr):.3f} ({len(corr)} segments); SNR {snr_in:.1f} -> {snr_out:.1f} dB")
    assert np.median(corr) >= 0.9, corr
    # the conversions and the priming add about 13 ms to the reported delay
    assert ALGORITHMIC_DELAY_MS + 12.0 <= diag.latency_ms <= ALGORITHMIC_DELAY_MS + 160.0, diag
    assert diag.callback_p99_ms < 10.0, diag


def _click_train(seconds: float, every_s: float = 0.25) -> np.ndarray:
    x = np.zeros(int(seconds * RATE))
    for k in range(int(seconds / every_s)):
        i = int((k + 0.5) * every_s * RATE)
        x[i:i + 48] = np.hanning(48) * 0.5
    return x


def _loop_latency_ms(sink: str, source: str, seconds: float = 3.0) -> float:
    """Round trip of a duplex probe stream: play clicks into ``sink``, record ``source``."""
    import os

    import sounddevice as sd

    probe = _click_train(seconds).astype(np.float32)
    got = np.zeros_like(probe)
    pos = [0]

    def cb(indata, outdata, frames, t, status):
        p = pos[0]
        m = min(frames, len(probe) - p)
        outdata[:] = 0
        if m > 0:
            outdata[:m, 0] = probe[p:p + m]
            got[p:p + m] = indata[:m, 0]
        pos[0] = p + frames

    saved = {k: os.environ.get(k) for k in ("PULSE_SINK", "PULSE_SOURCE")}
    os.environ["PULSE_SINK"], os.environ["PULSE_SOURCE"] = sink, source
    try:
        st = sd.Stream(device="pulse", samplerate=RATE, blocksize=480, channels=1,
                       dtype="float32", latency="low", callback=cb)
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    deadline = time.monotonic() + seconds + 10.0
    with st:
        while pos[0] < len(probe):  # a stalled probe fails here instead of hanging the suite
            assert time.monotonic() < deadline, f"probe stream stalled at {pos[0]} samples"
            time.sleep(0.05)
    # lag of each click after the first second
    lags = []
    for k in range(4, int(seconds / 0.25) - 1):
        i = int((k + 0.5) * 0.25 * RATE)
        win = got[i:i + int(0.2 * RATE)]
        if np.max(np.abs(win)) > 0.05:
            lags.append(int(np.argmax(np.abs(win))) - 24)
    assert len(lags) >= 3, "the probe clicks did not come back"
    return 1000.0 * float(np.median(lags)) / RATE


def test_measured_latency_within_budget(sinks, pulse_server, shipped_or_tiny):
    """Independent measurement: a probe's round trip through the engine minus its round
    trip through a plain loop (null sink -> monitor) is the engine's own latency."""
    model, _ = shipped_or_tiny
    loop_mod = pulse_server.load_null_sink("pn_probe_loop")
    recorder = subprocess.Popen(  # keeps the engine output sink draining at low latency
        ["parecord", "--device=pn_engine_out.monitor", "--latency-msec=10", "/dev/null"],
        env=pulse_server.child_env(), stdin=subprocess.DEVNULL)
    try:
        base = _loop_latency_ms("pn_probe_loop", "pn_probe_loop.monitor")
        engine = Engine(model, input_device="pn_mic_sim.monitor",
                        output_device="pn_engine_out", suppression=False)
        with engine:
            time.sleep(0.5)
            total = _loop_latency_ms("pn_mic_sim", "pn_engine_out.monitor")
            diag = engine.diagnostics()
    finally:
        recorder.terminate()
        recorder.wait(timeout=5)
        pulse_server.unload_module(loop_mod)
    engine_ms = total - base
    print(f"probe round trip {total:.1f} ms, plain loop {base:.1f} ms -> engine "
          f"{engine_ms:.1f} ms (engine's own estimate {diag.latency_ms:.1f} ms)")
    assert ALGORITHMIC_DELAY_MS - 5.0 <= engine_ms <= ALGORITHMIC_DELAY_MS + 80.0, \
        (total, base, diag)
    # the figure the engine shows the user agrees with the probe (within 3 blocks; the plain
    # loop's own buffering is not exactly the engine's)
    assert abs(diag.latency_ms - engine_ms) <= 30.0, (engine_ms, diag)


def _max_jump(x: np.ndarray) -> float:
    return float(np.max(np.abs(np.diff(x))))


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * np.sin(2 * np.pi * 3100 * t)
    return x + 0.02 * np.random.default_rng(1).standard_normal(t.shape)


def test_toggles_do_not_click_at_the_switch(shipped_or_tiny):
    """Suppression on/off and limit changes between callbacks, exactly as the UI does
    live: the sample-to-sample jump in the 30 ms after each switch stays within what the
    output does anyway (bounded by the input's own largest step times two)."""
    from percepnet.app.engine import EngineCore

    model, _ = shipped_or_tiny
    x = _tone(4.0).astype(np.float32)
    core = EngineCore(model)
    out = np.zeros_like(x)
    switches = []
    for k, pos in enumerate(range(0, len(x), 480)):
        if k > 50 and k % 37 == 0:
            if (k // 37) % 2:
                core.suppression = not core.suppression
            else:
                core.atten_limit_db = 6.0 if core.atten_limit_db > 50 else 100.0
            switches.append(pos)
        o = np.zeros((480, 1), dtype=np.float32)
        core.process_block(x[pos:pos + 480, None], o)
        out[pos:pos + 480] = o[:, 0]
    assert core.errors == 0 and len(switches) >= 8
    bound = 2.0 * _max_jump(x)
    for pos in switches:
        seg = out[pos:pos + 1440 + 2000]  # the switch reaches the output 40 ms later
        assert _max_jump(seg) <= bound, (pos, _max_jump(seg), bound)


def test_live_toggles_mid_stream(sinks, tmp_path, shipped_or_tiny):
    """The same switches on a running stream: no error, the output keeps flowing."""
    model, _ = shipped_or_tiny
    wav = tmp_path / "tone.wav"
    sf.write(wav, _tone(5.0).astype(np.float32), RATE, subtype="FLOAT")
    engine = Engine(model, input_device="pn_mic_sim.monitor", output_device="pn_engine_out")
    rec = Recorder(sinks, "pn_engine_out.monitor", tmp_path / "rec.wav")
    engine.start()
    try:
        player = _play(sinks, "pn_mic_sim", wav, wait=False)
        for k in range(8):
            time.sleep(0.4)
            if k % 2 == 0:
                engine.suppression = not engine.suppression
            else:
                engine.atten_limit_db = 6.0 if engine.atten_limit_db > 50 else 100.0
        player.wait(timeout=30)
    finally:
        engine.stop()
        out = rec.stop()
    diag = engine.diagnostics()
    assert diag.errors == 0 and diag.restarts == 0, diag
    assert np.sum(np.abs(out) > 0.05) > 3 * RATE, "the engine output was not recorded"


_SINE_SINK = "pn_sine_src"


def _load_sine_mic(server) -> int:
    """A capture source ``pn_sine_mic`` that produces a 440 Hz tone continuously, like a
    microphone (a null sink's monitor would deliver in bursts when nothing plays into it);
    returns the module index (unloading it unplugs the "microphone").

    PulseAudio: ``module-sine-source``. pipewire-pulse has no such module: there it is a
    remap source of the ``sinks`` fixture's null sink, into which a feeder plays the tone for
    good (``load_remap_source`` waits until pipewire-pulse lists it)."""
    if server.kind == "pulseaudio":
        out = server.pactl("load-module", "module-sine-source", "source_name=pn_sine_mic",
                           "rate=48000", "frequency=440").stdout
        return int(out.strip())
    return server.load_remap_source("pn_sine_mic", f"{_SINE_SINK}.monitor")


def _seconds_until_tone(engine, last: int, timeout_s: float = 6.0) -> float | None:
    """Seconds until the sine microphone's tone (input above -20 dBFS) shows in the
    telemetry rows after row ``last``; None if it does not within timeout_s."""
    level = engine.telemetry.field("input_db")
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        rows, last = engine.telemetry.scalars.read_new(last)
        if len(rows) and np.max(rows[:, level]) > -20.0:
            return time.monotonic() - t0
        time.sleep(0.02)
    return None


def test_continuous_source_starts_without_a_restart(sinks, pulse_server, shipped_or_tiny):
    """A microphone-like source (its own clock) runs a few callbacks at once to fill the
    server's buffers and then pauses about a second before its clock takes over; that is a
    start, not a dead stream, so the engine must not reopen it (each reopen is a glitch)."""
    model, _ = shipped_or_tiny
    mic = _load_sine_mic(pulse_server)
    recorder = subprocess.Popen(
        ["parecord", "--device=pn_engine_out.monitor", "--latency-msec=10", "/dev/null"],
        env=pulse_server.child_env(), stdin=subprocess.DEVNULL)
    diags = []
    try:
        for _ in range(2):  # a fresh stream twice: the pause is not every time as long
            engine = Engine(model, input_device="pn_sine_mic", output_device="pn_engine_out")
            engine.start()
            try:
                time.sleep(4.0)
                diags.append(engine.diagnostics())
            finally:
                engine.stop()
    finally:
        recorder.terminate()
        recorder.wait(timeout=5)
        pulse_server.unload_module(mic)
    for diag in diags:
        assert diag.state == "running" and diag.errors == 0, diag
        assert diag.restarts == 0, diag
        assert engine.core.blocks > 200  # about 3 s of audio went through


def test_portaudio_started_before_the_server_is_rescanned_at_open(sinks, pulse_server,
                                                                  shipped_or_tiny):
    """PortAudio lists devices once, when it starts. Started while no sound server answered
    (a login race; in the suite, any earlier test that touched audio) it has no ``pulse``
    device: the engine must re-scan before opening a routed stream, not open the default
    device (or none) and lose the first seconds (the cause of a flaky live test)."""
    import os

    import sounddevice as sd

    model, _ = shipped_or_tiny
    saved = os.environ.get("PULSE_SERVER")
    os.environ["PULSE_SERVER"] = "unix:/nonexistent/percepnet-test/native"
    try:
        sd._terminate()
        sd._initialize()
        assert "pulse" not in [d["name"] for d in sd.query_devices()]
    finally:
        os.environ["PULSE_SERVER"] = saved
    engine = Engine(model, input_device="pn_mic_sim.monitor", output_device="pn_engine_out")
    t0 = time.monotonic()
    engine.start()
    try:
        opened_s = time.monotonic() - t0
        time.sleep(3.0)
        diag = engine.diagnostics()
    finally:
        engine.stop()
    assert diag.state == "running" and diag.errors == 0 and diag.restarts == 0, diag
    assert not diag.last_error, diag
    assert opened_s < 2.0, opened_s
    # audio flows within the stream's usual start (measured: the first callback 1.5 s after
    # the open, then steady); before the fix the open failed and was retried for seconds
    assert engine.core.blocks > 100, engine.core.blocks


def test_latency_grown_by_a_stall_is_resynced(sinks, shipped_or_tiny):
    """A CPU stall (one callback 0.3 s late) leaves audio piled up in the sound server's
    buffers; the engine notices its round trip has grown, reopens the stream at a quiet
    moment (the simulated mic plays silence) and is back at its fresh latency."""
    model, _ = shipped_or_tiny
    engine = Engine(model, input_device="pn_mic_sim.monitor", output_device="pn_engine_out")
    recorder = subprocess.Popen(  # keeps the engine output sink draining at low latency
        ["parecord", "--device=pn_engine_out.monitor", "--latency-msec=10", "/dev/null"],
        env=sinks.child_env(), stdin=subprocess.DEVNULL)
    process = engine.core.process_block
    stall = {"pending": False}

    def stalling(indata, outdata):  # the real block processing, once 0.3 s late
        if stall["pending"]:
            stall["pending"] = False
            time.sleep(0.3)
        process(indata, outdata)

    engine.core.process_block = stalling
    try:
        with engine:
            time.sleep(3.5)
            fresh = engine.diagnostics()
            stall["pending"] = True
            time.sleep(8.0)
            after = engine.diagnostics()
    finally:
        recorder.terminate()
        recorder.wait(timeout=5)
    print(f"fresh {fresh.latency_ms:.1f} ms, after the stall and re-sync "
          f"{after.latency_ms:.1f} ms, resyncs {after.resyncs}, restarts {after.restarts}")
    assert after.state == "running" and after.errors == 0 and after.restarts == 0, after
    # the stall added 300 ms; a reopened stream's own buffering differs from the first one's
    # by up to a few blocks (measured 15 and 39 ms device round trip)
    assert after.latency_ms <= fresh.latency_ms + 30.0, (fresh, after)
    assert 1 <= after.resyncs <= 2, after


@BOTH_SERVERS
def test_input_device_removed_and_back(sinks, pulse_server, shipped_or_tiny):
    model, _ = shipped_or_tiny
    mic = _load_sine_mic(pulse_server)
    engine = Engine(model, input_device="pn_sine_mic", output_device="pn_engine_out",
                    suppression=False)
    recorder = subprocess.Popen(  # keeps the engine output sink draining at low latency
        ["parecord", "--device=pn_engine_out.monitor", "--latency-msec=10", "/dev/null"],
        env=pulse_server.child_env(), stdin=subprocess.DEVNULL)
    level = engine.telemetry.field("input_db")
    engine.start()
    try:
        t0 = time.monotonic()
        while engine.core.blocks < 100 and time.monotonic() - t0 < 5.0:
            time.sleep(0.05)
        assert engine.core.blocks >= 100, "the stream did not start"
        assert engine.telemetry.scalars.latest(1)[0, level] > -20.0  # the tone arrives
        pulse_server.unload_module(mic)  # unplug
        # the tone must stop arriving (the server moves our stream to its silent default)
        last = int(engine.telemetry.scalars.written[0])
        quiet = False
        t_unplug = time.monotonic()
        while time.monotonic() - t_unplug < 3.0:
            time.sleep(0.1)
            rows, last = engine.telemetry.scalars.read_new(last)
            if len(rows) >= 5 and np.max(rows[-5:, level]) < -60.0:
                quiet = True
                break
        assert quiet, "the unplugged microphone still delivered its tone"
        assert engine.diagnostics().errors == 0
        time.sleep(0.5)
        rows, last = engine.telemetry.scalars.read_new(last)
        mic = _load_sine_mic(pulse_server)  # plug back
        resumed = _seconds_until_tone(engine, last)
        diag = engine.diagnostics()
    finally:
        engine.stop()
        recorder.terminate()
        recorder.wait(timeout=5)
        pulse_server.unload_module(mic)
    print(f"input device back: audio resumed after {resumed} s")
    assert resumed is not None and resumed <= 2.0, (resumed, diag)
    assert diag.state == "running" and diag.restarts >= 1, diag


def _our_sink(server, engine) -> str:
    """Name of the sink our stream plays into (found by the engine's stream tag)."""
    import pulsectl

    with pulsectl.Pulse("pn-test") as p:  # PULSE_SERVER points at the test server
        sinks = {s.index: s.name for s in p.sink_list()}
        for si in p.sink_input_list():
            if si.proplist.get("percepnet.stream") == engine._token:
                return sinks.get(si.sink, "")
    return ""


@BOTH_SERVERS
def test_output_device_removed_and_back(sinks, pulse_server, shipped_or_tiny):
    """Unplugging the chosen output keeps the engine running on the server's default (no
    error, audio keeps flowing); plugging it back moves the stream back to it."""
    model, _ = shipped_or_tiny
    mic = _load_sine_mic(pulse_server)
    out_sink = pulse_server.load_null_sink("pn_usb_headset", "USB_Headset")
    engine = Engine(model, input_device="pn_sine_mic", output_device="pn_usb_headset")
    engine.start()
    try:
        t0 = time.monotonic()
        while engine.core.blocks < 150 and time.monotonic() - t0 < 6.0:
            time.sleep(0.05)
        assert _our_sink(pulse_server, engine) == "pn_usb_headset"
        pulse_server.unload_module(out_sink)  # unplug
        # audio flows again (> 50 blocks in a second) within 10 s: a margin a loaded 2-core
        # box keeps (it moves over in ~2 s when idle)
        t_un, rate = time.monotonic(), 0
        while time.monotonic() - t_un < 10.0:
            blocks = engine.core.blocks
            time.sleep(1.0)
            rate = engine.core.blocks - blocks
            if rate > 50:
                break
        assert rate > 50, "audio stopped flowing after the unplug"
        diag = engine.diagnostics()
        assert diag.state == "running" and diag.errors == 0, diag
        assert _our_sink(pulse_server, engine) not in ("", "pn_usb_headset")
        out_sink = pulse_server.load_null_sink("pn_usb_headset", "USB_Headset")  # plug back
        t_back, back = time.monotonic(), None
        while time.monotonic() - t_back < 6.0:
            if _our_sink(pulse_server, engine) == "pn_usb_headset":
                back = time.monotonic() - t_back
                break
            time.sleep(0.05)
        # the server lists the reopened stream while the engine is still starting it (seen
        # in a loaded CI run: 'reconnecting' at that instant): it is running a moment later
        t_run = time.monotonic()
        while engine.diagnostics().state != "running" and time.monotonic() - t_run < 2.0:
            time.sleep(0.02)
        diag = engine.diagnostics()
    finally:
        engine.stop()
        pulse_server.unload_module(mic)
        pulse_server.unload_module(out_sink)
    print(f"output device back: stream moved back after {back} s")
    assert back is not None and back <= 2.0, diag
    assert diag.state == "running" and diag.errors == 0, diag


@BOTH_SERVERS
def test_missing_device_at_start_runs_on_default_until_it_appears(sinks, pulse_server,
                                                                  shipped_or_tiny):
    """A configured microphone that is not plugged in at start (or a stale config) does not
    leave the audio path dead: the engine runs on the server's default, says so, and moves
    to the device when it appears."""
    model, _ = shipped_or_tiny
    engine = Engine(model, input_device="pn_sine_mic", output_device="pn_engine_out")
    recorder = subprocess.Popen(
        ["parecord", "--device=pn_engine_out.monitor", "--latency-msec=10", "/dev/null"],
        env=pulse_server.child_env(), stdin=subprocess.DEVNULL)
    mic = None
    engine.start()
    try:
        diag = engine.diagnostics()
        assert diag.state == "running", diag
        assert "pn_sine_mic not found" in diag.last_error
        assert diag.fallback == "input" and "MISSING-INPUT-DEVICE" in diag.status_line()
        time.sleep(1.5)
        blocks = engine.core.blocks
        time.sleep(1.0)
        assert engine.core.blocks - blocks > 50, "no audio on the default device"
        mic = _load_sine_mic(pulse_server)  # plugged in
        # the stream moves onto it (on PipeWire the default source may carry a tone too, so
        # the move itself is what is timed), then its tone comes in
        t0 = time.monotonic()
        while engine.diagnostics().fallback and time.monotonic() - t0 < 5.0:
            time.sleep(0.02)
        moved = time.monotonic() - t0
        arrived = _seconds_until_tone(engine, int(engine.telemetry.scalars.written[0]))
        diag = engine.diagnostics()
    finally:
        engine.stop()
        recorder.terminate()
        recorder.wait(timeout=5)
        if mic is not None:
            pulse_server.unload_module(mic)
    print(f"microphone plugged in after start: the stream moved to it after {moved:.2f} s, "
          f"its audio arrived {arrived} s later")
    assert moved <= 2.0 and arrived is not None and arrived <= 1.0, diag
    assert diag.state == "running" and diag.fallback == "", diag


def test_listen_to_myself_plays_on_a_second_device(sinks, pulse_server, tmp_path,
                                                   shipped_or_tiny):
    """Monitor on: the processed voice also reaches the monitor device; off: it stops."""
    model, _ = shipped_or_tiny
    spk = pulse_server.load_null_sink("pn_speakers", "Speakers")
    spk_feeder = start_silence_feeder(pulse_server, "pn_speakers")  # keeps the sink awake
    mic = _load_sine_mic(pulse_server)
    engine = Engine(model, input_device="pn_sine_mic", output_device="pn_engine_out",
                    suppression=False)
    engine.monitor_device = "pn_speakers"
    drain = subprocess.Popen(["parecord", "--device=pn_engine_out.monitor",
                              "--latency-msec=10", "/dev/null"],
                             env=pulse_server.child_env(), stdin=subprocess.DEVNULL)
    try:
        with engine:
            time.sleep(0.5)
            rec = Recorder(pulse_server, "pn_speakers.monitor", tmp_path / "on.wav")
            engine.monitor = True
            time.sleep(3.0)  # parecord itself takes a moment to start recording
            on = rec.stop()
            engine.monitor = False
            time.sleep(0.3)
            rec = Recorder(pulse_server, "pn_speakers.monitor", tmp_path / "off.wav")
            time.sleep(1.0)
            off = rec.stop()
            import pulsectl

            with pulsectl.Pulse("test-monitor") as pulse:
                speakers = pulse.get_sink_by_name("pn_speakers").index
                inputs = [si for si in pulse.sink_input_list() if si.sink == speakers
                          and si.proplist.get("application.name") == "PercepNet"]
            diag = engine.diagnostics()
    finally:
        drain.terminate()
        drain.wait(timeout=5)
        spk_feeder.terminate()
        spk_feeder.wait(timeout=5)
        pulse_server.unload_module(mic)
        pulse_server.unload_module(spk)
    assert diag.errors == 0 and not diag.warnings, diag
    assert len(on) > RATE, len(on)
    tone = on[int(0.5 * RATE):]
    assert np.sqrt(np.mean(tone ** 2)) > 0.05, "the monitor device got no audio"
    spec = np.abs(np.fft.rfft(tone * np.hanning(len(tone))))
    assert abs(np.argmax(spec) * RATE / len(tone) - 440.0) < 5.0
    assert not inputs, "monitor off: our stream still plays to the speakers"
    assert off.size == 0 or np.max(np.abs(off)) < 1e-3, "monitor off still plays"


def test_the_stream_threads_run_ahead_of_other_apps(sinks, pulse_server, shipped_or_tiny):
    """The callback thread (and the rest the stream brought) at nice -11 where this process
    may raise it (root in CI), the reason in the diagnostics where not; the caller's own
    thread is left as it was."""
    import threading

    from percepnet.app.thread_priority import AUDIO_NICE

    model, _ = shipped_or_tiny
    engine = Engine(model, input_device="pn_mic_sim.monitor", output_device="pn_engine_out")
    engine.monitor_device = "pn_engine_out"  # "listen to myself": a second output stream
    callback_tids: set[int] = set()
    monitor_tids: set[int] = set()
    inner = engine._callback
    engine._callback = lambda *a: (callback_tids.add(threading.get_native_id()), inner(*a))[1]
    inner_mon = engine._mon.callback
    engine._mon.callback = lambda *a: (monitor_tids.add(threading.get_native_id()),
                                       inner_mon(*a))[1]
    main_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    engine.start()
    try:
        t0 = time.monotonic()
        while engine.core.blocks < 50 and time.monotonic() - t0 < 10.0:
            time.sleep(0.05)
        engine.monitor = True  # switched on while running, as from the window
        while len(monitor_tids) == 0 and time.monotonic() - t0 < 15.0:
            time.sleep(0.05)
        diag = engine.diagnostics()
        nices = {tid: os.getpriority(os.PRIO_PROCESS, tid) for tid in callback_tids}
        mon_nices = {tid: os.getpriority(os.PRIO_PROCESS, tid) for tid in monitor_tids}
    finally:
        engine.stop()
    assert engine.core.blocks >= 50 and callback_tids and monitor_tids, diag
    if os.geteuid() == 0:
        assert diag.audio_priority.startswith(f"nice {AUDIO_NICE} ("), diag.audio_priority
        assert set(nices.values()) == {AUDIO_NICE}, nices
        assert set(mon_nices.values()) == {AUDIO_NICE}, mon_nices
    else:  # a desktop session's rtkit may grant it; elsewhere the reason is reported
        assert diag.audio_priority.startswith(("not raised: no permission",
                                               f"nice {AUDIO_NICE} via rtkit")), diag.audio_priority
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_nice
