"""Whole similarity grids at once, on CPU or GPU, equal to the reference metrics.

A study compares thousands of (side a, side b) pairs -- language x modality x layer -- with several
metrics, each with a shuffled-pairs baseline, a bootstrap CI, a length-only baseline and a
length-residualised value. Done pair by pair with ``similarity`` and ``nulls`` this recomputes the same
SVDs, Gram matrices and neighbour lists for every pair, permutation and resample. Here everything that
depends on one side only (centring, Gram matrix, singular directions, neighbour lists, and their
per-resample versions) is computed once per side and reused by every pair and metric it appears in;
permutations and bootstrap resamples are processed as tensor batches.

This module is the driver: which metrics a grid computes (``MetricSpec``, ``DEFAULT_METRICS``), the
rows it returns (``COLUMNS``) and ``compute_grid``, which validates the sides, keeps side states within
a memory budget and walks the pairs. The batched computation lives beside it, each part read on its
own: ``grid_resampling`` (the shared permutations and resamples), ``grid_kernels`` (tensor
operations), ``grid_side`` (one side's cached terms, resamples as count vectors, never copied rows)
and ``grid_metrics`` (each metric of a pair from its two sides).

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

from core.device import pick_device
from core.metrics import nulls
from core.metrics.grid_metrics import Pair, metric_values
from core.metrics.grid_resampling import Resampling
from core.metrics.grid_side import Side
from core.metrics.similarity import METRIC_NAMES, SVCCA_WARN_FRACTION, default_svcca_k

COLUMNS = ["key_a", "key_b", "metric", "params", "n_samples", "value", "baseline_mean",
           "baseline_std", "ci_low", "ci_high", "length_baseline", "value_residualised",
           "ci_method", "resamples"]
#: Keys of the ``params`` JSON that report what was chosen rather than what to pass to a metric.
REPORTED_PARAMS = frozenset({"k_x", "k_y"})
_ALLOWED_PARAMS = {"svcca": {"k", "variance"}, "mutual_knn": {"k"}, "retrieval": {"direction"},
                   "linear_cka": set(), "cka_debiased": set(), "paired_cosine": set()}


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

    def get(self, key, build: Callable[[], Side]) -> Side:
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
    warn_saturated: bool = True,
    keep_null: bool = False,
) -> pd.DataFrame:
    """Every metric for every pair, with shuffled baseline, bootstrap CI and length controls.

    ``sides`` maps a key to (n_sentences, dim) activations whose rows are the same sentences in every
    side of a pair; ``lengths`` (seconds or tokens per sentence, per side) enables ``length_baseline``
    and ``value_residualised`` (NaN otherwise). A metric that cannot be computed for a pair (e.g.
    paired_cosine across different dims, svcca k above min(n - 1, dims)) gives a NaN row. Rows come
    in the order of ``pairs``, metrics in the order given. ``progress(done, total)`` counts pairs.
    ``pair_metrics[i]`` (a sub-list of ``metrics``) restricts pair i's metrics: one call can then
    cover pairs that take different metrics while every side's SVD, Gram matrix and bootstrap
    directions are computed once. An SVCCA k above ``SVCCA_WARN_FRACTION`` of the sentences warns
    once per call; ``warn_saturated=False`` is for callers that say so themselves (the build says
    it once per run, naming the stage that chose the k: ``precompute.variants``).
    ``keep_null`` adds a ``null`` column: the row's value under each
    shuffle, in the order of ``nulls.permutation_indices`` (the same shuffles for every pair of one
    n_samples, so a layer x layer matrix's row maximum has a null of its own: ``core.metrics.best_match``).
    """
    if pair_metrics is not None and len(pair_metrics) != len(pairs):
        raise ValueError(f"pair_metrics has {len(pair_metrics)} entries for {len(pairs)} pairs")
    arrays = _validate(sides, pairs, lengths)
    torch_device = torch.device(pick_device(device))
    requests = _svcca_requests(arrays, pairs, metrics)
    resamplings: dict[int, Resampling] = {}
    cache = _SideCache(_memory_budget(torch_device))
    saturated: set = set()

    def resampling_for(n: int) -> Resampling:
        if n not in resamplings:
            resamplings[n] = Resampling.draw(n, n_permutations, n_bootstrap, seed, torch_device)
        return resamplings[n]

    def side(variant: str, key: Hashable) -> Side:
        def build() -> Side:
            matrix = arrays[key]
            if variant == "residual":
                matrix = nulls.residualise_length(matrix, lengths[key])
            elif variant == "length":
                matrix = nulls.length_features(lengths[key])
            as_tensor = torch.as_tensor(matrix, dtype=torch.float64, device=torch_device)
            if variant == "raw":
                return Side(as_tensor, resampling_for(len(matrix)), requests[key])
            return Side(as_tensor)
        return cache.get((variant, key), build)

    def pair_rows(key_a: Hashable, key_b: Hashable, specs: list[MetricSpec]) -> list[dict]:
        main = Pair(side("raw", key_a), side("raw", key_b), with_nulls=True)
        residual = length = None
        if lengths is not None:
            try:
                residual = Pair(side("residual", key_a), side("residual", key_b), with_nulls=False)
            except ValueError:  # too few sentences for the length basis
                residual = None
            try:
                length = Pair(side("length", key_a), side("length", key_b), with_nulls=False)
            except ValueError:  # every sentence of a side has the same length
                length = None
        rows = []
        for spec in specs:
            params = resolve_params(spec, main.n, main.a.dims, main.b.dims)
            values, reported = metric_values(spec.name, params, main)
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
                "length_baseline": math.nan if length is None
                else metric_values(spec.name, params, length)[0].value,
                "value_residualised": math.nan if residual is None
                else metric_values(spec.name, params, residual)[0].value,
                "ci_method": nulls.CI_METHOD,
                "resamples": np.asarray(values.boot, dtype=np.float64),
                **({"null": np.asarray(values.null, dtype=np.float64)} if keep_null else {}),
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
    for k, n in sorted(saturated) if warn_saturated else ():
        warnings.warn(f"svcca k={k} is above n_samples/4 for n_samples={n}: SVCCA saturates as k nears "
                      f"n, so compare such values only at the same k and n", stacklevel=2)
    rows = [row for index in range(len(pairs)) for row in rows_by_pair[index]]
    return pd.DataFrame(rows, columns=COLUMNS + (["null"] if keep_null else []))
