"""Differences A - B: the interval from shared resamples (math and coverage on simulated data), and
the pure cell bookkeeping of dashboard/differences.py (grids, the voice reference, shared runs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.metrics.joint import Z_95, difference_intervals
from core.metrics.nulls import bootstrap_indices
from core.store.vectors import encode_resamples
from dashboard import differences
from dashboard.charts.transforms import grid_cells
from chart_fixtures import metric_row


# ------------------------------------------------------------------- the interval (pure numpy)

def test_identical_sides_differ_by_zero_with_a_zero_width_interval():
    rng = np.random.default_rng(0)
    boot = rng.normal(0.5, 0.05, size=(4, 50))
    values = boot.mean(axis=1)
    difference, low, high = difference_intervals(values, values, boot, boot)
    np.testing.assert_array_equal(difference, 0.0)
    np.testing.assert_allclose(low, 0.0, atol=1e-15)
    np.testing.assert_allclose(high, 0.0, atol=1e-15)


def test_interval_is_the_difference_plus_minus_z_sds_of_per_resample_differences():
    rng = np.random.default_rng(1)
    shared = rng.normal(size=200)  # what both sides share in a resample (the same sentences)
    boot_a = 0.6 + 0.05 * shared + 0.01 * rng.normal(size=(3, 200))
    boot_b = 0.4 + 0.05 * shared + 0.01 * rng.normal(size=(3, 200))
    values_a, values_b = np.array([0.6, 0.61, 0.62]), np.array([0.4, 0.41, 0.43])
    difference, low, high = difference_intervals(values_a, values_b, boot_a, boot_b)
    np.testing.assert_allclose(difference, values_a - values_b)
    half = Z_95 * (boot_a - boot_b).std(axis=1, ddof=1)
    np.testing.assert_allclose(high - difference, half)
    np.testing.assert_allclose(difference - low, half)
    # the shared part cancels: far narrower than treating the sides as independent
    independent = Z_95 * np.hypot(boot_a.std(axis=1, ddof=1), boot_b.std(axis=1, ddof=1))
    assert np.all(half < independent / 3)


def test_no_shared_resamples_or_too_few_gives_no_interval():
    values = np.array([0.5, 0.4])
    boot = np.full((2, 10), 0.5)
    boot_nan = boot.copy()
    boot_nan[1, 1:] = np.nan  # one usable resample in the second cell
    for boot_a, boot_b in ((None, boot), (boot, None), (boot, np.full((2, 9), 0.5))):
        _, low, high = difference_intervals(values, values[::-1], boot_a, boot_b)
        assert np.isnan(low).all() and np.isnan(high).all()
    _, low, _ = difference_intervals(values, values, boot_nan, boot)
    assert np.isfinite(low[0]) and np.isnan(low[1])


def test_extra_error_widens_the_interval():
    rng = np.random.default_rng(2)
    boot_a, boot_b = rng.normal(size=(2, 50)), rng.normal(size=(2, 50))
    _, low, high = difference_intervals(np.zeros(2), np.zeros(2), boot_a, boot_b)
    _, low_x, high_x = difference_intervals(np.zeros(2), np.zeros(2), boot_a, boot_b,
                                            extra_se=np.array([0.5, 0.0]))
    assert high_x[0] - low_x[0] > high[0] - low[0]
    np.testing.assert_allclose(high_x[1] - low_x[1], high[1] - low[1])


def test_interval_covers_the_true_difference_at_about_the_nominal_rate():
    """Two statistics of the same sentences (means of correlated per-sentence scores, as two
    layers of one run): over 300 simulated corpora the shared-resample interval covers the true
    difference about 95% of the time."""
    rng = np.random.default_rng(3)
    n, n_boot, true_difference, covered = 120, 200, 0.1, 0
    for corpus in range(300):
        common = rng.normal(size=n)
        a = 0.5 + true_difference + common + 0.5 * rng.normal(size=n)
        b = 0.5 + common + 0.5 * rng.normal(size=n)
        index = bootstrap_indices(n, n_boot, corpus)  # one set of resamples for both sides
        _, low, high = difference_intervals(
            np.array([a.mean()]), np.array([b.mean()]), a[index].mean(axis=1)[None, :],
            b[index].mean(axis=1)[None, :])
        covered += bool(low[0] <= true_difference <= high[0])
    assert 0.91 <= covered / 300 <= 0.98


# --------------------------------------------------------------- cells (dashboard.differences)

def _rows(values: dict[tuple[str, str], float], *, pairing="text-speech", layer=0, n=10,
          resamples=None, **extra) -> pd.DataFrame:
    modality_a, modality_b = pairing.split("-")
    return pd.DataFrame([metric_row(pairing=pairing, lang_a=a, lang_b=b, value=v, layer_a=layer,
                                    layer_b=layer, n_samples=n, modality_a=modality_a,
                                    modality_b=modality_b,
                                    resamples=None if resamples is None else
                                    encode_resamples(v + resamples), **extra)
                         for (a, b), v in values.items()])


LANGS = ["eng_Latn", "deu_Latn"]


def test_grid_cells_mirror_same_modality_pairings_and_leave_absent_cells_empty():
    rows = _rows({("eng_Latn", "deu_Latn"): 0.3}, pairing="text-text")
    cells = grid_cells(rows, LANGS, LANGS, symmetric=True)
    values = cells.set_index(["lang_a", "lang_b"])["value"]
    assert values[("eng_Latn", "deu_Latn")] == values[("deu_Latn", "eng_Latn")] == 0.3
    assert np.isnan(values[("eng_Latn", "eng_Latn")])
    cells = grid_cells(rows, LANGS, LANGS, symmetric=False)
    assert np.isnan(cells.set_index(["lang_a", "lang_b"])["value"][("deu_Latn", "eng_Latn")])


def test_difference_cells_subtract_in_the_view_and_give_the_shared_interval():
    noise = np.random.default_rng(4).normal(0, 0.02, 100)
    grid = {(a, b): 0.5 for a in LANGS for b in LANGS}
    rows_a = _rows(grid, layer=3, resamples=noise)
    rows_b = _rows({k: 0.3 for k in grid}, layer=1, resamples=noise + 0.001, baseline_mean=0.2)
    cells_a = grid_cells(rows_a, LANGS, LANGS, symmetric=False)
    cells_b = grid_cells(rows_b, LANGS, LANGS, symmetric=False)
    raw = differences.difference_cells(cells_a, cells_b, view="raw")
    np.testing.assert_allclose(raw["difference"], 0.2)
    assert (raw["interval"] == "joint bootstrap (shared resamples)").all()
    assert (raw["low"] <= raw["difference"]).all() and (raw["high"] >= raw["difference"]).all()
    assert (raw["high"] - raw["low"]).max() < 0.01  # the common noise cancels
    corrected = differences.difference_cells(cells_a, cells_b, view="minus_baseline",
                                             n_permutations=20)
    np.testing.assert_allclose(corrected["difference"], (0.5 - 0.1) - (0.3 - 0.2))
    assert ((corrected["high"] - corrected["low"]) > (raw["high"] - raw["low"])).all()
    residualised = differences.difference_cells(cells_a, cells_b, view="residualised")
    assert residualised["low"].isna().all()
    assert residualised["interval"].str.contains("residualised").all()
    two_runs = differences.difference_cells(cells_a, cells_b, view="raw",
                                            no_interval="the runs drew other resamples")
    assert two_runs["low"].isna().all()
    assert (two_runs["interval"] == "the runs drew other resamples").all()
    summary = differences.difference_summary(raw)
    assert summary["cells"] == summary["with_interval"] == summary["above"] == 4
    assert summary["below"] == 0


def test_cells_with_different_sentence_counts_or_missing_values_have_no_interval():
    noise = np.random.default_rng(5).normal(0, 0.02, 50)
    rows_a = _rows({("eng_Latn", "eng_Latn"): 0.5, ("eng_Latn", "deu_Latn"): 0.4}, n=10,
                   resamples=noise)
    rows_b = _rows({("eng_Latn", "eng_Latn"): 0.3}, n=12, resamples=noise)
    cells = differences.difference_cells(
        grid_cells(rows_a, ["eng_Latn"], LANGS, symmetric=False),
        grid_cells(rows_b, ["eng_Latn"], LANGS, symmetric=False), view="raw")
    assert cells["low"].isna().all()
    assert list(cells["interval"]) == ["the two sides have different numbers of sentences",
                                       "no value on one side"]


def test_cells_of_two_grids_must_match():
    a = grid_cells(_rows({("eng_Latn", "deu_Latn"): 0.5}), LANGS, LANGS,
                               symmetric=False)
    with pytest.raises(ValueError, match="same grid"):
        differences.difference_cells(a, a.iloc[:2], view="raw")
    with pytest.raises(ValueError, match="order"):
        differences.difference_cells(a, a.iloc[::-1], view="raw")


def test_voice_reference_repeats_the_row_languages_voice_change_along_the_row():
    rows = _rows({("eng_Latn", "deu_Latn"): 0.3, ("eng_Latn", "eng_Latn"): 0.8,
                  ("deu_Latn", "deu_Latn"): np.nan}, pairing="speech-speech")
    assert differences.voice_languages(rows) == ["eng_Latn"]
    reference = differences.voice_reference_cells(rows, ["eng_Latn"], LANGS)
    assert list(reference["lang_b"]) == LANGS and (reference["value"] == 0.8).all()
    cross = grid_cells(rows[rows.lang_a != rows.lang_b], ["eng_Latn"], LANGS,
                                   symmetric=True)
    cells = differences.difference_cells(cross, reference, view="raw")
    assert np.isnan(cells["difference"].iloc[0])  # the voice cell itself is not its own reference
    assert cells["difference"].iloc[1] == pytest.approx(0.3 - 0.8)


def test_two_runs_share_resamples_only_when_they_drew_them_alike():
    config = {"seed": 0, "n_bootstrap": 100, "corpus": "bundled", "corpus_name": "bundled",
              "split": "test", "suffix": ".dev", "n_sentences": None, "n_sentence_ids": 200,
              "corpus_source": "one checkout"}
    assert differences.shared_resamples(config, {**config, "corpus_source": "another"}) == ""
    assert "seed: 0 vs 1" in differences.shared_resamples(config, {**config, "seed": 1})
    assert "n_bootstrap" in differences.shared_resamples(config, {**config, "n_bootstrap": 200})
    without = {k: v for k, v in config.items() if k != "seed"}
    assert "cannot be checked" in differences.shared_resamples(config, without)


def test_value_range_and_nearest_layer():
    rows = pd.concat([_rows({("eng_Latn", "deu_Latn"): v}, layer=i)
                      for i, v in enumerate([0.2, np.nan, 0.7])])
    assert differences.value_range(rows, "raw") == (0.2, 0.7)
    low, high = differences.value_range(rows, "minus_baseline")
    assert (low, high) == pytest.approx((0.1, 0.6))
    assert differences.value_range(rows.iloc[0:0], "raw") is None
    layers = pd.DataFrame({"layer_a": [0, 1, 2, 3], "depth": [0.0, 1 / 3, 2 / 3, 1.0]})
    assert differences.nearest_layer(layers, 0.5) == 1  # a tie goes to the lower layer
    assert differences.nearest_layer(layers, 0.9) == 3
    assert differences.nearest_layer(layers.iloc[0:0], 0.5) is None
