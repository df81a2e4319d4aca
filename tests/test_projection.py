"""UMAP projection: shape, determinism, tiny inputs, and that it keeps clusters apart."""

from __future__ import annotations

import numpy as np
import pytest

from core.projection import umap_2d


def _two_clusters(n_per: int = 12, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centre_a, centre_b = np.zeros(dim), np.zeros(dim)
    centre_a[0], centre_b[1] = 10.0, 10.0  # orthogonal directions: far apart in cosine distance
    return np.concatenate([centre_a + rng.normal(size=(n_per, dim)),
                           centre_b + rng.normal(size=(n_per, dim))])


def test_shape_and_determinism():
    x = _two_clusters()
    first = umap_2d(x, seed=3)
    assert first.shape == (24, 2) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, umap_2d(x, seed=3))
    assert not np.array_equal(first, umap_2d(x, seed=4))


def test_separates_clusters():
    x = _two_clusters()
    xy = umap_2d(x, n_neighbors=5)
    a, b = xy[:12], xy[12:]
    within = max(np.linalg.norm(a - a.mean(0), axis=1).max(), np.linalg.norm(b - b.mean(0), axis=1).max())
    assert np.linalg.norm(a.mean(0) - b.mean(0)) > within


@pytest.mark.parametrize("n", [4, 5, 9])
def test_tiny_inputs_lower_n_neighbors(n):
    x = np.random.default_rng(n).normal(size=(n, 8))
    xy = umap_2d(x, n_neighbors=15)
    assert xy.shape == (n, 2) and np.isfinite(xy).all()


def test_too_few_points_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 4 items"):
        umap_2d(np.ones((3, 8)))


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="2-D"):
        umap_2d(np.ones(8))
    x = np.random.default_rng(0).normal(size=(6, 4))
    x[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        umap_2d(x)
