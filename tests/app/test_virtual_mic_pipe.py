"""The pipe-source virtual microphone (app/virtual_mic_pipe.py), the default on a local
server, against real private PulseAudio and PipeWire sessions (``sound_server`` runs each
test on both)."""
from __future__ import annotations

import os
import signal
import stat
import time

import numpy as np
import pytest

from mic_child import mic_child, passing_self_test, run_exit_child

from percepnet.app.mic_backends import get_backend
from percepnet.app.mic_pipe import MicPipe
from percepnet.app.virtual_mic import MIC_DESCRIPTION, SOURCE_NAME
from percepnet.app.virtual_mic_pipe import PipeVirtualMic

RATE = 48000


@pytest.fixture
def mic(sound_server):
    m = PipeVirtualMic()
    assert isinstance(get_backend(), PipeVirtualMic)
    m.remove()
    yield m
    sound_server.pactl("set-source-mute", SOURCE_NAME, "0", check=False)
    sound_server.pactl("set-source-volume", SOURCE_NAME, "100%", check=False)
    m.remove()
    assert_none(sound_server)


def pipe_modules(server) -> list[list[str]]:
    return [r for r in server.short_list("modules") if r[1] == "module-pipe-source"
            and f"source_name={SOURCE_NAME}" in r[2].split()]


def our_sources(server) -> list[str]:
    return [r[1] for r in server.short_list("sources") if r[1].startswith(SOURCE_NAME)]


def our_sinks(server) -> list[str]:
    return [r[1] for r in server.short_list("sinks") if r[1].startswith("percepnet")]


def assert_one_mic(server) -> None:
    assert len(pipe_modules(server)) == 1, server.short_list("modules")
    assert our_sources(server) == [SOURCE_NAME]
    assert our_sinks(server) == []  # nothing an app could pick as a speaker


def assert_none(server) -> None:
    assert not pipe_modules(server) and not our_sources(server) and not our_sinks(server)


def test_ensure_makes_one_source_no_sink_and_remove_takes_it_away(mic, sound_server):
    st = mic.ensure()
    assert st.present and st.detail == "", st
    assert st.sink_name == f"pipe:{mic.fifo_path}"
    assert stat.S_ISFIFO(os.stat(mic.fifo_path).st_mode)
    assert stat.S_IMODE(os.stat(os.path.dirname(mic.fifo_path)).st_mode) == 0o700
    assert_one_mic(sound_server)
    desc = sound_server.pactl("list", "sources").stdout
    assert f"Description: {MIC_DESCRIPTION}" in desc
    # WirePlumber makes a lone new source the default: our own default input would then
    # record our output. ensure() puts the previous default back.
    assert f"Default Source: {SOURCE_NAME}" not in sound_server.pactl("info").stdout
    assert mic.ensure().present and not mic.ensure().repaired  # idempotent
    assert_one_mic(sound_server)
    assert mic.remove() == 1
    assert_none(sound_server)
    assert not os.path.exists(mic.fifo_path)  # the server removes its FIFO


def test_stale_fifo_and_foreign_file_at_the_path(mic, sound_server):
    """A FIFO left by a crashed server is replaced (PulseAudio refuses to load over it);
    anything else at the path is not ours to delete: a clear failure."""
    os.makedirs(os.path.dirname(mic.fifo_path), mode=0o700, exist_ok=True)
    os.mkfifo(mic.fifo_path)
    assert mic.ensure().present
    assert_one_mic(sound_server)
    mic.remove()
    with open(mic.fifo_path, "w") as f:
        f.write("user data")
    try:
        st = mic.ensure()
        assert not st.present and "is not a FIFO" in st.detail, st
        assert_none(sound_server)
    finally:
        os.unlink(mic.fifo_path)


BACKEND = "percepnet.app.virtual_mic_pipe.PipeVirtualMic"


def test_start_stop_cycles_and_kill_9_leave_exactly_one_mic(mic, sound_server):
    for i in range(5):
        code, out, err = run_exit_child(sound_server, BACKEND)
        assert code == 0 and out.strip() == "present", (i, err)
        assert_none(sound_server)
    proc = mic_child(sound_server, BACKEND, "supervise")
    try:
        assert proc.stdout.readline().strip() == "present", proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
    assert_one_mic(sound_server)  # a crashed run leaves its source ...
    st = mic.ensure()  # ... which the next start adopts as is
    assert st.present and not st.repaired
    assert_one_mic(sound_server)


def test_self_test_passes_alone_and_detects_a_muted_microphone(mic, sound_server):
    assert mic.ensure().present
    passing_self_test(mic, sound_server.kind)
    assert not MicPipe.for_path(mic.fifo_path).is_open  # the stand-in writer is gone
    sound_server.pactl("set-source-mute", SOURCE_NAME, "1")
    assert any("muted" in w for w in mic.status().warnings)
    res = mic.self_test()
    assert not res.ok and "silence" in res.detail, res


def test_self_test_mixes_into_a_running_writer(mic, sound_server):
    """While the engine writes (here: a writer of a quiet 200 Hz hum), the tone is mixed into
    its blocks and read back; the writer keeps writing throughout."""
    assert mic.ensure().present
    pipe = MicPipe.for_path(mic.fifo_path)
    pipe.open()
    import threading

    stop = threading.Event()

    def writer():
        hop = RATE // 100
        t = np.arange(hop) / RATE
        k, nxt = 0, time.monotonic()
        while not stop.is_set():
            pipe.write((0.01 * np.sin(2 * np.pi * 200 * (t + k * hop / RATE))).astype(np.float32))
            k += 1
            nxt += hop / RATE
            time.sleep(max(0.0, nxt - time.monotonic()))

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    try:
        time.sleep(0.2)
        res = mic.self_test()
        assert res.ok, res.detail
        assert pipe.is_open and th.is_alive()
    finally:
        stop.set()
        th.join(2)
        pipe.close()


def test_supervisor_recreates_the_mic_after_a_server_restart(mic, sound_server):
    """Within 3 s of the server's return (its first answer to a client) the mic is listed
    again and carries audio (the self-test); the rebuild is reported through on_change."""
    events = []
    assert mic.ensure().present
    sup = mic.start_supervision(interval_s=0.5, on_change=events.append)
    try:
        sound_server.restart()
        t0 = sound_server.answered_at
        while SOURCE_NAME not in our_sources(sound_server):
            assert time.monotonic() - t0 < 3.0, "the virtual mic did not come back in 3 s"
            time.sleep(0.02)
        listed = time.monotonic() - t0
        while not (res := mic.self_test()).ok:
            assert time.monotonic() - t0 < 3.0, f"no audio 3 s after the return: {res.detail}"
            time.sleep(0.02)
        carrying = time.monotonic() - t0
        print(f"\n{sound_server.kind}: pipe mic listed / carrying audio {listed:.2f} / "
              f"{carrying:.2f} s after a restart")
        assert_one_mic(sound_server)
        assert sup.rebuilds >= 1 and any(e.present for e in events)
        assert sup.keep_alive is None  # a pipe source needs no reader to run in real time
    finally:
        mic.stop_supervision()
