"""SVCCA at other k and length-matched values (precompute.variants) on data with a known answer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from precompute.pairs import PairSpec, Side
from precompute.variants import SVCCA_KS, compute_variants, length_matched_rows


def test_length_matched_rows_keep_sentences_near_both_medians():
    a = np.array([10, 10, 10, 20, 5, 11, 9.0])
    b = np.array([2.0, 2.0, 4.0, 2.0, 2.0, 2.2, 2.0])
    np.testing.assert_array_equal(length_matched_rows(a, b, tolerance=0.25), [0, 1, 5, 6])


def _pair(lang_a: str, lang_b: str) -> PairSpec:
    return PairSpec("text-text", Side("t", 0, lang_a), Side("t", 0, lang_b), "text", "text", 0.0)


def test_length_only_similarity_vanishes_when_lengths_are_matched_and_k_curves_rise():
    rng = np.random.default_rng(4)
    n = 240
    lengths = np.exp(rng.uniform(np.log(3), np.log(40), n))
    code = np.column_stack([np.log(lengths), np.log(lengths) ** 2])
    # two unrelated sides that share nothing but a length code; and a pair sharing real content
    content = rng.standard_normal((n, 6))
    sides = {
        "t|0|a": code @ rng.standard_normal((2, 16)) + 0.5 * rng.standard_normal((n, 16)),
        "t|0|b": code @ rng.standard_normal((2, 16)) + 0.5 * rng.standard_normal((n, 16)),
        "t|0|c": content @ rng.standard_normal((6, 16)) + 0.5 * rng.standard_normal((n, 16)),
        "t|0|d": content @ rng.standard_normal((6, 16)) + 0.5 * rng.standard_normal((n, 16)),
    }
    side_lengths = {key: lengths * (1 + 0.05 * rng.standard_normal(n)) for key in sides}
    rows = compute_variants(sides, side_lengths, [_pair("a", "b"), _pair("c", "d")],
                            n_permutations=10, seed=0)
    by_k = rows[rows.variant == "svcca_k"]
    ks = sorted({json.loads(p)["k"] for p in by_k.params})
    assert ks == [k for k in SVCCA_KS if k < n / 2]
    for _, pair_rows in by_k.groupby("lang_a"):
        pair_rows = pair_rows.assign(k=[json.loads(p)["k"] for p in pair_rows.params])
        assert pair_rows[pair_rows.k > 16].value.isna().all()  # k above the 16 dims: undefined
        baselines = pair_rows[pair_rows.k <= 16].sort_values("k").baseline_mean.to_numpy()
        assert (np.diff(baselines) > 0).all()  # chance level rises with k
    matched = rows[rows.variant == "length_matched"].set_index("lang_a")
    assert (matched.n_samples < n).all() and (matched.n_samples >= 20).all()
    full_length_pair = by_k[(by_k.lang_a == "a") & (by_k.params.str.contains('"k": 2,'))].iloc[0]
    assert full_length_pair.value - full_length_pair.baseline_mean > 0.3  # length alone, full set
    assert matched.loc["a", "value"] - matched.loc["a", "baseline_mean"] < 0.15  # gone when matched
    assert matched.loc["c", "value"] - matched.loc["c", "baseline_mean"] > 0.3  # content survives


def test_no_pairs_and_too_few_sentences_give_no_rows():
    empty = compute_variants({"t|0|a": np.zeros((5, 3))}, {"t|0|a": np.ones(5)}, [],
                             n_permutations=2, seed=0)
    assert empty.empty
    sides = {"t|0|a": np.random.default_rng(0).standard_normal((6, 4)),
             "t|0|b": np.random.default_rng(1).standard_normal((6, 4))}
    rows = compute_variants(sides, {k: np.arange(1.0, 7.0) for k in sides}, [_pair("a", "b")],
                            n_permutations=2, seed=0)
    assert set(rows.variant) == {"svcca_k"} and len(rows) == 1  # only k = 2 < 6 / 2


@pytest.mark.parametrize("tolerance", [0.1, 0.5])
def test_length_tolerance_widens_the_subset(tolerance):
    lengths = np.linspace(5, 15, 101)
    kept = length_matched_rows(lengths, lengths, tolerance)
    assert np.all(np.abs(lengths[kept] / np.median(lengths) - 1) <= tolerance)
