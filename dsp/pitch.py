"""Streaming pitch estimator and tracker (spec section 3, design of section 3.3 adapted).

Per 10 ms hop the tracker

1. decimates the 48 kHz input by 4 to 12 kHz with a windowed-sinc low-pass evaluated only at
   the kept samples;
2. whitens the 12 kHz signal with a 4th-order LPC inverse filter estimated on the newest
   20 ms window, so that the correlation is not dominated by the first formant;
3. computes the normalised correlation of the newest window with every lag 15..192 at 12 kHz
   (periods 60..768 at 48 kHz) - the coarse search;
4. applies an octave guard (a lag whose half-lag correlates nearly as well is penalised);
5. runs one step of a Viterbi tracker over the lag states, and decides the frame that is
   ``LOOKAHEAD_FRAMES`` (M = 2) hops old by back-tracing from the best newest state
   (fixed-lag decision, so the decision for frame l uses frames up to l + M);
6. refines the decided lag: parabolic interpolation on that frame's 12 kHz correlation row,
   then a fine search of integer periods at 48 kHz around it on the full-rate signal.

Frame timing: push ``n`` delivers samples ``[n*480, (n+1)*480)``; frame ``n``'s analysis window
is ``[(n-1)*480, (n+1)*480)``. Push ``n`` returns the decision for frame ``n - 2`` and the best
correlation of frame ``n`` (a look-ahead voicing cue). The low-pass adds a 23.5-sample
(0.5 ms) group delay to the 12 kHz path; it is small against the 20 ms window and is not
compensated (doing so would need extra look-ahead). The 48 kHz fine search uses exact timing.

All per-frame work is in numba ``@njit`` functions working on the preallocated arrays of a
:class:`PitchState`; nothing is allocated per frame.
"""
from __future__ import annotations

import math
import typing

import numpy as np
from numba import njit

from .constants import (
    HOP_SIZE,
    LOOKAHEAD_FRAMES,
    PITCH_MAX_PERIOD,
    PITCH_MIN_PERIOD,
    SAMPLE_RATE_HZ,
    WINDOW_SIZE,
)

# ---------------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------------

#: Decimation factor of the coarse search: 48 kHz -> 12 kHz. 12 kHz keeps speech harmonics up
#: to the 4 kHz low-pass cut-off while making the full-range lag search 16x cheaper than at
#: 48 kHz (4x fewer lags, 4x shorter window).
DECIMATION = 4
LOW_RATE_HZ = SAMPLE_RATE_HZ // DECIMATION  # 12000
#: Hop and window at 12 kHz: 120 and 240 samples.
HOP_LOW = HOP_SIZE // DECIMATION
WINDOW_LOW = WINDOW_SIZE // DECIMATION
#: Lag range at 12 kHz: ceil(60/4) = 15 .. floor(768/4) = 192 samples (800 Hz .. 62.5 Hz).
LAG_MIN_LOW = -(-PITCH_MIN_PERIOD // DECIMATION)
LAG_MAX_LOW = PITCH_MAX_PERIOD // DECIMATION
N_LAGS = LAG_MAX_LOW - LAG_MIN_LOW + 1  # 178 Viterbi states

#: Input high-pass: 2nd-order Butterworth at HIGHPASS_HZ. Amateur recordings and cheap
#: microphones carry DC offset and rumble below 50 Hz (a fifth of the power of one of the test
#: fixtures); left in, it correlates at every lag and buries the pitch. The harmonics keep the
#: periodicity when a 62.5 Hz fundamental is attenuated, so a cut-off near the lowest pitch costs
#: nothing.
HIGHPASS_HZ = 60.0

#: Decimation low-pass: 48-tap Hann-windowed sinc, -6 dB at 4 kHz. The Hann main lobe makes the
#: transition about 3.1 * 48 kHz / 48 = 3.1 kHz wide (pass band to about 2.5 kHz, stop band from
#: about 5.5 kHz), so what folds back around the 6 kHz Nyquist frequency is attenuated.
DECIM_TAPS = 48
DECIM_CUTOFF_HZ = 4000.0

#: LPC whitening order (as RNNoise's pitch analysis), noise floor (-40 dB: r0 * 1.0001),
#: Gaussian-like lag window r_i * (1 - (0.008 i)^2) and bandwidth expansion a_i * 0.9^i.
LPC_ORDER = 4
LPC_NOISE_FLOOR = 1.0001
LPC_LAG_WINDOW = 0.008
LPC_BW_EXPANSION = 0.9

#: Energy floor added to both energies of the normalised correlation: the energy of 240
#: samples at -120 dBFS (amplitude 1e-6). It makes digital silence give exactly 0 and keeps
#: the ratio finite without noticeably lowering the correlation of audible signals.
CORR_ENERGY_FLOOR = WINDOW_LOW * 1e-12

#: Octave guard (idea of LPCNet's tracker): a lag L whose best correlation at L/2 is at least
#: 1/1.1 of its own is scaled by 0.8, so that a true period P beats its double 2P, which
#: correlates about as well. At P itself the half-lag P/2 correlates poorly once the spectrum
#: is whitened (odd harmonics are in anti-phase there), so this does not create octave-up errors.
OCTAVE_RATIO = 1.1
OCTAVE_PENALTY = 0.8
OCTAVE_MULT = False
OCTAVE_THIRD = True
OCTAVE_WEIGHT = 0.5

#: Viterbi transitions. Between consecutive frames (10 ms) a path may move within
#: +-TRANSITION_LOG_RANGE in log-period at a cost of TRANSITION_COST * (log(L/L'))^2; anything
#: else is a jump from the previous frame's best state at the fixed cost JUMP_COST. Scores are
#: correlations (at most 1 per frame), so a jump costs the same as about JUMP_COST frames of
#: perfect correlation. Vibrato of +-5 % at 5 Hz moves about 1.6 % per frame (cost 0.03);
#: a 10 % step costs 1.0, i.e. as much as a jump.
TRANSITION_LOG_RANGE = 0.12
TRANSITION_COST = 100.0
JUMP_COST = 1.0
TRANSITION_MODE = 0
TRANSITION_REL = 0.02
TRANSITION_WMIN = 2
TRANSITION_WMAX = 4
TRANSITION_LAG_COST = 0.02

#: Fine search at 48 kHz: integer periods within +-FINE_RADIUS of 4x the interpolated 12 kHz lag.
FINE_RADIUS = 2

#: Period reported before the first decision and the lag the tracker starts on (187.5 Hz).
INITIAL_PERIOD = 256

#: Pitch correlation above which a frame counts as voiced. Measured on this tracker (see
#: tests/dsp/test_pitch.py): pure white noise and silence give decided-frame correlations
#: below about 0.25 (the best of 178 lags of a 240-sample correlation of noise is about
#: 3 standard deviations of 1/sqrt(240) = 0.065), while voiced speech frames of the clean
#: fixtures sit mostly between 0.5 and 0.95. 0.4 leaves margin above the noise ceiling.
VOICING_THRESHOLD = 0.4

#: Sample buffers. At 48 kHz: the decided frame (M hops old) has its window ending M hops before
#: the newest sample, 2 hops long, plus the longest period of history: 4*480 + 768 = 2688.
X48_LEN = HOP_SIZE * (LOOKAHEAD_FRAMES + 2) + PITCH_MAX_PERIOD
#: At 12 kHz: the newest window, the longest lag of history and the LPC filter memory.
X12_LEN = WINDOW_LOW + LAG_MAX_LOW + LPC_ORDER  # 436
#: Whitened signal: newest window plus the longest lag.
W12_LEN = WINDOW_LOW + LAG_MAX_LOW  # 432
#: Ring depth of per-frame rows kept for the fixed-lag decision: frames n-M .. n.
RING = LOOKAHEAD_FRAMES + 1


def _design_decimator() -> np.ndarray:
    """Hann-windowed sinc low-pass, unit DC gain, float64[DECIM_TAPS] (index 0 = newest)."""
    n = np.arange(DECIM_TAPS) - (DECIM_TAPS - 1) / 2.0
    fc = DECIM_CUTOFF_HZ / SAMPLE_RATE_HZ
    h = 2.0 * fc * np.sinc(2.0 * fc * n) * np.hanning(DECIM_TAPS + 2)[1:-1]
    return h / h.sum()


def _design_highpass() -> np.ndarray:
    """2nd-order Butterworth high-pass (bilinear transform): float64[5] = b0, b1, b2, a1, a2."""
    k = math.tan(math.pi * HIGHPASS_HZ / SAMPLE_RATE_HZ)
    q = 1.0 / math.sqrt(2.0)
    norm = 1.0 / (1.0 + k / q + k * k)
    b0 = norm
    return np.array([b0, -2.0 * b0, b0, 2.0 * (k * k - 1.0) * norm, (1.0 - k / q + k * k) * norm])


def _design_transitions() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per state i: first allowed predecessor index, and the cost of each allowed predecessor.

    Returns (lo int64[K], width int64[K], cost float64[K, W]) with cost[i, k] the transition
    cost from state lo[i] + k to state i, k < width[i].
    """
    lags = np.arange(LAG_MIN_LOW, LAG_MAX_LOW + 1, dtype=np.float64)
    lo = np.zeros(N_LAGS, dtype=np.int64)
    width = np.zeros(N_LAGS, dtype=np.int64)
    rows = []
    for i in range(N_LAGS):
        j = np.arange(N_LAGS)
        if TRANSITION_MODE == 0:
            d = np.log(lags[i] / lags[j])
            ok = np.abs(d) <= TRANSITION_LOG_RANGE
            cost = TRANSITION_COST * d * d
        else:
            w = int(np.clip(round(TRANSITION_REL * lags[i]), TRANSITION_WMIN, TRANSITION_WMAX))
            d = (j - i).astype(np.float64)
            ok = np.abs(d) <= w
            cost = TRANSITION_LAG_COST * d * d
        idx = np.nonzero(ok)[0]
        lo[i] = idx[0]
        width[i] = idx.size
        rows.append(cost[idx])
    table = np.zeros((N_LAGS, int(width.max())))
    for i, r in enumerate(rows):
        table[i, : r.size] = r
    return lo, width, table


#: Module-level tables; numba freezes them into the compiled code as constants.
_DECIM_H = _design_decimator()
_HP = _design_highpass()
_TRANS_LO, _TRANS_W, _TRANS_COST = _design_transitions()
_LPC_LAG_WIN = np.array([1.0] + [1.0 - (LPC_LAG_WINDOW * i) ** 2
                                 for i in range(1, LPC_ORDER + 1)])
_LPC_BW = LPC_BW_EXPANSION ** np.arange(LPC_ORDER + 1, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------

class PitchState(typing.NamedTuple):
    """All memory of the tracker; numpy arrays only so it can be passed whole to njit code.

    Attributes (shapes; ``R = LOOKAHEAD_FRAMES + 1``, ``K = N_LAGS = 178``):
        x48: float64[2688] newest high-passed input samples at 48 kHz (oldest first).
        hp: float64[2] high-pass filter state (transposed direct form II).
        x12: float64[436] newest decimated samples at 12 kHz (oldest first).
        w12: float64[432] scratch: whitened x12 of the current push.
        cum: float64[433] scratch: cumulative sum of w12**2.
        lpc: float64[5] scratch: LPC inverse filter (a_0 = 1).
        ac: float64[5] scratch: autocorrelation for the LPC.
        corr: float64[R, K] raw normalised correlation rows of frames n-M..n (ring by frame).
        score: float64[K] scratch: octave-guarded correlation of the newest frame.
        dp: float64[K] Viterbi path scores after the last frame (max is 0).
        dp_new: float64[K] scratch for the next path scores.
        back: int64[R, K] back-pointers (predecessor state) of frames n-M..n (ring by frame).
        frame: int64[1] number of pushes so far.
    """

    x48: np.ndarray
    hp: np.ndarray
    x12: np.ndarray
    w12: np.ndarray
    cum: np.ndarray
    lpc: np.ndarray
    ac: np.ndarray
    corr: np.ndarray
    score: np.ndarray
    dp: np.ndarray
    dp_new: np.ndarray
    back: np.ndarray
    frame: np.ndarray


def make_pitch_state() -> PitchState:
    """Allocate a tracker state in its initial (reset) condition."""
    state = PitchState(
        x48=np.zeros(X48_LEN),
        hp=np.zeros(2),
        x12=np.zeros(X12_LEN),
        w12=np.zeros(W12_LEN),
        cum=np.zeros(W12_LEN + 1),
        lpc=np.zeros(LPC_ORDER + 1),
        ac=np.zeros(LPC_ORDER + 1),
        corr=np.zeros((RING, N_LAGS)),
        score=np.zeros(N_LAGS),
        dp=np.zeros(N_LAGS),
        dp_new=np.zeros(N_LAGS),
        back=np.zeros((RING, N_LAGS), dtype=np.int64),
        frame=np.zeros(1, dtype=np.int64),
    )
    reset_pitch_state(state)
    return state


@njit(cache=True, nogil=True)
def reset_pitch_state(state: PitchState) -> None:
    """Zero every buffer in place and put the tracker back on its initial lag.

    The path scores start at 0 on the lag of ``INITIAL_PERIOD`` and at ``-JUMP_COST`` elsewhere,
    which is what they would be after a frame of zero correlation, so silence keeps the initial
    period and the back-pointers (all pointing at the initial lag) are consistent.
    """
    init = INITIAL_PERIOD // DECIMATION - LAG_MIN_LOW
    state.x48[:] = 0.0
    state.hp[:] = 0.0
    state.x12[:] = 0.0
    state.w12[:] = 0.0
    state.cum[:] = 0.0
    state.lpc[:] = 0.0
    state.ac[:] = 0.0
    state.corr[:, :] = 0.0
    state.score[:] = 0.0
    state.dp[:] = -JUMP_COST
    state.dp[init] = 0.0
    state.dp_new[:] = 0.0
    state.back[:, :] = init
    state.frame[0] = 0


# ---------------------------------------------------------------------------------------------
# Per-frame stages
# ---------------------------------------------------------------------------------------------

@njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz"})
def _push_samples(state: PitchState, hop: np.ndarray) -> None:
    """High-pass one hop into x48 and shift its 120 decimated samples into x12."""
    x48 = state.x48
    x12 = state.x12
    x48[: X48_LEN - HOP_SIZE] = x48[HOP_SIZE:]
    z1 = state.hp[0]
    z2 = state.hp[1]
    b0, b1, b2, a1, a2 = _HP[0], _HP[1], _HP[2], _HP[3], _HP[4]
    for t in range(HOP_SIZE):
        u = hop[t]
        y = b0 * u + z1
        z1 = b1 * u - a1 * y + z2
        z2 = b2 * u - a2 * y
        x48[X48_LEN - HOP_SIZE + t] = y
    state.hp[0] = z1
    state.hp[1] = z2
    x12[: X12_LEN - HOP_LOW] = x12[HOP_LOW:]
    base = X48_LEN - HOP_SIZE + DECIMATION - 1
    out = X12_LEN - HOP_LOW
    for j in range(HOP_LOW):
        pos = base + DECIMATION * j
        acc = 0.0
        for k in range(DECIM_TAPS):
            acc += _DECIM_H[k] * x48[pos - k]
        x12[out + j] = acc


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz"})
def _whiten(state: PitchState) -> None:
    """Estimate the LPC inverse filter on the newest window and whiten x12 into w12.

    The whole buffer (window plus lag history) is filtered with this frame's coefficients, so
    the target and the lagged segment of the correlation see the same filter.
    """
    x12 = state.x12
    ac = state.ac
    a = state.lpc
    start = X12_LEN - WINDOW_LOW
    for i in range(LPC_ORDER + 1):
        acc = 0.0
        for t in range(start + i, X12_LEN):
            acc += x12[t] * x12[t - i]
        ac[i] = acc * _LPC_LAG_WIN[i]
    # Levinson-Durbin recursion for a_1..a_p of A(z) = 1 + sum a_i z^-i.
    a[:] = 0.0
    a[0] = 1.0
    err = ac[0] * LPC_NOISE_FLOOR
    if err > 0.0:
        for i in range(1, LPC_ORDER + 1):
            acc = ac[i]
            for j in range(1, i):
                acc += a[j] * ac[i - j]
            k = -acc / err
            # Symmetric in-place update; for j == i - j both lines write the same value.
            for j in range(1, i // 2 + 1):
                aj = a[j]
                aij = a[i - j]
                a[j] = aj + k * aij
                a[i - j] = aij + k * aj
            a[i] = k
            err *= 1.0 - k * k
            if err <= 0.0:
                break
    for i in range(LPC_ORDER + 1):
        a[i] *= _LPC_BW[i]
    w = state.w12
    for t in range(W12_LEN):
        acc = x12[t + LPC_ORDER]
        for i in range(1, LPC_ORDER + 1):
            acc += a[i] * x12[t + LPC_ORDER - i]
        w[t] = acc


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz"})
def _correlate(state: PitchState, row: np.ndarray) -> None:
    """Normalised correlation of the newest whitened window with every lag, into ``row``.

    row[i] = sum x[t] x[t-L] / sqrt((sum x[t]^2 + E0) (sum x[t-L]^2 + E0)), L = LAG_MIN_LOW + i,
    t over the newest 240 samples; values in [-1, 1].
    """
    w = state.w12
    cum = state.cum
    cum[0] = 0.0
    for t in range(W12_LEN):
        cum[t + 1] = cum[t] + w[t] * w[t]
    t0 = W12_LEN - WINDOW_LOW
    e0 = cum[W12_LEN] - cum[t0] + CORR_ENERGY_FLOOR
    for i in range(N_LAGS):
        lag = LAG_MIN_LOW + i
        acc = 0.0
        for t in range(t0, W12_LEN):
            acc += w[t] * w[t - lag]
        el = cum[W12_LEN - lag] - cum[t0 - lag]
        if el < 0.0:
            el = 0.0
        row[i] = acc / math.sqrt(e0 * (el + CORR_ENERGY_FLOOR))


@njit(cache=True, nogil=True)
def _near(row: np.ndarray, num: int, den: int) -> float:
    """Best correlation at the two integer lags around LAG_MIN_LOW-based lag num/den."""
    lo = num // den
    hi = -(-num // den)
    v = row[lo - LAG_MIN_LOW]
    if hi <= LAG_MAX_LOW and row[hi - LAG_MIN_LOW] > v:
        v = row[hi - LAG_MIN_LOW]
    return v


@njit(cache=True, nogil=True)
def _octave_guard(row: np.ndarray, score: np.ndarray) -> float:
    """Penalise lags whose sub-multiples correlate too; return the best guarded score."""
    best = 0.0
    for i in range(N_LAGS):
        lag = LAG_MIN_LOW + i
        s = row[i]
        sub = 0.0
        if lag >= 2 * LAG_MIN_LOW:
            sub = max(sub, _near(row, lag, 2))
        if OCTAVE_THIRD and lag >= 3 * LAG_MIN_LOW:
            sub = max(sub, _near(row, lag, 3))
        if OCTAVE_MULT:
            if s > 0.0 and s < OCTAVE_RATIO * sub:
                s *= OCTAVE_PENALTY
        else:
            s -= OCTAVE_WEIGHT * sub
        score[i] = s
        if s > best:
            best = s
    return best


@njit(cache=True, nogil=True)
def _viterbi_step(state: PitchState, back_row: np.ndarray) -> None:
    """Advance the path scores by one frame and record each state's best predecessor."""
    dp = state.dp
    new = state.dp_new
    score = state.score
    prev_best = 0
    for j in range(1, N_LAGS):
        if dp[j] > dp[prev_best]:
            prev_best = j
    jump = dp[prev_best] - JUMP_COST
    top = -1e300
    for i in range(N_LAGS):
        best = jump
        arg = prev_best
        lo = _TRANS_LO[i]
        for k in range(_TRANS_W[i]):
            v = dp[lo + k] - _TRANS_COST[i, k]
            if v > best:
                best = v
                arg = lo + k
        v = best + score[i]
        new[i] = v
        back_row[i] = arg
        if v > top:
            top = v
    for i in range(N_LAGS):
        dp[i] = new[i] - top


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz"})
def _fine_period(x48: np.ndarray, centre: float) -> int:
    """Best integer period at 48 kHz within +-FINE_RADIUS of ``centre`` for the decided frame.

    The decided frame's window is x48[start : start + 960] with start = X48_LEN - 4 * 480;
    the criterion is the normalised correlation with the window ``period`` samples earlier.
    """
    start = X48_LEN - (LOOKAHEAD_FRAMES + 2) * HOP_SIZE
    c = int(math.floor(centre + 0.5))
    lo = max(PITCH_MIN_PERIOD, c - FINE_RADIUS)
    hi = min(PITCH_MAX_PERIOD, c + FINE_RADIUS)
    if lo > hi:
        return min(max(c, PITCH_MIN_PERIOD), PITCH_MAX_PERIOD)
    exx = CORR_ENERGY_FLOOR
    for t in range(start, start + WINDOW_SIZE):
        exx += x48[t] * x48[t]
    best_p = min(max(c, lo), hi)
    best_v = -2.0
    for p in range(lo, hi + 1):
        xy = 0.0
        yy = CORR_ENERGY_FLOOR
        for t in range(start, start + WINDOW_SIZE):
            y = x48[t - p]
            xy += x48[t] * y
            yy += y * y
        v = xy / math.sqrt(exx * yy)
        if v > best_v:
            best_v = v
            best_p = p
    return best_p


@njit(cache=True, nogil=True)
def pitch_push(state: PitchState, hop: np.ndarray) -> tuple[int, float, float]:
    """Push one hop and return the decision for the frame ``LOOKAHEAD_FRAMES`` hops old.

    Args:
        state: tracker state (updated in place).
        hop: float64[480], the next 480 input samples at 48 kHz (push n: samples
            [n*480, (n+1)*480)).

    Returns:
        (period, corr, newest_corr): ``period`` int in [60, 768], the pitch period of frame
        n-2 in samples at 48 kHz; ``corr`` float in [0, 1], the normalised correlation of
        frame n-2's whitened 12 kHz window at that period (interpolated peak); ``newest_corr``
        float in [0, 1], the best octave-guarded correlation of frame n. For n < 2 the first
        two values are ``INITIAL_PERIOD`` and 0.
    """
    n = state.frame[0]
    slot = n % RING
    _push_samples(state, hop)
    _whiten(state)
    row = state.corr[slot]
    _correlate(state, row)
    newest = _octave_guard(row, state.score)
    _viterbi_step(state, state.back[slot])
    state.frame[0] = n + 1
    if newest > 1.0:
        newest = 1.0
    if n < LOOKAHEAD_FRAMES:
        return INITIAL_PERIOD, 0.0, newest

    # Fixed-lag back-trace from the best newest state to frame n - M.
    dp = state.dp
    s = 0
    for j in range(1, N_LAGS):
        if dp[j] > dp[s]:
            s = j
    for m in range(LOOKAHEAD_FRAMES):
        s = state.back[(n - m) % RING, s]

    # Parabolic interpolation on the decided frame's correlation row.
    dec = state.corr[(n - LOOKAHEAD_FRAMES) % RING]
    b = dec[s]
    delta = 0.0
    peak = b
    if 0 < s < N_LAGS - 1:
        a = dec[s - 1]
        c = dec[s + 1]
        den = a - 2.0 * b + c
        if den < 0.0:
            delta = 0.5 * (a - c) / den
            if delta > 0.5:
                delta = 0.5
            elif delta < -0.5:
                delta = -0.5
            peak = b - 0.25 * (a - c) * delta
    centre = DECIMATION * (LAG_MIN_LOW + s + delta)
    period = _fine_period(state.x48, centre)
    corr = peak
    if not corr > 0.0:
        corr = 0.0
    elif corr > 1.0:
        corr = 1.0
    return period, corr, newest


@njit(cache=True, nogil=True)
def _track_batch(state: PitchState, x: np.ndarray, n_frames: int,
                 periods: np.ndarray, corrs: np.ndarray) -> None:
    """Push ``x`` (a whole number of hops, n_frames + M of them) and collect per-frame results."""
    n_push = x.shape[0] // HOP_SIZE
    for p in range(n_push):
        period, corr, _ = pitch_push(state, x[p * HOP_SIZE:(p + 1) * HOP_SIZE])
        f = p - LOOKAHEAD_FRAMES
        if 0 <= f < n_frames:
            periods[f] = period
            corrs[f] = corr


def track_pitch(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Track a whole signal offline with a fresh state (batch helper for tests and training).

    Args:
        x: float[N] signal at 48 kHz.

    Returns:
        (periods int64[n_frames] in [60, 768] samples, corrs float64[n_frames] in [0, 1]),
        n_frames = ceil(N / 480); entry l describes frame l, window [(l-1)*480, (l+1)*480).
        The signal is zero-padded to whole hops plus M hops so the last frames are decided.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    n_frames = -(-x.shape[0] // HOP_SIZE)
    padded = np.zeros((n_frames + LOOKAHEAD_FRAMES) * HOP_SIZE)
    padded[: x.shape[0]] = x
    periods = np.full(n_frames, INITIAL_PERIOD, dtype=np.int64)
    corrs = np.zeros(n_frames)
    _track_batch(make_pitch_state(), padded, n_frames, periods, corrs)
    return periods, corrs
