"""Mathematical properties of the reference metrics: identity, symmetry, invariances, bounds, and that
related data score above unrelated data. Independent re-derivations (brute-force U-statistic, QR-based
CCA) check the formulas themselves."""

import itertools
import warnings

import numpy as np
import pytest
from scipy.stats import ortho_group

from core.metrics import similarity as sim


def _related_pair(rng, n=60, latent=5, dims=(24, 18), noise=0.3):
    z = rng.standard_normal((n, latent))
    x = z @ rng.standard_normal((latent, dims[0])) + noise * rng.standard_normal((n, dims[0]))
    y = z @ rng.standard_normal((latent, dims[1])) + noise * rng.standard_normal((n, dims[1]))
    return x, y


ALL = ["svcca", "linear_cka", "cka_debiased", "mutual_knn", "retrieval", "paired_cosine"]
PARAMS = {"svcca": {"k": 5}, "mutual_knn": {"k": 5}}


def _metric(name, x, y):
    return sim.compute_metric(name, x, y, **PARAMS.get(name, {}))


@pytest.mark.parametrize("name", ALL)
def test_identical_sides_score_one(name):
    x, _ = _related_pair(np.random.default_rng(0))
    assert _metric(name, x, x) == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("name", ALL)
def test_metrics_are_symmetric(name):
    x, y = _related_pair(np.random.default_rng(1), dims=(20, 20))
    assert _metric(name, x, y) == pytest.approx(_metric(name, y, x), abs=1e-10)


def test_retrieval_directions_swap_with_the_sides():
    x, y = _related_pair(np.random.default_rng(2), dims=(16, 16), noise=1.5)
    a_to_b, b_to_a = sim.retrieval_p1(x, y)
    assert sim.retrieval_p1(y, x) == (b_to_a, a_to_b)
    assert sim.retrieval_accuracy(x, y) == pytest.approx((a_to_b + b_to_a) / 2)


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_is_invariant_to_rotation_isotropic_scaling_and_translation(debiased):
    rng = np.random.default_rng(3)
    x, y = _related_pair(rng)
    rotation = ortho_group.rvs(y.shape[1], random_state=4)
    moved = 7.5 * y @ rotation + rng.standard_normal(y.shape[1])
    assert sim.linear_cka(x, moved, debiased) == pytest.approx(sim.linear_cka(x, y, debiased), abs=1e-10)
    stretched = y * np.linspace(0.1, 10, y.shape[1])  # not isotropic: CKA must notice
    assert abs(sim.linear_cka(x, stretched, debiased) - sim.linear_cka(x, y, debiased)) > 1e-3


def test_svcca_with_all_directions_is_invariant_to_invertible_linear_maps():
    rng = np.random.default_rng(5)
    x, y = _related_pair(rng, n=80, dims=(8, 8), noise=1.0)

    def invertible(seed):  # rotation times unequal scales times rotation: skews, well conditioned
        return ortho_group.rvs(8, random_state=seed) * np.linspace(0.3, 3, 8) @ ortho_group.rvs(
            8, random_state=seed + 1)

    full = sim.svcca(x, y, k=8)
    assert sim.svcca(x @ invertible(20) + 3.0, y @ invertible(30), k=8) == pytest.approx(full, abs=1e-7)
    assert sim.svcca(x, x @ invertible(40), k=8) == pytest.approx(1.0, abs=1e-7)
    assert sim.svcca(x, x @ invertible(40), k=5) < 0.99  # top-5 of a skewed basis differ


def test_cca_correlations_match_a_qr_based_cca():
    rng = np.random.default_rng(6)
    x, y = _related_pair(rng, n=50, dims=(6, 4), noise=1.0)
    q_x, _ = np.linalg.qr(x - x.mean(0))
    q_y, _ = np.linalg.qr(y - y.mean(0))
    expected = np.linalg.svd(q_x.T @ q_y, compute_uv=False)
    np.testing.assert_allclose(sim.cca_correlations(x, y, epsilon=0.0), expected, atol=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_bounds_on_unrelated_and_related_data(seed):
    rng = np.random.default_rng(seed)
    unrelated = (rng.standard_normal((40, 12)), rng.standard_normal((40, 12)))
    pairs = [_related_pair(rng, dims=(12, 12)), unrelated]
    for x, y in pairs:
        assert 0 <= sim.svcca(x, y, k=5) <= 1 + 1e-12
        assert 0 <= sim.linear_cka(x, y) <= 1 + 1e-12
        assert -1 <= sim.linear_cka(x, y, debiased=True) <= 1
        assert 0 <= sim.mutual_knn(x, y, k=5) <= 1
        assert all(0 <= p <= 1 for p in sim.retrieval_p1(x, y))
        assert -1 <= sim.paired_cosine(x, y) <= 1


@pytest.mark.parametrize("name", ALL)
def test_related_data_score_above_unrelated_data(name):
    rng = np.random.default_rng(7)
    x, y = _related_pair(rng, dims=(16, 16), noise=0.5)
    unrelated = rng.standard_normal(y.shape) * y.std(0) + y.mean(0)
    if name in ("retrieval", "paired_cosine"):  # only meaningful in a shared space
        y = x + 0.5 * rng.standard_normal(x.shape)
    assert _metric(name, x, y) > _metric(name, x, unrelated) + 0.1


def _brute_force_unbiased_hsic(k, l):
    """Song et al. (2012) U-statistic straight from its definition, over all 4-tuples."""
    n = len(k)
    total = 0.0
    for i, j, q, r in itertools.permutations(range(n), 4):
        h = 0.0
        for t, u, v, w in itertools.permutations((i, j, q, r)):
            h += k[t, u] * l[t, u] + k[t, u] * l[v, w] - 2 * k[t, u] * l[t, v]
        total += h / 24
    return total / (n * (n - 1) * (n - 2) * (n - 3))


def test_unbiased_hsic_matches_the_u_statistic_definition():
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((7, 3)), rng.standard_normal((7, 4))
    k, l = x @ x.T, y @ y.T  # uncentred on purpose: the estimator needs no centring
    n = len(k)
    assert sim.unbiased_hsic(k, l) == pytest.approx(n * (n - 3) * _brute_force_unbiased_hsic(k, l),
                                                    rel=1e-10)
    xc, yc = x - x.mean(0), y - y.mean(0)
    assert sim.unbiased_hsic(xc @ xc.T, yc @ yc.T) == pytest.approx(sim.unbiased_hsic(k, l), rel=1e-10)


def test_debiased_cka_needs_four_sentences():
    x = np.random.default_rng(0).standard_normal((3, 5))
    with pytest.raises(ValueError, match="at least 4"):
        sim.linear_cka(x, x, debiased=True)


def test_svcca_details_report_k_and_correlations():
    rng = np.random.default_rng(9)
    x, y = _related_pair(rng, n=100, dims=(30, 20))
    fixed = sim.svcca_details(x, y, k=6)
    assert (fixed.k_x, fixed.k_y) == (6, 6) and len(fixed.correlations) == 6
    assert np.all(np.diff(fixed.correlations) <= 1e-12)
    assert fixed.value == pytest.approx(fixed.correlations.mean())
    by_variance = sim.svcca_details(x, y, variance=0.9)
    singular_x = np.linalg.svd(x - x.mean(0), compute_uv=False)
    kept = np.cumsum(singular_x**2) / np.sum(singular_x**2)
    assert by_variance.k_x == int(np.argmax(kept >= 0.9)) + 1
    assert len(by_variance.correlations) == min(by_variance.k_x, by_variance.k_y)
    assert sim.svcca(x, y) == sim.svcca(x, y, k=sim.default_svcca_k(100, 30, 20)) == sim.svcca(x, y, k=10)


def test_svcca_refuses_impossible_k_and_warns_near_saturation():
    rng = np.random.default_rng(10)
    x, y = rng.standard_normal((20, 50)), rng.standard_normal((20, 8))
    with pytest.raises(ValueError, match="min\\(n_samples - 1, dims\\) = 8"):
        sim.svcca(x, y, k=9)
    with pytest.raises(ValueError, match="min\\(n_samples - 1, dims\\) = 19"):
        sim.svcca(x, x, k=20)
    with pytest.raises(ValueError, match="not both"):
        sim.svcca(x, y, k=3, variance=0.9)
    with pytest.warns(UserWarning, match="saturates"):
        sim.svcca(x, y, k=6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sim.svcca(x, y, k=5)  # n/4 exactly: no warning


def test_default_svcca_k_follows_n():
    assert sim.default_svcca_k(60, 512, 512) == 6
    assert sim.default_svcca_k(1000, 512, 512) == 20
    assert sim.default_svcca_k(300, 4, 512) == 4
    assert sim.default_svcca_k(5, 512, 512) == 1


def test_cross_space_metrics_refuse_different_dims():
    x, y = _related_pair(np.random.default_rng(11))
    for metric in (sim.paired_cosine, sim.retrieval_p1):
        with pytest.raises(ValueError, match="same dimension"):
            metric(x, y)


def test_inputs_are_checked():
    x = np.ones((5, 3))
    with pytest.raises(ValueError, match="same sentences"):
        sim.linear_cka(x, np.ones((4, 3)))
    with pytest.raises(ValueError, match="NaN"):
        sim.linear_cka(x, np.full((5, 3), np.nan))
    with pytest.raises(ValueError, match="unknown metric"):
        sim.metric_function("cosine_something")


def test_mutual_knn_on_a_hand_checked_example():
    # Points on a circle (angles in degrees): cosine neighbours are the nearest angles.
    def circle(degrees):
        radians = np.deg2rad(degrees)
        return np.column_stack([np.cos(radians), np.sin(radians)])

    x = circle([0, 10, 30, 60, 100])
    y = circle([0, 10, 60, 30, 100])  # sentences 2 and 3 swapped places
    # k=1 neighbours: x: 0->1, 1->0, 2->1, 3->2, 4->3 ; y: 0->1, 1->0, 2->3, 3->1, 4->2
    assert sim.mutual_knn(x, y, k=1) == pytest.approx(2 / 5)


def test_copies_of_a_sentence_are_not_neighbours_and_count_as_hits():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((8, 4))
    rows = np.array([0, 0, 1, 2, 3, 4, 5, 5, 6, 7])
    # Without ids the copy of row 0 is its nearest neighbour on both sides: a spurious match.
    ids_neighbours = sim.cosine_neighbours(x[rows], 2, rows)
    assert not np.any(rows[ids_neighbours] == rows[:, None])
    y = x + 0.01 * rng.standard_normal(x.shape)
    assert sim.mutual_knn(x[rows], y[rows], k=2, sample_ids=rows) == 1.0
    assert sim.retrieval_p1(x[rows], y[rows], sample_ids=rows) == (1.0, 1.0)
    with pytest.raises(ValueError, match="other sentences"):
        sim.mutual_knn(x, y, k=8)


def test_multiset_overlap_counts_repeated_ids_as_often_as_both_hold_them():
    a = np.array([[1, 1, 2, 3]])
    b = np.array([[1, 4, 2, 2]])
    assert sim.multiset_overlap(a, b).tolist() == [2]  # one shared 1, one shared 2


@pytest.mark.parametrize("name", ALL)
def test_declared_invariances_hold_and_decide_which_metrics_need_one_space(name):
    """Each measure's INVARIANCES declaration is checked on data: a measure that declares
    invariance to rotating one side alone keeps its value; one that does not (it compares
    coordinates) changes, keeps it when both sides rotate, and is then listed as needing a shared
    representation space (no paired cosine or retrieval across spaces)."""
    rng = np.random.default_rng(11)
    x, _ = _related_pair(rng, dims=(20, 20))
    y = x + 0.5 * rng.standard_normal(x.shape)  # same coordinates, noisy: a shared space
    rotation = ortho_group.rvs(20, random_state=12)
    value = _metric(name, x, y)
    declared = sim.INVARIANCES[name]
    assert _metric(name, 3.0 * x, 3.0 * y) == pytest.approx(value, abs=1e-8)
    one_side = _metric(name, x, y @ rotation)
    if "orthogonal_one_side" in declared:
        assert one_side == pytest.approx(value, abs=1e-8)
        assert name not in sim.NEEDS_SHARED_SPACE
    else:
        assert abs(one_side - value) > 0.05
        assert _metric(name, x @ rotation, y @ rotation) == pytest.approx(value, abs=1e-8)
        assert name in sim.NEEDS_SHARED_SPACE
