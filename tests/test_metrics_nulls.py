"""Shuffled-pairs baseline, bootstrap CI and length controls: index sets, analytic null levels, CI
coverage on simulated data with a known population value, and what the length helpers remove."""

import numpy as np
import pandas as pd
import pytest

from core.metrics import grid, nulls
from core.metrics import similarity as sim


pytestmark = pytest.mark.usefixtures("one_thread")


def test_index_sets_depend_only_on_seed_and_n():
    perms = nulls.permutation_indices(30, 5, seed=1)
    assert perms.shape == (5, 30)
    assert all(sorted(p) == list(range(30)) for p in perms)
    np.testing.assert_array_equal(perms, nulls.permutation_indices(30, 5, seed=1))
    assert not np.array_equal(perms, nulls.permutation_indices(30, 5, seed=2))
    boots = nulls.bootstrap_indices(30, 7, seed=1)
    assert boots.shape == (7, 30) and boots.min() >= 0 and boots.max() < 30
    assert len(np.unique(boots[0])) < 30  # drawn with replacement
    np.testing.assert_array_equal(boots, nulls.bootstrap_indices(30, 7, seed=1))
    # a longer draw starts with the shorter one: adding resamples never changes the earlier ones
    np.testing.assert_array_equal(nulls.permutation_indices(30, 8, seed=1)[:5], perms)


def test_summaries_ignore_nan_and_need_two_values_for_a_spread():
    assert nulls.summarise_null(np.array([1.0, np.nan, 3.0])) == (2.0, pytest.approx(np.sqrt(2)))
    mean, std = nulls.summarise_null(np.array([1.0]))
    assert mean == 1.0 and np.isnan(std)
    assert nulls.percentile_interval(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0))
    with pytest.raises(ValueError, match="CI level"):
        nulls.percentile_interval(np.arange(5.0), 95)


@pytest.fixture(scope="module")
def independent_pair():
    rng = np.random.default_rng(0)
    return rng.standard_normal((40, 12)), rng.standard_normal((40, 12)) + 0.5


def test_shuffled_cka_matches_its_exact_permutation_expectation(independent_pair):
    # For centred Gram matrices K, L: E_perm[tr(K P L P^T)] = tr(K) tr(L) / (n - 1).
    x, y = independent_pair
    n = len(x)
    xc, yc = x - x.mean(0), y - y.mean(0)
    k, l = xc @ xc.T, yc @ yc.T
    expected = np.trace(k) * np.trace(l) / ((n - 1) * np.linalg.norm(k) * np.linalg.norm(l))
    null = nulls.shuffled_baseline(sim.metric_function("linear_cka"), x, y, n_permutations=300)
    assert abs(null.mean - expected) < 4 * null.std / np.sqrt(300)
    debiased = nulls.shuffled_baseline(sim.metric_function("cka_debiased"), x, y, n_permutations=300)
    assert abs(debiased.mean) < 4 * debiased.std / np.sqrt(300)


def test_shuffled_retrieval_knn_and_cosine_sit_at_chance(independent_pair):
    x, y = independent_pair
    n, k, count = len(x), 5, 400
    retrieval = nulls.shuffled_baseline(sim.metric_function("retrieval"), x, y, n_permutations=count)
    assert abs(retrieval.mean - 1 / n) < 4 * retrieval.std / np.sqrt(count)
    knn = nulls.shuffled_baseline(sim.metric_function("mutual_knn", k=k), x, y, n_permutations=count)
    assert abs(knn.mean - k / (n - 1)) < 4 * knn.std / np.sqrt(count)
    cosine = nulls.shuffled_baseline(sim.metric_function("paired_cosine"), x, y, n_permutations=count)
    unit_x = x / np.linalg.norm(x, axis=1, keepdims=True)
    unit_y = y / np.linalg.norm(y, axis=1, keepdims=True)
    assert abs(cosine.mean - (unit_x @ unit_y.T).mean()) < 4 * cosine.std / np.sqrt(count)


def test_bootstrap_ci_brackets_the_value_and_narrows_with_more_sentences():
    rng = np.random.default_rng(1)
    metric = sim.metric_function("linear_cka")

    def width(n):
        z = rng.standard_normal((n, 3))
        x, y = z + 0.5 * rng.standard_normal((n, 3)), z + 0.5 * rng.standard_normal((n, 3))
        ci = nulls.bootstrap_ci(metric, x, y, n_bootstrap=100)
        assert ci.low < metric(x, y) < ci.high
        return ci.high - ci.low

    assert width(400) < width(25)


def _coverage(table: pd.DataFrame, truth: float) -> float:
    return float(((table.ci_low <= truth) & (truth <= table.ci_high)).mean())


def test_ci_coverage_of_a_known_population_value():
    """90% CIs over 80 simulated studies cover the population value about 90% of the time.

    paired_cosine: each sentence's two vectors meet at a random angle with E[cos] = 0.5 exactly.
    linear_cka: y = A x + noise, x ~ N(0, I); population CKA = ||S_xy||^2 / (||S_xx|| ||S_yy||).
    """
    rng = np.random.default_rng(2)
    n, d, studies = 60, 3, 80
    a, noise = np.diag([1.0, 0.7, 0.4]), 0.8
    population_cka = np.linalg.norm(a) ** 2 / (np.sqrt(d) * np.linalg.norm(a @ a.T + noise**2 * np.eye(d)))
    sides, cosine_pairs, cka_pairs = {}, [], []
    for study in range(studies):
        u = rng.standard_normal((n, d))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        v = rng.standard_normal((n, d))
        v -= (v * u).sum(1, keepdims=True) * u
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        cos = rng.uniform(0.2, 0.8, size=(n, 1))
        sides[("u", study)], sides[("w", study)] = u, cos * u + np.sqrt(1 - cos**2) * v
        x = rng.standard_normal((n, d))
        sides[("x", study)], sides[("y", study)] = x, x @ a.T + noise * rng.standard_normal((n, d))
        cosine_pairs.append((("u", study), ("w", study)))
        cka_pairs.append((("x", study), ("y", study)))
    common = {"n_permutations": 0, "n_bootstrap": 200, "ci_level": 0.9, "device": "cpu"}
    cosine = grid.compute_grid(sides, cosine_pairs, [grid.MetricSpec("paired_cosine")], **common)
    cka = grid.compute_grid(sides, cka_pairs, [grid.MetricSpec("linear_cka")], **common)
    assert 0.8 <= _coverage(cosine, 0.5) <= 0.98
    assert 0.75 <= _coverage(cka, population_cka) <= 0.98


def test_length_features_know_only_length():
    lengths = np.array([3.0, 10, 10, 25, 40, 7, 18, 12, 30, 5] * 4)
    features = nulls.length_features(lengths)
    assert features.shape == (40, nulls.LENGTH_FEATURES)
    np.testing.assert_array_equal(features[1], features[2])  # equal lengths, equal rows
    np.testing.assert_allclose(nulls.length_features(lengths * 0.02), features, atol=1e-12)  # units drop out
    singular = np.linalg.svd(features - features.mean(0), compute_uv=False)
    # 9 distinct lengths: 8 well-separated centred directions, then nothing
    assert singular[7] / singular[0] > 1e-2 and singular[8] / singular[0] < 1e-10
    assert np.all(np.diff(singular[:8]) < 0)
    for bad in (np.full(5, 4.0), np.array([1.0, 0.0, 2.0]), np.array([1.0, np.nan, 2.0])):
        with pytest.raises(ValueError):
            nulls.length_features(bad)


def test_representations_that_only_encode_length_score_the_length_baseline():
    rng = np.random.default_rng(3)
    tokens = rng.integers(5, 60, 80).astype(float)
    seconds = tokens * rng.uniform(0.25, 0.35, 80)
    text = np.outer(np.log(tokens), rng.standard_normal(16)) + 0.01 * rng.standard_normal((80, 16))
    speech = np.outer(np.log(seconds), rng.standard_normal(16)) + 0.01 * rng.standard_normal((80, 16))
    cka = sim.metric_function("linear_cka")
    assert cka(text, speech) > 0.8
    assert nulls.length_baseline(cka, tokens, seconds) > 0.6
    assert nulls.length_residualised(cka, text, speech, tokens, seconds) < 0.3


def test_residualising_removes_exactly_the_linear_log_length_fit():
    rng = np.random.default_rng(4)
    lengths = rng.uniform(1, 20, 30)
    x = rng.standard_normal((30, 5)) + np.log(lengths)[:, None] * np.arange(5)
    residual = nulls.residualise_length(x, lengths)
    design = np.column_stack([np.ones(30), np.log(lengths)])
    np.testing.assert_allclose(design.T @ residual, 0, atol=1e-9)
    np.testing.assert_allclose(nulls.residualise_length(residual, lengths), residual, atol=1e-10)
    with pytest.raises(ValueError, match="lengths"):
        nulls.residualise_length(x, lengths[:10])
