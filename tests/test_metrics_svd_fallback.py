"""The reference SVCCA where LAPACK's divide-and-conquer SVD does not converge.

On the bundled store, numpy's SVD (gesdd) stopped with "SVD did not converge" on two bootstrap
resamples of whisper-base's speech layer 0 for deu_Latn (200 rows, about 130 distinct sentences; the
20th and 21st singular values are well apart, 1.27 and 1.22). numpy's LinAlgError is a ValueError,
so the reference bootstrap counted those resamples as NaN and its interval moved by 1e-4 while the
grid, which never calls gesdd there, computed them: the grid's 1e-6 check against the reference failed
on ci_low although every value agreed. Whether gesdd fails depends on the last bits of the matrix and
on the LAPACK build, so no portable synthetic matrix reproduces it; the tests below make numpy's SVD
fail the way it did (on matrices with repeated rows, i.e. resamples) and check the reference still
agrees with the grid resample by resample.
"""

import warnings

import numpy as np
import pytest

from core.metrics import grid, nulls
from core.metrics import similarity as sim

N, DIMS, RESAMPLES, SEED = 60, 80, 30, 1


def _layer_zero_like(rng: np.random.Generator) -> np.ndarray:
    """More dimensions than sentences, one dominant direction and a decaying spectrum (as whisper's
    layer 0), rounded to float32 as stored activations are."""
    basis = rng.standard_normal((N, DIMS)) / np.arange(1, DIMS + 1)
    dominant = np.outer(rng.standard_normal(N), rng.standard_normal(DIMS)) * 3.0
    return (basis + dominant + 5.0).astype(np.float32).astype(np.float64)


@pytest.fixture
def gesdd_fails_on_repeated_rows(monkeypatch):
    """numpy's SVD raising as gesdd did on the store's resamples; returns how often it raised."""
    real_svd = np.linalg.svd
    raised = []

    def svd(matrix, *args, **kwargs):
        if len(np.unique(matrix, axis=0)) < len(matrix):
            raised.append(matrix.shape)
            raise np.linalg.LinAlgError("SVD did not converge")
        return real_svd(matrix, *args, **kwargs)

    monkeypatch.setattr(np.linalg, "svd", svd)
    return raised


def test_reference_svcca_matches_the_grid_on_resamples_where_gesdd_fails(gesdd_fails_on_repeated_rows):
    rng = np.random.default_rng(0)
    sides = {"a": _layer_zero_like(rng), "b": _layer_zero_like(rng)}
    spec = grid.MetricSpec("svcca", {"k": "auto"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        row = grid.compute_grid(sides, [("a", "b")], [spec], n_permutations=0, n_bootstrap=RESAMPLES,
                                seed=SEED, device="cpu").iloc[0]
    metric = sim.metric_function("svcca", **grid.metric_kwargs(row.params))
    ci = nulls.bootstrap_ci(metric, sides["a"], sides["b"],
                            resamples=nulls.bootstrap_indices(N, RESAMPLES, SEED))

    assert len(gesdd_fails_on_repeated_rows) >= RESAMPLES  # every resample went through the fallback
    assert not np.isnan(ci.values).any()
    np.testing.assert_allclose(ci.values, row.resamples, rtol=0, atol=1e-9)
    assert (ci.low, ci.high) == pytest.approx((row.ci_low, row.ci_high), abs=1e-9)


def test_thin_svd_falls_back_to_the_same_decomposition(gesdd_fails_on_repeated_rows):
    rows = _layer_zero_like(np.random.default_rng(2))[np.random.default_rng(3).integers(0, N, N)]
    centred = rows - rows.mean(0)
    u, s, vt = sim.thin_svd(centred)

    assert gesdd_fails_on_repeated_rows == [centred.shape]
    np.testing.assert_allclose((u * s) @ vt, centred, atol=1e-10)
    eigenvalues = np.linalg.eigvalsh(centred @ centred.T)[::-1][:len(s)]
    np.testing.assert_allclose(s**2, np.clip(eigenvalues, 0, None), atol=1e-9)


def test_bootstrap_ci_raises_where_linear_algebra_fails():
    """A failed decomposition is not a resample the metric cannot use: it must not become NaN."""
    def failing(x, y, sample_ids=None):
        if sample_ids is not None and sample_ids[0] == sample_ids[1]:
            raise np.linalg.LinAlgError("SVD did not converge")
        return 0.5

    x = np.zeros((4, 2))
    resamples = np.array([[0, 1, 2, 3], [1, 1, 2, 3]])
    with pytest.raises(np.linalg.LinAlgError):
        nulls.bootstrap_ci(failing, x, x, resamples=resamples)
