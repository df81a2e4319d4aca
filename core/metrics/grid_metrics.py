"""Each metric of one pair, with its values under every permutation and bootstrap resample,
from the two sides' cached terms and the cross terms several metrics of the pair share.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from core.metrics.grid_kernels import chunk_size, hsic, pad_columns, shared_count, submatrices
from core.metrics.grid_resampling import Resampling
from core.metrics.grid_side import Side
from core.metrics.similarity import RANKING_DECIMALS, SVCCA_EPSILON, k_for_variance


def _ratio(cross: torch.Tensor, self_x: torch.Tensor, self_y: torch.Tensor) -> torch.Tensor:
    valid = (self_x > 0) & (self_y > 0)
    return torch.where(valid, cross / (self_x * self_y).clamp_min(1e-300).sqrt(), math.nan)


@dataclass
class Values:
    """A metric for one pair: its value, and its values under each permutation and resample."""

    value: float
    null: np.ndarray
    boot: np.ndarray


_NAN = float("nan")
_NONE = np.empty(0)


class Pair:
    """Two sides and the cross terms that several metrics of the pair share."""

    def __init__(self, a: Side, b: Side, with_nulls: bool):
        self.a, self.b, self.with_nulls = a, b, with_nulls
        self.n = a.n
        self.resampling = a.resampling if with_nulls else None
        self._memo: dict = {}

    def _cached(self, key, build: Callable):
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    def nan_values(self) -> Values:
        if self.resampling is None:
            return Values(_NAN, _NONE, _NONE)
        return Values(_NAN, np.full(len(self.resampling.permutations), _NAN),
                      np.full(len(self.resampling.resamples), _NAN))

    def values(self, value: torch.Tensor, null: torch.Tensor | None = None,
               boot: torch.Tensor | None = None) -> Values:
        as_numpy = (lambda t: _NONE if t is None else t.cpu().numpy())
        return Values(float(value), as_numpy(null), as_numpy(boot))

    def cross_cosine(self) -> torch.Tensor | None:
        """(n, n) cosine between rows of a and rows of b; None across different dims."""
        def build():
            a, b = self.a, self.b
            if a.dims != b.dims or a.unit is None or b.unit is None:
                return None
            return torch.round(a.unit @ b.unit.T, decimals=RANKING_DECIMALS)
        return self._cached("cross_cosine", build)

    def cka_cross(self) -> dict[str, torch.Tensor]:
        """sum(K∘L) for the pair, for each permutation of b, and w^T (K∘L) w for each resample."""
        def build():
            a, b = self.a, self.b
            product = a.gram * b.gram
            terms = {"value": product.sum()}
            if self.with_nulls:
                perms = self.resampling.permutations
                q = torch.empty(len(perms), dtype=torch.float64, device=a.x.device)
                step = chunk_size(8 * self.n * self.n)
                for start in range(0, len(perms), step):
                    p = perms[start: start + step]
                    q[start: start + len(p)] = (a.gram * submatrices(b.gram, p)).sum((-1, -2))
                counts = self.resampling.counts
                terms["null"] = q
                terms["boot"] = ((counts @ product) * counts).sum(1)
            return terms
        return self._cached("cka_cross", build)


def _cka_values(pair: Pair, debiased: bool) -> Values:
    index = 1 if debiased else 0
    a, b = pair.a, pair.b
    ta, tb = a.hsic_terms(), b.hsic_terms()
    self_a, self_b = a.self_hsic()[index], b.self_hsic()[index]
    ones = torch.ones(a.n, dtype=torch.float64, device=a.x.device)
    cross = pair.cka_cross()

    def pair_hsic(q, kw_b, diag_b):
        return hsic(q, ones, ta["kw"], kw_b, ta["diag"], diag_b, ta["s"], tb["s"], ta["d"], tb["d"],
                    a.n)[index]

    value = _ratio(pair_hsic(cross["value"], tb["kw"], tb["diag"]), self_a, self_b)
    if not pair.with_nulls:
        return pair.values(value)
    perms = pair.resampling.permutations
    null = _ratio(pair_hsic(cross["null"], tb["kw"][perms], tb["diag"][perms]), self_a, self_b)
    counts = pair.resampling.counts
    ba, bb = a.boot_hsic_terms(), b.boot_hsic_terms()
    boot_cross = hsic(cross["boot"], counts, ba["kw"], bb["kw"], ba["diag"], bb["diag"], ba["s"],
                      bb["s"], ba["d"], bb["d"], a.n)[index]
    return pair.values(value, null, _ratio(boot_cross, ba["self"][index], bb["self"][index]))


def _svcca_scale(eigenvalues: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cca_core's whitening of singular directions, reduced to a per-direction factor.

    The covariance of the scaled projections is diag(s_i^2); rescaled by its largest entry it is
    diag(r_i), r_i = s_i^2 / s_1^2. Directions with r_i < epsilon are dropped, the rest whitened with
    (r_i + epsilon)^-1/2, so direction i enters the CCA matrix with sqrt(r_i / (r_i + epsilon)).
    Returns the factors (..., K) and how many directions are kept.
    """
    position = torch.arange(eigenvalues.shape[-1], device=eigenvalues.device)
    ratio = eigenvalues / eigenvalues[..., :1].clamp_min(1e-300)
    keep = (ratio >= SVCCA_EPSILON) & (position < k.unsqueeze(-1))
    factor = torch.where(keep, (ratio / (ratio + SVCCA_EPSILON)).sqrt(), 0.0)
    return factor, keep.sum(-1)


def _mean_correlation(u_a, factor_a, kept_a, u_b, factor_b, kept_b) -> torch.Tensor:
    """Mean canonical correlation: the CCA matrix's singular values over the directions kept."""
    matrix = (u_a * factor_a.unsqueeze(-2)).transpose(-1, -2) @ (u_b * factor_b.unsqueeze(-2))
    return torch.linalg.svdvals(matrix).sum(-1) / torch.minimum(kept_a, kept_b)


def _full_sample_k(side: Side, params: dict) -> int:
    if params["variance"] is None:
        return params["k"]
    return k_for_variance(side.spectrum()[0].sqrt().cpu().numpy(), params["variance"])


def _svcca_values(pair: Pair, params: dict) -> tuple[Values, dict]:
    a, b = pair.a, pair.b
    k_a, k_b = _full_sample_k(a, params), _full_sample_k(b, params)
    reported = {"k_x": k_a, "k_y": k_b} if params["variance"] is not None else {}
    if not (1 <= k_a <= min(a.n - 1, a.dims) and 1 <= k_b <= min(b.n - 1, b.dims)):
        return pair.nan_values(), reported
    (values_a, u_a), (values_b, u_b) = a.spectrum(), b.spectrum()
    factor_a, kept_a = _svcca_scale(values_a[:k_a], torch.tensor(k_a, device=a.x.device))
    factor_b, kept_b = _svcca_scale(values_b[:k_b], torch.tensor(k_b, device=a.x.device))
    u_a, u_b = u_a[:, :k_a], u_b[:, :k_b]
    value = _mean_correlation(u_a, factor_a, kept_a, u_b, factor_b, kept_b)
    if not pair.with_nulls:
        return pair.values(value), reported
    null = _mean_correlation(u_a, factor_a, kept_a, u_b[pair.resampling.permutations], factor_b, kept_b)
    if not len(pair.resampling.resamples):
        return pair.values(value, null, torch.empty(0)), reported
    request = ("k", params["k"]) if params["variance"] is None else ("variance", params["variance"])
    boot_a, boot_b = a.boot_directions(), b.boot_directions()
    ks_a, ks_b = boot_a["k"][request], boot_b["k"][request]
    width_a, width_b = int(ks_a.max()), int(ks_b.max())
    scale_a = _svcca_scale(pad_columns(boot_a["eigenvalues"], width_a), ks_a)
    scale_b = _svcca_scale(pad_columns(boot_b["eigenvalues"], width_b), ks_b)
    boot = _mean_correlation(pad_columns(boot_a["vectors"], width_a), *scale_a,
                             pad_columns(boot_b["vectors"], width_b), *scale_b)
    return pair.values(value, null, boot), reported


def _knn_values(pair: Pair, k: int) -> Values:
    a, b = pair.a, pair.b
    neighbours_a, neighbours_b = a.neighbours(k), b.neighbours(k)
    if neighbours_a is None or neighbours_b is None:
        return pair.nan_values()
    value = shared_count(neighbours_a.indices, neighbours_b.indices).double().mean() / k
    if not pair.with_nulls:
        return pair.values(value)
    permuted = neighbours_b.permuted(pair.resampling.permutations,
                                     pair.resampling.inverse_permutations)
    null = shared_count(neighbours_a.indices.unsqueeze(0), permuted).double().mean(-1) / k
    (keys_a, valid_a), (keys_b, valid_b) = a.boot_neighbour_keys(k), b.boot_neighbour_keys(k)
    counts = pair.resampling.counts
    boot = (shared_count(keys_a, keys_b) * counts).sum(-1) / (pair.n * k)
    return pair.values(value, null, torch.where(valid_a & valid_b, boot, math.nan))


def _retrieval_values(pair: Pair, direction: str) -> Values:
    similarity = pair.cross_cosine()
    if similarity is None:
        return pair.nan_values()
    rows = torch.arange(pair.n, device=similarity.device)

    def score(a_to_b: torch.Tensor, b_to_a: torch.Tensor) -> torch.Tensor:
        a_to_b, b_to_a = a_to_b.double().mean(-1), b_to_a.double().mean(-1)
        return {"mean": (a_to_b + b_to_a) / 2, "a_to_b": a_to_b, "b_to_a": b_to_a}[direction]

    best_b, best_a = similarity.argmax(1), similarity.argmax(0)
    value = score(best_b == rows, best_a == rows)
    if not pair.with_nulls:
        return pair.values(value)
    perms = pair.resampling.permutations
    null = score(best_b[None, :] == perms, best_a[perms] == rows)
    return pair.values(value, null, _boot_retrieval(similarity, pair.resampling, score))


def _boot_retrieval(similarity: torch.Tensor, resampling: Resampling, score: Callable) -> torch.Tensor:
    """Retrieval in every resample. Row i finds its partner in a resample unless a sentence scoring
    higher than the partner was drawn, so one product of the "beats the partner" matrix with the
    counts answers all resamples at once. Exact ties with the partner fall back to ranking each
    resample's own rows, where ties break by position as in the reference."""
    partner = torch.diagonal(similarity).unsqueeze(1)
    counts = resampling.counts
    ties = (similarity == partner) | (similarity.T == partner)
    if bool(ties.fill_diagonal_(False).any()):
        return _boot_retrieval_by_ranking(similarity, resampling.resamples, score)
    a_finds_b = (counts @ (similarity > partner).double().T) == 0  # (B, n) per sentence
    b_finds_a = (counts @ (similarity.T > partner).double().T) == 0
    return score(a_finds_b * counts, b_finds_a * counts)


def _boot_retrieval_by_ranking(similarity: torch.Tensor, resamples: torch.Tensor,
                               score: Callable) -> torch.Tensor:
    n = similarity.shape[0]
    boot = torch.empty(len(resamples), dtype=torch.float64, device=similarity.device)
    step = chunk_size(8 * n * n * 2)
    for start in range(0, len(resamples), step):
        drawn = resamples[start: start + step]
        block = submatrices(similarity, drawn)
        found_b = torch.gather(drawn, 1, block.argmax(-1)) == drawn
        found_a = torch.gather(drawn, 1, block.argmax(-2)) == drawn
        boot[start: start + len(drawn)] = score(found_b, found_a)
    return boot


def _paired_cosine_values(pair: Pair) -> Values:
    similarity = pair.cross_cosine()
    if similarity is None:
        return pair.nan_values()
    paired = torch.diagonal(similarity)
    if not pair.with_nulls:
        return pair.values(paired.mean())
    perms = pair.resampling.permutations
    rows = torch.arange(pair.n, device=similarity.device)
    null = similarity[rows, perms].mean(-1)
    return pair.values(paired.mean(), null, (pair.resampling.counts @ paired) / pair.n)


def metric_values(name: str, params: dict, pair: Pair) -> tuple[Values, dict]:
    """One metric of the pair (params as ``grid.resolve_params`` gives them), and what it reports
    having chosen (SVCCA by variance: ``k_x``, ``k_y``)."""
    if name == "svcca":
        return _svcca_values(pair, params)
    if name in ("linear_cka", "cka_debiased"):
        return _cka_values(pair, name == "cka_debiased"), {}
    if name == "mutual_knn":
        return _knn_values(pair, params["k"]), {}
    if name == "retrieval":
        return _retrieval_values(pair, params["direction"]), {}
    return _paired_cosine_values(pair), {}
