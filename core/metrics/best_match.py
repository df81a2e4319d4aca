"""The most similar layer on the other side, with a null that knows it was picked as the best.

In a layer x layer matrix the best column of a row is the maximum of several noisy cells, so even
with no correspondence at all it sits above a single cell's shuffled baseline: a per-cell test
declares a "match" far more often than its nominal rate. Gröger, Wen & Brbić (arXiv 2602.14486,
Algorithm 2) calibrate the aggregate instead: apply the SAME shuffle of sentences to every column,
take the row maximum under each shuffle, and compare the observed maximum with that distribution.
The grid already applies one shuffle per index to every pair of one n_samples
(``nulls.permutation_indices``), so a matrix's per-cell null values (``compute_grid(...,
keep_null=True)``) hold exactly these joint shuffles; the row maximum under shuffle p is the maximum
of column values under shuffle p.

Definitions follow the paper (and the ``calibrated-similarity`` package, which tests use as an
independent oracle): add-one p-value ``(1 + #{null max >= observed}) / (P + 1)``; threshold tau = the
ceil((1 - alpha)(P + 1))-th smallest of the observed maximum and the P null maxima; calibrated score
``clip((observed - tau) / (smax - tau), 0, 1)``, zero unless the match clears the threshold.
Pure numpy, float64.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

DEFAULT_ALPHA = 0.05

BEST_MATCH_COLUMNS = ["layer", "best", "value", "p_value", "threshold", "calibrated",
                      "significant", "naive_p", "n_permutations"]


def add_one_p_value(observed: float, null: np.ndarray) -> float:
    """Right-tail permutation p-value with the add-one correction (never 0); NaN without a null.

    Null values that are NaN (a shuffle the metric could not score) are left out of the count."""
    null = np.asarray(null, dtype=np.float64)
    null = null[np.isfinite(null)]
    if not null.size or not math.isfinite(observed):
        return math.nan
    return float((1 + np.count_nonzero(null >= observed)) / (null.size + 1))


def critical_threshold(observed: float, null: np.ndarray, alpha: float = DEFAULT_ALPHA) -> float:
    """tau: the ceil((1 - alpha)(P + 1))-th smallest of {observed} and the P null values."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    null = np.asarray(null, dtype=np.float64)
    null = null[np.isfinite(null)]
    if not null.size or not math.isfinite(observed):
        return math.nan
    combined = np.sort(np.append(null, observed))
    index = min(max(math.ceil((1.0 - alpha) * combined.size) - 1, 0), combined.size - 1)
    return float(combined[index])


def calibrated_score(observed: float, threshold: float, smax: float = 1.0) -> float:
    """How far above its threshold a value is, as a share of the room left up to ``smax``."""
    if not (math.isfinite(observed) and math.isfinite(threshold)):
        return math.nan
    return float(np.clip((observed - threshold) / max(smax - threshold, 1e-12), 0.0, 1.0))


def best_matches(values: np.ndarray, null: np.ndarray, *, alpha: float = DEFAULT_ALPHA,
                 axis: int = 1, smax: float = 1.0) -> pd.DataFrame:
    """For each row (``axis=1``) or column (``axis=0``) of a matrix, its best match, calibrated.

    ``values`` is (rows, cols); ``null`` (P, rows, cols) holds every cell's value under shuffle p,
    the same shuffle for the whole matrix. A row's best match is its largest finite value; its
    ``p_value`` and ``threshold`` come from the null of the row MAXIMUM (max over columns under each
    shuffle), ``naive_p`` from the best cell's own null (what an uncalibrated test would report).
    ``layer`` is the row (or column) index, ``best`` the matched index (-1 when the line is all NaN).
    """
    values = np.asarray(values, dtype=np.float64)
    null = np.asarray(null, dtype=np.float64)
    if values.ndim != 2 or null.ndim != 3 or null.shape[1:] != values.shape:
        raise ValueError(f"values must be (rows, cols) and null (P, rows, cols); got {values.shape} "
                         f"and {null.shape}")
    if axis not in (0, 1):
        raise ValueError(f"axis must be 1 (best column per row) or 0 (best row per column), got {axis}")
    if axis == 0:
        values, null = values.T, null.transpose(0, 2, 1)
    rows = []
    for layer in range(values.shape[0]):
        line, line_null = values[layer], null[:, layer, :]
        if not np.isfinite(line).any():
            rows.append({"layer": layer, "best": -1, "value": math.nan, "p_value": math.nan,
                         "threshold": math.nan, "calibrated": math.nan, "significant": False,
                         "naive_p": math.nan, "n_permutations": 0})
            continue
        best = int(np.nanargmax(line))
        observed = float(line[best])
        usable = np.isfinite(line_null).any(axis=1)
        null_max = np.where(usable, np.nanmax(np.where(np.isfinite(line_null), line_null, -np.inf),
                                              axis=1), np.nan)
        p_value = add_one_p_value(observed, null_max)
        threshold = critical_threshold(observed, null_max, alpha)
        rows.append({
            "layer": layer, "best": best, "value": observed, "p_value": p_value,
            "threshold": threshold, "calibrated": calibrated_score(observed, threshold, smax),
            "significant": bool(math.isfinite(p_value) and p_value <= alpha),
            "naive_p": add_one_p_value(observed, line_null[:, best]),
            "n_permutations": int(np.isfinite(null_max).sum()),
        })
    return pd.DataFrame(rows, columns=BEST_MATCH_COLUMNS)
