"""core.box_stats against its definition (Tukey's box on linear-interpolation quartiles)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.box_stats import WHISKER_IQR, box_stats


def _by_definition(values: list[float]) -> tuple[float, float, float, float, float]:
    data = sorted(values)
    n = len(data)

    def quantile(p: float) -> float:  # linear interpolation between order statistics
        position = p * (n - 1)
        low = int(np.floor(position))
        high = min(low + 1, n - 1)
        return data[low] + (position - low) * (data[high] - data[low])

    q1, median, q3 = quantile(0.25), quantile(0.5), quantile(0.75)
    reach = WHISKER_IQR * (q3 - q1)
    inside = [v for v in data if q1 - reach <= v <= q3 + reach]
    return q1, median, q3, min(q1, min(inside)), max(q3, max(inside))


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, min_size=1, max_size=60))
def test_box_matches_the_definition_and_its_order(values):
    box = box_stats(np.array(values))
    expected = _by_definition(values)
    got = (box.q1, box.median, box.q3, box.lower_fence, box.upper_fence)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-6)
    assert box.lower_fence <= box.q1 + 1e-9 and box.q3 <= box.upper_fence + 1e-9
    assert min(values) <= box.lower_fence and box.upper_fence <= max(values) + 1e-9
    assert box.n == len(values)


@settings(max_examples=100, deadline=None)
@given(st.lists(finite, min_size=1, max_size=40), st.floats(0.1, 10), st.floats(-100, 100),
       st.randoms(use_true_random=False))
def test_box_is_order_free_and_moves_with_shift_and_scale(values, scale, shift, random):
    box = box_stats(np.array(values))
    shuffled = list(values)
    random.shuffle(shuffled)
    assert box_stats(np.array(shuffled)) == box
    moved = box_stats(np.array(values) * scale + shift)
    assert moved.median == pytest.approx(box.median * scale + shift, rel=1e-6, abs=1e-3)
    assert moved.q3 - moved.q1 == pytest.approx((box.q3 - box.q1) * scale, rel=1e-6, abs=1e-3)


def test_outliers_beyond_the_whiskers_and_non_finite_values_are_left_out():
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 100.0, np.nan, np.inf])
    box = box_stats(values)
    assert box.n == 6 and box.upper_fence == 5.0 and box.lower_fence == 1.0
    with pytest.raises(ValueError, match="no finite values"):
        box_stats(np.array([np.nan, -np.inf]))
