"""Virtual microphone, Linux back-end, against a real PulseAudio server and a real PipeWire
session (pipewire-pulse): ``pulse_server`` is :func:`sound_server` here, so each test that
takes it runs on both.

Audio goes in with ``pacat --playback`` into the null sink and comes out of "PercepNet
Microphone" with ``pacat --record`` (parecord), independent of the code under test. Every
test leaves no module of ours loaded.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

from percepnet.app.virtual_mic import MIC_DESCRIPTION, SINK_NAME, SOURCE_NAME
from percepnet.app.virtual_mic_pulse import KeepAlive, PulseVirtualMic

from audio_fixtures import load_fixture
from mic_child import mic_child, passing_self_test, run_exit_child
from live_audio import segment_match
from pulse_server import DEFAULT_SINK
from percepnet.dsp.constants import SAMPLE_RATE_HZ

RATE = SAMPLE_RATE_HZ  # the one definition: percepnet.dsp.constants


@pytest.fixture
def pulse_server(sound_server):
    """Every test of this module that takes ``pulse_server`` runs on both servers
    (``tests/conftest.py``: PulseAudio, then PipeWire through pipewire-pulse)."""
    return sound_server


def on_pipewire(server) -> bool:
    return server.kind == "pipewire"


# --------------------------------------------------------------------------- helpers

def ours(server) -> dict[str, list[list[str]]]:
    """Our modules and objects as ``pactl list short`` shows them."""
    mods = server.short_list("modules")

    def arg_has(row, token):
        return len(row) > 2 and token in row[2].split()

    return {
        "sink_modules": [r for r in mods if r[1] == "module-null-sink"
                         and arg_has(r, f"sink_name={SINK_NAME}")],
        "source_modules": [r for r in mods if r[1] == "module-remap-source"
                           and (arg_has(r, f"source_name={SOURCE_NAME}")
                                or arg_has(r, f"master={SINK_NAME}.monitor"))],
        # renamed duplicates get a ".2" suffix
        "sinks": [r for r in server.short_list("sinks")
                  if re.fullmatch(rf"{SINK_NAME}(\.\d+)?", r[1])],
        "sources": [r for r in server.short_list("sources")
                    if re.fullmatch(rf"{SOURCE_NAME}(\.\d+)?", r[1])],
    }


def assert_one_pair(server):
    o = ours(server)
    assert len(o["sink_modules"]) == 1 and len(o["source_modules"]) == 1, o
    assert [r[1] for r in o["sinks"]] == [SINK_NAME], o
    assert [r[1] for r in o["sources"]] == [SOURCE_NAME], o


def assert_none(server):
    o = ours(server)
    assert not any(o.values()), o


@pytest.fixture
def mic(pulse_server):
    m = PulseVirtualMic()
    m.remove()  # whatever an earlier test or crash left
    yield m
    # WirePlumber remembers a sink's or source's volume and mute by name and applies them to
    # the next one of that name (a desktop's PulseAudio does the same with
    # module-device-restore): a test that turned ours down would turn down the next test's
    for what, name in (("sink", SINK_NAME), ("source", SOURCE_NAME)):
        pulse_server.pactl(f"set-{what}-mute", name, "0", check=False)
        pulse_server.pactl(f"set-{what}-volume", name, "100%", check=False)
    m.remove()
    assert_none(pulse_server)


class Recorder:
    """``pacat --record`` (parecord) from a source, float32 mono 48 kHz, in the background."""

    def __init__(self, server, device: str) -> None:
        self.proc = subprocess.Popen(
            ["pacat", "--record", "--raw", f"--device={device}", "--format=float32le",
             f"--rate={RATE}", "--channels=1", "--latency-msec=10"],
            env=server.child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL)
        self.chunks: list[bytes] = []
        self.first = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while b := self.proc.stdout.read1(65536):
            self.chunks.append(b)
            self.first.set()

    def stop(self) -> np.ndarray:
        self.proc.terminate()
        self.proc.wait(5)
        self.thread.join(5)
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stdout.close()
        self.proc.stderr.close()
        data = b"".join(self.chunks)
        assert data, f"nothing recorded: {err}"
        return np.frombuffer(data[: len(data) // 4 * 4], "<f4").astype(np.float64)


def play(server, device: str, x: np.ndarray) -> None:
    proc = subprocess.run(
        ["pacat", "--playback", "--raw", f"--device={device}", "--format=float32le",
         f"--rate={RATE}", "--channels=1", "--latency-msec=20"],
        input=np.asarray(x, "<f4").tobytes(), env=server.child_env(), capture_output=True,
        timeout=30)
    assert proc.returncode == 0, proc.stderr


def play_and_record(server, x: np.ndarray) -> np.ndarray:
    """Play ``x`` into our sink while recording "PercepNet Microphone"."""
    rec = Recorder(server, SOURCE_NAME)
    assert rec.first.wait(5.0), "no audio from the virtual microphone"
    play(server, SINK_NAME, x)
    time.sleep(0.3)
    return rec.stop()


def align(ref: np.ndarray, y: np.ndarray) -> tuple[int, np.ndarray]:
    """Delay of ``ref`` inside ``y`` (FFT cross-correlation) and the aligned part of ``y``."""
    n = 1 << int(np.ceil(np.log2(ref.size + y.size)))
    xc = np.fft.irfft(np.fft.rfft(y, n) * np.conj(np.fft.rfft(ref, n)), n)[: y.size]
    lag = int(np.argmax(xc))
    seg = y[lag: lag + ref.size]
    assert seg.size == ref.size, f"recording too short after the delay ({lag} samples)"
    return lag, seg


def callbacks_per_second(route: dict[str, str], seconds: float = 2.0) -> float:
    """Callbacks/s of a 480-frame PortAudio output stream on the ALSA ``pulse`` device routed
    by ``route``, counted from the moment it starts (what the engine's stream would get)."""
    import sounddevice as sd

    times: list[float] = []

    def cb(outdata, frames, t, status):  # noqa: ARG001
        times.append(time.monotonic())
        outdata.fill(0)

    saved = {k: os.environ.get(k) for k in route}
    os.environ.update(route)
    try:
        stream = sd.OutputStream(device="pulse", samplerate=RATE, blocksize=480, channels=1,
                                 dtype="float32", latency="low", callback=cb)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    with stream:
        t0 = time.monotonic()
        time.sleep(seconds)
    return sum(1 for t in times if t - t0 <= seconds) / seconds


# --------------------------------------------------------------------------- ensure / status

def test_ensure_creates_a_real_mono_source_and_is_idempotent(mic, pulse_server):
    st = mic.ensure()
    assert st.present, st.detail
    assert (st.backend, st.sink_name, st.source_name, st.description) == \
        ("pulse", SINK_NAME, SOURCE_NAME, MIC_DESCRIPTION)
    assert st.server.startswith("PulseAudio") and not st.repaired
    assert_one_pair(pulse_server)
    src = pulse_server.pactl("list", "sources").stdout.split("Source #")
    block = next(b for b in src if f"Name: {SOURCE_NAME}\n" in b)
    assert f"Description: {MIC_DESCRIPTION}\n" in block
    # the sample format is the server's own (none is asked for): PulseAudio's default s16le,
    # PipeWire's native float32le
    fmt = "float32le" if on_pipewire(pulse_server) else "s16le"
    assert f"Sample Specification: {fmt} 1ch 48000Hz" in block
    assert "Channel Map: mono" in block
    assert "Monitor of Sink: n/a" in block  # a real source, not a monitor
    for _ in range(3):
        again = mic.ensure()
        assert again.present and not again.repaired
    assert_one_pair(pulse_server)
    assert mic.status().present
    assert mic.remove() == 2
    assert_none(pulse_server)
    assert not mic.status().present
    assert "not created" in mic.status().detail


def test_speech_played_into_the_sink_comes_out_of_the_mic(mic, pulse_server):
    """(a) + (d): a recorder on "PercepNet Microphone" gets what is written into the sink,
    unchanged (pass-through: nothing suppressed, nothing added, silence stays silence)."""
    assert mic.ensure().present
    mic.keep_alive()
    speech = load_fixture("speech_fr.ogg")[: int(2.5 * RATE)]
    speech = 0.5 * speech / np.max(np.abs(speech))
    silence = np.zeros(int(0.3 * RATE))
    x = np.concatenate([speech, silence])
    y = play_and_record(pulse_server, x)
    lag, seg = align(x, y)
    corr = float(np.corrcoef(x, seg)[0, 1])
    gain_db = 10 * np.log10(np.sum(seg[: speech.size] ** 2) / np.sum(speech ** 2))
    resid_db = 10 * np.log10(np.sum((seg - x) ** 2) / np.sum(x ** 2))
    silent_part = seg[speech.size + RATE // 100:]  # after the speech, 10 ms margin
    # each 0.25 s of speech aligned on its own: a capture glitch of the recorder (seen once
    # in a fresh-clone run on PulseAudio: corr 0.896, gain 0.000 dB) shifts what follows it
    segs = segment_match(speech, y, seconds=0.25, skip=0)
    glitched = sum(c < 0.999 for c in segs)
    print(f"\nspeech through the virtual mic: corr {corr:.5f}, delay {1000 * lag / RATE:.0f} ms "
          f"(incl. recorder start), gain {gain_db:+.3f} dB, residual {resid_db:.1f} dB, "
          f"0.25 s segments below 0.999: {glitched} of {len(segs)}")
    assert glitched <= 1, segs  # at most one recorder glitch; the rest bit-transparent
    assert float(np.median(segs)) >= 0.999, segs
    assert abs(gain_db) < 0.1
    if glitched == 0:  # in fact bit-transparent up to PulseAudio's s16 samples
        assert corr >= 0.999 and resid_db < -60.0, (corr, resid_db)
    assert np.max(np.abs(silent_part)) < 1e-3


def test_failed_build_leaves_nothing_behind(pulse_server):
    class Broken(PulseVirtualMic):
        def source_args(self) -> str:  # a remap source the server refuses: no channels
            # (pipewire-pulse ignores unknown arguments, so it would load "no_such_argument=1")
            args = super().source_args()
            assert " channels=1 " in args
            return args.replace(" channels=1 ", " channels=0 ")

    mic = Broken()
    st = mic.ensure()
    assert not st.present
    assert st.detail.startswith("could not create the virtual microphone")
    assert_none(pulse_server)


def test_no_server_reachable_is_a_status_not_a_crash(tmp_path):
    mic = PulseVirtualMic(server=f"unix:{tmp_path}/no-such-socket")
    for st in (mic.ensure(), mic.status()):
        assert not st.present and not st.reachable  # the window reads the flag, not the text
        assert st.detail.startswith("no PulseAudio/PipeWire server reachable: ")
    assert mic.remove() == 0
    res = mic.self_test()
    assert not res.ok and "no PulseAudio/PipeWire server reachable" in res.detail


def test_default_sink_and_source_are_not_taken_over(mic, pulse_server):
    """With module-switch-on-connect (Ubuntu loads it) a new sink becomes the default,
    which would send the desktop's sound into the microphone; ensure() puts it back."""
    before = pulse_server.pactl("info").stdout
    idx = int(pulse_server.pactl("load-module", "module-switch-on-connect",
                                 "ignore_virtual=no").stdout)
    try:
        assert mic.ensure().present
        info = pulse_server.pactl("info").stdout
    finally:
        pulse_server.unload_module(idx)
    assert f"Default Sink: {DEFAULT_SINK}" in before and f"Default Sink: {DEFAULT_SINK}" in info
    assert f"Default Source: {SOURCE_NAME}" not in info
    assert f"Default Source: {SINK_NAME}.monitor" not in info


# --------------------------------------------------------------------------- repair

@pytest.mark.parametrize("case", ["sink only", "source on a wrong master", "duplicates"])
def test_stale_or_half_built_chain_is_rebuilt(mic, pulse_server, case):
    if case == "sink only":
        pulse_server.pactl("load-module", "module-null-sink", f"sink_name={SINK_NAME}",
                           "rate=48000", "channels=1")
    elif case == "source on a wrong master":
        pulse_server.pactl("load-module", "module-remap-source", f"source_name={SOURCE_NAME}",
                           f"master={DEFAULT_SINK}.monitor", "channels=1")
    else:
        assert mic.ensure().present
        pulse_server.pactl("load-module", "module-null-sink", f"sink_name={SINK_NAME}",
                           "rate=48000", "channels=1")   # becomes percepnet_mic_sink.2
        pulse_server.pactl("load-module", "module-remap-source", f"source_name={SOURCE_NAME}",
                           f"master={SINK_NAME}.monitor", "channels=1")
    assert not mic.status().present
    st = PulseVirtualMic().ensure()  # a fresh start, as after a crash
    assert st.present and st.repaired, st.detail
    assert_one_pair(pulse_server)
    assert mic.self_test().ok


BACKEND = "percepnet.app.virtual_mic_pulse.PulseVirtualMic"


def test_start_stop_cycles_and_kill_9_leave_exactly_one_mic(mic, pulse_server):
    """(b) 5 processes ensure and exit normally (the exit handler removes the chain), one
    more is killed with SIGKILL while supervising (the chain stays, its keep-alive reader
    does not); the next ensure() keeps that chain: exactly one sink and one source."""
    for i in range(5):
        code, out, err = run_exit_child(pulse_server, BACKEND)
        assert code == 0 and out.strip() == "present", (i, err)
        assert_none(pulse_server)
    proc = mic_child(pulse_server, BACKEND, "supervise")
    try:
        assert proc.stdout.readline().strip() == "present", proc.stderr.read()
        deadline = time.monotonic() + 5
        while "percepnet-keep-alive" not in pulse_server.pactl("list", "source-outputs").stdout:
            assert time.monotonic() < deadline, "the supervisor's keep-alive never started"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
    assert_one_pair(pulse_server)  # a crashed run leaves its chain ...
    deadline = time.monotonic() + 3
    while "percepnet-keep-alive" in pulse_server.pactl("list", "source-outputs").stdout:
        assert time.monotonic() < deadline, "the keep-alive reader outlived its kill -9'd owner"
        time.sleep(0.05)
    st = mic.ensure()  # ... which the next start adopts as is
    assert st.present and not st.repaired
    assert_one_pair(pulse_server)


# --------------------------------------------------------------------------- keep-alive

@pytest.mark.parametrize("method", ["pacat", "sounddevice"])
def test_keep_alive_makes_the_sink_run_in_real_time(mic, pulse_server, method):
    assert mic.ensure().present
    without = callbacks_per_second(mic.output_route())
    mic.remove()
    assert mic.ensure().present  # a fresh, idle sink again
    ka = mic.keep_alive(method=method)
    assert isinstance(ka, KeepAlive) and ka.method == method and ka.running
    with_ka = callbacks_per_second(mic.output_route())
    print(f"\noutput stream callbacks/s over its first 2 s: without keep-alive {without:.0f}, "
          f"with ({method}) {with_ka:.0f}")
    # real time is 100/s; a loaded 2-core box measured 86.5/s, so the margin sits midway
    # between the stall (measured 3-6/s) and real time, and the ratio tells the two apart
    assert with_ka >= 60.0
    if not on_pipewire(pulse_server):
        # the stall the keep-alive exists for is PulseAudio's: its idle null sink renders
        # in bursts. PipeWire's graph clock drives a null sink like any node, idle or not
        # (measured 102/s without a reader), so there the keep-alive only must not hurt.
        assert without < 40.0
        assert with_ka >= 3.0 * without
    ka.stop()
    assert not ka.running


def test_keep_alive_spawned_during_a_routed_open_carries_no_routing(mic, pulse_server):
    """The bug behind the endless "moving the stream back" loop on PipeWire: the keep-alive
    child, spawned while another thread had our stream token in PULSE_PROP for a stream
    open, inherited it. Children now get the environment without routing variables, read
    under the routing lock."""
    from percepnet.app.devices import routed_env

    assert mic.ensure().present
    token = "percepnet.stream=test-token-123"
    spawned = threading.Event()
    result: dict = {}

    def spawn_from_another_thread():
        result["ka"] = mic.keep_alive(method="pacat")
        spawned.set()

    with routed_env({"PULSE_PROP": f"application.name=PercepNet {token}",
                     "PULSE_SINK": "nowhere"}):
        t = threading.Thread(target=spawn_from_another_thread)
        t.start()
        time.sleep(0.3)  # the spawn waits for the routing lock: it cannot see these
    t.join(10)
    assert spawned.is_set()
    ka = result["ka"]
    try:
        deadline = time.monotonic() + 5
        while "percepnet-keep-alive" not in pulse_server.pactl("list", "source-outputs").stdout:
            assert time.monotonic() < deadline, "the keep-alive reader did not connect"
            time.sleep(0.05)
        listing = pulse_server.pactl("list", "source-outputs").stdout
        assert "test-token-123" not in listing, listing
        environ = open(f"/proc/{ka._proc.pid}/environ", "rb").read().split(b"\0")
        assert not any(e.startswith((b"PULSE_PROP", b"PULSE_SINK=")) for e in environ)
    finally:
        ka.stop()


# --------------------------------------------------------------------------- self-test

def test_self_test_passes_and_detects_a_muted_microphone(mic, pulse_server):
    assert mic.ensure().present
    passing_self_test(mic, pulse_server.kind)
    pulse_server.pactl("set-source-mute", SOURCE_NAME, "1")
    st = mic.status()
    assert st.present and any("muted" in w for w in st.warnings)
    res = mic.self_test()
    assert not res.ok and "silence" in res.detail
    pulse_server.pactl("set-source-mute", SOURCE_NAME, "0")
    pulse_server.pactl("set-sink-volume", SINK_NAME, "30%")
    res = mic.self_test()
    assert not res.ok and "level" in res.detail, res


def test_self_test_through_a_caller_supplied_player(mic, pulse_server):
    """The engine can play the tone through its own output path (``play_device_fn``)."""
    assert mic.ensure().present
    calls = []

    def player(samples, rate):
        calls.append((samples.size, rate))
        play(pulse_server, SINK_NAME, samples)

    res = mic.self_test(play_device_fn=player)
    assert res.ok, res.detail
    assert calls == [(RATE // 2, RATE)]


def test_self_test_without_the_mic_fails_plainly(mic):
    res = mic.self_test()
    assert not res.ok and res.detail.startswith("virtual microphone absent")


# --------------------------------------------------------------------------- server restart

# PulseAudio only. On PipeWire the test passed alone (3 of 3), but in a full fresh-clone run
# the restarted private session lost its pipewire daemon 0.6 s after start (its modules:
# "Broken pipe"; pipewire-pulse answered every client "Host is down") and took the rest of
# the PipeWire tests down with it. Until the harness restarts a PipeWire session robustly,
# the restart case runs on PulseAudio.
@pytest.mark.parametrize("sound_server", ["pulseaudio"], indirect=True)
def test_supervisor_recreates_the_mic_after_a_server_restart(mic, pulse_server):
    """(c) within 3 s of the server's return (its first answer to a client) the mic is back
    and carries audio again (a tone played into the sink comes out of it: the self-test);
    while the server is down the supervisor keeps retrying."""
    events = []
    assert mic.ensure().present
    sup = mic.start_supervision(interval_s=0.5, on_change=events.append)
    try:
        deadline = time.monotonic() + 3
        while not (sup.keep_alive.running and events):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert events[-1].present

        def back_after() -> tuple[float, float]:
            """Seconds from the server's first answer until the mic is listed again, and
            until it carries audio."""
            t0 = pulse_server.answered_at
            while SOURCE_NAME not in [r[1] for r in pulse_server.short_list("sources")]:
                assert time.monotonic() - t0 < 3.0, "the virtual mic did not come back in 3 s"
                time.sleep(0.02)
            listed = time.monotonic() - t0
            while not (res := mic.self_test()).ok:
                assert time.monotonic() - t0 < 3.0, \
                    f"the virtual mic carries no audio 3 s after the server's return: {res.detail}"
                time.sleep(0.02)
            carrying = time.monotonic() - t0
            assert carrying <= 3.0, f"audio through the virtual mic only after {carrying:.2f} s"
            return listed, carrying

        pulse_server.restart()
        first = back_after()
        assert_one_pair(pulse_server)

        pulse_server.kill()
        time.sleep(1.5)  # several polls against a dead server
        assert sup.running
        assert any(not e.present and "no PulseAudio/PipeWire server reachable" in e.detail
                   for e in events)
        pulse_server.start()
        second = back_after()
        print(f"\n{pulse_server.kind}: virtual mic listed / carrying audio {first[0]:.2f} / "
              f"{first[1]:.2f} s after a restart, {second[0]:.2f} / {second[1]:.2f} s after "
              "1.5 s down (from the server's first answer)")
        assert_one_pair(pulse_server)
        assert events[-1].present or mic.status().present
        deadline = time.monotonic() + 3
        while not sup.keep_alive.running:
            assert time.monotonic() < deadline, "keep-alive not restarted"
            time.sleep(0.05)
        assert sup.rebuilds >= 2
    finally:
        mic.stop_supervision()
    assert not sup.running and not sup.keep_alive.running


def _sink_of(app: str) -> str | None:
    """Name of the sink the stream of application ``app`` plays into (None: no such stream)."""
    import pulsectl

    with pulsectl.Pulse("pn-test") as p:  # PULSE_SERVER points at the test server
        sinks = {s.index: s.name for s in p.sink_list()}
        for si in p.sink_input_list():
            if si.proplist.get("application.name") == app:
                return sinks.get(si.sink, "?")
    return None


def test_an_app_playing_into_the_internal_sink_is_moved_off_it(mic, pulse_server):
    """Browsers list our null sink as a speaker; a meeting app set to it would feed the far
    end into the microphone. The supervisor moves such a stream to the default output
    within a poll and reports it; our own streams (the engine's tag) stay on the sink."""
    assert mic.ensure().present
    events = []
    mic.start_supervision(interval_s=0.2, on_change=events.append, keep_alive=False)
    players = []
    try:
        for app, extra in (("meeting-app", []), ("PercepNet", ["--property=percepnet.stream=t"])):
            players.append(subprocess.Popen(
                ["pacat", "--playback", f"--device={SINK_NAME}", "--format=float32le",
                 "--rate=48000", "--channels=1", f"--property=application.name={app}", *extra,
                 "/dev/zero"], env=pulse_server.child_env(), stdin=subprocess.DEVNULL))
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            moved_to = _sink_of("meeting-app")
            if moved_to not in (None, SINK_NAME, "?"):  # "?": mid-move on PipeWire
                break
            time.sleep(0.05)
        assert moved_to not in (None, SINK_NAME, "?"), moved_to
        time.sleep(0.5)  # a few more polls: ours is left alone
        assert _sink_of("PercepNet") == SINK_NAME
        assert _sink_of("meeting-app") == moved_to
        said = [m for e in events for m in e.moved if "meeting-app" in m]
        assert said and "moved it to" in said[0], [e.moved for e in events]
        assert any(line.startswith("moved: meeting-app") for e in events for line in e.lines())
        assert mic._supervisor.moved_streams == 1
    finally:
        mic.stop_supervision()
        for p in players:
            p.terminate()
            p.wait(timeout=5)
