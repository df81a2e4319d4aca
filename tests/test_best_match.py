"""Calibrated best match per layer (core.metrics.best_match) against math, simulation and an oracle.

Null stacks: the calibrated row maximum is significant at the nominal rate over many fixed seeds
(binomial tolerance from the count), while the per-cell test of the same best cell is not; a stack
with one corresponding layer: found. Oracle: PyPI calibrated-similarity (Gröger et al.) given the
same shuffles gives the same p-value and threshold.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.metrics import nulls
from core.metrics import similarity as sim
from core.metrics.best_match import (add_one_p_value, best_matches, calibrated_score,
                                     critical_threshold)

ALPHA = 0.1
N_SENTENCES, N_PERMUTATIONS = 40, 39  # (P + 1) * alpha = 4: the add-one test is exact at alpha


def _stack(rng: np.random.Generator, n_layers: int, dim: int = 5, carry: float = 0.3) -> list:
    """Layers of one model: each layer a little of the previous plus fresh features."""
    layers = [rng.standard_normal((N_SENTENCES, dim))]
    for _ in range(n_layers - 1):
        layers.append(carry * layers[-1] + rng.standard_normal((N_SENTENCES, dim)))
    return layers


def _matrix(layers_a: list, layers_b: list, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear CKA of every cell and its values under shared shuffles (the grid's definition)."""
    permutations = nulls.permutation_indices(N_SENTENCES, N_PERMUTATIONS, seed)
    values = np.array([[sim.linear_cka(a, b) for b in layers_b] for a in layers_a])
    null = np.array([[[sim.linear_cka(a, b[order]) for b in layers_b] for a in layers_a]
                     for order in permutations])
    return values, null


def test_p_value_threshold_and_score_by_hand():
    null = np.array([0.1, 0.2, 0.3, 0.4])
    assert add_one_p_value(0.35, null) == pytest.approx(2 / 5)
    assert add_one_p_value(0.5, null) == pytest.approx(1 / 5)  # never 0
    assert add_one_p_value(0.05, null) == 1.0
    assert math.isnan(add_one_p_value(0.5, np.array([np.nan])))
    # combined {0.35, null}: 5 values, ceil(0.8 * 5) = 4th smallest = 0.35
    assert critical_threshold(0.35, null, alpha=0.2) == pytest.approx(0.35)
    assert critical_threshold(0.9, null, alpha=0.2) == pytest.approx(0.4)
    assert calibrated_score(0.7, 0.4) == pytest.approx(0.5)
    assert calibrated_score(0.3, 0.4) == 0.0
    with pytest.raises(ValueError, match="alpha"):
        critical_threshold(0.3, null, alpha=1.5)


def test_best_matches_checks_shapes_and_all_nan_lines():
    with pytest.raises(ValueError, match="null"):
        best_matches(np.zeros((2, 3)), np.zeros((5, 3, 2)))
    values = np.array([[np.nan, np.nan], [0.2, 0.5]])
    found = best_matches(values, np.zeros((4, 2, 2)))
    assert found.best.tolist() == [-1, 1]
    assert not found.significant.iloc[0]
    by_column = best_matches(values, np.zeros((4, 2, 2)), axis=0)
    assert by_column.best.tolist() == [1, 1]


def test_null_stacks_calibrated_max_is_significant_at_the_nominal_rate():
    seeds = range(150)
    calibrated = naive = 0
    for seed in seeds:
        rng = np.random.default_rng(seed)
        values, null = _matrix(_stack(rng, 1), _stack(rng, 5), seed)
        row = best_matches(values, null, alpha=ALPHA).iloc[0]
        calibrated += row.p_value <= ALPHA
        naive += row.naive_p <= ALPHA
    n = len(seeds)
    spread = 3 * math.sqrt(n * ALPHA * (1 - ALPHA))  # 3 binomial SDs at the nominal rate
    assert abs(calibrated - n * ALPHA) <= spread, (calibrated, n * ALPHA, spread)
    # testing the best cell against its own null is the inflation the calibration removes
    assert naive > n * ALPHA + spread, (naive, n * ALPHA, spread)


def test_a_corresponding_layer_is_found_and_significant():
    rng = np.random.default_rng(7)
    layers_a, layers_b = _stack(rng, 3), _stack(rng, 4)
    rotation, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    layers_a[2] = layers_b[1] @ rotation + 0.3 * rng.standard_normal((N_SENTENCES, 5))
    values, null = _matrix(layers_a, layers_b, seed=1)
    rows = best_matches(values, null, alpha=0.05)
    match = rows.iloc[2]
    assert match.best == 1 and match.significant
    assert match.p_value == pytest.approx(1 / (N_PERMUTATIONS + 1))
    assert match.calibrated > 0
    columns = best_matches(values, null, alpha=0.05, axis=0)
    assert columns.iloc[1].best == 2 and columns.iloc[1].significant


def test_agrees_with_calibrated_similarity_package():
    calibration = pytest.importorskip("calibrated_similarity")
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    layers_a, layers_b = _stack(rng, 2), _stack(rng, 4)
    layers_a[1] = layers_b[2] + 0.8 * rng.standard_normal((N_SENTENCES, 5))
    values, null = _matrix(layers_a, layers_b, seed=5)
    ours = best_matches(values, null, alpha=0.05)
    for row in range(2):
        orders = iter(torch.as_tensor(nulls.permutation_indices(N_SENTENCES, N_PERMUTATIONS, 5)))

        def cka(x, y):
            return sim.linear_cka(x.numpy(), y.numpy())

        _score, p_value, tau = calibration.calibrate_layers(
            [torch.as_tensor(layers_a[row])], [torch.as_tensor(b) for b in layers_b], cka,
            agg="max", K=N_PERMUTATIONS, alpha=0.05, perm_fn=lambda n, device: next(orders))
        assert float(p_value) == pytest.approx(ours.p_value.iloc[row], abs=1e-6)
        assert float(tau) == pytest.approx(ours.threshold.iloc[row], abs=1e-6)
