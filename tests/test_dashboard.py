"""The Streamlit app under streamlit.testing.v1.AppTest, on the synthetic store (and the tiny real one).

AppTest runs the entry point (st.navigation) in-process; ``switch_page`` + ``run`` opens a page.
The store path reaches the app through $CROSSMODAL_LENS_STORE, as it would for a user.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import state
from synthetic_store import LAYER_NAMES, METRICS, RUN_ID, write_synthetic_store

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
PAGES = {"views/overview.py": 1, "views/heatmap.py": 1, "views/layer_curves.py": 2,
         "views/projection.py": 1, "views/findings.py": 1}
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def synthetic_store_path(tmp_path_factory) -> Path:
    return write_synthetic_store(tmp_path_factory.mktemp("dashboard") / "store.duckdb")


@pytest.fixture
def app(synthetic_store_path, monkeypatch) -> AppTest:
    monkeypatch.setenv(state.STORE_ENV, str(synthetic_store_path))
    return AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)


def _figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _open(at: AppTest, page: str) -> AppTest:
    at.run()
    return at.switch_page(page).run()


def _assert_clean(at: AppTest, where: str) -> None:
    assert not at.exception, f"{where}: {[e.value for e in at.exception]}"
    assert not at.error, f"{where}: {[e.value for e in at.error]}"


# ----------------------------------------------------------------------------------- the pages

@pytest.mark.parametrize("page, n_charts", PAGES.items())
def test_page_renders_with_its_charts(app, page, n_charts):
    at = _open(app, page)
    _assert_clean(at, page)
    figures = _figures(at)
    assert len(figures) >= n_charts
    for figure in figures:
        assert figure["data"], f"{page}: an empty chart"
    assert at.sidebar.selectbox(key="run_id").value == RUN_ID


def test_overview_lists_languages_runs_and_cer(app):
    at = _open(app, "views/overview.py")
    assert at.title[0].value == "Crossmodal Lens"
    values = {m.label: m.value for m in at.metric}
    assert values["Languages"] == "6" and values["Speech items"] == "48"
    tables = [d.value for d in at.dataframe]
    runs = next(t for t in tables if "run_id" in t.columns)
    assert list(runs["run_id"]) == [RUN_ID]
    languages = next(t for t in tables if "mean CER (speech)" in t.columns)
    assert list(languages["resource level"]) == ["high"] * 3 + ["medium"] + ["low"] * 2
    assert "CER" in _figures(at)[0]["layout"]["title"]["text"]


def test_heatmap_widgets_and_changing_pairing_and_layer(app):
    at = _open(app, "views/heatmap.py")
    sidebar = at.sidebar
    assert sidebar.selectbox(key="metric").options == sorted(METRICS)
    assert sidebar.radio(key="pairing").value == "text-speech"
    assert sidebar.select_slider(key="layer").value == len(LAYER_NAMES) - 1
    assert sidebar.multiselect(key="langs").value[0] == "eng_Latn"
    title = _figures(at)[0]["layout"]["title"]["text"]
    assert "text-speech" in title and LAYER_NAMES[-1] in title

    sidebar.radio(key="pairing").set_value("speech-speech")
    sidebar.select_slider(key="layer").set_value(0)
    at.run()
    _assert_clean(at, "heatmap after change")
    figure = _figures(at)[0]
    assert "speech-speech" in figure["layout"]["title"]["text"]
    assert LAYER_NAMES[0] in figure["layout"]["title"]["text"]
    assert figure["layout"]["xaxis"]["title"]["text"].startswith("speech language")
    assert figure["layout"]["yaxis"]["title"]["text"].startswith("speech language")
    baseline_table = at.dataframe[0].value
    assert list(baseline_table["pairing"]) == ["speech-speech"]


def test_heatmap_language_filter_and_view(app):
    at = _open(app, "views/heatmap.py")
    at.sidebar.multiselect(key="langs").set_value(["eng_Latn", "yor_Latn", "hin_Deva"])
    at.sidebar.radio(key="view").set_value("minus_baseline")
    at.run()
    _assert_clean(at, "heatmap filtered")
    heat = _figures(at)[0]["data"][0]
    assert len(heat["z"]) == 3 and heat["zmid"] == 0
    assert [t.split(">")[1].split("<")[0] for t in _figures(at)[0]["layout"]["yaxis"]["ticktext"]] \
        == ["English", "Hindi", "Yoruba"]


def test_sidebar_choices_survive_a_page_switch(app):
    at = _open(app, "views/heatmap.py")
    at.sidebar.selectbox(key="metric").set_value("linear_cka").run()
    at.switch_page("views/layer_curves.py").run()
    _assert_clean(at, "layer curves")
    assert at.sidebar.selectbox(key="metric").value == "linear_cka"
    assert "linear_cka" in _figures(at)[0]["layout"]["title"]["text"]


def test_layer_curves_toggles(app):
    at = _open(app, "views/layer_curves.py")
    bands = sum(1 for t in _figures(at)[1]["data"] if t.get("fill") == "toself")
    at.toggle(key="show_ci").set_value(False)
    at.radio(key="x_axis").set_value("depth")
    at.run()
    _assert_clean(at, "layer curves toggled")
    figure = _figures(at)[1]
    assert sum(1 for t in figure["data"] if t.get("fill") == "toself") < bands
    assert "relative depth" in figure["layout"]["xaxis"]["title"]["text"]
    assert not any(t.get("error_y", {}).get("array") for t in _figures(at)[0]["data"])
    at.sidebar.radio(key="view").set_value("residualised").run()
    _assert_clean(at, "layer curves residualised")
    assert "length-residualised" in _figures(at)[0]["layout"]["yaxis"]["title"]["text"]


def test_projection_colouring_and_sentence_link(app):
    at = _open(app, "views/projection.py")
    assert at.selectbox(key="projection_component").value == "text_decoder + speech_encoder"
    at.radio(key="projection_colour").set_value("modality")
    at.selectbox(key="sentence").set_value(2)
    at.run()
    _assert_clean(at, "projection")
    names = [t.get("name", "") for t in _figures(at)[0]["data"]]
    assert "text" in names and "speech" in names
    assert any(name.startswith("sentence 2") for name in names)


def test_findings_page_shows_four_findings_with_verdicts(app):
    at = _open(app, "views/findings.py")
    _assert_clean(at, "findings")
    assert [s.value.split(".")[0] for s in at.subheader] == ["1", "2", "3", "4"]
    badges = [m.value for m in at.markdown if "-badge[" in m.value]
    assert len(badges) == 4
    # the synthetic numbers rise with depth (finding 1); Whisper-like run: no length adaptor (2)
    assert badges[0].startswith(":green-badge[holds")
    assert badges[1].startswith(":gray-badge[not enough data")
    assert len(at.get("plotly_chart")) == 3


# ---------------------------------------------------------------------------- the store itself

def test_missing_store_shows_how_to_build_one(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere.duckdb"
    monkeypatch.setenv(state.STORE_ENV, str(missing))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    assert not at.exception
    message = at.error[0].value
    assert "No store found" in message and str(missing) in message
    assert "python -m precompute build" in message
    assert not at.get("plotly_chart")


@pytest.mark.parametrize("content", [b"this is not a database", None])
def test_incompatible_store_shows_rebuild_command(tmp_path, monkeypatch, content):
    path = tmp_path / "old.duckdb"
    if content is None:  # a DuckDB file without the store's schema
        import duckdb

        duckdb.connect(str(path)).execute("CREATE TABLE t (x INTEGER)").close()
    else:
        path.write_bytes(content)
    monkeypatch.setenv(state.STORE_ENV, str(path))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    assert not at.exception
    message = at.error[0].value
    assert "cannot be used" in message and "python -m precompute build" in message


def test_a_republished_store_is_picked_up(tmp_path, monkeypatch):
    path = write_synthetic_store(tmp_path / "store.duckdb")
    monkeypatch.setenv(state.STORE_ENV, str(path))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    assert at.sidebar.selectbox(key="run_id").options == [f"synthetic-whisper · {RUN_ID}"]

    from core.store import Store, publish_atomically

    replacement = write_synthetic_store(tmp_path / "next.duckdb")
    with Store.open(replacement, read_only=False) as store:
        store.add_run("second-run", "another-model", {}, {})
        store.finish_run("second-run")
    time.sleep(0.01)
    publish_atomically(replacement, path)
    at.run()
    _assert_clean(at, "after republish")
    assert len(at.sidebar.selectbox(key="run_id").options) == 2


# ------------------------------------------------------------------------------- path resolution

def test_store_path_from_script_argument_env_or_default(tmp_path):
    app_argv = [str(state.APP_PATH), str(tmp_path / "cli.duckdb")]
    env = {state.STORE_ENV: str(tmp_path / "env.duckdb")}
    assert state.resolve_store_path(app_argv, env) == tmp_path / "cli.duckdb"
    assert state.resolve_store_path([str(state.APP_PATH), "--store", "x.duckdb"], {}) == \
        Path("x.duckdb").resolve()
    # pytest's own argv (AppTest runs in-process) must not be mistaken for a store path
    assert state.resolve_store_path(["pytest", "tests/test_dashboard.py"], env) == \
        tmp_path / "env.duckdb"
    assert state.resolve_store_path([str(state.APP_PATH)], {}) == \
        state.REPO_ROOT / "data" / "crossmodal_lens.duckdb"
    assert state.DEFAULT_STORE.is_absolute() and os.path.isabs(state.resolve_store_path([], {}))


# ------------------------------------------------------------------------- the tiny real store

def test_every_page_on_the_tiny_real_store(request, monkeypatch):
    try:
        tiny = request.getfixturevalue("tiny_store_path")
    except pytest.FixtureLookupError:
        pytest.skip("tests/conftest.py provides no tiny_store_path fixture")
    monkeypatch.setenv(state.STORE_ENV, str(tiny))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    _assert_clean(at, "overview (tiny store)")
    for page in list(PAGES)[1:]:
        at.switch_page(page).run()
        _assert_clean(at, f"{page} (tiny store)")
        assert at.get("plotly_chart") or at.info, f"{page}: nothing drawn on the tiny store"
