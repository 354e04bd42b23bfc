"""The FIFO writer of the pipe-source microphone, on a real FIFO read by this test (no sound
server: the reader plays the server's part, at the pace and in the amounts we choose)."""
from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest

from percepnet.app import mic_pipe
from percepnet.app.mic_pipe import MicPipe, pipe_path

HOP = 480
BLOCK_BYTES = HOP * 4


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "mic.fifo"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    yield str(path), reader
    os.close(reader)


def read_all(fd) -> np.ndarray:
    chunks = []
    while True:
        try:
            b = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not b:
            break
        chunks.append(b)
    return np.frombuffer(b"".join(chunks), dtype="<f4")


def test_pipe_path_parses_only_pipe_devices():
    assert pipe_path("pipe:/run/x/mic.fifo") == "/run/x/mic.fifo"
    assert pipe_path("percepnet_mic_sink") is None and pipe_path("") is None


def test_the_longest_gap_between_writes_is_kept(fifo, monkeypatch):
    """A stalled writer (the engine's callback held up) shows in ``max_write_gap_ms``; the
    first write after open does not count (nothing to measure from)."""
    path, reader = fifo
    clock = [100.0]
    monkeypatch.setattr(mic_pipe.time, "monotonic", lambda: clock[0])
    p = MicPipe(path)
    p.open()
    clock[0] += 5.0
    for step_s in (0.01, 0.01, 0.167, 0.01):
        p.write(np.zeros(HOP))
        read_all(reader)
        clock[0] += step_s
    p.write(np.zeros(HOP))
    assert p.max_write_gap_ms == pytest.approx(167.0)
    p.open()  # a new stream: a new measurement
    assert p.max_write_gap_ms == 0.0
    p.close()


def test_blocks_arrive_in_order_after_the_priming(fifo, monkeypatch):
    path, reader = fifo
    clock = [100.0]
    monkeypatch.setattr(mic_pipe.time, "monotonic", lambda: clock[0])
    p = MicPipe(path)
    p.open()
    primed = read_all(reader)
    assert primed.size == round(mic_pipe.TARGET_FILL_MS * 48) and not primed.any()
    sent = []
    for i in range(50):
        x = (np.arange(HOP) + i * HOP).astype(np.float64) / 1e5  # float64 in, float32 out
        p.write(x)
        sent.append(x)
        clock[0] += 0.01
        got = read_all(reader)  # a reader that keeps up (PulseAudio)
        np.testing.assert_allclose(got, x.astype(np.float32))
    assert p.errors == 0 and p.overflows == 0 and p.resyncs == 0 and not p.idle
    assert p.trims == 0 and p.dropped_ms == 0.0  # nothing stands in the FIFO to trim
    p.close()


def test_nobody_reading_keeps_only_the_target(fifo, monkeypatch):
    """No app records the microphone: the FIFO is not drained by the server; when someone
    starts reading, the oldest audio they get is the target fill, not a third of a second."""
    path, reader = fifo
    clock = [100.0]
    monkeypatch.setattr(mic_pipe.time, "monotonic", lambda: clock[0])
    p = MicPipe(path)
    p.open()
    for i in range(300):  # 3 s of nobody reading
        p.write(np.full(HOP, (i + 1) / 1000.0, np.float32))
        clock[0] += 0.01
    assert p.idle and p.overflows == 0
    got = read_all(reader)
    target = round(mic_pipe.TARGET_FILL_MS * 48)
    assert got.size <= target + HOP, got.size
    assert got[-1] == pytest.approx(0.3)  # the newest block is there


def test_a_lasting_backlog_is_resynced_at_a_quiet_block(fifo, monkeypatch):
    """The reader drains exactly one block per block written but 30 ms sit in the FIFO
    (a stall earlier): after RESYNC_AFTER_S the next quiet blocks are left out."""
    path, reader = fifo
    clock = [100.0]
    monkeypatch.setattr(mic_pipe.time, "monotonic", lambda: clock[0])
    p = MicPipe(path)
    p.open()
    loud = np.full(HOP, 0.5, np.float32)
    quiet = np.zeros(HOP, np.float32)
    for i in range(300):  # 3 s steady at the target: the floor
        p.write(loud)
        clock[0] += 0.01
        os.read(reader, BLOCK_BYTES)
    for _ in range(3):  # a 30 ms stall: three blocks pile up
        p.write(loud)
        clock[0] += 0.001
    fills = []
    for i in range(600):
        p.write(quiet if i > 400 else loud)
        clock[0] += 0.01
        os.read(reader, BLOCK_BYTES)
        fills.append(p.fill_ms)
    assert p.resyncs == 1
    assert p.dropped_ms == pytest.approx(30.0, abs=10.0)
    assert fills[-1] <= mic_pipe.TARGET_FILL_MS + 10.0
    assert max(fills[250:400]) > 30.0  # it waited for a quiet block (none before 400)


def test_standing_slack_is_trimmed_at_a_quiet_block_and_grows_after_an_empty_fifo(
        fifo, monkeypatch):
    """PipeWire's case: the reader takes one block per block written, but 8 ms stand in the
    FIFO for good (where our writes fell between its reads). The next quiet block after a
    window is written short by the excess over the slack; the samples keep their order.
    When the FIFO is then found empty (the server may have run short), the slack grows."""
    path, reader = fifo
    clock = [100.0]
    monkeypatch.setattr(mic_pipe.time, "monotonic", lambda: clock[0])
    p = MicPipe(path)
    p.open()
    read_all(reader)  # the priming
    os.write(p.fd, np.zeros(round(8.0 * 48), np.float32).tobytes())  # 8 ms standing
    sent, got = [], []
    for i in range(500):
        x = np.full(HOP, 0.5 if i < 300 else 1e-3, np.float32) + np.float32(i * 1e-6)
        p.write(x)
        sent.append(x)
        clock[0] += 0.01
        got.append(np.frombuffer(os.read(reader, BLOCK_BYTES), dtype="<f4"))
    assert p.trims == 1 and p.resyncs == 0, (p.trims, p.resyncs)
    assert p.dropped_ms == pytest.approx(8.0 - mic_pipe.TRIM_TO_MS, abs=0.05)
    assert p.fill_ms == pytest.approx(mic_pipe.TRIM_TO_MS, abs=0.05)  # what stands now
    rec = np.concatenate(got + [read_all(reader)])[round(8.0 * 48):]  # past the standing 8 ms
    whole = np.concatenate(sent)
    cut = round((8.0 - mic_pipe.TRIM_TO_MS) * 48)
    k = 300 * HOP  # the first quiet block: its start was left out, nothing else
    np.testing.assert_array_equal(rec[:k], whole[:k])
    np.testing.assert_array_equal(rec[k:], whole[k + cut:k + cut + rec.size - k])
    # the server drains everything once: the slack grows by one step, and the next quiet
    # window trims to it (nothing, here: the fill is below it)
    slack0 = p.slack_ms
    p.write(np.full(HOP, 1e-3, np.float32))
    read_all(reader)
    clock[0] += 0.01
    p.write(np.full(HOP, 1e-3, np.float32))
    assert p.slack_ms == pytest.approx(slack0 + mic_pipe.TRIM_STEP_MS, abs=0.05)
    p.close()


def test_self_test_tone_is_mixed_into_the_written_blocks(fifo):
    path, reader = fifo
    p = MicPipe(path)
    with pytest.raises(RuntimeError):
        p.play(np.ones(10, np.float32), timeout_s=0.1)  # nothing writes
    p.open()
    read_all(reader)
    tone = np.linspace(0.0, 0.1, HOP * 2 + 100).astype(np.float32)
    import threading

    p.write(np.zeros(HOP, np.float32))  # the writer is active
    t = threading.Thread(target=p.play, args=(tone, 2.0))
    t.start()
    while p._overlay is None and t.is_alive():
        pass
    got = [read_all(reader)]
    base = np.full(HOP, 0.25, np.float32)
    for _ in range(4):
        p.write(base)
        got.append(read_all(reader))  # a reader that keeps up
    t.join(2.0)
    got = np.concatenate(got)
    np.testing.assert_allclose(got[HOP:HOP + tone.size], tone + 0.25, atol=1e-6)
    np.testing.assert_allclose(got[HOP + tone.size:], 0.25)
    assert not t.is_alive() and p._overlay is None


def test_write_allocates_no_arrays(fifo):
    """The audio-thread path: tracemalloc sees numpy's data buffers; 2000 writes (with the
    guard, the idle drain and the FIONREAD calls) must not leave or churn any."""
    path, reader = fifo
    p = MicPipe(path)
    p.open()
    x = np.full(HOP, 0.1, np.float32)
    for _ in range(50):
        p.write(x)
        read_all(reader)
    sink = [bytearray(BLOCK_BYTES)]  # the reader reads into this (os.read would allocate)
    tracemalloc.start()
    try:
        peak0 = tracemalloc.get_traced_memory()[1]
        for i in range(2000):
            p.write(x)
            if i % 3 == 0:
                os.readv(reader, sink)
        peak = tracemalloc.get_traced_memory()[1] - peak0
    finally:
        tracemalloc.stop()
    # float objects for the statistics come and go; a block-sized array would be >= 1920 B
    assert peak < 1024, f"peak {peak} B above the start: an array was allocated"


def test_a_second_writer_is_refused_with_the_first_ones_pid(fifo, tmp_path):
    """Two writers would interleave their blocks: another process holding the FIFO (a
    second PercepNet, or a self-test from another process) makes open() fail, naming it;
    once it is gone, open() works."""
    import subprocess
    import sys

    path, reader = fifo
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom percepnet.app.mic_pipe import MicPipe\n"
         f"p = MicPipe({path!r}); p.open(); print('open', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "open"
        p = MicPipe(path)
        with pytest.raises(OSError, match=f"another process \\(pid {child.pid}\\) already writes"):
            p.open()
        assert not p.is_open
    finally:
        child.kill()
        child.wait(10)
        child.stdout.close()
    p.open()
    assert p.is_open
    p.close()
