"""What a similarity value should be compared with: chance level, sampling noise and sentence length.

A raw similarity between two sets of sentence representations is hard to read on its own: unrelated
data already score well above 0 (SVCCA, CKA) and two sides that both only encode sentence length
can look alike. These reference helpers give, for any metric of ``core.metrics.similarity``:

- a shuffled-pairs baseline: the metric after permuting the sentences of one side;
- a bootstrap confidence interval over sentences (rows resampled jointly on both sides): the value
  +/- 1.96 bootstrap SDs (percentile intervals of SVCCA/CKA sit above the value, see
  ``bootstrap_ci``);
- a length-only baseline: the metric between features built from each side's sentence length alone;
- a length-residualised value: the metric after regressing a smooth non-linear function of log
  length (the first ``RESIDUAL_LENGTH_FEATURES`` of the same cosine basis) out of each side.

The permutations and resamples come from ``permutation_indices`` / ``bootstrap_indices``, which depend
only on (seed, n_samples): the batched grid draws the very same index sets, so both agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.metrics.similarity import Metric, as_matrix

#: Number of length-only features; enough for SVCCA with the default k (at most 20).
LENGTH_FEATURES = 32
#: Basis functions of log length regressed out by ``residualise_length``: smooth functions (the
#: cosine basis up to frequency 8, i.e. any shape resolved to 1/8 of the length range), few enough
#: to leave most of n = 60..1000 sentences' degrees of freedom.
RESIDUAL_LENGTH_FEATURES = 8
DEFAULT_CI_LEVEL = 0.95
#: ``ci_method`` of every interval made here (the store records it per metric row)
CI_METHOD = "bootstrap_se"


@dataclass(frozen=True)
class NullDistribution:
    """Metric values under shuffled pairs."""

    mean: float
    std: float
    values: np.ndarray


@dataclass(frozen=True)
class ConfidenceInterval:
    """Bootstrap interval (value +/- z * bootstrap SD) with the bootstrap values it came from."""

    low: float
    high: float
    level: float
    values: np.ndarray


def _rng(seed: int, n_samples: int, stream: int) -> np.random.Generator:
    # One independent stream per (seed, n, purpose), so every caller with the same seed gets the same
    # index sets whatever else it draws.
    return np.random.default_rng([seed, n_samples, stream])


def permutation_indices(n_samples: int, n_permutations: int, seed: int = 0) -> np.ndarray:
    """(n_permutations, n_samples) permutations of the sentence rows."""
    rng = _rng(seed, n_samples, 1)
    return np.stack([rng.permutation(n_samples) for _ in range(n_permutations)]) if n_permutations \
        else np.empty((0, n_samples), dtype=np.int64)


def bootstrap_indices(n_samples: int, n_bootstrap: int, seed: int = 0) -> np.ndarray:
    """(n_bootstrap, n_samples) row indices drawn with replacement."""
    return _rng(seed, n_samples, 2).integers(0, n_samples, size=(n_bootstrap, n_samples))


def summarise_null(values: np.ndarray) -> tuple[float, float]:
    """(mean, sample standard deviation) ignoring NaN; NaN where there are too few values."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    mean = float(finite.mean()) if finite.size else float("nan")
    std = float(finite.std(ddof=1)) if finite.size > 1 else float("nan")
    return mean, std


def percentile_interval(values: np.ndarray, level: float = DEFAULT_CI_LEVEL) -> tuple[float, float]:
    """Central ``level`` percentile interval of bootstrap values (NaN values ignored)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"CI level must be in (0, 1), got {level}")
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).any():
        return float("nan"), float("nan")
    low, high = np.nanquantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def se_interval(value: float, boot_values: np.ndarray,
                level: float = DEFAULT_CI_LEVEL) -> tuple[float, float]:
    """value +/- z * SD of the bootstrap values (NaN ignored; NaN with fewer than 2 usable)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"CI level must be in (0, 1), got {level}")
    values = np.asarray(boot_values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size < 2 or not np.isfinite(value):
        return float("nan"), float("nan")
    from statistics import NormalDist

    half = NormalDist().inv_cdf((1 + level) / 2) * float(finite.std(ddof=1))
    return float(value - half), float(value + half)


def shuffled_baseline(metric: Metric, x: np.ndarray, y: np.ndarray, *, n_permutations: int = 20,
                      seed: int = 0, permutations: np.ndarray | None = None) -> NullDistribution:
    """The metric when y's sentences are shuffled: the level reached by chance pairing."""
    if permutations is None:
        permutations = permutation_indices(len(x), n_permutations, seed)
    values = np.array([metric(x, y[order]) for order in permutations], dtype=np.float64)
    mean, std = summarise_null(values)
    return NullDistribution(mean, std, values)


def bootstrap_ci(metric: Metric, x: np.ndarray, y: np.ndarray, *, n_bootstrap: int = 200,
                 level: float = DEFAULT_CI_LEVEL, seed: int = 0,
                 resamples: np.ndarray | None = None) -> ConfidenceInterval:
    """CI over sentences, resampling the same rows on both sides: the metric's value +/- z bootstrap
    SDs.

    A resample that the metric cannot use (e.g. too few distinct sentences) counts as NaN; a linear
    algebra routine that fails on a resample raises instead (``LinAlgError``). SVCCA and
    CKA are biased upwards at small n and a resample holds only ~63% distinct sentences, so the
    bootstrap distribution sits above the value (a percentile interval may not even contain it); its
    spread is what the bootstrap measures well, so the interval is centred on the value.
    """
    if resamples is None:
        resamples = bootstrap_indices(len(x), n_bootstrap, seed)
    values = np.array([_value_or_nan(metric, x[rows], y[rows], rows) for rows in resamples],
                      dtype=np.float64)
    try:
        value = metric(x, y)
    except ValueError:
        value = float("nan")
    low, high = se_interval(value, values, level)
    return ConfidenceInterval(low, high, level, values)


def _value_or_nan(metric: Metric, x: np.ndarray, y: np.ndarray, sample_ids: np.ndarray) -> float:
    # numpy's LinAlgError is a ValueError, but a decomposition that failed numerically is not a
    # resample the metric cannot use: counting it as NaN would silently narrow or widen the interval.
    try:
        return metric(x, y, sample_ids=sample_ids)
    except np.linalg.LinAlgError:
        raise
    except ValueError:
        return float("nan")


def _log_lengths(lengths: np.ndarray) -> np.ndarray:
    values = np.asarray(lengths, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"lengths must be 1-D (one per sentence), got shape {values.shape}")
    if not np.isfinite(values).all() or (values <= 0).any():
        raise ValueError("lengths must be positive and finite (seconds of audio or numbers of tokens)")
    return np.log(values)


def length_features(lengths: np.ndarray, n_features: int = LENGTH_FEATURES) -> np.ndarray:
    """A representation that knows nothing but sentence length: (n, n_features).

    Log length is scaled to u in [0, 1] over the sample, then expanded into the cosine basis
    cos(pi j u) / j, j = 1..n_features. Unlike a few polynomial terms this has as many well-separated
    directions as SVCCA needs (singular values fall like 1/j) and a cosine geometry in which nearby
    lengths are nearest neighbours, so every metric, including SVCCA, CKA, kNN and retrieval, can be
    computed on it. Units drop out (u is a rank-preserving rescaling), so token counts on one side and
    seconds on the other are comparable. Sentences of equal length get equal rows.
    """
    log_length = _log_lengths(lengths)
    spread = log_length.max() - log_length.min()
    if spread == 0:
        raise ValueError("all sentences have the same length: a length-only baseline is undefined")
    u = (log_length - log_length.min()) / spread
    order = np.arange(1, n_features + 1, dtype=np.float64)
    return np.cos(np.pi * u[:, None] * order[None, :]) / order[None, :]


def length_baseline(metric: Metric, lengths_x: np.ndarray, lengths_y: np.ndarray,
                    n_features: int = LENGTH_FEATURES) -> float:
    """The metric between the two sides' length-only features (see ``length_features``)."""
    return metric(length_features(lengths_x, n_features), length_features(lengths_y, n_features))


def length_design(lengths: np.ndarray, n_features: int = RESIDUAL_LENGTH_FEATURES) -> np.ndarray:
    """[1, log length, cos(pi j u) / j for j = 1..n_features]: a smooth non-linear basis of log
    length (u = log length scaled to [0, 1]); equal lengths only: [1]."""
    log_length = _log_lengths(lengths)
    columns = [np.ones(len(log_length))]
    if log_length.max() > log_length.min():
        columns.append(log_length)
        columns.extend(length_features(lengths, n_features).T)
    return np.column_stack(columns)


def residualise_length(x: np.ndarray, lengths: np.ndarray,
                       n_features: int = RESIDUAL_LENGTH_FEATURES) -> np.ndarray:
    """x minus its least-squares fit on ``length_design``: what x holds beyond any smooth function
    of sentence length (layer 0 of a transformer, a mean of positional embeddings, encodes length
    non-linearly, which a linear fit on log length leaves in)."""
    x = as_matrix("x", x)
    if len(np.asarray(lengths).reshape(-1)) != len(x):
        raise ValueError(f"got {len(np.asarray(lengths).reshape(-1))} lengths for {len(x)} sentences")
    design = length_design(lengths, n_features)
    if design.shape[1] >= len(x):
        raise ValueError(f"{len(x)} sentences cannot be residualised on {design.shape[1]} length "
                         "terms; use more sentences")
    coefficients, *_ = np.linalg.lstsq(design, x, rcond=None)
    return x - design @ coefficients


def length_residualised(metric: Metric, x: np.ndarray, y: np.ndarray, lengths_x: np.ndarray,
                        lengths_y: np.ndarray) -> float:
    """The metric after ``residualise_length`` on each side with its own lengths."""
    return metric(residualise_length(x, lengths_x), residualise_length(y, lengths_y))
