"""Whole similarity grids at once, on CPU or GPU, equal to the reference metrics.

A study compares thousands of (side a, side b) pairs -- language x modality x layer -- with several
metrics, each with a shuffled-pairs baseline, a bootstrap CI, a length-only baseline and a
length-residualised value. Done pair by pair with ``similarity`` and ``nulls`` this recomputes the same
SVDs, Gram matrices and neighbour lists for every pair, permutation and resample. Here everything that
depends on one side only (centring, Gram matrix, singular directions, neighbour lists, and their
per-resample versions) is computed once per side and reused by every pair and metric it appears in;
permutations and bootstrap resamples are processed as tensor batches.

Resamples are never materialised as copied rows: a bootstrap resample is a vector of counts w over the
sentences. CKA terms are then quadratic forms in w of each side's Gram matrix, and the singular
directions of a resample are the eigenvectors of the weighted Gram matrix
sqrt(w_i w_j) (x_i - m_w)·(x_j - m_w) over the sentences drawn at least once.

Permutations and resamples come from ``nulls.permutation_indices`` / ``nulls.bootstrap_indices`` with
the same seed, so the reference per-pair functions given those index sets reproduce every number here
(tests/test_metrics_grid.py checks 1e-6). They are shared by all pairs with the same n_samples, which
also makes differences between pairs less noisy.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from core.metrics import nulls
from core.metrics.similarity import (METRIC_NAMES, RANKING_DECIMALS, SVCCA_EPSILON,
                                     SVCCA_WARN_FRACTION, default_svcca_k, k_for_variance)

COLUMNS = ["key_a", "key_b", "metric", "params", "n_samples", "value", "baseline_mean",
           "baseline_std", "ci_low", "ci_high", "length_baseline", "value_residualised",
           "ci_method", "resamples"]
#: Keys of the ``params`` JSON that report what was chosen rather than what to pass to a metric.
REPORTED_PARAMS = frozenset({"k_x", "k_y"})
_ALLOWED_PARAMS = {"svcca": {"k", "variance"}, "mutual_knn": {"k"}, "retrieval": {"direction"},
                   "linear_cka": set(), "cka_debiased": set(), "paired_cosine": set()}
_TIE_WINDOW = 4  # extra neighbours looked at to see whether a tie at the k-th neighbour matters


@dataclass(frozen=True)
class MetricSpec:
    """A metric name and its parameters, e.g. ``MetricSpec("svcca", {"k": 20})``.

    svcca: ``k`` (int or "auto" = ``similarity.default_svcca_k``) or ``variance``; mutual_knn: ``k``;
    retrieval: ``direction`` ("mean", "a_to_b", "b_to_a").
    """

    name: str
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in METRIC_NAMES:
            raise ValueError(f"unknown metric {self.name!r}; known: {', '.join(METRIC_NAMES)}")
        unknown = set(self.params) - _ALLOWED_PARAMS[self.name]
        if unknown:
            raise ValueError(f"metric {self.name!r} takes no parameter(s) {sorted(unknown)}; "
                             f"allowed: {sorted(_ALLOWED_PARAMS[self.name]) or 'none'}")


DEFAULT_METRICS: list[MetricSpec] = [
    MetricSpec("svcca", {"k": "auto"}),
    MetricSpec("linear_cka"),
    MetricSpec("cka_debiased"),
    MetricSpec("mutual_knn", {"k": 10}),
    MetricSpec("retrieval", {"direction": "mean"}),
    MetricSpec("paired_cosine"),
]


def resolve_params(spec: MetricSpec, n_samples: int, dims_a: int, dims_b: int) -> dict:
    """Keyword arguments for ``similarity.compute_metric`` that this spec means for one pair."""
    if spec.name == "svcca":
        if spec.params.get("variance") is not None:
            return {"k": None, "variance": float(spec.params["variance"])}
        k = spec.params.get("k", "auto")
        k = default_svcca_k(n_samples, dims_a, dims_b) if k in (None, "auto") else int(k)
        return {"k": k, "variance": None}
    if spec.name == "mutual_knn":
        return {"k": int(spec.params.get("k", 10))}
    if spec.name == "retrieval":
        return {"direction": spec.params.get("direction", "mean")}
    return {}


def metric_kwargs(params_json: str) -> dict:
    """The ``params`` column of a grid row back to ``compute_metric`` keyword arguments."""
    return {key: value for key, value in json.loads(params_json).items() if key not in REPORTED_PARAMS}


def pick_device(device: str | None = None) -> torch.device:
    """``device`` as given, else CUDA when available, else CPU."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    chosen = torch.device(device)
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but this torch ({torch.__version__}) sees no CUDA device; "
                         f"use device='cpu' or None, or install a CUDA build of torch")
    return chosen


# ------------------------------------------------------------------------------- shared index sets


@dataclass
class _Resampling:
    """Permutations and bootstrap resamples for one n_samples, as the reference draws them."""

    permutations: torch.Tensor  # (P, n) long
    inverse_permutations: torch.Tensor  # (P, n) long
    resamples: torch.Tensor  # (B, n) long
    counts: torch.Tensor  # (B, n) float64: how often each sentence is drawn

    @classmethod
    def draw(cls, n: int, n_permutations: int, n_bootstrap: int, seed: int,
             device: torch.device) -> _Resampling:
        permutations = torch.as_tensor(nulls.permutation_indices(n, n_permutations, seed), device=device)
        resamples = torch.as_tensor(nulls.bootstrap_indices(n, n_bootstrap, seed), device=device)
        counts = torch.zeros(len(resamples), n, dtype=torch.float64, device=device)
        counts.scatter_add_(1, resamples, torch.ones_like(resamples, dtype=torch.float64))
        return cls(permutations, torch.argsort(permutations, dim=1), resamples, counts)


# ------------------------------------------------------------------------------------ one side


def _chunk_size(per_item_bytes: int, budget: int = 256 * 2**20) -> int:
    """How many items of a batch to process at once to stay within ``budget`` bytes."""
    return max(1, budget // max(1, per_item_bytes))


def _top_k_stable(similarity: torch.Tensor, k: int,
                  ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the k largest entries per row, ties going to the lower index (as a stable sort),
    and which rows had a tie at the k-th entry that decided what was chosen.

    ``similarity`` (..., rows, m) holds -inf where a column is excluded. ``ids`` (..., m) names the
    sentence behind each column: a tie only among copies of one sentence changes nothing, so only ties
    mixing sentences fall back to a stable sort.
    """
    width = min(k + _TIE_WINDOW, similarity.shape[-1])
    values, indices = torch.topk(similarity, width, dim=-1)
    if width == k:
        return indices, torch.zeros(indices.shape[:-1], dtype=torch.bool, device=indices.device)
    at_boundary = values == values[..., k - 1: k]
    tied = at_boundary[..., k]
    if ids is not None:
        column_ids = torch.gather(ids.unsqueeze(-2).expand(*indices.shape[:-1], ids.shape[-1]), -1,
                                  indices)
        big = torch.iinfo(column_ids.dtype).max
        lowest = torch.where(at_boundary, column_ids, big).amin(-1)
        highest = torch.where(at_boundary, column_ids, -1).amax(-1)
        group_may_continue = at_boundary[..., -1] & (width < similarity.shape[-1])
        tied &= (lowest != highest) | group_may_continue
    indices = indices[..., :k].clone()
    if tied.any():
        indices[tied] = torch.sort(-similarity[tied], dim=-1, stable=True).indices[..., :k]
    return indices, tied


def _multiset_keys(ids: torch.Tensor) -> torch.Tensor:
    """id * k + how many earlier entries of the list hold the same id: equal keys = shared entries."""
    k = ids.shape[-1]
    earlier = torch.ones(k, k, dtype=torch.bool, device=ids.device).tril(-1)
    repeat = ((ids.unsqueeze(-1) == ids.unsqueeze(-2)) & earlier).sum(-1)
    return ids * k + repeat


def _shared_count(keys_a: torch.Tensor, keys_b: torch.Tensor) -> torch.Tensor:
    return (keys_a.unsqueeze(-1) == keys_b.unsqueeze(-2)).sum((-1, -2))


def _submatrices(matrix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """matrix[rows_b][:, rows_b] for every row set in ``rows`` (..., m): (..., m, m)."""
    size = matrix.shape[-1]
    flat = (rows.unsqueeze(-1) * size + rows.unsqueeze(-2)).reshape(-1)
    return matrix.reshape(-1).index_select(0, flat).view(*rows.shape, rows.shape[-1])


def _eigh_descending(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    values, vectors = torch.linalg.eigh(matrix)
    return values.flip(-1).clamp_min(0.0), vectors.flip(-1)


def _pad_columns(matrix: torch.Tensor, width: int) -> torch.Tensor:
    if matrix.shape[-1] >= width:
        return matrix[..., :width]
    return torch.nn.functional.pad(matrix, (0, width - matrix.shape[-1]))


@dataclass
class _Neighbours:
    """k nearest rows per row, plus the rows whose k-th neighbour was a tie and their similarities:
    in a shuffled copy of the side those ties break by the new row order, so they are redone there."""

    indices: torch.Tensor  # (n, k)
    tied_rows: torch.Tensor  # (t,)
    tied_similarity: torch.Tensor  # (t, n), -inf on the row itself

    def permuted(self, permutations: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        """(P, n, k) neighbours in each permuted copy (row i of copy p is row p_i), renumbered."""
        n, k = self.indices.shape
        # Row i of the copy is row p_i here; its neighbours, renumbered into the copy, are p^-1(nbrs).
        result = torch.gather(inverse.unsqueeze(1).expand(-1, n, -1), 2, self.indices[permutations])
        if len(self.tied_rows) and len(permutations):
            reordered = self.tied_similarity[:, permutations]  # (t, P, n) in each copy's row order
            chosen = torch.sort(-reordered, dim=-1, stable=True).indices[..., :k]
            copies = torch.arange(len(permutations), device=result.device)
            positions = inverse[:, self.tied_rows]  # (P, t): where each tied row went
            result[copies.unsqueeze(1), positions] = chosen.transpose(0, 1)
        return result


class _Side:
    """What one side (n_samples, dims) contributes to any pair, computed on first use and kept."""

    def __init__(self, x: torch.Tensor, resampling: _Resampling | None = None,
                 svcca_requests: frozenset = frozenset()):
        self.x = x
        self.n, self.dims = x.shape
        self.resampling = resampling
        self.svcca_requests = svcca_requests  # ("k", k) / ("variance", v) pairs this side will need
        self._memo: dict = {}
        self._size: int | None = None

    def _cached(self, key, build: Callable):
        if key not in self._memo:
            self._memo[key] = build()
            self._size = None
        return self._memo[key]

    def nbytes(self) -> int:
        """Memory held by this side's tensors (recounted only after something new was cached)."""
        def size(value) -> int:
            if isinstance(value, torch.Tensor):
                return value.numel() * value.element_size()
            if isinstance(value, (tuple, list)):
                return sum(size(v) for v in value)
            if isinstance(value, dict):
                return sum(size(v) for v in value.values())
            if hasattr(value, "__dataclass_fields__"):
                return sum(size(getattr(value, name)) for name in value.__dataclass_fields__)
            return 0
        if self._size is None:
            self._size = size(self.x) + sum(size(v) for v in self._memo.values())
        return self._size

    # ---- centred data, Gram matrix, spectrum
    @property
    def centred(self) -> torch.Tensor:
        return self._cached("centred", lambda: self.x - self.x.mean(0, keepdim=True))

    @property
    def gram(self) -> torch.Tensor:
        return self._cached("gram", lambda: self.centred @ self.centred.T)

    def spectrum(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(eigenvalues of the centred Gram matrix = squared singular values, left singular vectors)."""
        def build():
            if self.dims < self.n:
                u, s, _ = torch.linalg.svd(self.centred, full_matrices=False)
                return s**2, u
            return _eigh_descending(self.gram)
        return self._cached("spectrum", build)

    # ---- cosine geometry
    @property
    def unit(self) -> torch.Tensor | None:
        def build():
            norms = self.x.norm(dim=1, keepdim=True)
            return None if bool((norms == 0).any()) else self.x / norms
        return self._cached("unit", build)

    @property
    def cosine(self) -> torch.Tensor:
        """Cosine similarity between rows, -inf on the diagonal (a row is not its own neighbour)."""
        def build():
            similarity = torch.round(self.unit @ self.unit.T, decimals=RANKING_DECIMALS)
            return similarity.fill_diagonal_(-math.inf)
        return self._cached("cosine", build)

    def neighbours(self, k: int) -> _Neighbours | None:
        """Each row's k cosine-nearest rows, self excluded; None where k is not possible."""
        def build():
            if self.unit is None or not 1 <= k <= self.n - 1:
                return None
            similarity = self.cosine
            indices, tied = _top_k_stable(similarity, k)
            tied_rows = torch.nonzero(tied).squeeze(1)
            return _Neighbours(indices, tied_rows, similarity[tied_rows])
        return self._cached(("neighbours", k), build)

    def boot_neighbour_keys(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per resample and sentence, the multiset keys of its k neighbours (copies of other sentences
        count, its own never), and which resamples leave every sentence k others to choose from.

        A sentence's neighbours in a resample are the first k drawn copies along its similarity
        ranking, so only a short prefix of the ranking is needed; resamples where that prefix holds
        too few draws, or where equal similarities would be ordered by resample position (identical
        vectors), go through the exact per-resample computation. Call only when ``neighbours(k)``
        exists.
        """
        def build():
            counts = self.resampling.counts
            valid = (self.n - counts.amax(1)) >= k
            similarity = self.cosine
            prefix = min(self.n - 1, 3 * k + 16)
            values, order = torch.topk(similarity, min(prefix + 1, self.n), dim=1)
            if bool((values[:, 1:prefix + 1] == values[:, :prefix]).any()):
                return self._exact_boot_keys(similarity, k, torch.ones_like(valid)), valid
            order = order[:, :prefix]
            drawn = counts[:, order]  # (B, n, prefix): copies of each ranked neighbour
            reached = drawn.cumsum(-1)
            slots = torch.arange(k, device=counts.device, dtype=counts.dtype).expand(*drawn.shape[:2], k)
            entry = torch.searchsorted(reached, slots.contiguous(), right=True).clamp_max(prefix - 1)
            sentence = torch.gather(order.expand(len(counts), -1, -1), 2, entry)
            copy = slots - torch.gather(reached - drawn, 2, entry)
            keys = sentence * k + copy.long()
            short = (reached[..., -1] < k) & (counts > 0)
            redo = short.any(1)
            if bool(redo.any()):
                keys[redo] = self._exact_boot_keys(similarity, k, redo)[redo]
            return keys, valid
        return self._cached(("boot_neighbours", k), build)

    def _exact_boot_keys(self, similarity: torch.Tensor, k: int, which: torch.Tensor) -> torch.Tensor:
        """Neighbour keys per sentence by ranking each chosen resample's own rows (as the reference)."""
        resamples = self.resampling.resamples
        keys = torch.zeros(*resamples.shape, k, dtype=torch.long, device=self.x.device)
        chosen = torch.nonzero(which).squeeze(1)
        step = _chunk_size(8 * self.n * self.n * 3)
        for start in range(0, len(chosen), step):
            index = chosen[start: start + step]
            drawn = resamples[index]
            block = _submatrices(similarity, drawn)
            block.masked_fill_(drawn.unsqueeze(-1) == drawn.unsqueeze(-2), -math.inf)
            nearest, _ = _top_k_stable(block, k, ids=drawn)
            sentence = torch.gather(drawn.unsqueeze(-2).expand(-1, self.n, -1), -1, nearest)
            # every copy of a sentence has the same neighbours: file them under the sentence
            keys[index.unsqueeze(1), drawn] = _multiset_keys(sentence)
        return keys

    # ---- CKA terms
    def hsic_terms(self) -> dict[str, torch.Tensor]:
        """Row sums, diagonal, total and trace of the Gram matrix (weights all one)."""
        def build():
            gram = self.gram
            return {"kw": gram.sum(1), "diag": torch.diagonal(gram).clone(), "s": gram.sum(),
                    "d": torch.diagonal(gram).sum()}
        return self._cached("hsic_terms", build)

    def boot_hsic_terms(self) -> dict[str, torch.Tensor]:
        """The same per bootstrap resample, as quadratic forms in the resample counts."""
        def build():
            counts, gram = self.resampling.counts, self.gram
            kw = counts @ gram
            diag = torch.diagonal(gram).clone()
            return {"kw": kw, "diag": diag, "s": (counts * kw).sum(1), "d": counts @ diag,
                    "self": _hsic(((counts @ (gram * gram)) * counts).sum(1), counts, kw, kw, diag, diag,
                                  (counts * kw).sum(1), (counts * kw).sum(1), counts @ diag,
                                  counts @ diag, self.n)}
        return self._cached("boot_hsic_terms", build)

    def self_hsic(self) -> tuple[torch.Tensor, torch.Tensor]:
        def build():
            terms = self.hsic_terms()
            ones = torch.ones(self.n, dtype=torch.float64, device=self.x.device)
            return _hsic((self.gram * self.gram).sum(), ones, terms["kw"], terms["kw"], terms["diag"],
                         terms["diag"], terms["s"], terms["s"], terms["d"], terms["d"], self.n)
        return self._cached("self_hsic", build)

    # ---- SVCCA directions per resample
    def boot_directions(self) -> dict:
        """Per resample: eigenvalues (B, K), directions (B, n, K) scaled by sqrt(count) and zero for
        sentences not drawn, and k per request ("k", k) / ("variance", v)."""
        def build():
            counts = self.resampling.counts
            fixed = [value for mode, value in self.svcca_requests if mode == "k"]
            variances = [value for mode, value in self.svcca_requests if mode == "variance"]
            most_present = int((counts > 0).sum(1).max()) if len(counts) else 0
            use_covariance = self.dims < most_present
            size = self.dims if use_covariance else most_present
            chunks, chosen = [], {("variance", v): [] for v in variances}
            step = _chunk_size(8 * size * size * 3)
            for start in range(0, len(counts), step):
                weights = counts[start: start + step]
                matrix = self._covariance(weights) if use_covariance else self._weighted_gram(weights)
                eigenvalues, ascending = torch.linalg.eigh(matrix)
                eigenvalues = eigenvalues.flip(-1).clamp_min(0.0)
                roots = eigenvalues.sqrt().cpu().numpy()
                for v in variances:
                    chosen[("variance", v)] += [k_for_variance(row, v) for row in roots]
                width = min(max(fixed + [k for ks in chosen.values() for k in ks] + [1]), size)
                basis = ascending[..., size - width:].flip(-1)
                directions = (self._covariance_directions(weights, eigenvalues, basis) if use_covariance
                              else self._gram_directions(weights, basis))
                chunks.append((eigenvalues[:, :width], directions))
            width = max(directions.shape[-1] for _, directions in chunks)
            return {
                "eigenvalues": torch.cat([_pad_columns(e, width) for e, _ in chunks]),
                "vectors": torch.cat([_pad_columns(d, width) for _, d in chunks]),
                "k": {**{request: torch.tensor(ks, device=self.x.device) for request, ks in chosen.items()},
                      **{("k", k): torch.full((len(counts),), k, device=self.x.device) for k in fixed}},
            }
        return self._cached("boot_directions", build)

    # A resample's centred Gram matrix is G_ij - c_i - c_j + mu (c = G w / n, mu = w^T G w / n^2) over
    # the sentences drawn; weighting it by sqrt(w_i w_j) gives the spectrum of the resample with its
    # copies merged. Each resample is gathered to the sentences it drew (padded with an all-zero dummy
    # row, index n), so a batch of them goes through one batched eigendecomposition.
    def _drawn_rows(self, weights: torch.Tensor) -> torch.Tensor:
        present = weights > 0
        width = int(present.sum(1).max())
        order = torch.argsort((~present).to(torch.int8), dim=1, stable=True)[:, :width]
        return torch.where(torch.gather(present, 1, order), order, self.n)

    def _weighted_gram(self, weights: torch.Tensor) -> torch.Tensor:
        rows = self._drawn_rows(weights)
        padded_gram = torch.nn.functional.pad(self.gram, (0, 1, 0, 1))
        gram = _submatrices(padded_gram, rows)
        w = torch.gather(torch.nn.functional.pad(weights, (0, 1)), 1, rows)
        row_means = (gram @ w.unsqueeze(-1)).squeeze(-1) / self.n
        grand = (w * row_means).sum(-1) / self.n
        centred = gram - row_means.unsqueeze(-1) - row_means.unsqueeze(-2) + grand[:, None, None]
        root = w.sqrt()
        return centred * root.unsqueeze(-1) * root.unsqueeze(-2)

    def _gram_directions(self, weights: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
        rows = self._drawn_rows(weights)
        width = basis.shape[-1]
        full = torch.zeros(len(weights), self.n + 1, width, dtype=basis.dtype, device=basis.device)
        full.scatter_(1, rows.unsqueeze(-1).expand(-1, -1, width), basis)
        return full[:, :self.n]

    # With fewer features than drawn sentences, the d x d weighted covariance is the smaller problem.
    def _covariance(self, weights: torch.Tensor) -> torch.Tensor:
        mean = (weights @ self.centred) / self.n
        return (self.centred.T * weights.unsqueeze(1)) @ self.centred \
            - self.n * mean.unsqueeze(-1) * mean.unsqueeze(-2)

    def _covariance_directions(self, weights: torch.Tensor, eigenvalues: torch.Tensor,
                               basis: torch.Tensor) -> torch.Tensor:
        mean = (weights @ self.centred) / self.n
        values = eigenvalues[:, :basis.shape[-1]]
        scale = torch.where(values > 0, values.clamp_min(1e-300).rsqrt(), 0.0)
        projected = (self.centred.unsqueeze(0) - mean.unsqueeze(1)) @ basis
        return projected * scale.unsqueeze(1) * weights.sqrt().unsqueeze(-1)


def _hsic(q, w, kw_x, kw_y, diag_x, diag_y, s_x, s_y, d_x, d_y, n: int):
    """Biased HSIC (tr K H L H) and n(n-3) x Song's unbiased HSIC of a (weighted) sample.

    With w the count of each sentence: q = w^T (K∘L) w, kw = K w, s = w^T K w, d = sum(w diag K).
    """
    r = (w * kw_x * kw_y).sum(-1)
    r_tilde = (w * (kw_x - diag_x) * (kw_y - diag_y)).sum(-1)
    d_xy = (w * diag_x * diag_y).sum(-1)
    biased = q - 2 * r / n + s_x * s_y / n**2
    if n < 4:
        return biased, torch.full_like(biased, math.nan)
    unbiased = ((q - d_xy) + (s_x - d_x) * (s_y - d_y) / ((n - 1) * (n - 2))
                - 2 * r_tilde / (n - 2))
    return biased, unbiased


def _ratio(cross: torch.Tensor, self_x: torch.Tensor, self_y: torch.Tensor) -> torch.Tensor:
    valid = (self_x > 0) & (self_y > 0)
    return torch.where(valid, cross / (self_x * self_y).clamp_min(1e-300).sqrt(), math.nan)


# ------------------------------------------------------------------------------------- metrics


@dataclass
class _Values:
    """A metric for one pair: its value, and its values under each permutation and resample."""

    value: float
    null: np.ndarray
    boot: np.ndarray


_NAN = float("nan")
_NONE = np.empty(0)


class _Pair:
    """Two sides and the cross terms that several metrics of the pair share."""

    def __init__(self, a: _Side, b: _Side, with_nulls: bool):
        self.a, self.b, self.with_nulls = a, b, with_nulls
        self.n = a.n
        self.resampling = a.resampling if with_nulls else None
        self._memo: dict = {}

    def _cached(self, key, build: Callable):
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    def nan_values(self) -> _Values:
        if self.resampling is None:
            return _Values(_NAN, _NONE, _NONE)
        return _Values(_NAN, np.full(len(self.resampling.permutations), _NAN),
                       np.full(len(self.resampling.resamples), _NAN))

    def values(self, value: torch.Tensor, null: torch.Tensor | None = None,
               boot: torch.Tensor | None = None) -> _Values:
        as_numpy = (lambda t: _NONE if t is None else t.cpu().numpy())
        return _Values(float(value), as_numpy(null), as_numpy(boot))

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
                step = _chunk_size(8 * self.n * self.n)
                for start in range(0, len(perms), step):
                    p = perms[start: start + step]
                    q[start: start + len(p)] = (a.gram * _submatrices(b.gram, p)).sum((-1, -2))
                counts = self.resampling.counts
                terms["null"] = q
                terms["boot"] = ((counts @ product) * counts).sum(1)
            return terms
        return self._cached("cka_cross", build)


def _cka_values(pair: _Pair, debiased: bool) -> _Values:
    index = 1 if debiased else 0
    a, b = pair.a, pair.b
    ta, tb = a.hsic_terms(), b.hsic_terms()
    self_a, self_b = a.self_hsic()[index], b.self_hsic()[index]
    ones = torch.ones(a.n, dtype=torch.float64, device=a.x.device)
    cross = pair.cka_cross()

    def hsic(q, kw_b, diag_b):
        return _hsic(q, ones, ta["kw"], kw_b, ta["diag"], diag_b, ta["s"], tb["s"], ta["d"], tb["d"],
                     a.n)[index]

    value = _ratio(hsic(cross["value"], tb["kw"], tb["diag"]), self_a, self_b)
    if not pair.with_nulls:
        return pair.values(value)
    perms = pair.resampling.permutations
    null = _ratio(hsic(cross["null"], tb["kw"][perms], tb["diag"][perms]), self_a, self_b)
    counts = pair.resampling.counts
    ba, bb = a.boot_hsic_terms(), b.boot_hsic_terms()
    boot_cross = _hsic(cross["boot"], counts, ba["kw"], bb["kw"], ba["diag"], bb["diag"], ba["s"],
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


def _full_sample_k(side: _Side, params: dict) -> int:
    if params["variance"] is None:
        return params["k"]
    return k_for_variance(side.spectrum()[0].sqrt().cpu().numpy(), params["variance"])


def _svcca_values(pair: _Pair, params: dict) -> tuple[_Values, dict]:
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
    scale_a = _svcca_scale(_pad_columns(boot_a["eigenvalues"], width_a), ks_a)
    scale_b = _svcca_scale(_pad_columns(boot_b["eigenvalues"], width_b), ks_b)
    boot = _mean_correlation(_pad_columns(boot_a["vectors"], width_a), *scale_a,
                             _pad_columns(boot_b["vectors"], width_b), *scale_b)
    return pair.values(value, null, boot), reported


def _knn_values(pair: _Pair, k: int) -> _Values:
    a, b = pair.a, pair.b
    neighbours_a, neighbours_b = a.neighbours(k), b.neighbours(k)
    if neighbours_a is None or neighbours_b is None:
        return pair.nan_values()
    value = _shared_count(neighbours_a.indices, neighbours_b.indices).double().mean() / k
    if not pair.with_nulls:
        return pair.values(value)
    permuted = neighbours_b.permuted(pair.resampling.permutations,
                                     pair.resampling.inverse_permutations)
    null = _shared_count(neighbours_a.indices.unsqueeze(0), permuted).double().mean(-1) / k
    (keys_a, valid_a), (keys_b, valid_b) = a.boot_neighbour_keys(k), b.boot_neighbour_keys(k)
    counts = pair.resampling.counts
    boot = (_shared_count(keys_a, keys_b) * counts).sum(-1) / (pair.n * k)
    return pair.values(value, null, torch.where(valid_a & valid_b, boot, math.nan))


def _retrieval_values(pair: _Pair, direction: str) -> _Values:
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


def _boot_retrieval(similarity: torch.Tensor, resampling: _Resampling, score: Callable) -> torch.Tensor:
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
    step = _chunk_size(8 * n * n * 2)
    for start in range(0, len(resamples), step):
        drawn = resamples[start: start + step]
        block = _submatrices(similarity, drawn)
        found_b = torch.gather(drawn, 1, block.argmax(-1)) == drawn
        found_a = torch.gather(drawn, 1, block.argmax(-2)) == drawn
        boot[start: start + len(drawn)] = score(found_b, found_a)
    return boot


def _paired_cosine_values(pair: _Pair) -> _Values:
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


def _metric_values(name: str, params: dict, pair: _Pair) -> tuple[_Values, dict]:
    if name == "svcca":
        return _svcca_values(pair, params)
    if name in ("linear_cka", "cka_debiased"):
        return _cka_values(pair, name == "cka_debiased"), {}
    if name == "mutual_knn":
        return _knn_values(pair, params["k"]), {}
    if name == "retrieval":
        return _retrieval_values(pair, params["direction"]), {}
    return _paired_cosine_values(pair), {}


# --------------------------------------------------------------------------------------- the grid


def _memory_budget(device: torch.device) -> int:
    """Bytes of side states to keep at once: half the free GPU memory, or 40% of available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        available = 4 * 2**30
    return int(available * 0.4)


class _SideCache:
    """Side states by (variant, key), least recently used dropped first beyond a memory budget."""

    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self.sides: OrderedDict = OrderedDict()

    def get(self, key, build: Callable[[], _Side]) -> _Side:
        if key in self.sides:
            self.sides.move_to_end(key)
        else:
            self.sides[key] = build()
        return self.sides[key]

    def trim(self, keep: set) -> None:
        sizes = {key: side.nbytes() for key, side in self.sides.items()}
        total = sum(sizes.values())
        for key in list(self.sides):
            if total <= self.budget:
                break
            if key not in keep:
                total -= sizes[key]
                del self.sides[key]

    def drop(self, keys: set) -> None:
        for key in [key for key in self.sides if key[1] in keys]:
            del self.sides[key]


def _processing_order(pairs: list) -> list[list[int]]:
    """Pair indices grouped by connected sides (e.g. one layer's text and speech sides).

    Each group's sides are built once and dropped when the group is done, whatever order the caller
    listed the pairs in; groups and pairs within them keep their first-seen order.
    """
    parent: dict = {}

    def root(key):
        parent.setdefault(key, key)
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for key_a, key_b in pairs:
        parent[root(key_a)] = root(key_b)
    groups: dict = {}
    for index, (key_a, _) in enumerate(pairs):
        groups.setdefault(root(key_a), []).append(index)
    return list(groups.values())


def _validate(sides: dict, pairs: list, lengths: dict | None) -> dict[Hashable, np.ndarray]:
    checked = {}
    for key_a, key_b in pairs:
        for key in (key_a, key_b):
            if key not in sides:
                raise KeyError(f"pair ({key_a!r}, {key_b!r}) names side {key!r}, which is not in sides")
            if key not in checked:
                matrix = np.asarray(sides[key], dtype=np.float64)
                if matrix.ndim != 2 or not np.isfinite(matrix).all():
                    raise ValueError(f"side {key!r} must be a finite 2-D array (n_sentences, dim), "
                                     f"got shape {matrix.shape}")
                checked[key] = matrix
                if lengths is not None:
                    if key not in lengths:
                        raise KeyError(f"lengths has no entry for side {key!r}; give one per side or "
                                       f"lengths=None")
                    if np.shape(lengths[key]) != (len(matrix),):
                        raise ValueError(f"lengths[{key!r}] must hold {len(matrix)} values (one per "
                                         f"sentence), got shape {np.shape(lengths[key])}")
        if len(checked[key_a]) != len(checked[key_b]):
            raise ValueError(f"pair ({key_a!r}, {key_b!r}) has {len(checked[key_a])} and "
                             f"{len(checked[key_b])} rows; rows must be the same sentences")
    return checked


def _svcca_requests(arrays: dict, pairs: list, metrics: list[MetricSpec]) -> dict:
    """Per side, the SVCCA direction counts its pairs will ask of its bootstrap resamples."""
    requests: dict = {key: set() for key in arrays}
    for key_a, key_b in pairs:
        (n, dims_a), dims_b = arrays[key_a].shape, arrays[key_b].shape[1]
        for spec in metrics:
            if spec.name == "svcca":
                params = resolve_params(spec, n, dims_a, dims_b)
                request = ("k", params["k"]) if params["variance"] is None \
                    else ("variance", params["variance"])
                requests[key_a].add(request)
                requests[key_b].add(request)
    return {key: frozenset(value) for key, value in requests.items()}


def compute_grid(
    sides: dict[Hashable, np.ndarray],
    pairs: list[tuple[Hashable, Hashable]],
    metrics: list[MetricSpec],
    *,
    lengths: dict[Hashable, np.ndarray] | None = None,
    n_permutations: int = 20,
    n_bootstrap: int = 200,
    seed: int = 0,
    device: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    ci_level: float = nulls.DEFAULT_CI_LEVEL,
    pair_metrics: list[list[MetricSpec]] | None = None,
) -> pd.DataFrame:
    """Every metric for every pair, with shuffled baseline, bootstrap CI and length controls.

    ``sides`` maps a key to (n_sentences, dim) activations whose rows are the same sentences in every
    side of a pair; ``lengths`` (seconds or tokens per sentence, per side) enables ``length_baseline``
    and ``value_residualised`` (NaN otherwise). A metric that cannot be computed for a pair (e.g.
    paired_cosine across different dims, svcca k above min(n - 1, dims)) gives a NaN row. Rows come
    in the order of ``pairs``, metrics in the order given. ``progress(done, total)`` counts pairs.
    ``pair_metrics[i]`` (a sub-list of ``metrics``) restricts pair i's metrics: one call can then
    cover pairs that take different metrics while every side's SVD, Gram matrix and bootstrap
    directions are computed once.
    """
    if pair_metrics is not None and len(pair_metrics) != len(pairs):
        raise ValueError(f"pair_metrics has {len(pair_metrics)} entries for {len(pairs)} pairs")
    arrays = _validate(sides, pairs, lengths)
    torch_device = pick_device(device)
    requests = _svcca_requests(arrays, pairs, metrics)
    resamplings: dict[int, _Resampling] = {}
    cache = _SideCache(_memory_budget(torch_device))
    saturated: set = set()

    def resampling_for(n: int) -> _Resampling:
        if n not in resamplings:
            resamplings[n] = _Resampling.draw(n, n_permutations, n_bootstrap, seed, torch_device)
        return resamplings[n]

    def side(variant: str, key: Hashable) -> _Side:
        def build() -> _Side:
            matrix = arrays[key]
            if variant == "residual":
                matrix = nulls.residualise_length(matrix, lengths[key])
            elif variant == "length":
                matrix = nulls.length_features(lengths[key])
            as_tensor = torch.as_tensor(matrix, dtype=torch.float64, device=torch_device)
            if variant == "raw":
                return _Side(as_tensor, resampling_for(len(matrix)), requests[key])
            return _Side(as_tensor)
        return cache.get((variant, key), build)

    def pair_rows(key_a: Hashable, key_b: Hashable, specs: list[MetricSpec]) -> list[dict]:
        main = _Pair(side("raw", key_a), side("raw", key_b), with_nulls=True)
        residual = length = None
        if lengths is not None:
            try:
                residual = _Pair(side("residual", key_a), side("residual", key_b), with_nulls=False)
            except ValueError:  # too few sentences for the length basis
                residual = None
            try:
                length = _Pair(side("length", key_a), side("length", key_b), with_nulls=False)
            except ValueError:  # every sentence of a side has the same length
                length = None
        rows = []
        for spec in specs:
            params = resolve_params(spec, main.n, main.a.dims, main.b.dims)
            values, reported = _metric_values(spec.name, params, main)
            largest_k = max(reported.values(), default=params.get("k") or 0)
            if spec.name == "svcca" and largest_k > SVCCA_WARN_FRACTION * main.n:
                saturated.add((largest_k, main.n))
            baseline_mean, baseline_std = nulls.summarise_null(values.null)
            ci_low, ci_high = nulls.se_interval(values.value, values.boot, ci_level)
            rows.append({
                "key_a": key_a, "key_b": key_b, "metric": spec.name,
                "params": json.dumps({**params, **reported}, sort_keys=True), "n_samples": main.n,
                "value": values.value, "baseline_mean": baseline_mean, "baseline_std": baseline_std,
                "ci_low": ci_low, "ci_high": ci_high,
                "length_baseline": _NAN if length is None
                else _metric_values(spec.name, params, length)[0].value,
                "value_residualised": _NAN if residual is None
                else _metric_values(spec.name, params, residual)[0].value,
                "ci_method": nulls.CI_METHOD,
                "resamples": np.asarray(values.boot, dtype=np.float64),
            })
        return rows

    rows_by_pair: dict[int, list[dict]] = {}
    with torch.no_grad():
        for group in _processing_order(pairs):
            for index in group:
                key_a, key_b = pairs[index]
                rows_by_pair[index] = pair_rows(
                    key_a, key_b, metrics if pair_metrics is None else pair_metrics[index])
                cache.trim(keep={(variant, key) for variant in ("raw", "residual", "length")
                                 for key in (key_a, key_b)})
                if progress is not None:
                    progress(len(rows_by_pair), len(pairs))
            cache.drop({key for index in group for key in pairs[index]})
    for k, n in sorted(saturated):
        warnings.warn(f"svcca k={k} is above n_samples/4 for n_samples={n}: SVCCA saturates as k nears "
                      f"n, so compare such values only at the same k and n", stacklevel=2)
    rows = [row for index in range(len(pairs)) for row in rows_by_pair[index]]
    return pd.DataFrame(rows, columns=COLUMNS)
