"""The Streamlit app under streamlit.testing.v1.AppTest, on the synthetic store (and the tiny real one).

AppTest runs the entry point (st.navigation) in-process; ``switch_page`` + ``run`` opens a page.
The store path reaches the app through $CROSSMODAL_LENS_STORE, as it would for a user.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from apptest_support import APP, chart_specs
from core.metrics import descriptions
from core.metrics.similarity import INVARIANCES
from dashboard import state
from dashboard.charts.common import RESIDUALISED_NOTE
from synthetic_store import (
    ALL_METRICS, E5_QUANTISATION, LAYER_NAMES, MODELS, RUN_ID, RUN_IDS, SHARED_RUN_ID, TEXT_RUN_ID,
    write_synthetic_store,
)

PAGES = {"views/overview.py": 1, "views/heatmap.py": 1, "views/layer_curves.py": 2,
         "views/compare.py": 1, "views/projection.py": 1, "views/findings.py": 1}
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def synthetic_store_path(tmp_path_factory) -> Path:
    return write_synthetic_store(tmp_path_factory.mktemp("dashboard") / "store.duckdb")


@pytest.fixture
def app(synthetic_store_path, monkeypatch) -> AppTest:
    monkeypatch.setenv(state.STORE_ENV, str(synthetic_store_path))
    return AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)


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
    figures = chart_specs(at)
    assert len(figures) >= n_charts
    for figure in figures:
        assert figure["data"], f"{page}: an empty chart"
    if page != "views/compare.py":  # the compare page picks its runs itself
        assert at.sidebar.selectbox(key="run_id").value == RUN_ID


def test_overview_lists_languages_runs_and_cer(app):
    at = _open(app, "views/overview.py")
    assert at.title[0].value == "Crossmodal Lens"
    values = {m.label: m.value for m in at.metric}
    assert values["Languages"] == "6" and values["Speech items"] == "48"
    tables = [d.value for d in at.dataframe]
    runs = next(t for t in tables if "run_id" in t.columns)
    assert list(runs["run_id"]) == list(RUN_IDS)
    languages = next(t for t in tables if "mean CER (speech)" in t.columns)
    assert list(languages["resource level"]) == ["high"] * 3 + ["medium"] + ["low"] * 2
    assert "CER" in chart_specs(at)[0]["layout"]["title"]["text"]


def test_heatmap_widgets_and_changing_pairing_and_layer(app):
    at = _open(app, "views/heatmap.py")
    sidebar = at.sidebar
    assert sidebar.selectbox(key="metric").options == [
        descriptions.display_name(m) for m in sorted(ALL_METRICS)]
    assert sidebar.radio(key="pairing").value == "text-speech"
    assert sidebar.select_slider(key="layer").value == len(LAYER_NAMES) - 1
    assert sidebar.multiselect(key="langs").value[0] == "eng_Latn"
    title = chart_specs(at)[0]["layout"]["title"]["text"]
    assert "text-speech" in title and LAYER_NAMES[-1] in title

    sidebar.radio(key="pairing").set_value("speech-speech")
    sidebar.select_slider(key="layer").set_value(0)
    at.run()
    _assert_clean(at, "heatmap after change")
    figure = chart_specs(at)[0]
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
    heat = chart_specs(at)[0]["data"][0]
    assert len(heat["z"]) == 3 and heat["zmid"] == 0
    assert [t.split(">")[1].split("<")[0] for t in chart_specs(at)[0]["layout"]["yaxis"]["ticktext"]] \
        == ["English", "Hindi", "Yoruba"]


def test_sidebar_choices_survive_a_page_switch(app):
    at = _open(app, "views/heatmap.py")
    at.sidebar.selectbox(key="metric").set_value("linear_cka").run()
    at.switch_page("views/layer_curves.py").run()
    _assert_clean(at, "layer curves")
    assert at.sidebar.selectbox(key="metric").value == "linear_cka"
    assert "linear_cka" in chart_specs(at)[0]["layout"]["title"]["text"]


def test_metric_selector_shows_display_names_and_says_what_the_number_means(app):
    at = _open(app, "views/heatmap.py")
    selector = at.sidebar.selectbox(key="metric")
    assert selector.options == ["linear CKA", "paired cosine", "SVCCA"]  # not the ids
    assert selector.value == "svcca"  # the value (queries, session state) stays the id
    assert selector.help.startswith("**SVCCA**: Mean canonical correlation")
    for part in ("Range 0 to 1.", "Chance is not 0", "shuffled baseline", "k: directions",
                 "In this run: k = 4, n = 200 sentences."):
        assert part in selector.help, part
    for name in INVARIANCES["svcca"]:
        assert descriptions.INVARIANCE_TEXT[name] in selector.help
    line = "SVCCA (k = 4, n = 200 sentences): range 0 to 1, chance rises with k/n"
    assert any(c.value.startswith(line) for c in at.sidebar.caption)

    selector.set_value("paired_cosine").run()
    _assert_clean(at, "heatmap, paired cosine")
    selector = at.sidebar.selectbox(key="metric")
    assert selector.value == "paired_cosine" and selector.help.startswith("**paired cosine**")
    assert descriptions.SHARED_SPACE_TEXT in selector.help
    assert any(c.value.startswith("paired cosine (n = 200 sentences): range -1 to 1")
               for c in at.sidebar.caption)


def test_layer_curves_toggles(app):
    at = _open(app, "views/layer_curves.py")
    bands = sum(1 for t in chart_specs(at)[1]["data"] if t.get("fill") == "toself")
    at.toggle(key="show_ci").set_value(False)
    at.radio(key="x_axis").set_value("depth")
    at.run()
    _assert_clean(at, "layer curves toggled")
    figure = chart_specs(at)[1]
    assert sum(1 for t in figure["data"] if t.get("fill") == "toself") < bands
    assert "relative depth" in figure["layout"]["xaxis"]["title"]["text"]
    assert not any(t.get("error_y", {}).get("array") for t in chart_specs(at)[0]["data"])
    at.sidebar.radio(key="view").set_value("residualised").run()
    _assert_clean(at, "layer curves residualised")
    assert "length-residualised" in chart_specs(at)[0]["layout"]["yaxis"]["title"]["text"]


def _has_length_baseline(figure: dict) -> bool:
    return any(t.get("legendgroup") == "length_baseline" or "length-only" in t.get("name", "")
               for t in figure["data"])


def _drawn_intervals(figure: dict) -> int:
    """CI bands and whiskers of a figure."""
    return sum(1 for t in figure["data"]
               if t.get("fill") == "toself" or t.get("error_y", {}).get("array"))


def test_layer_curves_draw_the_length_only_baseline_and_residualised_says_it_has_none(app):
    at = _open(app, "views/layer_curves.py")
    assert all(_has_length_baseline(f) for f in chart_specs(at))
    captions = " ".join(c.value for c in at.main.caption)
    assert "length-only baseline" in captions and "95% band" in captions  # by resource level
    at.toggle(key="show_length").set_value(False).run()
    _assert_clean(at, "layer curves without the length-only baseline")
    assert not any(_has_length_baseline(f) for f in chart_specs(at))
    assert "length-only baseline" not in " ".join(c.value for c in at.main.caption)

    at.sidebar.radio(key="view").set_value("residualised").run()
    _assert_clean(at, "layer curves residualised")
    assert {t.key for t in at.toggle}.isdisjoint({"show_ci", "show_length"})
    captions = [c.value for c in at.main.caption]
    assert RESIDUALISED_NOTE in captions
    for figure in chart_specs(at):
        assert _drawn_intervals(figure) == 0 and not _has_length_baseline(figure)
        assert not any(t.get("line", {}).get("dash") in ("dash", "dashdot") for t in figure["data"])
    described = " ".join(c for c in captions if c != RESIDUALISED_NOTE)
    for drawn_only_elsewhere in ("whisker", "Bands", "Dashed", "Dash-dot", "baseline"):
        assert drawn_only_elsewhere not in described


def test_compare_residualised_view_hides_the_ci_toggle(app):
    at = _open(app, "views/compare.py")
    assert {"compare_ci", "compare_length"} <= {t.key for t in at.toggle}
    assert _has_length_baseline(chart_specs(at)[0]) and _drawn_intervals(chart_specs(at)[0])
    at.sidebar.radio(key="view").set_value("residualised").run()
    _assert_clean(at, "compare residualised")
    assert {t.key for t in at.toggle}.isdisjoint({"compare_ci", "compare_length"})
    assert _drawn_intervals(chart_specs(at)[0]) == 0 and not _has_length_baseline(chart_specs(at)[0])
    captions = [c.value for c in at.main.caption]
    assert RESIDUALISED_NOTE in captions
    assert not any(word in c for c in captions for word in ("Bands", "Dashed", "Dash-dot"))


def test_heatmap_summarises_both_baselines(app):
    at = _open(app, "views/heatmap.py")
    assert "mark_length" in {t.key for t in at.toggle}
    summary = next(d.value for d in at.dataframe if "baseline mean" in d.value.columns)
    assert {"length-only baseline mean", "cells at or below length-only"} <= set(summary.columns)
    at.sidebar.radio(key="view").set_value("residualised").run()
    _assert_clean(at, "heatmap residualised")
    assert "mark_length" not in {t.key for t in at.toggle}
    assert RESIDUALISED_NOTE in [c.value for c in at.caption]


def test_projection_colouring_and_sentence_link(app):
    at = _open(app, "views/projection.py")
    # the Whisper-like run's components live in two spaces: one map each, never a joint one
    assert at.selectbox(key="projection_component").options == [
        "text_decoder | speech_encoder (side by side)", "speech_encoder", "text_decoder"]
    assert "mapped separately" in _infos(at)
    at.sidebar.selectbox(key="run_id").set_value(SHARED_RUN_ID).run()
    at.selectbox(key="projection_component").set_value("llm_text + llm_speech").run()
    at.radio(key="projection_colour").set_value("modality")
    at.selectbox(key="sentence").set_value(2)
    at.run()
    _assert_clean(at, "projection")
    names = [t.get("name", "") for t in chart_specs(at)[0]["data"]]
    assert "text" in names and "speech" in names
    assert any(name.startswith("sentence 2") for name in names)


def test_findings_page_shows_four_findings_with_verdicts(app):
    at = _open(app, "views/findings.py")
    _assert_clean(at, "findings")
    headers = [s.value for s in at.subheader]
    assert [h.split(".")[0] for h in headers[:4]] == ["1", "2", "3", "4"]
    assert headers[4:] == ["How SVCCA's value and chance level move with k",
                           "Does it survive length matching?"]
    badges = [m.value for m in at.markdown if "-badge[" in m.value
              and "raw values would say" not in m.value and ", raw: " not in m.value]
    assert len(badges) == 4  # one headline per finding
    # the synthetic numbers rise with depth (finding 1); Whisper-like run: no length adaptor, so
    # finding 2 cannot apply (not "not enough data": no data could decide it)
    assert badges[0].startswith(":green-badge[holds")
    assert badges[1].startswith(":gray-badge[not applicable")
    assert "no length-reducing stage" in "\n".join(m.value for m in at.markdown)
    # under findings 1, 3 and 4: a table of every stored metric x control with its interval
    tables = [d.value for d in at.dataframe if "control" in d.value.columns]
    assert len(tables) == 3
    for table in tables:
        assert list(table.columns) == ["metric", "control", "effect", "ci_low", "ci_high",
                                       "verdict", "note"]
        assert set(table["metric"]) == {"SVCCA", "linear CKA"}  # the synthetic run's two of four
        assert {"raw", "length-residualised"} <= set(table["control"])
        assert (table["ci_low"] < table["effect"]).all() and (table["effect"] < table["ci_high"]).all()
    captions = "\n".join(c.value for c in at.caption)
    assert "95% interval, sentence resampling within this corpus" in captions
    assert "Not evaluated: not in this run: debiased CKA, mutual kNN" in captions
    assert len(at.get("plotly_chart")) == 3


# --------------------------------------------------------------- every run: explain, don't draw

def _with_run(at: AppTest, run_id: str, page: str, **sidebar) -> AppTest:
    """Open ``page`` with ``run_id`` (and any other sidebar values) chosen."""
    at.run()
    at.sidebar.selectbox(key="run_id").set_value(run_id).run()
    at.switch_page(page).run()
    for key, value in sidebar.items():
        widget = at.sidebar.radio(key=key) if key in ("pairing", "view") else \
            at.sidebar.selectbox(key=key)
        widget.set_value(value).run()
    return at


def _infos(at: AppTest) -> str:
    return "\n".join(i.value for i in at.info)


def _texts(at: AppTest) -> str:
    return "\n".join([*(m.value for m in at.markdown), *(i.value for i in at.info),
                      *(w.value for w in at.warning)])


def _mean_lines(figure: dict) -> list[dict]:
    return [t for t in figure["data"] if t.get("mode") == "lines+markers"]


#: pages whose every chart the text-only run replaces by "This model reads only text" (its default
#: pairing or CER needs speech); every other page and run draws at least one chart
TEXT_ONLY_EXPLAINED = ("views/overview.py", "views/heatmap.py", "views/findings.py")


@pytest.mark.parametrize("run_id", RUN_IDS)
@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_with_every_run(app, run_id, page):
    at = _with_run(app, run_id, page)
    _assert_clean(at, f"{page} ({run_id})")
    figures = chart_specs(at)
    drawn = [f for f in figures if f["data"]]
    if run_id == TEXT_RUN_ID and page in TEXT_ONLY_EXPLAINED:
        assert not drawn and "This model reads only text" in _infos(at), f"{page} ({run_id})"
    else:
        assert drawn, f"{page} ({run_id}): no chart drawn"
    for figure in figures:  # an empty chart must carry its reason
        assert figure["data"] or figure["layout"].get("annotations"), f"{page}: a blank chart"


def test_cosine_across_spaces_is_explained_on_heatmap_and_layer_curves(app):
    at = _with_run(app, RUN_ID, "views/heatmap.py", metric="paired_cosine", pairing="text-speech")
    _assert_clean(at, "heatmap, cosine across spaces")
    assert not at.get("plotly_chart")
    info = _infos(at)
    for part in ("undefined", "different representation spaces", "compares coordinates",
                 "`text_decoder`", "`synthetic-whisper/decoder`", "`speech_encoder`",
                 "`synthetic-whisper/encoder`", "**svcca**", "**linear_cka**"):
        assert part in info, part
    at.sidebar.radio(key="pairing").set_value("text-text").run()  # within one space: drawn
    assert chart_specs(at)[0]["data"] and not at.info

    at.switch_page("views/layer_curves.py").run()
    _assert_clean(at, "layer curves, cosine across spaces")
    assert "undefined" in _infos(at)  # the per-language text-speech chart is replaced
    (families,) = chart_specs(at)
    assert [t["name"] for t in _mean_lines(families)] == ["text-text (cross-lingual)",
                                                         "speech-speech (cross-lingual)"]
    assert any(e.label.startswith("Not drawn: text-speech") for e in at.expander)


def test_shared_space_run_draws_cosine_between_text_and_speech(app):
    at = _with_run(app, SHARED_RUN_ID, "views/heatmap.py", metric="paired_cosine",
                   pairing="text-speech")
    _assert_clean(at, "heatmap, cosine in one space")
    assert chart_specs(at)[0]["data"] and not at.info
    assert at.sidebar.select_slider(key="layer").options == ["llm 2", "llm 3", "llm 4"]
    at.switch_page("views/layer_curves.py").run()
    per_language, families = chart_specs(at)
    languages = [t for t in _mean_lines(per_language) if not t["name"].endswith("-resource mean")]
    assert len(languages) == 6  # a line per language beside each resource level's mean
    assert "text-speech (same language)" in [t["name"] for t in _mean_lines(families)]


def test_text_only_run_says_it_reads_only_text(app):
    at = _with_run(app, TEXT_RUN_ID, "views/heatmap.py", pairing="text-speech")
    _assert_clean(at, "e5 heatmap text-speech")
    assert not at.get("plotly_chart") and "This model reads only text" in _infos(at)
    at.sidebar.radio(key="pairing").set_value("speech-speech").run()
    assert not at.get("plotly_chart") and "This model reads only text" in _infos(at)
    at.sidebar.radio(key="pairing").set_value("text-text").run()
    assert chart_specs(at)[0]["data"] and not at.info

    at.switch_page("views/layer_curves.py").run()
    _assert_clean(at, "e5 layer curves")
    assert "This model reads only text" in _infos(at)
    (families,) = chart_specs(at)
    assert [t["name"] for t in _mean_lines(families)] == ["text-text (cross-lingual)"]

    at.switch_page("views/projection.py").run()
    _assert_clean(at, "e5 projection")
    assert "Its maps hold text items only" in _infos(at)
    assert at.selectbox(key="projection_component").options == ["text_encoder"]
    assert {t["name"] for t in chart_specs(at)[0]["data"] if t.get("legendgroup") == "symbols"} \
        == {"text"}


def test_overview_shows_spaces_stages_quantisation_and_cer_reason(app):
    at = _with_run(app, TEXT_RUN_ID, "views/overview.py")
    _assert_clean(at, "e5 overview")
    warning = "\n".join(w.value for w in at.warning)
    assert "4-bit weights (dequantised)" in warning and E5_QUANTISATION in warning
    table = next(d.value for d in at.dataframe if "stages" in d.value.columns)
    assert table.set_index("component").loc["text_encoder", "stages"] == "frontend 1 · encoder 6"
    assert table.loc[0, "space"] == "synthetic-e5/encoder"
    assert table.loc[0, "conditioning"] == "prompt: query: {text}"
    cer = next(f for f in chart_specs(at) if "CER" in f["layout"]["title"]["text"])
    assert not cer["data"] and "reads only text" in cer["layout"]["annotations"][0]["text"]

    at.sidebar.selectbox(key="run_id").set_value(RUN_ID).run()
    assert not at.warning  # full-precision weights: no note
    table = next(d.value for d in at.dataframe if "stages" in d.value.columns)
    table = table.set_index("component")
    assert table.loc["speech_encoder", "space"] != table.loc["text_decoder", "space"]
    assert table.loc["speech_encoder", "stages"] == "frontend 1 · encoder 4"
    cer = next(f for f in chart_specs(at) if "CER" in f["layout"]["title"]["text"])
    assert cer["data"]  # its own transcripts


def test_compare_page_draws_every_comparable_run(app):
    at = _open(app, "views/compare.py")
    _assert_clean(at, "compare")
    assert at.title[0].value == "Compare models"
    assert at.multiselect(key="compare_runs").value == list(RUN_IDS)
    (figure,) = chart_specs(at)
    lines = _mean_lines(figure)
    assert [t["name"] for t in lines] == [MODELS[r] for r in RUN_IDS]
    assert len({t["line"]["color"] for t in lines}) == 3
    baselines = [t for t in figure["data"] if t.get("line", {}).get("dash") == "dash"]
    assert len(baselines) == 3
    stages = {a["text"] for a in figure["layout"]["annotations"]}
    assert {"frontend", "encoder", "decoder", "llm"} <= stages
    assert not [s for s in at.subheader if s.value == "Not comparable"]

    at.radio(key="compare_family").set_value("speech-speech").run()
    _assert_clean(at, "compare speech-speech")
    assert [t["name"] for t in _mean_lines(chart_specs(at)[0])] == [MODELS[SHARED_RUN_ID],
                                                                 MODELS[RUN_ID]]
    notes = [m.value for m in at.markdown if "not comparable, because" in m.value]
    assert len(notes) == 1 and MODELS[TEXT_RUN_ID] in notes[0]
    assert "reads only text" in notes[0]


def test_compare_page_says_why_cosine_is_not_comparable(app):
    at = _open(app, "views/compare.py")
    assert at.selectbox(key="compare_metric").options == ["linear CKA", "paired cosine", "SVCCA"]
    assert at.selectbox(key="compare_metric").help.startswith("**SVCCA**")
    at.selectbox(key="compare_metric").set_value("paired_cosine")
    at.radio(key="compare_family").set_value("text-speech").run()
    _assert_clean(at, "compare cosine text-speech")
    (figure,) = chart_specs(at)
    assert [t["name"] for t in _mean_lines(figure)] == [MODELS[SHARED_RUN_ID]]
    assert "speech side" in figure["layout"]["xaxis"]["title"]["text"]
    notes = {m.value.split("**")[1]: m.value for m in at.markdown
             if "not comparable, because" in m.value}
    assert set(notes) == {MODELS[TEXT_RUN_ID], MODELS[RUN_ID]}
    assert "reads only text" in notes[MODELS[TEXT_RUN_ID]]
    whisper = notes[MODELS[RUN_ID]]
    assert "undefined" in whisper and "synthetic-whisper/encoder" in whisper


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
    assert at.sidebar.selectbox(key="run_id").options == [f"{MODELS[r]} · {r}" for r in RUN_IDS]

    from core.store import Store, publish_atomically

    replacement = write_synthetic_store(tmp_path / "next.duckdb")
    with Store.open(replacement, read_only=False) as store:
        store.add_run("second-run", "another-model", {}, {})
        store.finish_run("second-run")
    time.sleep(0.01)
    publish_atomically(replacement, path)
    at.run()
    _assert_clean(at, "after republish")
    assert len(at.sidebar.selectbox(key="run_id").options) == len(RUN_IDS) + 1


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

def test_every_page_on_the_tiny_real_store(tiny_store_path, monkeypatch):
    monkeypatch.setenv(state.STORE_ENV, str(tiny_store_path))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S).run()
    _assert_clean(at, "overview (tiny store)")
    # the headline counts speech in every voice (the tiny store's English has a second one)
    from core.store import Store

    with Store.open(tiny_store_path) as store:
        every_voice = len(store.items("speech", all_voices=True))
        first_voice = len(store.items("speech"))
    assert every_voice > first_voice
    speech = next(m for m in at.metric if m.label == "Speech items")
    assert speech.value == str(every_voice)
    assert f"{every_voice - first_voice} in a second voice" in speech.help
    for page in list(PAGES)[1:]:
        at.switch_page(page).run()
        _assert_clean(at, f"{page} (tiny store)")
        assert [f for f in chart_specs(at) if f["data"]], f"{page}: no chart drawn on the tiny store"


# -------------------------------------------- every other family, side by side (study store)

def test_every_family_side_by_side_on_the_compare_page(study_store_path, monkeypatch):
    """Seamless, Qwen2-Audio, SONAR, SALMONN and e5 tiny runs of one real build: the compare page
    overlays every run that has the family, by path depth with stage boundaries, and the heatmap
    and layer curves of each run draw (only e5's heatmap explains instead: it reads only text)."""
    from core.store import Store
    from tests.conftest import STUDY_STORE_MODELS

    monkeypatch.setenv(state.STORE_ENV, str(study_store_path))
    at = _open(AppTest.from_file(str(APP), default_timeout=TIMEOUT_S), "views/compare.py")
    _assert_clean(at, "compare (study store)")
    (figure,) = chart_specs(at)
    assert {t["name"] for t in _mean_lines(figure)} == set(STUDY_STORE_MODELS)
    stages = {a["text"] for a in figure["layout"]["annotations"]}
    assert {"frontend", "encoder", "llm", "pooler"} <= stages
    at.radio(key="compare_family").set_value("text-speech").run()
    _assert_clean(at, "compare text-speech (study store)")
    names = {t["name"] for t in _mean_lines(chart_specs(at)[0])}
    assert names == set(STUDY_STORE_MODELS) - {"e5-tiny-random"}
    with Store.open(study_store_path) as store:
        runs = store.runs()
    for run_id, model in zip(runs.run_id, runs.model, strict=True):
        for page in ("views/heatmap.py", "views/layer_curves.py"):
            at = _with_run(AppTest.from_file(str(APP), default_timeout=TIMEOUT_S), run_id, page)
            _assert_clean(at, f"{page} ({run_id})")
            drawn = [f for f in chart_specs(at) if f["data"]]
            if model == "e5-tiny-random" and page == "views/heatmap.py":  # text-text is not the default
                assert not drawn and "This model reads only text" in _infos(at), run_id
            else:
                assert drawn, f"{page} ({run_id}): no chart drawn"
