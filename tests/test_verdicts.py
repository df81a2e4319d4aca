"""A verdict per metric and control: simulated runs whose metrics or controls agree, disagree, or
cannot apply, each built so that the headline is known in advance."""

import math

import numpy as np
import pandas as pd
import pytest

from core import verdicts
from core.findings import DOES_NOT_HOLD, HOLDS, NOT_ENOUGH_DATA
from core.store.vectors import encode_resamples
from tests.test_findings import N_BOOT, components_table, languages_table, metrics_table

RISING = {"cross_modal": lambda depth: 0.2 + 0.5 * depth}
FALLING = {"cross_modal": lambda depth: 0.7 - 0.5 * depth}
FLAT = {"cross_modal": lambda depth: 0.4}


def _run(*tables: pd.DataFrame, variants=None, adapted=False, components=None):
    found = verdicts.evaluate(pd.concat(tables, ignore_index=True), languages_table(),
                              components_table(adapted) if components is None else components,
                              variants)
    assert [f.id for f in found] == [1, 2, 3, 4]
    return {f.id: f for f in found}


def _cell(found, metric: str, control: str) -> pd.Series:
    cells = found.cells
    return cells[(cells.metric == metric) & (cells.control == control)].iloc[0]


def test_where_every_metric_and_control_agrees_the_verdict_stands():
    found = _run(*(metrics_table(metric=m, **RISING) for m in verdicts.VERDICT_METRICS))
    first = found[1]
    assert first.headline == HOLDS and "All 8 decided cells agree" in first.reason
    assert set(first.cells.metric) == {"SVCCA", "linear CKA", "debiased CKA", "mutual kNN"}
    assert set(first.cells.control) == {verdicts.RAW, verdicts.RESIDUALISED}
    assert (first.cells.verdict == HOLDS).all()
    row = _cell(first, "SVCCA", verdicts.RAW)
    assert row.ci_low < row.effect < row.ci_high and row.ci_low > 0
    assert found[3].headline == HOLDS and found[4].headline == HOLDS


def test_where_metrics_disagree_the_headline_is_mixed_and_names_the_cells():
    found = _run(metrics_table(metric="svcca", **RISING), metrics_table(metric="linear_cka", **FALLING))
    first = found[1]
    assert first.headline == verdicts.MIXED
    holds, does_not = first.reason.split("Does not hold:")
    assert "SVCCA / raw" in holds and "SVCCA / length-residualised" in holds
    assert "linear CKA / raw" in does_not and "linear CKA / length-residualised" in does_not
    assert "SVCCA" not in does_not and "linear CKA" not in holds
    assert _cell(first, "linear CKA", verdicts.RAW).verdict == DOES_NOT_HOLD


def test_undecided_cells_are_listed_but_do_not_break_agreement():
    found = _run(metrics_table(metric="svcca", **RISING), metrics_table(metric="mutual_knn", **FLAT))
    assert found[1].headline == HOLDS
    assert "Undecided: mutual kNN / raw, mutual kNN / length-residualised" in found[1].reason
    # nothing decided at all: not enough data (more sentences could decide), never "not applicable"
    flat = _run(metrics_table(metric="svcca", **FLAT))
    assert flat[1].headline == NOT_ENOUGH_DATA and "No cell decides" in flat[1].reason
    few = _run(metrics_table(metric="svcca", **RISING).assign(n_samples=20))
    assert {f.headline for f in few.values()} == {NOT_ENOUGH_DATA, verdicts.NOT_APPLICABLE}
    assert few[1].headline == NOT_ENOUGH_DATA


def test_a_control_that_reverses_the_effect_makes_it_mixed():
    table = metrics_table(metric="svcca", **RISING)
    # the length-residualised values fall with depth: length carried the rise
    table["value_residualised"] = np.where(table["pairing"] == "text-speech",
                                           0.8 - table["value"], table["value"])
    found = _run(table)
    assert found[1].headline == verdicts.MIXED
    assert "Does not hold: SVCCA / length-residualised" in found[1].reason
    raw, residual = _cell(found[1], "SVCCA", verdicts.RAW), _cell(found[1], "SVCCA",
                                                                  verdicts.RESIDUALISED)
    assert residual.effect == pytest.approx(-raw.effect)
    # the same resamples shifted row by row: the same interval width
    assert residual.ci_high - residual.ci_low == pytest.approx(raw.ci_high - raw.ci_low)


def _length_matched(table: pd.DataFrame, value, n_samples: int) -> pd.DataFrame:
    rows = table[(table.pairing == "text-speech") & (table.lang_a == table.lang_b)]
    return rows.assign(variant="length_matched", value=value(rows), n_samples=n_samples)[
        ["variant", "pairing", "component_a", "component_b", "layer_a", "layer_b", "depth",
         "lang_a", "lang_b", "metric", "params", "n_samples", "value", "baseline_mean",
         "baseline_std"]]


def test_length_matched_rows_are_a_control_with_a_wider_interval():
    table = metrics_table(metric="svcca", **RISING)
    falling = _length_matched(table, lambda rows: 0.8 - rows["value"], n_samples=54)
    found = _run(table, variants=falling)
    assert found[1].headline == verdicts.MIXED
    assert "Does not hold: SVCCA / length-matched" in found[1].reason
    raw, matched = _cell(found[1], "SVCCA", verdicts.RAW), _cell(found[1], "SVCCA",
                                                                 verdicts.LENGTH_MATCHED)
    assert matched.effect == pytest.approx(-raw.effect)
    # resample deviations widened by sqrt(n / n matched) = sqrt(60 / 54)
    assert (matched.ci_high - matched.ci_low) == pytest.approx(
        math.sqrt(60 / 54) * (raw.ci_high - raw.ci_low), rel=0.05)
    # subsets below the minimum evidence are no control at all, and the report says which is missing
    tiny = _run(table, variants=_length_matched(table, lambda rows: rows["value"], n_samples=30))
    assert verdicts.LENGTH_MATCHED not in set(tiny[1].cells.control)
    assert any("length-matched: no length-matched rows for SVCCA" in m for m in tiny[1].missing)


def test_without_a_length_adaptor_finding_2_is_not_applicable():
    found = _run(metrics_table(metric="svcca", **RISING))
    assert found[2].headline == verdicts.NOT_APPLICABLE and found[2].cells.empty
    assert "no length-reducing stage" in found[2].reason
    adapted = _run(metrics_table(metric="svcca", adapted_value=lambda level: 0.9, **RISING),
                   adapted=True)
    assert adapted[2].headline == HOLDS  # 0.9 after the adaptor vs 0.7 before it
    assert not adapted[2].cells.empty


def test_a_text_only_run_has_no_applicable_finding():
    table = metrics_table(metric="svcca", **RISING)
    text_only = components_table()[lambda c: c.modality == "text"]
    found = _run(table[table.pairing == "text-text"], components=text_only)
    assert {f.headline for f in found.values()} == {verdicts.NOT_APPLICABLE}
    assert all("reads only text" in f.reason for f in found.values())


def test_voice_reference_is_a_cell_of_finding_3_only():
    table = metrics_table(metric="svcca", **RISING)
    voice = table[(table.pairing == "speech-speech") & (table.lang_a == "deu_Latn")
                  & (table.lang_b == "eng_Latn")]
    rng = np.random.default_rng(3)
    extra = pd.concat([voice.assign(lang_b="deu_Latn"),
                       voice.assign(lang_a="eng_Latn", lang_b="eng_Latn")])
    extra = extra.assign(value=0.85, resamples=[  # their own sentence noise
        encode_resamples(0.85 + 0.01 * rng.standard_normal(N_BOOT)) for _ in range(len(extra))])
    found = _run(table, extra)
    cell = _cell(found[3], "SVCCA", verdicts.VOICE)
    assert cell.verdict == HOLDS and cell.effect == pytest.approx(0.85 - 0.45)
    assert verdicts.VOICE not in set(found[1].cells.control)
    assert any("defined for finding 3 only" in m for m in found[1].missing)
    without = _run(table)
    assert any("no speech in a second voice" in m for m in without[3].missing)


def test_headline_rule_on_cells():
    def cells(*verdict_list):
        return pd.DataFrame({"metric": [f"m{i}" for i in range(len(verdict_list))],
                             "control": "raw", "verdict": list(verdict_list)})
    assert verdicts.headline(cells(HOLDS, HOLDS, NOT_ENOUGH_DATA))[0] == HOLDS
    assert verdicts.headline(cells(DOES_NOT_HOLD, NOT_ENOUGH_DATA))[0] == DOES_NOT_HOLD
    verdict, why = verdicts.headline(cells(HOLDS, DOES_NOT_HOLD, NOT_ENOUGH_DATA))
    assert verdict == verdicts.MIXED and "Holds: m0 / raw" in why
    assert "Does not hold: m1 / raw" in why and "Undecided: m2 / raw" in why
    assert verdicts.headline(cells(NOT_ENOUGH_DATA))[0] == NOT_ENOUGH_DATA
    assert verdicts.headline(cells())[0] == NOT_ENOUGH_DATA


def test_format_verdicts_prints_each_table_with_its_interval_scope():
    found = verdicts.evaluate(metrics_table(metric="svcca", **RISING), languages_table(),
                              components_table())
    text = verdicts.format_verdicts(found)
    assert "1. Text-speech similarity rises" in text and ": HOLDS" in text
    assert "2. Length adaptation narrows the modality gap: NOT APPLICABLE" in text
    assert text.count(verdicts.INTERVAL_SCOPE) == 3
    assert "not in this run: linear CKA, debiased CKA, mutual kNN" in text
    assert "SVCCA, raw: Same-sentence text-speech svcca" in text
    other = verdicts.evaluate(metrics_table(metric="svcca", **RISING), languages_table(),
                              components_table(), detail_metric="retrieval")
    assert "'retrieval' has no rows in this run" in verdicts.format_verdicts(other)


def test_rows_without_modality_columns_and_no_components_read_as_text_only():
    """Without a components table and without modality columns nothing says the run has speech:
    every finding is not applicable (before, the fallback compared a missing column and raised)."""
    rows = pd.DataFrame({"metric": ["svcca"], "pairing": ["text-text"], "value": [0.5]})
    reasons = verdicts.not_applicable(rows, None)
    assert sorted(reasons) == [1, 2, 3, 4] and all("only text" in r for r in reasons.values())
