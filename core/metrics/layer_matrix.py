"""Every layer of one component against every layer of another: a layer x layer matrix.

The per-layer metrics compare text layer i only with speech layer i (matched by relative depth).
A matrix asks which layer on one side resembles which on the other (Whisper's decoder block 3 vs
encoder block 5; a model's layers vs another model's), so every (layer a, layer b) cell is one pair of
``compute_grid``: the same metrics, shuffled baseline and bootstrap CI as the per-layer rows, from
the same shared permutations and resamples (they depend only on seed and n_samples), so

- cells of one matrix, and matrices of one resampling (seed, n_bootstrap, sentences), can be
  subtracted with an interval: ``joint.difference_intervals`` takes the difference inside each
  resample;
- the per-cell null values under each shared shuffle give the calibrated best match of a row
  (``core.metrics.best_match``);
- a mean over languages averages value, null and resamples inside each shuffle/resample (one
  language pair per matrix, all with the same n_samples).

Cosine and retrieval compare coordinates, so a cell gets them only where its two points share a
representation space (``shared`` mask). Length controls are left out (matrices are about layers,
and they would double the cost). Pure functions over numpy arrays; torch only inside compute_grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.metrics import nulls
from core.metrics.best_match import DEFAULT_ALPHA, best_matches
from core.metrics.grid import MetricSpec, compute_grid

#: defined between any two spaces (basis-free)
BETWEEN_SPACES: list[MetricSpec] = [
    MetricSpec("svcca", {"k": "auto"}),
    MetricSpec("linear_cka"),
    MetricSpec("cka_debiased"),
    MetricSpec("mutual_knn", {"k": 10}),
]
#: coordinate-wise: only between points of one space
WITHIN_SPACE: list[MetricSpec] = [MetricSpec("retrieval", {"direction": "mean"}),
                                  MetricSpec("paired_cosine")]
#: shuffles per cell: a calibrated p-value needs enough of them to go below 0.05 (1 / (P + 1))
DEFAULT_MATRIX_PERMUTATIONS = 100

CELL_COLUMNS = ["layer_a", "layer_b", "metric", "params", "n_samples", "value", "baseline_mean",
                "baseline_std", "ci_low", "ci_high", "ci_method", "resamples", "null"]
BEST_COLUMNS = ["row_best", "row_p", "row_threshold", "col_best", "col_p", "col_threshold"]


@dataclass(frozen=True)
class MatrixRequest:
    """One matrix of ``matrices_cells``: the side keys of a's layers and of b's, in layer order, and
    where their points share a representation space (None: nowhere)."""

    keys_a: tuple[Hashable, ...]
    keys_b: tuple[Hashable, ...]
    shared: np.ndarray | None = None


def matrices_cells(sides: Mapping[Hashable, np.ndarray], requests: Sequence[MatrixRequest],
                   metrics: Sequence[MetricSpec] = tuple(BETWEEN_SPACES), *,
                   n_permutations: int = DEFAULT_MATRIX_PERMUTATIONS, n_bootstrap: int = 200,
                   seed: int = 0, device: str | None = None,
                   progress: Callable[[int, int], None] | None = None) -> list[pd.DataFrame]:
    """Several matrices in one ``compute_grid`` call, so a side (one layer of one language) shared by
    matrices -- a language's text layers in its text-speech and cross-language matrices -- has its
    SVD, Gram matrix and bootstrap directions computed once. One frame per request, as
    ``matrix_cells`` returns; ``progress(done, total)`` counts cells."""
    within = {spec.name for spec in WITHIN_SPACE}
    pairs, pair_metrics, owners = [], [], []
    for index, request in enumerate(requests):
        n_a, n_b = len(request.keys_a), len(request.keys_b)
        if not n_a or not n_b:
            raise ValueError("a layer x layer matrix needs at least one layer on each side")
        shared = np.zeros((n_a, n_b), dtype=bool) if request.shared is None \
            else np.asarray(request.shared, dtype=bool)
        if shared.shape != (n_a, n_b):
            raise ValueError(f"shared must be ({n_a}, {n_b}), got {shared.shape}")
        for i, key_a in enumerate(request.keys_a):
            for j, key_b in enumerate(request.keys_b):
                pairs.append((key_a, key_b))
                pair_metrics.append([spec for spec in metrics
                                     if spec.name not in within or shared[i, j]])
                owners.append((index, i, j))
    grid = compute_grid(dict(sides), pairs, list(metrics), n_permutations=n_permutations,
                        n_bootstrap=n_bootstrap, seed=seed, device=device, progress=progress,
                        pair_metrics=pair_metrics, keep_null=True)
    counts = [len(specs) for specs in pair_metrics]
    owner_of_row = np.repeat(np.arange(len(pairs)), counts)
    grid["request"] = [owners[k][0] for k in owner_of_row]
    grid["layer_a"] = [owners[k][1] for k in owner_of_row]
    grid["layer_b"] = [owners[k][2] for k in owner_of_row]
    return [grid[grid.request == index][CELL_COLUMNS].reset_index(drop=True)
            for index in range(len(requests))]


def matrix_cells(layers_a: Sequence[np.ndarray], layers_b: Sequence[np.ndarray],
                 metrics: Sequence[MetricSpec] = tuple(BETWEEN_SPACES), *,
                 shared: np.ndarray | None = None, n_permutations: int = DEFAULT_MATRIX_PERMUTATIONS,
                 n_bootstrap: int = 200, seed: int = 0, device: str | None = None,
                 progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """One row per (layer_a, layer_b, metric): value, baseline, CI, bootstrap values and null values.

    ``layers_a[i]`` / ``layers_b[j]`` are (n_sentences, dim) with the same sentences in the same
    order. ``metrics`` may hold within-space metrics: a cell gets them only where ``shared[i, j]``
    (default: nowhere). Rows of a metric a cell does not get are absent, not NaN.
    """
    sides = {("a", i): x for i, x in enumerate(layers_a)} | \
        {("b", j): y for j, y in enumerate(layers_b)}
    request = MatrixRequest(tuple(("a", i) for i in range(len(layers_a))),
                            tuple(("b", j) for j in range(len(layers_b))), shared)
    return matrices_cells(sides, [request], metrics, n_permutations=n_permutations,
                          n_bootstrap=n_bootstrap, seed=seed, device=device, progress=progress)[0]


def mean_cells(cells: pd.DataFrame, *, level: float = nulls.DEFAULT_CI_LEVEL) -> pd.DataFrame:
    """Cells averaged over matrices (e.g. languages): one row per (layer_a, layer_b, metric).

    Value, bootstrap values and null values are averaged index by index (resample b and shuffle p are
    the same draw in every matrix of one n_samples), so the mean keeps an interval and a null of its
    own; ``n_matrices`` says how many were averaged. A cell missing in some matrix, or NaN there,
    gives NaN (no silent mean over fewer languages).
    """
    rows = []
    for (layer_a, layer_b, metric), group in cells.groupby(["layer_a", "layer_b", "metric"],
                                                           sort=True):
        value = float(group.value.mean(skipna=False))
        boot = np.mean(np.stack([np.asarray(r, dtype=np.float64) for r in group.resamples]), axis=0)
        null = np.mean(np.stack([np.asarray(r, dtype=np.float64) for r in group.null]), axis=0)
        baseline_mean, baseline_std = nulls.summarise_null(null) if null.size else (math.nan,) * 2
        ci_low, ci_high = nulls.se_interval(value, boot, level) if boot.size else (math.nan,) * 2
        params = group.params.iloc[0] if group.params.nunique() == 1 else "mixed"
        rows.append({"layer_a": layer_a, "layer_b": layer_b, "metric": metric, "params": params,
                     "n_samples": int(group.n_samples.min()), "value": value,
                     "baseline_mean": baseline_mean, "baseline_std": baseline_std,
                     "ci_low": ci_low, "ci_high": ci_high, "ci_method": nulls.CI_METHOD,
                     "resamples": boot, "null": null, "n_matrices": len(group)})
    return pd.DataFrame(rows, columns=CELL_COLUMNS + ["n_matrices"])


def with_best_matches(cells: pd.DataFrame, *, alpha: float = DEFAULT_ALPHA) -> pd.DataFrame:
    """``cells`` of one matrix (all metrics) plus, per cell, whether it is its row's / column's best
    match and that line's calibrated p-value and threshold (the null of the line's maximum).

    ``row_p`` is the same for every cell of a row: it belongs to the row's best cell (``row_best``).
    """
    out = cells.copy()
    for column in BEST_COLUMNS:
        out[column] = False if column.endswith("_best") else math.nan
    for _, group in cells.groupby("metric", sort=False):
        layers_a = np.sort(group.layer_a.unique())
        layers_b = np.sort(group.layer_b.unique())
        ia = {layer: i for i, layer in enumerate(layers_a)}
        ib = {layer: j for j, layer in enumerate(layers_b)}
        n_null = max((len(np.asarray(r)) for r in group.null), default=0)
        values = np.full((len(layers_a), len(layers_b)), np.nan)
        null = np.full((n_null, len(layers_a), len(layers_b)), np.nan)
        for row in group.itertuples():
            values[ia[row.layer_a], ib[row.layer_b]] = row.value
            null_values = np.asarray(row.null, dtype=np.float64)
            null[:len(null_values), ia[row.layer_a], ib[row.layer_b]] = null_values
        if n_null == 0:
            continue
        for axis, prefix, own, other in ((1, "row", "layer_a", "layer_b"),
                                         (0, "col", "layer_b", "layer_a")):
            found = best_matches(values, null, alpha=alpha, axis=axis)
            lines = layers_a if axis == 1 else layers_b
            partners = layers_b if axis == 1 else layers_a
            for match in found.itertuples():
                line = group[group[own] == lines[match.layer]]
                out.loc[line.index, f"{prefix}_p"] = match.p_value
                out.loc[line.index, f"{prefix}_threshold"] = match.threshold
                if match.best >= 0:
                    winner = line.index[line[other] == partners[match.best]]
                    out.loc[winner, f"{prefix}_best"] = True
    return out
