"""Fixed numbers of the PercepNet signal chain, each with its unit and derivation.

Where each value comes from (paper, reference code, our choice) is tabled in
``docs/algorithm.md``, 'Framing and delay' and the sections after it.

Everything that depends on the frame layout reads it from here; nothing else in ``dsp/``
hard-codes 48000, 480 or 960.
"""
from __future__ import annotations

import math

#: Processing rate: PercepNet is fullband (speech kept up to 20 kHz), as in the paper.
SAMPLE_RATE_HZ = 48_000
#: Hop: 10 ms at 48 kHz, as in the paper.
HOP_MS = 10.0
HOP_SIZE = 480
#: Analysis/synthesis window: 20 ms, 50 % overlap (the paper's framing, same as RNNoise).
WINDOW_SIZE = 2 * HOP_SIZE  # 960 samples
#: Real FFT of the 960-sample window, no zero padding: 481 bins, 50 Hz apart.
FFT_SIZE = WINDOW_SIZE
N_BINS = FFT_SIZE // 2 + 1  # 481
BIN_HZ = SAMPLE_RATE_HZ / FFT_SIZE  # 50.0 Hz

#: Network look-ahead in frames (M). M = 2 gives 40 ms total algorithmic delay, as in the
#: PercepNet-AEC paper (why not 3: docs/algorithm.md, 'Framing and delay').
LOOKAHEAD_FRAMES = 2

#: Frame processing delay: output sample n is ready once input n + 480*(M+1) has arrived
#: (10 ms overlap + M hops of look-ahead; tests/dsp/test_processor.py checks the alignment).
FRAME_DELAY_SAMPLES = HOP_SIZE * (LOOKAHEAD_FRAMES + 1)  # 1440
#: Block buffering: any host block size is served from a FIFO primed with one hop.
BLOCK_DELAY_SAMPLES = HOP_SIZE  # 480
#: Total algorithmic delay = 10 ms frame + 10 ms overlap + 10*M ms look-ahead = 40 ms.
ALGORITHMIC_DELAY_SAMPLES = FRAME_DELAY_SAMPLES + BLOCK_DELAY_SAMPLES  # 1920
ALGORITHMIC_DELAY_MS = 1000.0 * ALGORITHMIC_DELAY_SAMPLES / SAMPLE_RATE_HZ  # 40.0

#: Pitch period search range at 48 kHz: 60 samples (800 Hz) to 768 samples (62.5 Hz), as in
#: RNNoise.
PITCH_MIN_PERIOD = 60
PITCH_MAX_PERIOD = 768

#: Comb filter half-length: 5 periods each side, 11 Hann taps, about -9 dB between
#: harmonics (sigma^2 = 0.125), as the paper is reported to use. Truncated per frame to the
#: look-ahead (see docs/algorithm.md, 'Comb filter').
COMB_PERIODS = 5
#: Future samples available to the comb filter beyond the frame's window: M hops.
COMB_LOOKAHEAD_SAMPLES = HOP_SIZE * LOOKAHEAD_FRAMES  # 960

#: Envelope postfilter compensation constant beta: max boost sqrt((1+b)/(2*sqrt(b))) = 1.9
#: (see docs/algorithm.md, 'Synthesis: pitch filtering, postfilter, scale bands').
POSTFILTER_BETA = 0.02
#: Gain decay cap per 10 ms frame: g >= 0.6 * g_prev, an RT60 of about 135 ms
#: (60 dB / (20*log10(1/0.6) dB per frame) = 13.5 frames); RNNoise's value.
GAIN_DECAY_PER_FRAME = 0.6

#: Noise-masking-tone threshold n0 in g_att: 0.03, about -15 dB, the value quoted from the
#: paper (see docs/algorithm.md, 'Pitch coherence and comb strength').
NOISE_MASKING_N0 = 0.03
#: Strength used when even full comb filtering cannot reach the clean periodicity (a <= 0 in
#: ``strength.optimal_strength``). Just below 1 so a band is never replaced entirely
#: (AestheTech uses 0.999).
STRENGTH_WHEN_UNREACHABLE = 0.999

#: Number of ERB bands and of each network output head.
N_BANDS = 34
#: Output samples are clamped to +-1.5 (3.5 dB above full scale): real speech never gets
#: there (the postfilter boosts at most 1.9 x a band that is itself well below full scale);
#: it only bounds what broken input can produce.
OUTPUT_LIMIT = 1.5

#: Network input: 34 band energies + 34 pitch coherences + period + pitch correlation.
N_FEATURES = 2 * N_BANDS + 2  # 70

assert WINDOW_SIZE == 960 and N_BINS == 481 and ALGORITHMIC_DELAY_MS == 40.0
assert math.isclose(BIN_HZ, 50.0)
