"""The Layer x layer page under AppTest: a run's own matrix with calibrated best matches, a matrix
between two runs, the difference of two matrices (with intervals where the resamples are shared, a
note where they are not or shapes differ), and a store without matrices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from apptest_support import APP, assert_clean, chart_specs, open_page
from matrix_fixtures import write_matrix_store
from synthetic_store import RUN_ID, TEXT_RUN_ID, write_synthetic_store

PAGE = "views/layer_matrix.py"


@pytest.fixture(scope="module")
def matrix_store_path(tmp_path_factory) -> Path:
    return write_matrix_store(tmp_path_factory.mktemp("layer_matrix") / "store.duckdb")


def _open(path: Path, monkeypatch) -> AppTest:
    return open_page(path, PAGE, monkeypatch)


def test_matrix_of_a_run_marks_best_matches(matrix_store_path, monkeypatch):
    at = _open(matrix_store_path, monkeypatch)
    assert_clean(at)
    assert at.sidebar.selectbox(key="lm_a_runs").value == (RUN_ID, RUN_ID)
    assert at.sidebar.selectbox(key="lm_a_components").value == (
        "text_decoder", "speech_encoder", "text-speech")
    assert at.sidebar.selectbox(key="lm_a_langs").value == ("mean", "mean")
    (figure,) = chart_specs(at)
    heatmap, *marks = figure["data"]
    assert np.array(heatmap["z"], dtype=float).shape == (5, 5)
    assert "shuffled baseline" in heatmap["hovertext"][0][0] and "95% CI" in heatmap["hovertext"][0][0]
    # one mark per row, split into calibrated-significant stars and open circles
    assert sum(len(mark["x"]) for mark in marks) == 5
    assert {mark["marker"]["symbol"] for mark in marks} == {"star", "circle-open"}
    table = at.dataframe[0].value
    assert len(table) == 5 and set(table["match"]) <= {"significant", "not significant"}
    # the planted correspondence (text layer i ~ speech layer i at shallow depths) is found
    assert table["best match"].iloc[0] == table["layer"].iloc[0]
    # text-speech of synthesised speech: the page says so under the matrix
    assert any("Speech here is synthetic" in c.value for c in at.caption)

    at.sidebar.radio(key="lm_along").set_value("column").run()
    assert_clean(at)
    assert len(at.dataframe[0].value) == 5


def test_matrix_between_two_runs_and_one_language(matrix_store_path, monkeypatch):
    at = _open(matrix_store_path, monkeypatch)
    at.sidebar.selectbox(key="lm_a_runs").set_value((RUN_ID, TEXT_RUN_ID)).run()
    assert_clean(at)
    assert at.sidebar.selectbox(key="lm_a_components").value[2] == "speech-text"
    at.sidebar.selectbox(key="lm_a_langs").set_value(("deu_Latn", "deu_Latn")).run()
    assert_clean(at)
    (figure,) = chart_specs(at)
    assert np.array(figure["data"][0]["z"], dtype=float).shape == (5, 7)
    assert "German" in figure["layout"]["xaxis"]["title"]["text"] + \
        figure["layout"]["yaxis"]["title"]["text"]


def test_difference_of_two_matrices_with_intervals_and_notes(matrix_store_path, monkeypatch):
    at = _open(matrix_store_path, monkeypatch)
    at.sidebar.radio(key="lm_mode").set_value("Difference A − B").run()
    assert_clean(at)
    # default B: another component pair of A's shape, in A's language: text-speech - text-text
    assert at.sidebar.selectbox(key="lm_b_components").value == (
        "text_decoder", "text_decoder", "text-text")
    assert at.sidebar.selectbox(key="lm_b_langs").value == ("mean", "mean")
    (figure,) = chart_specs(at)
    heatmap = figure["data"][0]
    assert heatmap["colorscale"] and heatmap["zmid"] == 0
    assert heatmap["zmin"] == -heatmap["zmax"]
    assert "95% interval" in heatmap["hovertext"][0][0]
    assert any("same sentence resamples" in c.value for c in at.caption)

    # the mean minus one language of the same matrix: same shape, shared resamples
    at.sidebar.selectbox(key="lm_b_components").set_value(
        ("text_decoder", "speech_encoder", "text-speech")).run()
    at.sidebar.selectbox(key="lm_b_langs").set_value(("deu_Latn", "deu_Latn")).run()
    assert_clean(at)
    assert len(chart_specs(at)) == 1 and "German" in chart_specs(at)[0]["layout"]["title"]["text"]

    # B between runs (5 x 7) cannot be subtracted from A (5 x 5): a note, no chart
    at.sidebar.selectbox(key="lm_b_runs").set_value((RUN_ID, TEXT_RUN_ID)).run()
    assert_clean(at)
    assert not chart_specs(at) and any("same shape" in i.value for i in at.info)

    # A and B both between runs, on different seeds would have no interval: here they share them
    at.sidebar.selectbox(key="lm_a_runs").set_value((RUN_ID, TEXT_RUN_ID)).run()
    assert_clean(at)
    assert len(chart_specs(at)) == 1


def test_difference_without_shared_resamples_says_so(tmp_path, monkeypatch):
    from core.store import Store
    from matrix_fixtures import matrix_tables

    path = write_synthetic_store(tmp_path / "store.duckdb")
    with Store.open(path, read_only=False) as store:
        rows = matrix_tables()[(RUN_ID, RUN_ID)]
        rows.loc[rows.lang_a != "mean", "resamples"] = None  # --mean-resamples-only
        store.replace_layer_matrices(RUN_ID, RUN_ID, rows)
    at = _open(path, monkeypatch)
    at.sidebar.radio(key="lm_mode").set_value("Difference A − B").run()
    at.sidebar.selectbox(key="lm_b_components").set_value(
        ("text_decoder", "speech_encoder", "text-speech")).run()
    at.sidebar.selectbox(key="lm_b_langs").set_value(("deu_Latn", "deu_Latn")).run()
    assert_clean(at)
    assert any("No interval" in i.value for i in at.info)
    (figure,) = chart_specs(at)
    assert "no interval" in figure["data"][0]["hovertext"][0][0]


def test_store_without_matrices_says_how_to_compute_them(tmp_path, monkeypatch):
    at = _open(write_synthetic_store(tmp_path / "store.duckdb"), monkeypatch)
    assert_clean(at)
    assert any("precompute matrices" in i.value for i in at.info)


def test_a_copied_link_reopens_the_matrix_and_a_bad_one_falls_back(matrix_store_path, monkeypatch):
    """The page's choices travel in the URL (issue 22): a fresh session given the link shows the
    same matrix; a parameter naming nothing in the store falls back with a note, not an error.
    The best-match table downloads as CSV and Parquet."""
    at = _open(matrix_store_path, monkeypatch)
    at.sidebar.selectbox(key="lm_a_runs").set_value((RUN_ID, TEXT_RUN_ID)).run()
    at.sidebar.selectbox(key="lm_a_langs").set_value(("deu_Latn", "deu_Latn")).run()
    at.sidebar.radio(key="lm_along").set_value("column").run()
    assert_clean(at)
    link = dict(at.query_params)
    assert link["lm_along"] == "column" and "deu_Latn" in link["lm_a_langs"]
    assert {b.label for b in at.get("download_button")} >= {"CSV", "Parquet"}

    fresh = AppTest.from_file(str(APP), default_timeout=60)
    fresh.run()
    fresh.switch_page(PAGE)
    fresh.query_params.update(link)
    fresh.run()
    assert_clean(fresh)
    assert fresh.sidebar.selectbox(key="lm_a_runs").value == (RUN_ID, TEXT_RUN_ID)
    assert fresh.sidebar.selectbox(key="lm_a_langs").value == ("deu_Latn", "deu_Latn")
    assert fresh.sidebar.radio(key="lm_along").value == "column"

    bad = AppTest.from_file(str(APP), default_timeout=60)
    bad.run()
    bad.switch_page(PAGE)
    bad.query_params.update({"lm_a_runs": "nope~nope", "lm_metric": "<script>"})
    bad.run()
    assert_clean(bad)
    assert bad.sidebar.selectbox(key="lm_a_runs").value == (RUN_ID, RUN_ID)
    assert "lm_a_runs" in " ".join(t.value for t in bad.toast)
