"""The input-SNR estimate and the postfilter's fade by it (dsp/input_snr.py), on real speech
and noise recordings, alone and inside the chain."""
from __future__ import annotations

import numpy as np
import pytest

from audio_fixtures import load_fixture, mix_at_snr

from percepnet.dsp.constants import HOP_SIZE, LOOKAHEAD_FRAMES, N_BANDS
from percepnet.dsp.features import analyze_hop, make_analysis
from percepnet.dsp.input_snr import (
    FADE_END_DB,
    FADE_START_DB,
    WINDOW_FRAMES,
    postfilter_weight,
    update_input_snr,
)
from percepnet.dsp.postfilter import envelope_postfilter
from percepnet.dsp.processor import StreamProcessor

RATE = 48_000


def _snr_track(x: np.ndarray) -> np.ndarray:
    """The estimate after every 10 ms frame of ``x``, as the chain computes it."""
    a = make_analysis()
    ring, state = np.zeros(WINDOW_FRAMES), np.zeros(3)
    out = []
    for n in range(x.size // HOP_SIZE):
        slot = analyze_hop(a, x[n * HOP_SIZE:(n + 1) * HOP_SIZE])
        newest = (slot + LOOKAHEAD_FRAMES) % a.energy_ring.shape[0]
        out.append(update_input_snr(a.energy_ring[newest], ring, state))
    return np.array(out)


def _speech(seconds: float) -> np.ndarray:
    """Phrases of about 2 s (the halves of the speech fixtures, peak 0.1), each followed by a
    0.4 s pause of digital silence."""
    pause = np.zeros(int(0.4 * RATE))
    halves = [h for x in ("fr", "ru", "da")
              for h in np.array_split(load_fixture(f"speech_{x}.ogg"), 2)]
    one = np.concatenate([p for h in halves for p in (h, pause)])
    s = np.tile(one, int(np.ceil(seconds * RATE / one.size)))[: int(seconds * RATE)]
    return 0.1 * s / np.max(np.abs(s))


def _with_floor(speech: np.ndarray, floor_dbfs: float, seed: int) -> np.ndarray:
    """The speech over a steady white noise at ``floor_dbfs`` (RMS)."""
    rng = np.random.default_rng(seed)
    return speech + 10 ** (floor_dbfs / 20) * rng.standard_normal(speech.size)


def test_the_weight_ramps_between_the_fade_points():
    assert postfilter_weight(0.0) == 1.0 and postfilter_weight(FADE_START_DB) == 1.0
    assert postfilter_weight(FADE_END_DB) == 0.0 and postfilter_weight(200.0) == 0.0
    mid = 0.5 * (FADE_START_DB + FADE_END_DB)
    assert postfilter_weight(mid) == pytest.approx(0.5)


def test_a_clean_chain_reads_high_and_noisy_speech_low():
    speech = _speech(10.0)
    # a clean chain: the pauses hold only a -100 dBFS hiss (a quiet studio, a gated headset)
    track = _snr_track(_with_floor(speech, -100.0, 0))
    clean = track[500:]  # once its pauses (every ~2.4 s) have filled the window
    assert np.min(clean) > FADE_END_DB, np.percentile(clean, [0, 50, 100])
    noise = np.tile(load_fixture("noise_vacuum.ogg"), 4)[: speech.size]
    for snr_db in (0.0, 10.0, 20.0):
        noisy = _snr_track(mix_at_snr(speech, noise, snr_db))[300:]
        assert np.max(noisy) < FADE_START_DB, (snr_db, np.percentile(noisy, [10, 50, 90]))


def test_an_ordinary_room_keeps_the_postfilter():
    """The limit of the estimate: a room and microphone hiss at -60 dBFS (about 35 dB below
    the speech's loudest syllables) reads as noisy, so the postfilter stays on."""
    track = _snr_track(_with_floor(_speech(8.0), -60.0, 1))[300:]
    assert np.max(track) < FADE_START_DB, np.percentile(track, [10, 50, 90])


def test_a_noise_that_starts_after_silence_is_the_floor_within_the_window():
    """A stream that starts in digital silence (a muted microphone) and then carries only
    noise: the estimate is high at first (the floor is the silence) and falls to the
    noise's own spread once the silence has left the floor window."""
    noise = 0.05 * np.tile(load_fixture("noise_vacuum.ogg"), 2)[: 5 * RATE]
    x = np.concatenate([np.zeros(RATE), noise])
    track = _snr_track(x)
    onset = RATE // HOP_SIZE
    back = onset + WINDOW_FRAMES + 5
    assert track[onset + 10] > FADE_END_DB  # the silence is still the floor
    assert np.all(track[back:] < FADE_START_DB), track[back:].max()


class _Constant:
    """A gain source: every band's gain 0.6, no comb."""

    def reset(self) -> None:
        pass

    def frame(self, analysis, slot, gains, strengths) -> None:
        gains[:] = 0.6
        strengths[:] = 0.0


def _effective_gains(x: np.ndarray, use_postfilter: bool) -> np.ndarray:
    proc = StreamProcessor(_Constant(), use_comb=False, use_postfilter=use_postfilter)
    proc.process(x)
    return proc.synthesis.band_gain.copy()


def test_the_chain_fades_the_postfilter_out_on_clean_input_only():
    speech = _speech(6.0)
    clean = _with_floor(speech, -100.0, 2)
    noisy = mix_at_snr(speech, np.tile(load_fixture("noise_vacuum.ogg"), 4)[: speech.size], 5.0)
    # clean: the network's gains as they are, as without the postfilter
    np.testing.assert_allclose(_effective_gains(clean, True), 0.6)
    np.testing.assert_allclose(_effective_gains(clean, False), 0.6)
    # noisy: the postfilter acts as it always did
    got = _effective_gains(noisy, True)
    a = make_analysis()
    for n in range(noisy.size // HOP_SIZE):
        slot = analyze_hop(a, noisy[n * HOP_SIZE:(n + 1) * HOP_SIZE])
    want = np.zeros(N_BANDS)
    envelope_postfilter(np.full(N_BANDS, 0.6), a.energy_ring[slot], want)
    np.testing.assert_allclose(got, want)
    assert not np.allclose(got, 0.6)
