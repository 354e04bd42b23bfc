"""A running estimate of the input's signal-to-noise ratio, and the postfilter's fade by it.

The envelope postfilter (``postfilter.py``) sharpens the network's gains: it pushes every
gain below 1 further down. On noisy speech that removes residual noise; on clean speech,
where the network still returns gains of about 0.7 on the speech frames of voices it never
heard, it only removes speech. The chain therefore fades the postfilter out where the input
is clearly clean, judged from the input alone, per 10 ms frame:

- level: the newest frame's total band energy in dB, smoothed recursively
  (``LEVEL_SMOOTHING``: a time constant of about 30 ms);
- over the last ``WINDOW_FRAMES`` (4 s): the noise floor is the level's minimum (minimum
  statistics, never below ``FLOOR_MIN_DB``, digital silence) and the speech level its
  maximum; the SNR estimate is their difference;
- the postfilter's weight falls linearly from 1 at ``FADE_START_DB`` to 0 at ``FADE_END_DB``;
  the chain's band gains are ``w * postfiltered + (1 - w) * the network's``.

Only a clean chain reads that high: speech whose pauses fall to a hiss 65 dB or more below
it (a quiet studio, a gated headset, edited recordings, speech synthesis). An ordinary room
and microphone (a floor 30-40 dB below the speech) reads as noisy and keeps the postfilter.
A wrong call costs little either way: the postfilter off moves PESQ-WB by at most 0.05 in
any SNR bin of the unseen-voices set. The figures, and the choice of window and fade
points, are in ``weights/README.md`` ("Quality on unseen voices").

The state is two preallocated arrays of the synthesis state (``processor.Synthesis``: a ring
of recent levels and [smoothed level, ring position, frames seen]); all zeros is the state
of a new stream. No allocation, no locks: safe in the audio callback.
"""
from __future__ import annotations

import math

from numba import njit

__all__ = ["update_input_snr", "postfilter_weight", "WINDOW_FRAMES", "FADE_START_DB",
           "FADE_END_DB"]

#: Recursive smoothing of the frame level in dB: level <- a level + (1 - a) frame, a = 0.7
#: per 10 ms frame (time constant -10 ms / ln 0.7 = 28 ms): syllables survive, clicks do not.
LEVEL_SMOOTHING = 0.7
#: The window of the floor and the speech level: 4 s (400 frames) holds at least one pause of
#: running speech (a 2 s window missed them between longer phrases); a noise that starts
#: after silence becomes the floor 4 s later, until when the postfilter may be faded.
WINDOW_FRAMES = 400
#: Lowest floor in dB of the band-energy sum: -100 dB, where the chain calls a frame
#: digitally silent (``denoiser.SILENCE_ENERGY`` = 1e-10).
FLOOR_MIN_DB = -100.0
#: The postfilter fades out between these SNR estimates (dB): fully on up to 50 dB, off from
#: 65 dB. The unseen set's noisy items read up to 53 dB at their median, its clean items and a
#: -100 dBFS hiss under phrased speech about 70 dB.
FADE_START_DB = 50.0
FADE_END_DB = 65.0

# state slots
_ACC, _POS, _COUNT = 0, 1, 2


@njit(cache=True, nogil=True)
def update_input_snr(band_energy, ring, state):
    """Push one frame (float64 (34,) band energies of the newest input frame); returns the
    SNR estimate in dB (speech level over noise floor, >= 0; 0 before the first frame).
    No allocation."""
    total = 0.0
    for b in range(band_energy.shape[0]):
        total += band_energy[b]
    frame_db = 10.0 * math.log10(max(total, 1e-30))
    count = int(state[_COUNT])
    if count == 0:
        acc = frame_db
    else:
        acc = LEVEL_SMOOTHING * state[_ACC] + (1.0 - LEVEL_SMOOTHING) * frame_db
    state[_ACC] = acc
    n = ring.shape[0]
    pos = int(state[_POS])
    ring[pos] = acc
    pos = (pos + 1) % n
    state[_POS] = pos
    count = min(count + 1, n)
    state[_COUNT] = count
    peak = -1e30
    floor = 1e30
    for k in range(count):  # the ring fills from slot 0: its first `count` slots are valid
        v = ring[k]
        if v > peak:
            peak = v
        if v < floor:
            floor = v
    return max(0.0, peak - max(floor, FLOOR_MIN_DB))


@njit(cache=True, nogil=True)
def postfilter_weight(snr_db):
    """The postfilter's share, 1 (full) .. 0 (off), for an SNR estimate in dB."""
    if snr_db <= FADE_START_DB:
        return 1.0
    if snr_db >= FADE_END_DB:
        return 0.0
    return (FADE_END_DB - snr_db) / (FADE_END_DB - FADE_START_DB)
