"""Streaming pitch estimator and tracker: our design, built from RNNoise's open-loop search and
the Viterbi tracker of LPCNet's encoder (docs/algorithm.md, 'Pitch tracking').

Per 10 ms hop (push) the tracker

1. high-passes the 48 kHz input (DC and rumble) and decimates it by 4 to 12 kHz with a
   windowed-sinc low-pass evaluated only at the kept samples;
2. whitens the 12 kHz signal with a 12th-order LPC inverse filter estimated on the newest
   20 ms window, so that the correlation is not dominated by the first formant or by tonal
   noise;
3. computes the normalised correlation of the newest window with every lag 15..192 at 12 kHz
   (periods 60..768 at 48 kHz): the coarse search;
4. applies an octave guard (a lag is penalised by how well its half and third correlate);
5. runs one step of a Viterbi tracker over the 178 lag states and decides the frame that is
   ``LOOKAHEAD_FRAMES`` (M = 2) hops old by back-tracing from the best newest state, so the
   decision for frame l uses frames up to l + M (fixed-lag smoothing);
6. refines the decided lag: parabolic interpolation on that frame's stored 12 kHz correlation
   row, then a search of integer periods at 48 kHz within +-2 samples of it: the fine search.

Frame timing: push ``n`` delivers samples ``[n*480, (n+1)*480)``; frame ``n``'s analysis window
is ``[(n-1)*480, (n+1)*480)``, the 960 newest samples. Push ``n`` returns the decision for
frame ``n - 2`` and the best guarded correlation of frame ``n`` (a look-ahead voicing cue).
The decimation low-pass delays the 12 kHz path by 23.5 samples at 48 kHz (0.5 ms); that is small
against the 20 ms window and is not compensated (that would need more look-ahead). The 48 kHz
fine search uses the exact window.

All per-frame work is in numba ``@njit`` functions on the preallocated arrays of a
:class:`PitchState`; nothing is allocated per frame. About 16 us per push on a 2-core AVX-512
Xeon (measured with ``track_pitch`` on 60 s of audio).
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

#: LPC whitening: order 12 at 12 kHz (up to 6 resonances: formants, and tonal noise such as a
#: vacuum cleaner's motor line; order 4 as in RNNoise left too much of both, measured on the
#: noisy fixtures), -40 dB noise floor (r0 * 1.0001), lag window r_i * (1 - (0.008 i)^2) and
#: bandwidth expansion a_i * 0.95^i. The expansion keeps every zero of A(z) at least
#: -ln(0.95) * 12 kHz / pi = 200 Hz wide, so the filter cannot notch out individual harmonics of
#: a high voice (0.98 did, and raised the gross-error rate at 400 Hz).
LPC_ORDER = 12
LPC_NOISE_FLOOR = 1.0001
LPC_LAG_WINDOW = 0.008
LPC_BW_EXPANSION = 0.95

#: Energy floor added to both energies of the normalised correlation: the energy of 240
#: samples at -120 dBFS (amplitude 1e-6). It makes digital silence give exactly 0 and keeps
#: the ratio finite without noticeably lowering the correlation of audible signals.
CORR_ENERGY_FLOOR = WINDOW_LOW * 1e-12

#: Octave guard: score(L) = c(L) - OCTAVE_WEIGHT * max(0, c(L/2), c(L/3)) (c at the two integer
#: lags around L/2 and L/3, where they are in range). A true period P also correlates at 2P and
#: 3P, nearly as well, and in noise often better; this penalty makes P win. At P itself the
#: sub-multiples correlate poorly once the spectrum is whitened (at P/2 the odd harmonics are in
#: anti-phase, at P/3 two harmonics in three are), so it does not push the tracker an octave up.
#: The L/3 check was needed: with L/2 only, 250-400 Hz voices at 0 dB SNR were tracked at 2P-3P
#: on most frames. A subtractive penalty keeps working at the low correlations of noisy frames,
#: where LPCNet-style scaling (x0.8) changes scores by too little. 0.3 was best on real speech
#: (0.5 and 0.8 gave more disagreement at 5 dB SNR, same synthetic error rates).
OCTAVE_WEIGHT = 0.3
#: Largest divisor k of the sub-multiples L/k checked by the guard. Going further (up to 12)
#: penalises the true period of low voices whose strongest harmonic sits on a formant (at 70 Hz
#: with a 700 Hz formant, L/10 correlates almost as well as L): 70 % gross errors at 70 Hz.
OCTAVE_MAX_DIVISOR = 3

#: Sub-multiple check on the decided frame, for near-stationary periodic sounds (a held tone, a
#: synthetic vowel): there c(kP) is as high as c(P) and the integer-lag sampling of a sharp peak
#: can make 5P or 7P score higher than P (seen on steady harmonic tones above 300 Hz). When the
#: decided lag L correlates at least SUBMULT_MIN_CORR, the shortest L/k whose interpolated peak
#: reaches SUBMULT_RATIO of L's replaces it. Real voices have enough jitter that this never
#: fired on the speech fixtures or on the synthetic vibrato voices; noisy frames stay below 0.6.
SUBMULT_MIN_CORR = 0.6
SUBMULT_RATIO = 0.9

#: Viterbi transitions, in 12 kHz lag steps d between consecutive frames (10 ms): |d| <= W(L)
#: with W(L) = clip(round(0.02 L), 2, 4), at a cost of TRANSITION_LAG_COST * d^2 (at most 0.32);
#: anything else is a jump from the previous frame's best state at the fixed cost JUMP_COST.
#: Scores are correlations (at most 1 per frame), so a jump pays for itself after a few frames
#: of clearly better correlation. The window is in lag steps, not in log-period, on purpose:
#: the noise in the correlation row is correlated over a fixed number of lags, so a window that
#: widens with L lets long-lag paths pick the best of more noise peaks every frame, and at 0 dB
#: SNR such paths beat the true period of 250-400 Hz voices (measured: 90 % gross errors with a
#: +-12 % log window). Vibrato of +-5 % at 5 Hz moves 1.6 % per frame, within W. JUMP_COST 0.6:
#: 0.5 raised the 70 Hz gross-error rate to 5 % (noise paths jump in too easily), 1.0 lowered
#: the clean/noisy agreement on the speech fixtures (the tracker leaves a path captured by
#: noise too slowly).
TRANSITION_REL = 0.02
TRANSITION_WMIN = 2
TRANSITION_WMAX = 4
TRANSITION_LAG_COST = 0.02
JUMP_COST = 0.6

#: Fine search at 48 kHz: integer periods within +-FINE_RADIUS of 4x the interpolated 12 kHz lag,
#: on the full-band (high-passed) signal of the decided frame's exact window. Measured against
#: the 12 kHz interpolation alone it gains little (mean error on clean synthetic voices 0.44 vs
#: 0.56 samples at 250 Hz, about equal at 70 Hz) for about 2 us per frame.
FINE_RADIUS = 2

#: Period reported before the first decision and the lag the tracker starts on (187.5 Hz).
INITIAL_PERIOD = 256

#: Pitch correlation above which a frame counts as voiced. Chosen from the decided-frame
#: correlations this tracker reports (measured with track_pitch): on noise alone the 99.9th
#: percentile is 0.26 for white noise, 0.31 for a kettle and 0.40 for a vacuum cleaner (whose motor
#: line at 410 Hz is genuinely periodic; maximum 0.41), so 0.45 is above every noise-only frame
#: measured. On the active frames (within 10 dB of the mean power) of the clean speech fixtures it
#: marks 42-61 % as voiced, the usual voiced share of running speech. Correlations are of the
#: whitened 12 kHz signal, which is why they run lower than unwhitened ones (median 0.4-0.5 on
#: active speech).
VOICING_THRESHOLD = 0.45

#: Sample buffers. At 48 kHz: the decided frame (M hops old) has its window ending M hops before
#: the newest sample, 2 hops long, plus the longest period of history: 4*480 + 768 = 2688.
X48_LEN = HOP_SIZE * (LOOKAHEAD_FRAMES + 2) + PITCH_MAX_PERIOD
#: At 12 kHz: the newest window, the longest lag of history and the LPC filter memory.
X12_LEN = WINDOW_LOW + LAG_MAX_LOW + LPC_ORDER
#: Whitened signal: newest window plus the longest lag.
W12_LEN = WINDOW_LOW + LAG_MAX_LOW  # 432
#: Ring depth of per-frame rows kept for the fixed-lag decision: frames n-M .. n.
RING = LOOKAHEAD_FRAMES + 1


def _design_decimator() -> np.ndarray:
    """Hann-windowed sinc low-pass, unit DC gain, float64[DECIM_TAPS] (symmetric taps)."""
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
    """Allowed predecessors of each Viterbi state and their costs.

    Returns (lo int64[K], width int64[K], cost float64[K, 2 * TRANSITION_WMAX + 1]): state i may
    come from states lo[i] .. lo[i] + width[i] - 1, cost[i, k] being the cost from lo[i] + k.
    """
    lo = np.zeros(N_LAGS, dtype=np.int64)
    width = np.zeros(N_LAGS, dtype=np.int64)
    table = np.zeros((N_LAGS, 2 * TRANSITION_WMAX + 1))
    for i in range(N_LAGS):
        lag = LAG_MIN_LOW + i
        w = int(min(max(round(TRANSITION_REL * lag), TRANSITION_WMIN), TRANSITION_WMAX))
        j = np.arange(max(0, i - w), min(N_LAGS, i + w + 1))
        lo[i] = j[0]
        width[i] = j.size
        table[i, : j.size] = TRANSITION_LAG_COST * (j - i) ** 2.0
    return lo, width, table


def _design_submultiples() -> np.ndarray:
    """int64[K, 2 * (OCTAVE_MAX_DIVISOR - 1)]: state indices of floor(L/k) and ceil(L/k),
    k = 2..OCTAVE_MAX_DIVISOR, -1 where below the lag range."""
    idx = np.full((N_LAGS, 2 * (OCTAVE_MAX_DIVISOR - 1)), -1, dtype=np.int64)
    for i in range(N_LAGS):
        lag = LAG_MIN_LOW + i
        for k in range(2, OCTAVE_MAX_DIVISOR + 1):
            for m, sub in enumerate((lag // k, -(-lag // k))):
                if sub >= LAG_MIN_LOW:
                    idx[i, 2 * (k - 2) + m] = sub - LAG_MIN_LOW
    return idx


#: Module-level tables; numba freezes them into the compiled code as constants.
_DECIM_H = _design_decimator()
_HP = _design_highpass()
_TRANS_LO, _TRANS_W, _TRANS_COST = _design_transitions()
_SUB_IDX = _design_submultiples()
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
        x12: float64[444] newest decimated samples at 12 kHz (oldest first).
        w12: float64[432] scratch: whitened x12 of the current push.
        cum: float64[433] scratch: cumulative sum of w12**2.
        lpc: float64[13] scratch: LPC inverse filter (a_0 = 1).
        ac: float64[13] scratch: autocorrelation for the LPC.
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
    # Explicit forward loops for the left shifts: an overlapping slice assignment would make
    # numba copy the source to a temporary array on every push.
    for t in range(X48_LEN - HOP_SIZE):
        x48[t] = x48[t + HOP_SIZE]
    z1 = state.hp[0]
    z2 = state.hp[1]
    b0, b1, b2, a1, a2 = _HP[0], _HP[1], _HP[2], _HP[3], _HP[4]
    for t in range(HOP_SIZE):
        u = hop[t]
        if not abs(u) <= 1e30:
            # NaN or inf from upstream would stay in the recursive filter state for good.
            u = 0.0
        y = b0 * u + z1
        z1 = b1 * u - a1 * y + z2
        z2 = b2 * u - a2 * y
        x48[X48_LEN - HOP_SIZE + t] = y
    state.hp[0] = z1
    state.hp[1] = z2
    for t in range(X12_LEN - HOP_LOW):
        x12[t] = x12[t + HOP_LOW]
    # Output j is the filter evaluated at the last input sample of its group of 4; the taps are
    # symmetric, so running them forward over x48[first : first + DECIM_TAPS] is the same sum
    # with contiguous loads.
    first = X48_LEN - HOP_SIZE + DECIMATION - DECIM_TAPS
    out = X12_LEN - HOP_LOW
    for j in range(HOP_LOW):
        pos = first + DECIMATION * j
        acc = 0.0
        for k in range(DECIM_TAPS):
            acc += _DECIM_H[k] * x48[pos + k]
        x12[out + j] = acc


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz"})
def _autocorr(x: np.ndarray, start: int, order: int, out: np.ndarray) -> None:
    """out[i] = sum_{t >= start + i} x[t] x[t - i], i = 0..order (window x[start:])."""
    n = x.shape[0]
    for i in range(order + 1):
        acc = 0.0
        for t in range(start + i, n):
            acc += x[t] * x[t - i]
        out[i] = acc


@njit(cache=True, nogil=True)
def _levinson(ac: np.ndarray, order: int, a: np.ndarray) -> None:
    """LPC inverse filter A(z) = 1 + sum a_i z^-i (a[0] = 1) from autocorrelation ``ac``.

    Applies the lag window and the -40 dB noise floor to ``ac`` (without modifying it), then
    the bandwidth expansion a_i *= 0.95^i. Digital silence gives A(z) = 1.
    """
    a[:] = 0.0
    a[0] = 1.0
    err = ac[0] * LPC_NOISE_FLOOR
    if err > 0.0:
        for i in range(1, order + 1):
            acc = ac[i] * _LPC_LAG_WIN[i]
            for j in range(1, i):
                acc += a[j] * ac[i - j] * _LPC_LAG_WIN[i - j]
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
    for i in range(order + 1):
        a[i] *= _LPC_BW[i]


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz"})
def _fir(x: np.ndarray, a: np.ndarray, order: int, out: np.ndarray) -> None:
    """out[t] = sum_i a[i] x[t + order - i], t = 0..len(x) - order - 1."""
    for t in range(x.shape[0] - order):
        acc = x[t + order]
        for i in range(1, order + 1):
            acc += a[i] * x[t + order - i]
        out[t] = acc


@njit(cache=True, nogil=True)
def _whiten(state: PitchState) -> None:
    """Whiten x12 into w12 with the LPC inverse filter of x12's newest window.

    The whole buffer (window plus lag history) is filtered with this frame's coefficients, so
    the target and the lagged segment of the correlation see the same filter.
    """
    _autocorr(state.x12, X12_LEN - WINDOW_LOW, LPC_ORDER, state.ac)
    _levinson(state.ac, LPC_ORDER, state.lpc)
    _fir(state.x12, state.lpc, LPC_ORDER, state.w12)


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
    # Eight lags per pass: each w[t] load feeds eight accumulators, which makes this loop
    # about three times faster than one dot product per lag (it is the bulk of the cost).
    n_blocked = N_LAGS - N_LAGS % 8
    for i in range(0, n_blocked, 8):
        lag = LAG_MIN_LOW + i
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        a4 = 0.0
        a5 = 0.0
        a6 = 0.0
        a7 = 0.0
        for t in range(t0, W12_LEN):
            x = w[t]
            b = t - lag
            a0 += x * w[b]
            a1 += x * w[b - 1]
            a2 += x * w[b - 2]
            a3 += x * w[b - 3]
            a4 += x * w[b - 4]
            a5 += x * w[b - 5]
            a6 += x * w[b - 6]
            a7 += x * w[b - 7]
        row[i] = a0
        row[i + 1] = a1
        row[i + 2] = a2
        row[i + 3] = a3
        row[i + 4] = a4
        row[i + 5] = a5
        row[i + 6] = a6
        row[i + 7] = a7
    for i in range(n_blocked, N_LAGS):
        lag = LAG_MIN_LOW + i
        acc = 0.0
        for t in range(t0, W12_LEN):
            acc += w[t] * w[t - lag]
        row[i] = acc
    for i in range(N_LAGS):
        lag = LAG_MIN_LOW + i
        el = cum[W12_LEN - lag] - cum[t0 - lag]
        if el < 0.0:
            el = 0.0
        row[i] = row[i] / math.sqrt(e0 * (el + CORR_ENERGY_FLOOR))


@njit(cache=True, nogil=True)
def _octave_guard(row: np.ndarray, score: np.ndarray) -> float:
    """score = row - OCTAVE_WEIGHT * (best positive sub-multiple); returns max(score, 0)."""
    best = 0.0
    for i in range(N_LAGS):
        sub = 0.0
        for k in range(_SUB_IDX.shape[1]):
            j = _SUB_IDX[i, k]
            if j >= 0 and row[j] > sub:
                sub = row[j]
        s = row[i] - OCTAVE_WEIGHT * sub
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
        # Ties (silence: every v is 0) keep the period closest to the coarse estimate.
        if v > best_v or (v == best_v and abs(p - c) < abs(best_p - c)):
            best_v = v
            best_p = p
    return best_p


@njit(cache=True, nogil=True)
def _interp_peak(row: np.ndarray, i: int) -> float:
    """Parabolic-interpolated peak value of row at state i (row[i] if i is not a local max)."""
    b = row[i]
    if i <= 0 or i >= N_LAGS - 1:
        return b
    a = row[i - 1]
    c = row[i + 1]
    den = a - 2.0 * b + c
    if b >= a and b >= c and den < 0.0:
        return min(1.0, b - 0.125 * (a - c) * (a - c) / den)
    return b


@njit(cache=True, nogil=True)
def _shortest_period(row: np.ndarray, s: int) -> int:
    """Replace a strongly periodic decision L by its shortest sub-multiple L/k that fits as well."""
    ref = _interp_peak(row, s)
    if ref < SUBMULT_MIN_CORR:
        return s
    lag = LAG_MIN_LOW + s
    best = s
    for k in range(2, lag // LAG_MIN_LOW + 1):
        centre = int(lag / k + 0.5) - LAG_MIN_LOW
        lo = max(0, centre - 1)
        hi = min(N_LAGS - 1, centre + 1)
        j = lo
        for m in range(lo + 1, hi + 1):
            if row[m] > row[j]:
                j = m
        if _interp_peak(row, j) >= SUBMULT_RATIO * ref:
            best = j
    return best


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
    if hop.shape[0] != HOP_SIZE:
        raise ValueError("pitch_push expects exactly HOP_SIZE (480) samples")
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

    dec = state.corr[(n - LOOKAHEAD_FRAMES) % RING]
    s = _shortest_period(dec, s)

    # Parabolic interpolation on the decided frame's correlation row.
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
