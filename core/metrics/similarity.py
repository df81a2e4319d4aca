"""Reference similarity metrics between two sets of sentence representations.

Every function takes two matrices whose rows are the same sentences, shape (n_samples, features), and
returns a Python float. They favour clarity over speed and run one pair at a time in float64 numpy;
``core.metrics.grid`` computes the same numbers in batches and is tested against these.

``sample_ids`` (mutual kNN, retrieval) name the sentence behind each row. They only matter for bootstrap
resamples, where one sentence can appear several times: copies of a sentence are never each other's
neighbour, and finding any copy of the right sentence counts as a hit.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

#: Regularisation of google/svcca's ``cca_core.get_cca_similarity`` as used in its SVCCA tutorial.
SVCCA_EPSILON = 1e-10
#: Warn when an SVCCA k exceeds this fraction of n_samples. Two *independent* Gaussian samples score
#: a mean canonical correlation of about 0.26 at k = n/10, 0.44 at k = n/4 and 0.65 at k = n/2 (it
#: reaches 1 at k = n - 1), so beyond n/4 the metric mostly measures k/n, not the representations.
SVCCA_WARN_FRACTION = 0.25
#: Largest k of the default SVCCA (see ``default_svcca_k``).
SVCCA_DEFAULT_MAX_K = 20
METRIC_NAMES = ("svcca", "linear_cka", "cka_debiased", "mutual_knn", "retrieval", "paired_cosine")
#: What each measure is invariant to (ReSi-style declarations; tests/test_metrics_properties.py
#: checks them). A measure invariant to an orthogonal map of one side alone compares two
#: representations in any two bases, so it is defined across representation spaces; one that is
#: not compares coordinates and is defined only between points of one space.
INVARIANCES: dict[str, frozenset[str]] = {
    "svcca": frozenset({"orthogonal_one_side", "isotropic_scale", "invertible_linear"}),
    "linear_cka": frozenset({"orthogonal_one_side", "isotropic_scale"}),
    "cka_debiased": frozenset({"orthogonal_one_side", "isotropic_scale"}),
    "mutual_knn": frozenset({"orthogonal_one_side", "isotropic_scale"}),
    "retrieval": frozenset({"orthogonal_both_sides", "isotropic_scale"}),
    "paired_cosine": frozenset({"orthogonal_both_sides", "isotropic_scale"}),
}
#: Measures that compare coordinates of the two sides: undefined across representation spaces.
NEEDS_SHARED_SPACE: frozenset[str] = frozenset(
    name for name, inv in INVARIANCES.items() if "orthogonal_one_side" not in inv)

Metric = Callable[..., float]
"""A metric bound to its parameters: ``metric(x, y, sample_ids=None) -> float``."""


@dataclass(frozen=True)
class SvccaResult:
    """SVCCA with what it was computed from: the kept directions per side and all correlations."""

    value: float
    k_x: int
    k_y: int
    correlations: np.ndarray  # canonical correlations, descending


def as_matrix(name: str, values: np.ndarray) -> np.ndarray:
    """``values`` as a float64 (n_samples, features) array, refusing what would give silent nonsense."""
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, features), got shape {matrix.shape}")
    if not np.isfinite(matrix).all():
        raise ValueError(f"{name} holds NaN or inf values; drop or fix those rows first")
    return matrix


def _pair(x: np.ndarray, y: np.ndarray, min_samples: int = 2) -> tuple[np.ndarray, np.ndarray]:
    x, y = as_matrix("x", x), as_matrix("y", y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must hold the same sentences (rows): got {x.shape[0]} and {y.shape[0]} rows")
    if x.shape[0] < min_samples:
        raise ValueError(f"need at least {min_samples} sentences, got {x.shape[0]}")
    return x, y


def _same_dims(x: np.ndarray, y: np.ndarray, metric: str) -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{metric} compares vectors across the two sides, so both need the same dimension; got "
            f"{x.shape[1]} and {y.shape[1]}. Use svcca, linear_cka or mutual_knn instead.")


def _centred(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=0, keepdims=True)


def _unit_rows(x: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"{name} has all-zero rows; cosine similarity is undefined for them")
    return x / norms


# --------------------------------------------------------------------------------------------- SVCCA


def default_svcca_k(n_samples: int, dims_x: int, dims_y: int) -> int:
    """k = min(20, n // 10, dims): keeps SVCCA of independent data near 0.25 or below at any n."""
    return max(1, min(SVCCA_DEFAULT_MAX_K, n_samples // 10, dims_x, dims_y))


def k_for_variance(singular_values: np.ndarray, variance: float) -> int:
    """Fewest leading directions whose squared singular values keep ``variance`` of the total."""
    if not 0.0 < variance <= 1.0:
        raise ValueError(f"variance must be in (0, 1], got {variance}")
    power = np.asarray(singular_values, dtype=np.float64) ** 2
    kept = np.cumsum(power) / power.sum()
    return int(min(np.searchsorted(kept, variance - 1e-12) + 1, len(power)))


def check_svcca_k(k: int, n_samples: int, dims: int, side: str) -> None:
    """Refuse a k that SVCCA cannot use: it needs k <= min(n_samples - 1, dims) directions."""
    limit = min(n_samples - 1, dims)
    if k < 1 or k > limit:
        raise ValueError(
            f"svcca k={k} for {side} must be between 1 and min(n_samples - 1, dims) = {limit} "
            f"(n_samples={n_samples}, dims={dims}); use a smaller k or more sentences")


def warn_if_saturated(k: int, n_samples: int, side: str) -> None:
    """Warn when k exceeds ``SVCCA_WARN_FRACTION`` of the sentences (see there)."""
    if k > SVCCA_WARN_FRACTION * n_samples:
        warnings.warn(
            f"svcca k={k} for {side} is above n_samples/4 ({n_samples}/4): SVCCA saturates as k nears "
            f"n (independent data already score ~0.45 at k = n/4), so compare values only at the same "
            f"k and n, or use fewer directions", stacklevel=4)


def thin_svd(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, s, vt) of ``matrix``, full_matrices=False, from LAPACK's gesdd or, where gesdd does not
    converge, gesvd.

    numpy's SVD is gesdd (divide and conquer) only, and gesdd can stop with "SVD did not converge" on
    a perfectly good matrix (numpy/numpy#12941, scipy/scipy#15024). It does so on bootstrap resamples
    of the bundled store's whisper-base layer 0 (200 rows, ~130 distinct sentences): the SVD is
    well-conditioned there, yet the failure made that resample's SVCCA NaN and shifted its interval
    by 1e-4 from the grid's. gesvd (QR iteration) computes the same decomposition, to rounding and
    the signs of singular-vector pairs, and converges on those matrices.
    """
    try:
        return np.linalg.svd(matrix, full_matrices=False)
    except np.linalg.LinAlgError:
        # Imported here: the dashboard imports this module for its name constants, and scipy.linalg
        # would add a quarter of a second to that for a path that is rarely taken.
        from scipy import linalg

        return linalg.svd(matrix, full_matrices=False, lapack_driver="gesvd")


def _top_directions(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left singular vectors and singular values of the sample-centred matrix."""
    u, s, _ = thin_svd(_centred(x))
    return u, s


def _inverse_sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    # cca_core: pinv, then the square root through an eigendecomposition.
    w, v = np.linalg.eigh(np.linalg.pinv(matrix))
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def cca_correlations(acts_x: np.ndarray, acts_y: np.ndarray,
                     epsilon: float = SVCCA_EPSILON) -> np.ndarray:
    """Canonical correlations as google/svcca ``cca_core.get_cca_similarity`` computes them.

    Covariances are rescaled by their largest entry, directions whose rescaled variance is below
    ``epsilon`` are dropped, and ``epsilon`` is added to the diagonals before whitening.
    """
    k_x = acts_x.shape[1]
    covariance = np.cov(acts_x.T, acts_y.T)
    sigma_xx, sigma_yy = covariance[:k_x, :k_x], covariance[k_x:, k_x:]
    sigma_xy = covariance[:k_x, k_x:]
    x_max, y_max = np.max(np.abs(sigma_xx)), np.max(np.abs(sigma_yy))
    sigma_xx, sigma_yy = sigma_xx / x_max, sigma_yy / y_max
    sigma_xy = sigma_xy / math.sqrt(x_max * y_max)
    keep_x = np.abs(np.diag(sigma_xx)) >= epsilon
    keep_y = np.abs(np.diag(sigma_yy)) >= epsilon
    sigma_xx = sigma_xx[np.ix_(keep_x, keep_x)] + epsilon * np.eye(keep_x.sum())
    sigma_yy = sigma_yy[np.ix_(keep_y, keep_y)] + epsilon * np.eye(keep_y.sum())
    whitened = _inverse_sqrt_psd(sigma_xx) @ sigma_xy[np.ix_(keep_x, keep_y)] @ _inverse_sqrt_psd(sigma_yy)
    return np.abs(thin_svd(whitened)[1])


def svcca_details(x: np.ndarray, y: np.ndarray, k: int | None = None,
                  variance: float | None = None) -> SvccaResult:
    """SVCCA (Raghu et al. 2017) as in google/svcca: top singular directions, then CCA.

    Give ``k`` (the same number of directions on both sides) or ``variance`` (per side, the fewest
    directions keeping that share of the variance, e.g. 0.99). With neither, ``default_svcca_k``.
    """
    x, y = _pair(x, y)
    if k is not None and variance is not None:
        raise ValueError("give svcca either k= or variance=, not both")
    n = x.shape[0]
    u_x, s_x = _top_directions(x)
    u_y, s_y = _top_directions(y)
    if variance is not None:
        k_x, k_y = k_for_variance(s_x, variance), k_for_variance(s_y, variance)
    else:
        k_x = k_y = int(k) if k is not None else default_svcca_k(n, x.shape[1], y.shape[1])
    check_svcca_k(k_x, n, x.shape[1], "x")
    check_svcca_k(k_y, n, y.shape[1], "y")
    warn_if_saturated(max(k_x, k_y), n, "x" if k_x >= k_y else "y")
    correlations = cca_correlations(u_x[:, :k_x] * s_x[:k_x], u_y[:, :k_y] * s_y[:k_y])
    return SvccaResult(float(np.mean(correlations)), k_x, k_y, correlations)


def svcca(x: np.ndarray, y: np.ndarray, k: int | None = None, variance: float | None = None) -> float:
    """Mean canonical correlation of the top singular directions; see ``svcca_details``."""
    return svcca_details(x, y, k=k, variance=variance).value


# ----------------------------------------------------------------------------------------------- CKA


def linear_cka(x: np.ndarray, y: np.ndarray, debiased: bool = False) -> float:
    """Linear CKA (Kornblith et al. 2019); ``debiased`` uses Song et al.'s unbiased HSIC.

    The biased form is ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), computed through the Gram
    matrices. The debiased form is HSIC_u(K, L) / sqrt(HSIC_u(K, K) HSIC_u(L, L)) with the U-statistic
    of Song et al. (2012), which removes the positive bias CKA has at small n; it can be negative.
    """
    x, y = _pair(x, y, min_samples=4 if debiased else 2)
    x, y = _centred(x), _centred(y)
    gram_x, gram_y = x @ x.T, y @ y.T
    hsic = unbiased_hsic if debiased else _biased_hsic
    cross, self_x, self_y = hsic(gram_x, gram_y), hsic(gram_x, gram_x), hsic(gram_y, gram_y)
    if self_x <= 0 or self_y <= 0:
        raise ValueError("CKA is undefined: one side has no variance across sentences"
                         + (" (or too few sentences for the unbiased estimate)" if debiased else ""))
    return float(cross / math.sqrt(self_x * self_y))


def _biased_hsic(gram_x: np.ndarray, gram_y: np.ndarray) -> float:
    # Both Gram matrices come from centred data, so tr(K H L H) = tr(K L).
    return float(np.sum(gram_x * gram_y))


def unbiased_hsic(gram_x: np.ndarray, gram_y: np.ndarray) -> float:
    """Song et al. (2012) unbiased HSIC, times n(n-3) (a constant that cancels in CKA)."""
    n = gram_x.shape[0]
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs at least 4 sentences, got {n}")
    k, l = gram_x.copy(), gram_y.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    k_rows, l_rows = k.sum(axis=1), l.sum(axis=1)
    return float(np.sum(k * l) + k_rows.sum() * l_rows.sum() / ((n - 1) * (n - 2))
                 - 2.0 / (n - 2) * (k_rows @ l_rows))


# ------------------------------------------------------------------------------ neighbours and cosine


def _resolve_ids(sample_ids: np.ndarray | None, n: int) -> np.ndarray:
    if sample_ids is None:
        return np.arange(n)
    ids = np.asarray(sample_ids)
    if ids.shape != (n,):
        raise ValueError(f"sample_ids must have one id per row ({n}), got shape {ids.shape}")
    return ids


#: Cosines are rounded to this many decimals before ranking (kNN, retrieval). Identical vectors
#: (e.g. length-only features of sentences with equal token counts) must tie exactly, but BLAS sums
#: different output blocks in different orders, so their dot products can differ in the last bit and
#: the tie would break by arithmetic noise, differently in every implementation.
RANKING_DECIMALS = 12


def ranking_cosines(similarity: np.ndarray) -> np.ndarray:
    """Cosines rounded for ranking (see ``RANKING_DECIMALS``); -inf stays -inf."""
    return np.round(similarity, RANKING_DECIMALS)


def cosine_neighbours(x: np.ndarray, k: int, sample_ids: np.ndarray) -> np.ndarray:
    """Row indices of each row's k most cosine-similar rows, other sentences only.

    Ties go to the lower row index (a stable sort), so results are reproducible.
    """
    unit = _unit_rows(x, "x")
    similarity = ranking_cosines(unit @ unit.T)
    same_sentence = sample_ids[:, None] == sample_ids[None, :]
    candidates = (~same_sentence).sum(axis=1).min()
    if k < 1 or k > candidates:
        raise ValueError(f"mutual_knn k={k} must be between 1 and the number of other sentences "
                         f"({candidates}); use a smaller k")
    similarity[same_sentence] = -np.inf
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def multiset_overlap(ids_a: np.ndarray, ids_b: np.ndarray) -> np.ndarray:
    """Per row, how many ids two lists share, counting repeated ids as often as both lists hold them."""
    k = ids_a.shape[-1]

    def keyed(ids: np.ndarray) -> np.ndarray:
        earlier = np.tril(np.ones((k, k), dtype=bool), -1)
        repeat = ((ids[..., :, None] == ids[..., None, :]) & earlier).sum(axis=-1)
        return ids * k + repeat

    key_a, key_b = keyed(ids_a), keyed(ids_b)
    return (key_a[..., :, None] == key_b[..., None, :]).sum(axis=(-1, -2))


def mutual_knn(x: np.ndarray, y: np.ndarray, k: int = 10, *,
               sample_ids: np.ndarray | None = None) -> float:
    """Mutual k-nearest-neighbour alignment (Huh et al. 2024): mean |kNN_x(i) ∩ kNN_y(i)| / k.

    Neighbours are by cosine similarity, excluding the sentence itself.
    """
    x, y = _pair(x, y)
    ids = _resolve_ids(sample_ids, x.shape[0])
    neighbours_x = ids[cosine_neighbours(x, k, ids)]
    neighbours_y = ids[cosine_neighbours(y, k, ids)]
    return float(multiset_overlap(neighbours_x, neighbours_y).mean() / k)


def retrieval_p1(x: np.ndarray, y: np.ndarray, *,
                 sample_ids: np.ndarray | None = None) -> tuple[float, float]:
    """Precision@1 of cosine retrieval, (x finds y, y finds x): does row i find row i of the other side."""
    x, y = _pair(x, y)
    _same_dims(x, y, "retrieval")
    ids = _resolve_ids(sample_ids, x.shape[0])
    similarity = ranking_cosines(_unit_rows(x, "x") @ _unit_rows(y, "y").T)
    x_to_y = ids[np.argmax(similarity, axis=1)] == ids
    y_to_x = ids[np.argmax(similarity, axis=0)] == ids
    return float(x_to_y.mean()), float(y_to_x.mean())


def retrieval_accuracy(x: np.ndarray, y: np.ndarray, *,
                       sample_ids: np.ndarray | None = None) -> float:
    """Mean of both retrieval directions (a symmetric score)."""
    return float(np.mean(retrieval_p1(x, y, sample_ids=sample_ids)))


def paired_cosine(x: np.ndarray, y: np.ndarray) -> float:
    """Mean cosine between each sentence's two vectors; only meaningful in a shared space."""
    x, y = _pair(x, y, min_samples=1)
    _same_dims(x, y, "paired_cosine")
    return float(np.mean(np.sum(_unit_rows(x, "x") * _unit_rows(y, "y"), axis=1)))


# --------------------------------------------------------------------------------------- dispatching


def compute_metric(name: str, x: np.ndarray, y: np.ndarray, *,
                   sample_ids: np.ndarray | None = None, **params) -> float:
    """One metric by name, with the parameters the grid records (see ``METRIC_NAMES``).

    ``retrieval`` takes ``direction`` ("mean", "a_to_b" or "b_to_a"); ``svcca`` takes ``k`` or
    ``variance``; ``mutual_knn`` takes ``k``. ``sample_ids`` only affects the neighbour-based metrics.
    """
    if name == "svcca":
        return svcca(x, y, k=params.get("k"), variance=params.get("variance"))
    if name == "linear_cka":
        return linear_cka(x, y)
    if name == "cka_debiased":
        return linear_cka(x, y, debiased=True)
    if name == "mutual_knn":
        return mutual_knn(x, y, k=params.get("k", 10), sample_ids=sample_ids)
    if name == "retrieval":
        direction = params.get("direction", "mean")
        a_to_b, b_to_a = retrieval_p1(x, y, sample_ids=sample_ids)
        by_direction = {"mean": (a_to_b + b_to_a) / 2, "a_to_b": a_to_b, "b_to_a": b_to_a}
        if direction not in by_direction:
            raise ValueError(f"retrieval direction must be one of {sorted(by_direction)}, got {direction!r}")
        return float(by_direction[direction])
    if name == "paired_cosine":
        return paired_cosine(x, y)
    raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}")


def metric_function(name: str, **params) -> Metric:
    """``compute_metric`` bound to a name and parameters, as the null-model helpers take it."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}")
    return partial(compute_metric, name, **params)
