"""core.box_stats against its definition (linear-interpolation quartiles, whiskers to the
extremes)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.box_stats import box_stats


def _by_definition(values: list[float]) -> tuple[float, float, float, float, float]:
    data = sorted(values)
    n = len(data)

    def quantile(p: float) -> float:  # linear interpolation between order statistics
        position = p * (n - 1)
        low = int(np.floor(position))
        high = min(low + 1, n - 1)
        return data[low] + (position - low) * (data[high] - data[low])

    return quantile(0.25), quantile(0.5), quantile(0.75), data[0], data[-1]


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, min_size=1, max_size=60))
def test_box_matches_the_definition_and_its_order(values):
    box = box_stats(np.array(values))
    expected = _by_definition(values)
    got = (box.q1, box.median, box.q3, box.minimum, box.maximum)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-6)
    assert box.minimum <= box.q1 <= box.median <= box.q3 <= box.maximum
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


def test_extremes_stay_in_the_whiskers_and_non_finite_values_are_left_out():
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 100.0, np.nan, np.inf])
    box = box_stats(values)
    assert box.n == 6 and box.maximum == 100.0 and box.minimum == 1.0
    assert box.median == 3.5
    with pytest.raises(ValueError, match="no finite values"):
        box_stats(np.array([np.nan, -np.inf]))
