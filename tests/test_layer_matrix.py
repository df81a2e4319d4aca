"""Layer x layer matrices (core.metrics.layer_matrix): cells equal the reference metrics, null values
are the shared shuffles, means over languages keep intervals, differences use shared resamples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.metrics import nulls
from core.metrics import similarity as sim
from core.metrics.grid import MetricSpec
from core.metrics.layer_matrix import (BETWEEN_SPACES, WITHIN_SPACE, matrix_cells, mean_cells,
                                       with_best_matches)
from core.metrics.joint import difference_intervals

N, P, B, SEED = 30, 9, 12, 4


def _layers(rng: np.random.Generator, n_layers: int, dim: int = 6) -> list[np.ndarray]:
    base = rng.standard_normal((N, 3))
    return [base @ rng.standard_normal((3, dim)) + (1 + i) * 0.5 * rng.standard_normal((N, dim))
            for i in range(n_layers)]


@pytest.fixture(scope="module")
def two_languages():
    rng = np.random.default_rng(0)
    out = []
    for _ in range(2):
        a, b = _layers(rng, 2), _layers(rng, 3)
        out.append(matrix_cells(a, b, [MetricSpec("linear_cka"), MetricSpec("mutual_knn", {"k": 3})],
                                n_permutations=P, n_bootstrap=B, seed=SEED, device="cpu"))
    return out


def test_cells_match_reference_values_nulls_and_resamples():
    rng = np.random.default_rng(1)
    a, b = _layers(rng, 2), _layers(rng, 3)
    cells = matrix_cells(a, b, [MetricSpec("linear_cka")], n_permutations=P, n_bootstrap=B,
                         seed=SEED, device="cpu")
    assert len(cells) == 6 and sorted(set(zip(cells.layer_a, cells.layer_b))) == \
        [(i, j) for i in range(2) for j in range(3)]
    orders = nulls.permutation_indices(N, P, SEED)
    resamples = nulls.bootstrap_indices(N, B, SEED)
    for row in cells.itertuples():
        x, y = a[row.layer_a], b[row.layer_b]
        assert row.value == pytest.approx(sim.linear_cka(x, y), abs=1e-9)
        assert np.allclose(row.null, [sim.linear_cka(x, y[o]) for o in orders], atol=1e-9)
        assert np.allclose(row.resamples, [sim.linear_cka(x[r], y[r]) for r in resamples],
                           atol=1e-9)
        assert row.baseline_mean == pytest.approx(np.mean(row.null))


def test_within_space_metrics_only_where_points_share_a_space():
    rng = np.random.default_rng(2)
    a, b = _layers(rng, 2), _layers(rng, 2)
    shared = np.array([[True, False], [False, False]])
    cells = matrix_cells(a, b, [MetricSpec("linear_cka"), *WITHIN_SPACE], shared=shared,
                         n_permutations=P, n_bootstrap=B, seed=SEED, device="cpu")
    within = cells[cells.metric.isin(["retrieval", "paired_cosine"])]
    assert set(zip(within.layer_a, within.layer_b)) == {(0, 0)}
    assert (cells.metric == "linear_cka").sum() == 4
    with pytest.raises(ValueError, match="shared"):
        matrix_cells(a, b, BETWEEN_SPACES, shared=np.ones((3, 3)), device="cpu")


def test_mean_over_languages_averages_inside_each_resample_and_shuffle(two_languages):
    first, second = two_languages
    mean = mean_cells(pd.concat([first.assign(lang="a"), second.assign(lang="b")]))
    assert len(mean) == len(first) and (mean.n_matrices == 2).all()
    for row in mean.itertuples():
        pick = [f[(f.layer_a == row.layer_a) & (f.layer_b == row.layer_b) & (f.metric == row.metric)]
                .iloc[0] for f in two_languages]
        assert row.value == pytest.approx((pick[0].value + pick[1].value) / 2)
        assert np.allclose(row.resamples, (pick[0].resamples + pick[1].resamples) / 2)
        assert np.allclose(row.null, (pick[0].null + pick[1].null) / 2)
        low, high = nulls.se_interval(row.value, row.resamples)
        assert (row.ci_low, row.ci_high) == pytest.approx((low, high))
    # averaging two languages gives a narrower interval than either alone (independent noise)
    assert (mean.ci_high - mean.ci_low).mean() < (first.ci_high - first.ci_low).mean()


def test_best_matches_mark_one_cell_per_row_and_column(two_languages):
    marked = with_best_matches(two_languages[0], alpha=0.05)
    for metric, group in marked.groupby("metric"):
        assert group.groupby("layer_a").row_best.sum().tolist() == [1, 1]
        assert group.groupby("layer_b").col_best.sum().tolist() == [1, 1, 1]
        for layer, line in group.groupby("layer_a"):
            best = line[line.row_best].iloc[0]
            assert best.value == line.value.max()
            assert line.row_p.nunique() == 1
            assert P * best.row_p + best.row_p >= 1  # add-one p-value: at least 1 / (P + 1)


def cell_difference(value_a, boot_a, value_b, boot_b):
    """One cell through the shared difference function the layer x layer view uses."""
    return tuple(float(x[0]) for x in difference_intervals(np.array([value_a]),
                                                            np.array([value_b]), boot_a, boot_b))


def test_cell_difference_interval_from_shared_resamples():
    rng = np.random.default_rng(5)
    common = rng.standard_normal(200)
    boot_a, boot_b = 0.5 + common, 0.2 + common + 0.1 * rng.standard_normal(200)
    difference, low, high = cell_difference(0.5, boot_a, 0.2, boot_b)
    assert difference == pytest.approx(0.3)
    assert high - low == pytest.approx(2 * 1.959964 * np.std(boot_a - boot_b, ddof=1), rel=1e-4)
    # shared resamples cancel the common noise: far narrower than either side's own interval
    assert high - low < 0.25 * (2 * 1.96 * np.std(boot_a, ddof=1))
    assert all(math.isnan(v) for v in cell_difference(0.5, boot_a, 0.2, boot_b[:10])[1:])
    assert all(math.isnan(v) for v in cell_difference(0.5, np.empty(0), 0.2, np.empty(0))[1:])
