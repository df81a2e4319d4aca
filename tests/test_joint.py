"""Chance-corrected aggregates and their joint bootstrap intervals (core.metrics.joint), on simulated
data whose truth is known, plus the non-linear length residualisation and SVCCA's interval."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.metrics import nulls
from core.metrics.grid import MetricSpec, compute_grid
from core.metrics.joint import (
    DOES_NOT_HOLD,
    HOLDS,
    MIN_RESAMPLES,
    MIN_SENTENCES,
    NOT_ENOUGH_DATA,
    corrected_difference,
    corrected_mean,
)
from core.store.vectors import decode_resamples, encode_resamples, resample_matrix

N_SENTENCES, N_LANGS, DIM, LATENT = 60, 5, 12, 4
SVCCA = MetricSpec("svcca", {"k": 4})


#: each language's fixed mixing of the latent meaning: the population stays the same, only the
#: sentences (latent meaning and noise) are drawn anew per simulated corpus
MIXING = np.random.default_rng(123).standard_normal((N_LANGS, LATENT, DIM))


def _languages(rng: np.random.Generator, noise: float) -> dict[str, np.ndarray]:
    """N_LANGS views of the same sentences: shared latent meaning, own mixing and noise."""
    latent = rng.standard_normal((N_SENTENCES, LATENT))
    return {f"l{i}": latent @ MIXING[i] + noise * rng.standard_normal((N_SENTENCES, DIM))
            for i in range(N_LANGS)}


def _grid(sides: dict[str, np.ndarray], pairs, *, seed: int, n_bootstrap: int = 120) -> pd.DataFrame:
    return compute_grid(sides, pairs, [SVCCA], n_permutations=10, n_bootstrap=n_bootstrap,
                        seed=seed, device="cpu")


def _pairs():
    keys = [f"l{i}" for i in range(N_LANGS)]
    return [(a, b) for i, a in enumerate(keys) for b in keys[i + 1:]]


def _aggregate(grid: pd.DataFrame):
    return corrected_mean(grid, np.stack(grid["resamples"].to_list()), n_permutations=10)


def test_joint_interval_covers_the_expected_corrected_mean_and_naive_ses_do_not():
    """Over many simulated corpora, the joint-bootstrap interval of the mean corrected SVCCA over 10
    language pairs (which share 5 languages and the same sentences) contains its expected value at
    least ~95% of the time; treating the 10 pairs as independent (sd / sqrt(pairs)) does not."""
    pairs = _pairs()
    estimates, joint_hits, naive_hits = [], [], []
    results = []
    for replicate in range(60):
        rng = np.random.default_rng(1000 + replicate)
        grid = _grid(_languages(rng, noise=2.0), pairs, seed=replicate)
        aggregate = _aggregate(grid)
        corrected = grid["value"] - grid["baseline_mean"]
        naive_se = corrected.std(ddof=1) / math.sqrt(len(corrected))
        results.append((aggregate, naive_se))
        estimates.append(aggregate.corrected)
    truth = float(np.mean(estimates))  # the estimator's expected value at this n (Monte Carlo)
    for aggregate, naive_se in results:
        joint_hits.append(aggregate.low <= truth <= aggregate.high)
        naive_hits.append(abs(aggregate.corrected - truth) <= 1.96 * naive_se)
    assert np.mean(joint_hits) >= 0.88, np.mean(joint_hits)
    assert np.mean(naive_hits) < np.mean(joint_hits) - 0.15, (np.mean(naive_hits), np.mean(joint_hits))


def test_single_pair_svcca_interval_covers_its_expected_value():
    """SVCCA's row interval (value +/- 1.96 bootstrap SD) covers E[SVCCA] at this n; the
    percentile interval, shifted up by duplicated sentences, covers it far less often."""
    values, intervals, percentile = [], [], []
    for replicate in range(60):
        rng = np.random.default_rng(5000 + replicate)
        sides = _languages(rng, noise=1.5)
        grid = _grid({"a": sides["l0"], "b": sides["l1"]}, [("a", "b")], seed=replicate)
        row = grid.iloc[0]
        values.append(row.value)
        intervals.append((row.ci_low, row.ci_high))
        percentile.append(nulls.percentile_interval(row.resamples))
    truth = float(np.mean(values))
    coverage = np.mean([low <= truth <= high for low, high in intervals])
    shifted = np.mean([low <= truth <= high for low, high in percentile])
    assert coverage >= 0.88, coverage
    assert shifted < coverage, (shifted, coverage)
    assert all(low <= v <= high for v, (low, high) in zip(values, intervals))


def test_raw_difference_from_different_floors_vanishes_after_correction():
    """Two pairings with the same true relation but different chance levels: the raw difference is
    large, the corrected one is not, and the verdict is never 'holds'."""
    rng = np.random.default_rng(7)
    boot = rng.normal(0.0, 0.01, size=(4, 200))
    high_floor = pd.DataFrame({"value": [0.80, 0.82], "baseline_mean": [0.60, 0.62],
                               "baseline_std": 0.02, "n_samples": 200})
    low_floor = pd.DataFrame({"value": [0.40, 0.42], "baseline_mean": [0.20, 0.22],
                              "baseline_std": 0.02, "n_samples": 200})
    difference = corrected_difference(high_floor, boot[:2] + high_floor.value.to_numpy()[:, None],
                                      low_floor, boot[2:] + low_floor.value.to_numpy()[:, None],
                                      n_permutations=20)
    assert difference.raw == pytest.approx(0.40)
    assert difference.corrected == pytest.approx(0.0, abs=1e-12)
    assert difference.verdict() == NOT_ENOUGH_DATA
    # a real corrected difference of 0.1 is found
    real = corrected_difference(high_floor.assign(value=high_floor.value + 0.1),
                                boot[:2] + 0.9, low_floor, boot[2:] + 0.4, n_permutations=20)
    assert real.corrected == pytest.approx(0.1) and real.verdict() == HOLDS
    flipped = corrected_difference(low_floor, boot[2:] + 0.4,
                                   high_floor.assign(value=high_floor.value + 0.1), boot[:2] + 0.9,
                                   n_permutations=20)
    assert flipped.verdict() == DOES_NOT_HOLD


def test_minimum_evidence():
    rows = pd.DataFrame({"value": [0.5], "baseline_mean": [0.1], "baseline_std": [0.01],
                         "n_samples": [MIN_SENTENCES - 1]})
    boot = np.random.default_rng(0).normal(0.5, 0.01, size=(1, 200))
    few_sentences = corrected_mean(rows, boot)
    assert few_sentences.verdict() == NOT_ENOUGH_DATA and "sentences" in few_sentences.reason
    rows["n_samples"] = 200
    assert corrected_mean(rows, boot).verdict() == HOLDS
    few_resamples = corrected_mean(rows, boot[:, :MIN_RESAMPLES - 1])
    assert few_resamples.verdict() == NOT_ENOUGH_DATA and "resamples" in few_resamples.reason
    saturated = corrected_mean(rows.assign(value=1.0, baseline_std=0.0), np.ones((1, 200)))
    assert saturated.verdict() == NOT_ENOUGH_DATA and "zero-width" in saturated.reason
    missing = corrected_mean(rows, None)
    assert missing.verdict() == NOT_ENOUGH_DATA and "bootstrap values" in missing.reason
    mixed = corrected_difference(rows, boot, rows.assign(n_samples=150), boot)
    assert mixed.verdict() == NOT_ENOUGH_DATA and "different numbers" in mixed.reason


def test_resample_blobs_round_trip_within_their_step():
    values = np.random.default_rng(3).normal(0.4, 0.05, 200)
    values[[5, 17]] = np.nan
    decoded = decode_resamples(encode_resamples(values))
    assert np.isnan(decoded[[5, 17]]).all()
    step = (np.nanmax(values) - np.nanmin(values)) / 254
    assert np.nanmax(np.abs(decoded - values)) <= step / 2 + 1e-7
    constant = decode_resamples(encode_resamples(np.full(10, 0.7)))
    np.testing.assert_allclose(constant, 0.7, atol=1e-7)
    assert encode_resamples(np.empty(0)) is None and decode_resamples(None).size == 0
    matrix = resample_matrix([encode_resamples(values[:3]), None])
    assert matrix.shape == (2, 3) and np.isnan(matrix[1]).all()


def test_residualisation_removes_a_planted_non_linear_length_effect():
    """Two unrelated sides that both encode length through a non-monotone function look similar;
    after residualisation on the smooth length basis they do not (a linear fit on log length would
    leave the bump in)."""
    rng = np.random.default_rng(11)
    n = 200
    lengths = rng.integers(3, 40, size=n).astype(float)
    u = (np.log(lengths) - np.log(lengths).min()) / np.ptp(np.log(lengths))
    bump = np.exp(-((u - 0.5) ** 2) / 0.02)  # peaks at mid length: not a linear function of log length
    x = np.outer(bump, rng.standard_normal(8)) + 0.3 * rng.standard_normal((n, 8))
    y = np.outer(bump, rng.standard_normal(8)) + 0.3 * rng.standard_normal((n, 8))
    from core.metrics.similarity import linear_cka

    raw = linear_cka(x, y)
    linear_only = linear_cka(*(v - np.column_stack([np.ones(n), np.log(lengths)]) @ np.linalg.lstsq(
        np.column_stack([np.ones(n), np.log(lengths)]), v, rcond=None)[0] for v in (x, y)))
    residualised = nulls.length_residualised(linear_cka, x, y, lengths, lengths)
    unrelated = linear_cka(rng.standard_normal((n, 8)), rng.standard_normal((n, 8)))
    # a linear fit on log length leaves most of the bump's similarity; the smooth basis removes it
    assert linear_only > unrelated + 0.3 and raw > unrelated + 0.3, (raw, linear_only, unrelated)
    assert residualised < unrelated + 0.05, (residualised, unrelated)
    with pytest.raises(ValueError, match="cannot be residualised"):
        nulls.residualise_length(x[:8], lengths[:8])
