"""precompute halves: disjoint parts of a run's sentences as derived runs measured from its stored
activations; the sentence split itself; derived runs kept out of what needs activations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import replication
from core.metrics import similarity
from core.store import Store
from precompute.cli import main
from precompute.halves import part_run_id, sentence_parts
from precompute.recompute import runs_to_recompute


# ----------------------------------------------------------------------- the split (no store)


@pytest.mark.parametrize("n, parts", [(6, 2), (7, 3), (200, 2), (5, 5)])
def test_sentence_parts_are_disjoint_cover_and_near_equal(n, parts):
    ids = list(range(10, 10 + n))
    split = sentence_parts(ids, parts, seed=3)
    assert len(split) == parts
    flat = [s for part in split for s in part]
    assert sorted(flat) == ids and len(set(flat)) == n  # disjoint, covering
    assert max(map(len, split)) - min(map(len, split)) <= 1
    assert all(part == sorted(part) for part in split)


def test_sentence_parts_follow_the_seed():
    ids = list(range(40))
    assert sentence_parts(ids, 2, seed=0) == sentence_parts(ids, 2, seed=0)
    assert sentence_parts(ids, 2, seed=0) != sentence_parts(ids, 2, seed=1)
    # not the first and last half: a seeded permutation, so order in the corpus does not decide
    assert sentence_parts(ids, 2, seed=0)[0] != ids[:20]


@pytest.mark.parametrize("ids, parts, message", [
    ([1, 2, 3], 1, "at least 2"), ([1], 2, "cannot be cut"), ([1, 1, 2], 2, "repeat")])
def test_sentence_parts_refuse_bad_input(ids, parts, message):
    with pytest.raises(ValueError, match=message):
        sentence_parts(ids, parts, seed=0)


# ----------------------------------------------------------------------------- on a tiny store


@pytest.fixture(scope="module")
def split_store(tiny_store_path, tmp_path_factory) -> tuple[Path, str]:
    """A copy of the tiny store with its run split into halves by the CLI (seed 0)."""
    path = tmp_path_factory.mktemp("halves") / "tiny.duckdb"
    shutil.copyfile(tiny_store_path, path)
    with Store.open(path) as store:
        (parent,) = store.runs().run_id
    assert main(["halves", "--store", str(path), "--run", parent]) == 0
    return path, parent


def test_halves_are_disjoint_derived_runs_covering_the_parent(split_store):
    path, parent = split_store
    with Store.open(path) as store:
        runs = store.runs()
        ids = [part_run_id(parent, i, 2, 0) for i in (1, 2)]
        assert set(ids) <= set(runs.run_id)
        configs = [store.run(rid)["config"] for rid in ids]
        parent_ids = sorted(store.items("text").sentence_id.unique().tolist())
        for rid in ids:
            assert store.run(rid)["status"] == "complete"
            assert store.activations(rid, "text_decoder", 0)[0].empty  # no activations copied
            assert store.projections(rid).empty
    parts = [replication.derivation(c) for c in configs]
    assert [p["part"] for p in parts] == [1, 2] and {p["run_id"] for p in parts} == {parent}
    assert all(p["seed"] == 0 and p["n_parts"] == 2 for p in parts)
    a, b = (set(p["sentence_ids"]) for p in parts)
    assert not a & b and sorted(a | b) == parent_ids
    assert configs[0]["n_sentence_ids"] == len(a) and configs[0]["umap"] is False


def test_halves_keep_only_what_the_verdicts_read(split_store):
    path, parent = split_store
    with Store.open(path) as store:
        part = store.metrics(part_run_id(parent, 1, 2, 0), with_resamples=True)
        variants = store.metric_variants(part_run_id(parent, 1, 2, 0))
    assert set(part.metric) == {"svcca", "linear_cka", "cka_debiased", "mutual_knn"}
    text_speech = part[part.pairing == "text-speech"]
    assert not text_speech.empty and (text_speech.lang_a == text_speech.lang_b).all()
    assert part.resamples.notna().all()  # the bootstrap values the joint intervals need
    assert set(variants.variant) <= {"length_matched"}
    assert set(part.n_samples) == {3}  # 6 sentences in two parts


def _subset(store: Store, run_id: str, component: str, layer: int, lang: str, voice_rank: int,
            sentence_ids: list[int]) -> np.ndarray:
    items, vectors = store.activations(run_id, component, layer, [lang], voice_rank=voice_rank)
    keep = items.sentence_id.isin(sentence_ids).to_numpy()
    order = np.argsort(items.sentence_id.to_numpy()[keep], kind="stable")
    return vectors[keep][order].astype(np.float64)


def test_part_metrics_equal_a_direct_computation_on_its_sentences(split_store):
    """Every SVCCA and linear CKA row of a part equals the reference metric on the parent's
    stored vectors of the part's sentences only."""
    path, parent = split_store
    rid = part_run_id(parent, 2, 2, 0)
    with Store.open(path) as store:
        sentences = replication.derivation(store.run(rid)["config"])["sentence_ids"]
        rows = store.metrics(rid)
        rows = rows[rows.metric.isin(["svcca", "linear_cka"])]
        voice_langs = set(rows[(rows.pairing == "speech-speech")
                               & (rows.lang_a == rows.lang_b)].lang_a)
        checked = 0
        for row in rows.itertuples():
            voice_b = int(row.pairing == "speech-speech" and row.lang_a == row.lang_b)
            x = _subset(store, parent, row.component_a, row.layer_a, row.lang_a, 0, sentences)
            y = _subset(store, parent, row.component_b, row.layer_b, row.lang_b, voice_b, sentences)
            params = json.loads(row.params) if row.params else {}
            expected = similarity.compute_metric(row.metric, x, y,
                                                 **({"k": params["k"]} if "k" in params else {}))
            assert row.value == pytest.approx(expected, abs=1e-6), row
            checked += 1
    assert checked == len(rows) > 0 and voice_langs  # the voice pairs were checked too


def test_halves_again_changes_nothing_and_says_so(split_store, capsys):
    path, parent = split_store
    before = path.stat().st_mtime_ns
    assert main(["halves", "--store", str(path), "--run", parent]) == 0
    assert capsys.readouterr().out.count("kept as it is") == 2
    assert path.stat().st_mtime_ns == before  # nothing copied or published


def test_derived_runs_are_refused_where_activations_are_needed(split_store, capsys):
    path, parent = split_store
    part = part_run_id(parent, 1, 2, 0)
    with Store.open(path) as store:
        assert runs_to_recompute(store, None) == [parent]  # the default leaves parts out
    assert main(["metrics", "--store", str(path), "--run", part]) != 0
    assert "holds no activations of its own" in capsys.readouterr().err
    assert main(["halves", "--store", str(path), "--run", part]) != 0
    assert "split that run" in capsys.readouterr().err


def test_parts_measured_in_worker_processes_equal_those_measured_here(tiny_store_path,
                                                                       tmp_path_factory):
    """``--workers 2``: each process reads the parent's activations from the store; the parts'
    metric and length-matched rows are the ones measured in one process."""
    folder = tmp_path_factory.mktemp("halves_workers")
    stores = {workers: shutil.copyfile(tiny_store_path, folder / f"w{workers}.duckdb")
              for workers in (1, 2)}
    with Store.open(stores[1]) as store:
        (parent,) = store.runs().run_id
    for workers, path in stores.items():
        assert main(["halves", "--store", str(path), "--run", parent, "--seed", "7",
                     "--workers", str(workers)]) == 0
    columns = ["pairing", "lang_a", "lang_b", "layer_a", "metric", "value", "baseline_mean",
               "ci_low", "ci_high", "value_residualised"]
    with Store.open(stores[2]) as a, Store.open(stores[1]) as b:
        for part in (part_run_id(parent, i, 2, 7) for i in (1, 2)):
            rows_a, rows_b = (s.metrics(part)[columns].sort_values(columns[:5])
                              .reset_index(drop=True) for s in (a, b))
            assert len(rows_a) > 0
            pd.testing.assert_frame_equal(rows_a, rows_b)
            assert len(a.metric_variants(part)) == len(b.metric_variants(part))  # none here: too
            # few sentences to length-match (the bundled store's halves have them)
            assert a.run(part)["config"]["derived_from"]["sentence_ids"] == \
                b.run(part)["config"]["derived_from"]["sentence_ids"]


def test_report_prints_the_replication_of_the_halves(split_store, capsys):
    path, parent = split_store
    assert main(["report", "--store", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"== {parent} ==" in out
    assert f"== {part_run_id(parent, 1, 2, 0)} ==" not in out  # parts only in the tables
    assert "-- replication: whisper-tiny-random: 2 disjoint parts" in out
    assert "(A) part 1 of 2 (seed 0, 3 sentences)" in out
    assert "sentence resampling within this corpus" in out
    for title in ("1. Text-speech similarity rises", "3. Speech is less similar"):
        assert title in out


# ------------------------------------------------------------------ the Replication page (AppTest)

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"


def test_replication_page_shows_the_halves_side_by_side(split_store, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from dashboard import state

    path, parent = split_store
    monkeypatch.setenv(state.STORE_ENV, str(path))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    # pages that pick one run never offer a part (no activations, maps or other metrics)
    options = at.sidebar.selectbox(key="run_id").options
    assert len(options) == 1 and options[0].endswith(parent)
    at.switch_page("views/replication.py").run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    assert at.selectbox(key="replication_group").value.startswith("whisper-tiny-random: 2 disjoint")
    assert [s.value for s in at.subheader] == [f"{i}. {t}" for i, t in
                                               replication.findings.TITLES.items()]
    badges = [m.value for m in at.markdown if "-badge[" in m.value]
    assert sum(b.startswith(":gray-badge[corpora: not applicable]") for b in badges) == 1  # finding 2
    assert sum("(A) part 1 of 2 (seed 0, 3 sentences):" in b for b in badges) == 4
    tables = [d.value for d in at.dataframe if "agreement" in d.value.columns]
    assert len(tables) == 3  # findings 1, 3 and 4
    for table in tables:
        assert {"part 1 of 2 (seed 0, 3 sentences) effect",
                "part 2 of 2 (seed 0, 3 sentences) low"} <= set(table.columns)
    figures = at.get("plotly_chart")
    assert len(figures) == 3
    spec = json.loads(figures[0].proto.spec)
    assert {trace["name"] for trace in spec["data"]} == {"(A) part 1 of 2 (seed 0, 3 sentences)",
                                                         "(B) part 2 of 2 (seed 0, 3 sentences)"}
    assert "sentence resampling within this corpus" in spec["layout"]["xaxis"]["title"]["text"]
    captions = " ".join(c.value for c in at.caption)
    assert "Languages compared (3): eng_Latn, ita_Latn, swh_Latn" in captions
    assert "Speech here is synthetic" in captions  # said beside the verdicts



def test_a_model_name_in_the_python_api_means_the_run_not_its_parts(split_store):
    """After ``halves`` three runs share the model; the API's model name still names the parent
    (the docs' example reads ``lens.metrics("whisper-base", ...)`` on the bundled store)."""
    from core.api import open_lens

    path, parent = split_store
    with Store.open(path) as store:
        runs = store.runs()
    model = runs.set_index("run_id").model[parent]
    assert (runs.model == model).sum() == 3
    with open_lens(path) as lens:
        assert lens.run(model)["run_id"] == parent
