"""core.replication: which runs are put side by side (matched by model, languages intersected, one
run per corpus, a run's parts), how their verdicts line up, and when corpora agree."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from core import findings, replication
from core.metrics.joint import DOES_NOT_HOLD, HOLDS, NOT_ENOUGH_DATA
from core.replication import (AGREE, CORPORA, DISAGREE, MISSING, NO_EFFECT, OPPOSITE_SIGNS, PARTS,
                              SAME_SIGN, UNDECIDED, RunInfo)
from core.verdicts import NOT_APPLICABLE, TABLE_COLUMNS, FindingVerdict

LANGS = ("eng_Latn", "deu_Latn", "fra_Latn")


def _run(run_id: str, model: str = "m", langs=LANGS, corpus: str = "bundled", *, part=None,
         parent: str = "p", n_parts: int = 2, seed: int = 0, speech: bool = True,
         complete: bool = True, **config) -> RunInfo:
    config = {"corpus": corpus, "corpus_name": corpus.rsplit("/", 1)[-1],
              "corpus_source": f"source of {corpus}", "n_sentence_ids": 10, **config}
    if part is not None:
        config[replication.DERIVED_KEY] = {"run_id": parent, "part": part, "n_parts": n_parts,
                                           "seed": seed, "sentence_ids": [part]}
    return RunInfo(run_id, model, tuple(langs), config, speech, complete)


# ------------------------------------------------------------------------------------ pairing


def test_parts_of_a_run_form_one_group_in_part_order_and_the_parent_is_not_in_it():
    runs = [_run("p"), _run("p-2", part=2), _run("p-1", part=1), _run("q", model="other")]
    groups = replication.replication_groups(runs)
    assert len(groups) == 1
    (group,) = groups
    assert group.kind == PARTS and group.parent == "p" and group.run_ids == ("p-1", "p-2")
    assert group.labels == ("part 1 of 2 (seed 0, 10 sentences)",
                            "part 2 of 2 (seed 0, 10 sentences)")
    assert group.shared_langs == LANGS and not group.problem
    why = replication.unreplicated(runs, groups)
    assert set(why) == {"q"} and "halves --run q" in why["q"]  # the parent is accounted for


def test_runs_are_matched_by_model_and_languages_intersected_in_the_first_runs_order():
    runs = [_run("a", langs=("fra_Latn", "eng_Latn", "hin_Deva")),
            _run("b", corpus="/data/flores200/dev", langs=("eng_Latn", "arb_Arab", "fra_Latn")),
            _run("c", model="other", corpus="/data/flores200/dev")]
    (group,) = replication.replication_groups(runs)
    assert group.kind == CORPORA and group.model == "m" and group.run_ids == ("a", "b")
    assert group.shared_langs == ("fra_Latn", "eng_Latn")
    assert group.labels == ("bundled, 10 sentences", "flores200/dev, 10 sentences")


def test_no_shared_language_is_a_group_that_says_why_it_cannot_be_compared():
    runs = [_run("a", langs=("eng_Latn",)), _run("b", corpus="/x/y", langs=("jpn_Jpan",))]
    (group,) = replication.replication_groups(runs)
    assert group.shared_langs == ()
    assert group.problem.startswith("No language in common")
    assert "eng_Latn" in group.problem and "jpn_Jpan" in group.problem
    text = replication.format_replication(group, None)
    assert "Not compared: No language in common" in text


def test_one_run_per_corpus_other_settings_on_the_same_corpus_are_not_a_replication():
    runs = [_run("old"), _run("new", pooling="last")]
    assert replication.replication_groups(runs) == []
    runs.append(_run("flores", corpus="/x/flores"))
    (group,) = replication.replication_groups(runs)
    assert group.run_ids == ("new", "flores")  # the newest run of each corpus
    assert "newer run" in replication.unreplicated(runs, [group])["old"]


def test_text_only_and_incomplete_runs():
    text_only = [_run("a", speech=False), _run("b", corpus="/x/y", speech=False)]
    (group,) = replication.replication_groups(text_only)
    assert "reads only text" in group.problem
    assert replication.replication_groups([_run("a"), _run("b", corpus="/x/y",
                                                            complete=False)]) == []
    no_activations = _run("e5", speech=False, store_activations=False)
    why = replication.unreplicated([no_activations], [])["e5"]
    assert "reads only text" in why and "--no-store-activations" in why
    speech_without = _run("w", store_activations=False)
    assert "--no-store-activations" in replication.unreplicated([speech_without], [])["w"]


def test_derived_marker_and_labels():
    assert replication.is_derived('{"derived_from": {"run_id": "p"}}')
    assert not replication.is_derived('{"corpus": "bundled"}') and not replication.is_derived(None)
    assert replication.corpus_label({"corpus": "bundled", "corpus_name": "bundled"}) == "bundled"


def test_on_langs_keeps_rows_whose_two_languages_are_shared():
    rows = pd.DataFrame({"lang_a": ["eng_Latn", "eng_Latn", "hin_Deva"],
                         "lang_b": ["deu_Latn", "hin_Deva", "hin_Deva"], "value": [1.0, 2.0, 3.0]})
    kept = replication.on_langs(rows, ["eng_Latn", "deu_Latn"])
    assert kept["value"].tolist() == [1.0]
    assert replication.on_langs(rows.iloc[0:0], ["eng_Latn"]).empty


# --------------------------------------------------------------------------------- agreement


@pytest.mark.parametrize("verdicts, effects, expected", [
    ([HOLDS, HOLDS], [0.1, 0.2], AGREE),
    ([DOES_NOT_HOLD, DOES_NOT_HOLD], [-0.1, -0.3], AGREE),
    ([HOLDS, DOES_NOT_HOLD], [0.1, -0.1], DISAGREE),
    ([HOLDS, NOT_ENOUGH_DATA, DOES_NOT_HOLD], [0.1, 0.0, -0.1], DISAGREE),
    ([HOLDS, NOT_ENOUGH_DATA], [0.1, 0.02], SAME_SIGN),
    ([NOT_ENOUGH_DATA, NOT_ENOUGH_DATA], [-0.1, -0.02], SAME_SIGN),
    ([HOLDS, NOT_ENOUGH_DATA], [0.1, -0.02], OPPOSITE_SIGNS),
    ([NOT_ENOUGH_DATA, NOT_ENOUGH_DATA], [0.0, 0.0], OPPOSITE_SIGNS),
    ([NOT_ENOUGH_DATA, NOT_ENOUGH_DATA], [math.nan, 0.1], NO_EFFECT),
    ([HOLDS], [0.1], MISSING),
])
def test_cell_agreement(verdicts, effects, expected):
    assert replication.cell_agreement(verdicts, effects, n_corpora=len(verdicts) + (
        expected == MISSING)) == expected


def _cells(*rows) -> pd.DataFrame:
    return pd.DataFrame([{"metric": m, "control": c, "effect": e, "ci_low": e - 0.05,
                          "ci_high": e + 0.05, "verdict": v, "note": ""} for m, c, e, v in rows],
                        columns=TABLE_COLUMNS)


def _verdicts(by_finding: dict[int, tuple[str, pd.DataFrame]]) -> list[FindingVerdict]:
    out = []
    for i, title in findings.TITLES.items():
        headline, cells = by_finding.get(i, (NOT_ENOUGH_DATA, _cells()))
        out.append(FindingVerdict(i, title, headline, "", cells))
    return out


def test_compare_lines_up_cells_and_says_per_finding_whether_the_corpora_agree():
    a = _verdicts({1: (DOES_NOT_HOLD, _cells(("SVCCA", "raw", -0.1, DOES_NOT_HOLD),
                                             ("linear CKA", "raw", -0.2, DOES_NOT_HOLD))),
                   2: (NOT_APPLICABLE, _cells()),
                   3: (HOLDS, _cells(("SVCCA", "raw", 0.1, HOLDS))),
                   4: (NOT_ENOUGH_DATA, _cells(("SVCCA", "raw", 0.01, NOT_ENOUGH_DATA)))})
    b = _verdicts({1: (DOES_NOT_HOLD, _cells(("linear CKA", "raw", -0.1, DOES_NOT_HOLD),
                                             ("SVCCA", "raw", -0.03, NOT_ENOUGH_DATA))),
                   2: (NOT_APPLICABLE, _cells()),
                   3: (DOES_NOT_HOLD, _cells(("SVCCA", "raw", -0.1, DOES_NOT_HOLD))),
                   4: (NOT_ENOUGH_DATA, _cells(("SVCCA", "raw", -0.01, NOT_ENOUGH_DATA)))})
    labels = {"ra": "part 1", "rb": "part 2"}
    compared = {f.id: f for f in replication.compare({"ra": a, "rb": b}, labels)}
    one = compared[1]
    assert one.agreement == AGREE and one.headlines == {"part 1": DOES_NOT_HOLD,
                                                        "part 2": DOES_NOT_HOLD}
    wide = one.wide.set_index(["metric", "control"])
    assert wide.loc[("SVCCA", "raw"), "part 1 effect"] == -0.1  # matched by cell, not by row order
    assert wide.loc[("SVCCA", "raw"), "part 2 effect"] == -0.03
    assert wide.loc[("SVCCA", "raw"), "agreement"] == SAME_SIGN
    assert wide.loc[("linear CKA", "raw"), "agreement"] == AGREE
    assert one.cell_counts == {AGREE: 1, SAME_SIGN: 1}
    assert len(one.long) == 4 and set(one.long["corpus"]) == {"part 1", "part 2"}
    assert compared[2].agreement == NOT_APPLICABLE and compared[2].wide.empty
    assert compared[3].agreement == DISAGREE and "part 1: holds" in compared[3].reason
    assert compared[4].agreement == UNDECIDED


def test_a_cell_only_one_corpus_has_is_missing():
    a = _verdicts({3: (HOLDS, _cells(("SVCCA", "raw", 0.1, HOLDS),
                                     ("SVCCA", "voice reference", 0.2, HOLDS)))})
    b = _verdicts({3: (HOLDS, _cells(("SVCCA", "raw", 0.2, HOLDS)))})
    (three,) = [f for f in replication.compare({"a": a, "b": b}, {"a": "A", "b": "B"}) if f.id == 3]
    wide = three.wide.set_index("control")
    assert wide.loc["voice reference", "agreement"] == MISSING
    assert wide.loc["voice reference", "B verdict"] == MISSING
    assert math.isnan(wide.loc["voice reference", "B effect"])
    assert three.agreement == AGREE  # the headlines agree; the tally says one cell is missing
    assert "1 missing" in three.reason


def test_format_replication_prints_each_corpus_interval_and_the_scope():
    runs = [_run("p-1", part=1), _run("p-2", part=2)]
    (group,) = replication.replication_groups(runs)
    a = _verdicts({1: (DOES_NOT_HOLD, _cells(("SVCCA", "raw", -0.1, DOES_NOT_HOLD)))})
    b = _verdicts({1: (DOES_NOT_HOLD, _cells(("SVCCA", "raw", -0.2, DOES_NOT_HOLD)))})
    text = replication.format_replication(group, replication.compare(
        {"p-1": a, "p-2": b}, dict(zip(group.run_ids, group.labels))))
    assert "(A) part 1 of 2 (seed 0, 10 sentences): p-1" in text
    assert "-0.100 [-0.150, -0.050]" in text and "-0.200 [-0.250, -0.150]" in text
    assert "corpora AGREE" in text and "Languages compared (3)" in text
    assert "sentence resampling within this corpus" in text
