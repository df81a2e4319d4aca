"""Chart builders of the Layer x layer page (dashboard/charts/layer_matrix.py), on small frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.metrics import nulls
from core.store.vectors import decode_resamples, encode_resamples
from dashboard.charts.layer_matrix import (best_match_table, difference_figure, matrix_difference,
                                           matrix_figure, resampling_mismatch)


def _cells(values: np.ndarray, boots: np.ndarray, *, seed: int = 0, best: bool = True) -> pd.DataFrame:
    rows = []
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            rows.append({"layer_a": i, "layer_b": j, "value": values[i, j],
                         "baseline_mean": 0.1, "baseline_std": 0.01, "ci_low": values[i, j] - 0.1,
                         "ci_high": values[i, j] + 0.1, "n_samples": 50, "n_langs": 1,
                         "row_best": best and j == int(np.argmax(values[i])),
                         "row_p": 0.01 if i == 0 else 0.5, "row_threshold": 0.4,
                         "col_best": best and i == int(np.argmax(values[:, j])),
                         "col_p": 0.02, "col_threshold": 0.3, "alpha": 0.05, "seed": seed,
                         "n_bootstrap": boots.shape[-1], "resamples": encode_resamples(boots[i, j])})
    return pd.DataFrame(rows)


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    shared = rng.standard_normal((2, 3, 40))
    first = _cells(np.array([[0.9, 0.2, 0.1], [0.3, 0.8, 0.2]]), 0.5 + 0.05 * shared)
    second = _cells(np.array([[0.5, 0.2, 0.1], [0.3, 0.7, 0.2]]),
                    0.4 + 0.05 * shared + 0.01 * rng.standard_normal((2, 3, 40)))
    return first, second


def test_matrix_figure_marks_one_best_per_row_by_significance(pair):
    first, _ = pair
    figure = matrix_figure(first, names_a=["embed", "block 1"], names_b=["e", "1", "2"])
    heatmap, stars, circles = figure.data
    assert np.array(heatmap.z, dtype=float).shape == (2, 3)
    assert list(figure.layout.yaxis.ticktext) == ["embed", "block 1"]
    assert stars.marker.symbol == "star" and len(stars.x) == 1  # row 0: p 0.01 <= 0.05
    assert circles.marker.symbol == "circle-open" and len(circles.x) == 1  # row 1: p 0.5
    table = best_match_table(first, names_a=["embed", "block 1"], names_b=["e", "1", "2"])
    assert table["best match"].tolist() == ["e", "1"]
    assert table["match"].tolist() == ["significant", "not significant"]
    assert len(best_match_table(first, along="col")) == 3


def test_difference_interval_uses_the_shared_resamples(pair):
    first, second = pair
    assert resampling_mismatch(first, second) is None
    difference = matrix_difference(first, second)
    row = difference[(difference.layer_a == 0) & (difference.layer_b == 0)].iloc[0]
    assert row.value == pytest.approx(0.4)
    boot = decode_resamples(first.resamples.iloc[0]) - decode_resamples(second.resamples.iloc[0])
    assert (row.ci_low, row.ci_high) == pytest.approx(nulls.se_interval(0.4, boot))
    figure = difference_figure(difference)
    assert figure.data[0].zmid == 0 and figure.data[0].zmin == -figure.data[0].zmax
    # cells whose interval excludes 0 get a dot: (0, 0) +0.4 and (1, 1) +0.1 with tight intervals
    assert len(figure.data[1].x) == 2


def test_no_interval_without_shared_resamples(pair):
    first, second = pair
    other_seed = second.assign(seed=7)
    assert "seeds" in resampling_mismatch(first, other_seed)
    difference = matrix_difference(first, other_seed)
    assert difference.value.iloc[0] == pytest.approx(0.4)
    assert difference.ci_low.isna().all()
    assert len(difference_figure(difference).data) == 1  # no dots without intervals
    without = second.assign(resamples=None)
    assert "without its bootstrap values" in resampling_mismatch(first, without)


def test_empty_and_all_nan_matrices_explain_themselves(pair):
    first, _ = pair
    nan = first.assign(value=math.nan)
    for figure in (matrix_figure(nan, title="t"), difference_figure(matrix_difference(nan, nan))):
        assert not figure.data and figure.layout.annotations
