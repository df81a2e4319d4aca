"""Chance-corrected aggregates of metric rows with jointly bootstrapped intervals (pure numpy).

Why chance-corrected. Similarity scores of different pairings have different chance levels: SVCCA of
unrelated data rises towards 1 as the kept dimensions approach the number of sentences, and the
shuffled-pairs baseline of text-speech SVCCA (different spaces and dims) need not equal that of
text-text. Comparing raw values of two pairings can therefore "find" a difference that is only a
difference of floors. Every verdict here compares *corrected* values: value minus the mean of the
row's own shuffled-pairs baseline (the level the same statistic reaches at the same n, dims and k
when sentences are mismatched). A difference is kept in the metric's own units; a normalised form
(v - b) / (1 - b) would divide by a small, noisy number exactly where the baseline is high.

Why jointly bootstrapped. The grid draws one set of bootstrap resamples of sentences per n_samples
(``core.metrics.grid``), so resample b of every row of a run is the same sentences. An aggregate
(a mean over languages or layers, or the difference of two such means) is therefore bootstrapped by
aggregating inside each resample and taking the spread of the aggregate over resamples: its errors
are neither treated as independent (190 language pairs share 20 languages and the same sentences)
nor as fully correlated.

Why a normal interval around the full-sample estimate. A bootstrap resample holds about 63% distinct
sentences, and SVCCA and CKA rise as distinct sentences fall, so percentile intervals of these
statistics sit above the estimate (sometimes not containing it). The bootstrap is used for what it
measures well, the spread: interval = estimate +/- 1.96 SE, SE^2 = bootstrap variance of the
aggregate + the variance of its baseline mean (permutation noise, baseline_std^2 / P averaged over
rows, conservatively as if fully correlated). It covers the statistic's expected value at this
number of sentences; ``tests/test_joint.py`` checks its coverage on simulated data.

Minimum evidence: an aggregate decides nothing when its rows have fewer than ``MIN_SENTENCES``
sentences, fewer than ``MIN_RESAMPLES`` usable resamples, or a zero-width interval (e.g. saturated
retrieval, where every resample gives 1.0): then its verdict is "not enough data".
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

Z_95 = 1.959963984540054
#: Fewer sentences than this: chance levels are high and bootstrap spreads unstable.
MIN_SENTENCES = 50
#: Fewer usable resamples than this: the SE itself is uncertain by more than 1/sqrt(2B) = 7%.
MIN_RESAMPLES = 100
HOLDS, DOES_NOT_HOLD, NOT_ENOUGH_DATA = "holds", "does not hold", "not enough data"


@dataclass(frozen=True)
class Aggregate:
    """A chance-corrected mean (or difference of means) with its interval and evidence.

    ``raw`` and ``baseline`` are the uncorrected mean and its baseline (``corrected`` = raw -
    baseline); ``method`` says how ``se`` was obtained; ``reason`` is why it decides nothing, if so.
    """

    corrected: float
    se: float
    raw: float
    baseline: float
    n_rows: int
    n_samples: int
    n_resamples: int
    method: str
    reason: str = ""

    @property
    def low(self) -> float:
        return self.corrected - Z_95 * self.se

    @property
    def high(self) -> float:
        return self.corrected + Z_95 * self.se

    @property
    def decisive(self) -> bool:
        return not self.reason

    def verdict(self) -> str:
        """holds when the interval lies above 0, does not hold when below, else not enough data."""
        if not self.decisive or not math.isfinite(self.se):
            return NOT_ENOUGH_DATA
        if self.low > 0:
            return HOLDS
        if self.high < 0:
            return DOES_NOT_HOLD
        return NOT_ENOUGH_DATA

    def text(self, signed: bool = True) -> str:
        number = f"{self.corrected:+.3f}" if signed else f"{self.corrected:.3f}"
        if not math.isfinite(self.se):
            return f"{number} (no interval)"
        return f"{number} [95% CI {self.low:+.3f}, {self.high:+.3f}]"


def _columns(rows: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(rows[name], errors="coerce").to_numpy(dtype=np.float64) \
        if name in rows else np.full(len(rows), np.nan)


def _baseline_se(rows: pd.DataFrame, n_permutations: int | None) -> float:
    """SE of the mean baseline from permutation noise (conservative: errors fully correlated)."""
    std = _columns(rows, "baseline_std")
    if n_permutations is None or n_permutations < 2 or not np.isfinite(std).any():
        return 0.0
    return float(np.nanmean(std) / math.sqrt(n_permutations))


def _resample_means(resamples: np.ndarray, baselines: np.ndarray) -> np.ndarray:
    """Per resample, the mean over rows of (bootstrap value - baseline); NaN where a row is NaN."""
    if resamples.size == 0:
        return np.empty(0)
    return np.mean(resamples - baselines[:, None], axis=0)


def _evidence(n_samples: np.ndarray, usable: int, se: float, has_resamples: bool) -> str:
    n = int(np.nanmin(n_samples)) if n_samples.size and np.isfinite(n_samples).any() else 0
    if n < MIN_SENTENCES:
        return f"only {n} sentences (a verdict needs at least {MIN_SENTENCES})"
    if not has_resamples:
        return "no bootstrap values stored for these rows"
    if usable < MIN_RESAMPLES:
        return f"only {usable} usable bootstrap resamples (a verdict needs {MIN_RESAMPLES})"
    if not math.isfinite(se) or se <= 1e-12:
        return "a zero-width interval (every resample gives the same value) decides nothing"
    return ""


def corrected_mean(rows: pd.DataFrame, resamples: np.ndarray | None, *,
                   n_permutations: int | None = None) -> Aggregate:
    """Mean over ``rows`` of value - baseline_mean, bootstrapped jointly.

    ``resamples``: (len(rows), B) bootstrap values in row order (``core.store.vectors.
    resample_matrix``), the same B sentence resamples for every row.
    """
    return corrected_combination([(rows, resamples, 1.0)], n_permutations=n_permutations)


def corrected_difference(rows_a: pd.DataFrame, resamples_a: np.ndarray | None,
                         rows_b: pd.DataFrame, resamples_b: np.ndarray | None, *,
                         n_permutations: int | None = None) -> Aggregate:
    """mean_a(value - baseline) - mean_b(value - baseline), jointly bootstrapped. Both sides must
    share sentences and resamples (the same n_samples)."""
    return corrected_combination([(rows_a, resamples_a, 1.0), (rows_b, resamples_b, -1.0)],
                                 n_permutations=n_permutations)


def corrected_combination(parts: list[tuple[pd.DataFrame, np.ndarray | None, float]], *,
                          n_permutations: int | None = None) -> Aggregate:
    """sum_i weight_i * mean over rows_i of (value - baseline), bootstrapped jointly: the same
    combination of per-resample means is taken in every resample (e.g. a difference of two
    differences: the narrowing for high- minus that for low-resource languages)."""
    if not parts or any(len(rows) == 0 for rows, _, _ in parts):
        return Aggregate(math.nan, math.nan, math.nan, math.nan, 0, 0, 0, "none", "no rows")
    raw = baseline = 0.0
    n_samples, per_resample, base_se_sq = [], None, 0.0
    has_resamples = True
    for rows, resamples, weight in parts:
        values, base = _columns(rows, "value"), _columns(rows, "baseline_mean")
        raw += weight * float(np.mean(values))
        baseline += weight * float(np.mean(base))
        n_samples.append(_columns(rows, "n_samples"))
        base_se_sq += (weight * _baseline_se(rows, n_permutations)) ** 2
        boot = np.empty((len(rows), 0)) if resamples is None else \
            np.asarray(resamples, dtype=np.float64).reshape(len(rows), -1)
        if boot.shape[1] == 0 or (per_resample is not None and boot.shape[1] != per_resample.size):
            has_resamples = False
            continue
        term = weight * _resample_means(boot, base)
        per_resample = term if per_resample is None else per_resample + term
    n_rows = sum(len(rows) for rows, _, _ in parts)
    corrected = raw - baseline
    all_n = np.concatenate(n_samples)
    smallest = int(np.nanmin(all_n)) if np.isfinite(all_n).any() else 0
    if np.unique(all_n[np.isfinite(all_n)]).size > 1:
        return Aggregate(corrected, math.nan, raw, baseline, n_rows, smallest, 0, "none",
                         "rows with different numbers of sentences do not share resamples")
    if has_resamples and per_resample is not None:
        usable = per_resample[np.isfinite(per_resample)]
        boot_se = float(usable.std(ddof=1)) if usable.size > 1 else math.nan
        n_usable = int(usable.size)
    else:
        boot_se, n_usable = math.nan, 0
    se = math.hypot(boot_se, math.sqrt(base_se_sq)) if math.isfinite(boot_se) else math.nan
    reason = _evidence(all_n, n_usable, boot_se, has_resamples and per_resample is not None)
    return Aggregate(corrected, se, raw, baseline, n_rows, smallest, n_usable, "joint bootstrap",
                     reason)


def raw_verdict(aggregate: Aggregate) -> str:
    """The verdict the raw (uncorrected) difference would give with the same interval width: what
    comparing values of different chance levels would have concluded."""
    if not aggregate.decisive or not math.isfinite(aggregate.se):
        return NOT_ENOUGH_DATA
    if aggregate.raw - Z_95 * aggregate.se > 0:
        return HOLDS
    if aggregate.raw + Z_95 * aggregate.se < 0:
        return DOES_NOT_HOLD
    return NOT_ENOUGH_DATA


def mean_interval(values: np.ndarray, boot: np.ndarray | None,
                  offsets: np.ndarray | None = None) -> tuple[float, float, float, str]:
    """(mean, low, high, method) of a mean over rows, e.g. one layer's language pairs in a curve.

    With bootstrap values (rows x B, the same resamples for every row) the interval is the mean
    +/- 1.96 SDs over resamples of the resample's mean (``offsets`` per row, e.g. the baseline for
    a minus-baseline view, are subtracted from each row's values); without, the rows are treated
    as independent (mean +/- 1.96 sd / sqrt(rows)), which understates the spread of rows that share
    languages and sentences, and ``method`` says so.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan, math.nan, "none"
    mean = float(np.mean(values))
    if boot is not None and np.asarray(boot).ndim == 2 and np.asarray(boot).shape[1] > 1:
        boot = np.asarray(boot, dtype=np.float64)
        shift = np.zeros(len(values)) if offsets is None else np.asarray(offsets, dtype=np.float64)
        per_resample = np.mean(boot - shift[:, None], axis=0)
        usable = per_resample[np.isfinite(per_resample)]
        if usable.size > 1:
            half = Z_95 * float(usable.std(ddof=1))
            return mean, mean - half, mean + half, "joint bootstrap"
    if values.size < 2:
        return mean, math.nan, math.nan, "none"
    half = Z_95 * float(values.std(ddof=1)) / math.sqrt(values.size)
    return mean, mean - half, mean + half, "independent rows (no bootstrap values)"


def difference_intervals(values_a: np.ndarray, values_b: np.ndarray, boot_a: np.ndarray | None,
                         boot_b: np.ndarray | None, *, extra_se: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(difference, low, high) per cell of ``values_a - values_b``, each side's rows in cell order.

    ``boot_a`` and ``boot_b`` (cells x B) must be bootstrap values over the *same* sentence
    resamples (resample b of both sides = the same sentences; the caller checks that), so the
    per-resample difference ``boot_a[:, b] - boot_b[:, b]`` is the difference's bootstrap
    distribution, with whatever the two sides share cancelled. The interval is the difference
    +/- 1.96 SDs of those per-resample differences (the store's ``bootstrap_se`` method), not
    their percentiles: resamples repeat sentences and shift SVCCA and CKA by different amounts at
    different layers, so percentile intervals of a difference can miss the estimate itself
    (docs/differences.md measures how often on the bundled store). ``extra_se`` (per cell) adds an
    independent error, e.g. the baselines' permutation noise of a minus-baseline view. Without
    shared resamples (None), or with fewer than two usable ones in a cell, low and high are NaN.
    """
    values_a = np.asarray(values_a, dtype=np.float64)
    values_b = np.asarray(values_b, dtype=np.float64)
    difference = values_a - values_b
    low = np.full(difference.shape, np.nan)
    high = np.full(difference.shape, np.nan)
    if boot_a is None or boot_b is None:
        return difference, low, high
    boot_a = np.asarray(boot_a, dtype=np.float64).reshape(len(values_a), -1)
    boot_b = np.asarray(boot_b, dtype=np.float64).reshape(len(values_b), -1)
    if boot_a.shape != boot_b.shape or boot_a.shape[1] < 2:
        return difference, low, high
    per_resample = boot_a - boot_b
    usable = np.isfinite(per_resample).sum(axis=1)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cells without two usable resamples
        se = np.nanstd(per_resample, axis=1, ddof=1)
    se = np.where(usable >= 2, se, np.nan)
    if extra_se is not None:
        se = np.hypot(se, np.nan_to_num(np.asarray(extra_se, dtype=np.float64)))
    return difference, difference - Z_95 * se, difference + Z_95 * se
