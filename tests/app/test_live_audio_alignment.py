"""The browser test's comparison (tests/live_audio.realign_steps) on recordings made here with
known faults: it must undo a client's inserted audio, and must not hide lost audio."""
from __future__ import annotations

import numpy as np

from live_audio import RATE, noisy_speech, realign, realign_steps, snr_db


def _recording(ref: np.ndarray, lead: int, edits: list[tuple[float, int]]) -> np.ndarray:
    """``ref`` after ``lead`` samples of silence, with ``n`` zeros inserted (n > 0) or ``-n``
    samples cut out (n < 0) at each (time_s, n), as a browser's buffer control would."""
    out, last = [np.zeros(lead)], 0
    for t, n in edits:
        at = int(t * RATE)
        out.append(ref[last:at])
        if n > 0:
            out.append(np.zeros(n))
            last = at
        else:
            last = at - n
    out.append(ref[last:])
    out.append(np.zeros(RATE))
    return np.concatenate(out)


def test_inserted_audio_is_stepped_over():
    ref, _ = noisy_speech(6.0, snr_db=5.0)
    rec = _recording(ref, 3000, [(2.27, 653), (4.74, 144), (5.34, 37)])
    mapped, steps = realign_steps(ref, rec)
    assert [n for _, n in steps] == [653, 144, 37], steps
    assert all(abs(t - t0) < 0.01 for (t, _), t0 in zip(steps, (2.27, 4.74, 5.34))), steps
    sl = slice(RATE // 2, len(ref) - RATE // 2)
    np.testing.assert_array_equal(mapped[sl], ref[sl])  # sample for sample
    assert snr_db(ref[sl], realign(ref, rec)[sl]) < 15.0  # what one lag per 0.25 s made of it


def test_lost_audio_still_counts_as_error():
    ref, _ = noisy_speech(6.0, snr_db=5.0)
    cuts = [(2.0, -240), (3.0, -240), (4.0, -240)]  # 3 x 5 ms lost
    rec = _recording(ref, 3000, cuts)
    mapped, steps = realign_steps(ref, rec)
    assert [n for _, n in steps] == [-240, -240, -240], steps
    lost = sum(float(np.sum(ref[int(t * RATE):int(t * RATE) - n] ** 2)) for t, n in cuts)
    error = float(np.sum((mapped - ref)[RATE // 2:-RATE // 2] ** 2))
    assert lost > 0 and error >= 0.5 * lost, (error, lost)
