import math

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from percepnet.dsp.strength import band_coherence, filtered_coherence, optimal_strength

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
sigma2s = st.sampled_from([0.125, 0.1875, 0.25, 0.375])


@settings(max_examples=2000, deadline=None)
@given(q_x=unit, q_y=unit, sigma2=sigma2s)
def test_strength_in_unit_range_and_finite(q_x, q_y, sigma2):
    q_p = filtered_coherence(q_y, sigma2)
    r, g_att = optimal_strength(q_x, q_y, q_p)
    assert math.isfinite(r) and 0.0 <= r <= 1.0
    assert math.isfinite(g_att) and 0.0 < g_att <= 1.0


@settings(max_examples=2000, deadline=None)
@given(q_x=unit, q_y=unit, q_p=unit)
@example(q_x=3.371627373747231e-161, q_y=0.0, q_p=0.03125)  # a * c underflowed to 0
def test_strength_for_any_coherences(q_x, q_y, q_p):
    r, g_att = optimal_strength(q_x, q_y, q_p)
    assert math.isfinite(r) and 0.0 <= r <= 1.0
    assert math.isfinite(g_att) and 0.0 < g_att <= 1.0


@settings(max_examples=1000, deadline=None)
@given(q_x=unit, extra=unit, sigma2=sigma2s)
def test_no_filtering_when_noisy_is_already_as_periodic(q_x, extra, sigma2):
    q_y = q_x + (1.0 - q_x) * extra  # q_y >= q_x
    r, g_att = optimal_strength(q_x, q_y, filtered_coherence(q_y, sigma2))
    assert r == 0.0 and g_att == 1.0


@settings(max_examples=1000, deadline=None)
@given(q_x=st.floats(0.05, 0.95), q_y=st.floats(0.0, 1.0), sigma2=sigma2s)
def test_mix_reaches_clean_periodicity(q_x, q_y, sigma2):
    """Where r is an interior solution, the model's mixture coherence equals q_x."""
    q_y = q_y * q_x * 0.99
    q_p = filtered_coherence(q_y, sigma2)
    r, g_att = optimal_strength(q_x, q_y, q_p)
    if g_att < 1.0:
        assert q_p <= q_x + 1e-6
        return
    # Coherence with P of z = (1-r) y + r p, unit-energy components whose correlation is
    # carried by P only: E[y p] = q_y q_p.
    num = (1 - r) * q_y + r * q_p
    den = math.sqrt((1 - r) ** 2 + r**2 + 2 * r * (1 - r) * q_y * q_p)
    assert math.isclose(num / den, q_x, rel_tol=1e-6, abs_tol=1e-6)


def test_filtered_coherence_limits():
    assert filtered_coherence(0.0, 0.125) == 0.0
    assert math.isclose(filtered_coherence(1.0, 0.125), 1.0)
    assert filtered_coherence(0.5, 0.125) > 0.5  # filtering makes the band more periodic


def test_band_coherence_clamps_and_guards():
    out = np.zeros(3)
    band_coherence(np.array([2.0, -1.0, 1.0]), np.array([1.0, 1.0, 0.0]), np.array([1.0, 1.0, 1.0]), out)
    assert list(out) == [1.0, 0.0, 0.0]
