"""The batched grid against the reference per-pair functions, column by column, to 1e-6."""

import json
from pathlib import Path
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from core.metrics import grid, nulls
from core.metrics import similarity as sim

N, PERMUTATIONS, RESAMPLES, SEED = 40, 6, 25, 3
SPECS = grid.DEFAULT_METRICS + [
    grid.MetricSpec("svcca", {"variance": 0.9}),
    grid.MetricSpec("retrieval", {"direction": "a_to_b"}),
    grid.MetricSpec("mutual_knn", {"k": 3}),
]


def _sides(rng: np.random.Generator) -> tuple[dict, dict]:
    base = rng.standard_normal((N, 6))
    sides = {
        "text|de": base @ rng.standard_normal((6, 30)) + 0.5 * rng.standard_normal((N, 30)),
        "speech|de": base @ rng.standard_normal((6, 30)) + 0.8 * rng.standard_normal((N, 30)),
        "wide": base[:, :3] @ rng.standard_normal((3, 50)) + rng.standard_normal((N, 50)),
        "noise": rng.standard_normal((N, 25)),
        "narrow": base[:, :4] + 0.3 * rng.standard_normal((N, 4)),  # fewer dims than sentences drawn
    }
    # Two sentences with identical vectors: exact ties for the neighbour metrics.
    sides["ties"] = sides["noise"].copy()
    sides["ties"][7] = sides["ties"][3]
    tokens = rng.integers(5, 40, N).astype(float)  # integer lengths: many equal-length sentences
    lengths = {key: tokens for key in sides}
    lengths["speech|de"] = tokens * rng.uniform(0.25, 0.35, N)
    return sides, lengths


PAIRS = [("text|de", "speech|de"), ("text|de", "wide"), ("wide", "noise"), ("speech|de", "text|de"),
         ("noise", "ties"), ("ties", "text|de"), ("narrow", "text|de")]


def _quiet(function):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return function()
    except ValueError:
        return float("nan")


def _reference_row(row, sides: dict, lengths: dict) -> dict:
    x, y = sides[row.key_a], sides[row.key_b]
    metric = sim.metric_function(row.metric, **grid.metric_kwargs(row.params))
    permutations = nulls.permutation_indices(N, PERMUTATIONS, SEED)
    resamples = nulls.bootstrap_indices(N, RESAMPLES, SEED)
    null = _quiet(lambda: nulls.shuffled_baseline(metric, x, y, permutations=permutations))
    ci = _quiet(lambda: nulls.bootstrap_ci(metric, x, y, resamples=resamples))
    return {
        "value": _quiet(lambda: metric(x, y)),
        "baseline_mean": getattr(null, "mean", np.nan), "baseline_std": getattr(null, "std", np.nan),
        "ci_low": getattr(ci, "low", np.nan), "ci_high": getattr(ci, "high", np.nan),
        "length_baseline": _quiet(lambda: nulls.length_baseline(metric, lengths[row.key_a],
                                                                lengths[row.key_b])),
        "value_residualised": _quiet(lambda: nulls.length_residualised(
            metric, x, y, lengths[row.key_a], lengths[row.key_b])),
    }


@pytest.fixture(scope="module")
def computed():
    sides, lengths = _sides(np.random.default_rng(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = grid.compute_grid(sides, PAIRS, SPECS, lengths=lengths, n_permutations=PERMUTATIONS,
                                  n_bootstrap=RESAMPLES, seed=SEED, device="cpu")
    return sides, lengths, table


def test_every_column_equals_the_reference(computed):
    sides, lengths, table = computed
    for row in table.itertuples():
        for column, expected in _reference_row(row, sides, lengths).items():
            got = getattr(row, column)
            where = f"{row.key_a} vs {row.key_b}, {row.metric} {row.params}, {column}"
            if np.isnan(expected):
                assert np.isnan(got), where
            else:
                assert got == pytest.approx(expected, abs=1e-6), where


def test_rows_follow_pairs_then_metrics(computed):
    _, _, table = computed
    assert list(table.columns) == grid.COLUMNS
    assert list(zip(table.key_a, table.key_b)) == [pair for pair in PAIRS for _ in SPECS]
    assert table.metric.tolist()[:len(SPECS)] == [spec.name for spec in SPECS]
    assert (table.n_samples == N).all()
    finite = table.dropna(subset=["value"])
    assert (finite.baseline_std >= 0).all() and (finite.ci_low <= finite.ci_high).all()


def test_params_record_what_was_used(computed):
    _, _, table = computed
    first = table[(table.key_a == "text|de") & (table.key_b == "speech|de")]
    params = [json.loads(p) for p in first.params]
    assert params[0] == {"k": sim.default_svcca_k(N, 30, 30), "variance": None}
    assert params[3] == {"k": 10}
    assert params[4] == {"direction": "mean"}
    by_variance = params[6]
    assert by_variance["variance"] == 0.9 and by_variance["k"] is None
    x, y = computed[0]["text|de"], computed[0]["speech|de"]
    details = sim.svcca_details(x, y, variance=0.9)
    assert (by_variance["k_x"], by_variance["k_y"]) == (details.k_x, details.k_y)


def test_cross_space_metrics_are_nan_across_different_dims(computed):
    _, _, table = computed
    mixed = table[(table.key_a == "text|de") & (table.key_b == "wide")]
    for name in ("retrieval", "paired_cosine"):
        assert mixed.loc[mixed.metric == name, ["value", "ci_low", "baseline_mean"]].isna().all().all()
    assert mixed.loc[mixed.metric == "linear_cka", "value"].notna().all()


def test_unusable_svcca_k_gives_nan_and_saturation_warns():
    rng = np.random.default_rng(1)
    sides = {"a": rng.standard_normal((12, 4)), "b": rng.standard_normal((12, 6))}
    with pytest.warns(UserWarning, match="saturates"):
        table = grid.compute_grid(sides, [("a", "b")], [grid.MetricSpec("svcca", {"k": 5}),
                                                         grid.MetricSpec("svcca", {"k": 4})],
                                  n_permutations=3, n_bootstrap=4, device="cpu")
    assert np.isnan(table.value[0]) and np.isfinite(table.value[1])


def test_without_lengths_the_length_columns_are_nan_and_progress_counts_pairs():
    rng = np.random.default_rng(2)
    sides = {key: rng.standard_normal((20, 5)) for key in "abc"}
    calls = []
    table = grid.compute_grid(sides, [("a", "b"), ("b", "c"), ("a", "c")], [grid.MetricSpec("linear_cka")],
                              n_permutations=2, n_bootstrap=3, device="cpu",
                              progress=lambda done, total: calls.append((done, total)))
    assert table[["length_baseline", "value_residualised"]].isna().all().all()
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_results_do_not_depend_on_pair_order_or_grouping():
    rng = np.random.default_rng(3)
    sides = {key: rng.standard_normal((24, 6)) for key in "abcde"}
    pairs = [("a", "b"), ("c", "d"), ("a", "e"), ("d", "e"), ("b", "c")]
    specs = [grid.MetricSpec("svcca", {"k": 3}), grid.MetricSpec("mutual_knn", {"k": 4})]
    forward = grid.compute_grid(sides, pairs, specs, n_permutations=3, n_bootstrap=5, device="cpu")
    backward = grid.compute_grid(sides, pairs[::-1], specs, n_permutations=3, n_bootstrap=5, device="cpu")
    key = ["key_a", "key_b", "metric"]
    pd.testing.assert_frame_equal(forward.sort_values(key).reset_index(drop=True),
                                  backward.sort_values(key).reset_index(drop=True))


def test_bad_input_is_refused_with_a_clear_message():
    rng = np.random.default_rng(4)
    sides = {"a": rng.standard_normal((10, 3)), "b": rng.standard_normal((9, 3))}
    with pytest.raises(ValueError, match="same sentences"):
        grid.compute_grid(sides, [("a", "b")], [grid.MetricSpec("linear_cka")], device="cpu")
    with pytest.raises(KeyError, match="not in sides"):
        grid.compute_grid(sides, [("a", "z")], [grid.MetricSpec("linear_cka")], device="cpu")
    with pytest.raises(KeyError, match="lengths has no entry"):
        grid.compute_grid(sides, [("a", "a")], [grid.MetricSpec("linear_cka")], lengths={}, device="cpu")
    with pytest.raises(ValueError, match="takes no parameter"):
        grid.MetricSpec("linear_cka", {"k": 3})
    with pytest.raises(ValueError, match="unknown metric"):
        grid.MetricSpec("cosine")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            grid.compute_grid(sides, [("a", "a")], [grid.MetricSpec("linear_cka")], device="cuda")


def test_default_metrics_cover_the_study():
    assert [spec.name for spec in grid.DEFAULT_METRICS] == list(sim.METRIC_NAMES)
    assert grid.resolve_params(grid.DEFAULT_METRICS[0], 60, 512, 384) == {"k": 6, "variance": None}
    assert grid.resolve_params(grid.DEFAULT_METRICS[0], 1000, 512, 384) == {"k": 20, "variance": None}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    sides, lengths = _sides(np.random.default_rng(5))
    common = {"lengths": lengths, "n_permutations": 4, "n_bootstrap": 8, "seed": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cpu = grid.compute_grid(sides, PAIRS, SPECS, device="cpu", **common)
        cuda = grid.compute_grid(sides, PAIRS, SPECS, device="cuda", **common)
    numbers = cpu.columns[5:]
    np.testing.assert_allclose(cuda[numbers].to_numpy(float), cpu[numbers].to_numpy(float), atol=1e-6)


def test_length_baselines_agree_when_many_sentences_share_a_length():
    """Token counts repeat (the bundled store's text sides have about 12 distinct counts over 60
    sentences), so length-only features hold identical rows: kNN and retrieval must tie exactly in
    both implementations, not break ties on last-bit arithmetic noise. Uses the bundled store's real
    lengths, where that noise was first seen."""
    from core.store import Store

    path = Path(__file__).resolve().parents[1] / "data" / "crossmodal_lens.duckdb"
    if not path.exists():
        pytest.skip("bundled store not built")
    store = Store.open(path)
    try:
        runs = store.runs()
        # token counts are per run now: the Whisper run's tokenizer
        items = store.items(run_id=str(runs[runs.model == "whisper-base"].run_id.iloc[0]))
    finally:
        store.close()
    lengths = {}
    for (lang, modality), group in items.groupby(["lang", "modality"]):
        if lang in ("afr_Latn", "ita_Latn", "pes_Arab", "ind_Latn", "rus_Cyrl"):
            column = "n_tokens" if modality == "text" else "duration_s"
            lengths[f"{modality}|{lang}"] = group.sort_values("sentence_id")[column].to_numpy(float)
    keys = sorted(lengths)
    pairs = [(a, b) for i, a in enumerate(keys) for b in keys[i + 1:]]
    sides = {key: np.random.default_rng(0).standard_normal((len(lengths[key]), 8)) for key in keys}
    specs = [grid.MetricSpec("mutual_knn", {"k": 10}), grid.MetricSpec("retrieval", {})]
    table = grid.compute_grid(sides, pairs, specs, lengths=lengths, n_permutations=0, n_bootstrap=0)
    for (key_a, key_b), spec in [(pair, spec) for pair in pairs for spec in specs]:
        metric = sim.metric_function(spec.name, **spec.params)
        expected = nulls.length_baseline(metric, lengths[key_a], lengths[key_b])
        row = table[(table.key_a == key_a) & (table.key_b == key_b) & (table.metric == spec.name)]
        assert row.length_baseline.iloc[0] == pytest.approx(expected, abs=1e-9), (key_a, key_b, spec)
