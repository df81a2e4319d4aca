"""The Items page, links that reopen a view, and downloads, through streamlit.testing.v1.AppTest on
the synthetic store: query parameters in and out, malformed ones as bad input, a heatmap cell
opening its sentences, download buttons holding the right bytes, speech played or refused."""

from __future__ import annotations

import io
import json
import shutil

import pandas as pd
import pytest
import soundfile as sf
from streamlit.proto.PlotlyChart_pb2 import PlotlyChart as PlotlyChartProto
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1 import app_test as app_test_module

from apptest_support import APP, assert_clean
from core import audio
from core.store import Store
from dashboard import corpus_items as ci
from dashboard import state, url_state
from dashboard.charts.common import CLICK_TARGETS
from items_store import write_items_store
from synthetic_store import RUN_ID

TIMEOUT_S = 60
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("items")
    return str(write_items_store(folder / "store.duckdb", folder / "cache"))


@pytest.fixture
def media(monkeypatch) -> list:
    """The in-memory media stores AppTest creates (one per run), to read downloads and audio."""
    made = []

    class Kept(app_test_module.MemoryMediaFileStorage):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(app_test_module, "MemoryMediaFileStorage", Kept)
    return made


@pytest.fixture
def app(store_path, monkeypatch, tmp_path) -> AppTest:
    monkeypatch.setenv(state.STORE_ENV, store_path)
    monkeypatch.setenv(audio.CACHE_ENV, str(tmp_path / "cache"))
    state.item_audio.clear()
    return AppTest.from_file(APP, default_timeout=TIMEOUT_S)


def _open(at: AppTest, page: str, **query: str) -> AppTest:
    """A fresh session opening ``page`` with ``query``, as a pasted link does."""
    at.switch_page(page)
    at.query_params.update(query)
    return at.run()


def _file(media: list, url: str) -> bytes:
    return media[-1].get_file(url.rsplit("/", 1)[-1]).content


def _download(at: AppTest, media: list, key: str) -> bytes:
    """What a click on the download button ``key`` hands the browser: its deferred callable run
    the way Streamlit runs it, and the file it made."""
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.media_file_storage import MediaFileStorageError

    button = next(b for b in at.get("download_button") if b.proto.id.endswith(key))
    for manager in reversed(MediaFileManager._instances):
        try:
            return _file(media, manager.execute_deferred(button.proto.deferred_file_id))
        except MediaFileStorageError:
            continue
    raise AssertionError(f"no deferred download behind {key}")


@pytest.fixture(autouse=True)
def _managers(monkeypatch):
    from streamlit.runtime.media_file_manager import MediaFileManager

    instances: list = []
    original = MediaFileManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        instances.append(self)

    monkeypatch.setattr(MediaFileManager, "__init__", init)
    monkeypatch.setattr(MediaFileManager, "_instances", instances, raising=False)


# ------------------------------------------------------------------------------------- the page

def test_items_page_shows_sentences_side_by_side_and_writes_its_state(app):
    at = _open(app, "views/items.py")
    assert_clean(at)
    table = at.dataframe[0].value
    assert "English" in table.columns and "Yoruba" in table.columns and len(table) == 8
    for param in ("run_id", "item_langs", "item_view", "item_duration", "item_cer"):
        assert param in at.query_params, param


def test_query_parameters_choose_the_view(app):
    at = _open(app, "views/items.py", item_langs="swh_Latn,hin_Deva", item_view="items",
               item_modalities="speech", item_search="#3]")
    assert_clean(at)
    table = at.dataframe[0].value
    assert set(table["language"]) == {"Swahili", "Hindi"}
    assert set(table["modality"]) == {"speech"} and set(table["sentence_id"]) == {3}
    assert at.radio(key="item_view").value == "items"


def test_a_list_of_item_ids_opens_exactly_those_items(app, store_path):
    with Store.open(store_path) as store:
        ids = store.items("text")["item_id"].head(3).tolist()
    at = _open(app, "views/items.py", items=url_state.encode_ids(ids), item_view="items")
    assert_clean(at)
    assert sorted(at.dataframe[0].value["item_id"]) == ids
    at.button(key="clear_ids").click().run()
    assert len(at.dataframe[0].value) > 3 and "items" not in at.query_params


@pytest.mark.parametrize("page", ["views/items.py", "views/heatmap.py", "views/layer_curves.py",
                                  "views/projection.py", "views/compare.py"])
def test_malformed_parameters_fall_back_with_a_note(app, page):
    at = _open(app, page, run_id="no-such-run", metric="<script>", layer="-1", pairing="x",
               langs="eng_Latn,,zzz", view="9", items="9-2", item_cer="nan~1",
               item_langs="\x00", projection_layer="999", compare_runs="a,b", show_ci="maybe")
    assert_clean(at)
    notes = " ".join(t.value for t in at.toast)
    if page == "views/compare.py":  # picks its runs itself
        assert "compare_runs" in notes and "langs" in notes
        return
    assert "no-such-run" in notes and "langs" in notes
    assert at.sidebar.selectbox(key="run_id").value == RUN_ID
    if page == "views/items.py":
        assert "items" in notes and "item_cer" in notes


def test_a_copied_url_reopens_the_same_view(app, store_path, monkeypatch):
    at = _open(app, "views/heatmap.py")
    at.sidebar.radio(key="pairing").set_value("speech-speech").run()
    at.sidebar.select_slider(key="layer").set_value(2).run()
    at.toggle(key="mark_length").set_value(False).run()
    link = dict(at.query_params)
    assert link["pairing"] == "speech-speech" and link["layer"] == "2"
    fresh = _open(AppTest.from_file(APP, default_timeout=TIMEOUT_S), "views/heatmap.py", **link)
    assert_clean(fresh)
    assert fresh.sidebar.radio(key="pairing").value == "speech-speech"
    assert fresh.sidebar.select_slider(key="layer").value == 2
    assert fresh.toggle(key="mark_length").value is False
    assert fresh.get("plotly_chart")[0].proto.spec == at.get("plotly_chart")[0].proto.spec


def test_a_heatmap_cell_opens_its_sentences(app):
    at = _open(app, "views/heatmap.py")
    at.selectbox(key="cell_a").set_value("swh_Latn")
    at.selectbox(key="cell_b").set_value("deu_Latn")
    at.button(key="open_cell").click().run()
    assert_clean(at)
    assert at.title[0].value == "Items"
    assert at.query_params["cell"] == "text-speech~swh_Latn~deu_Latn"
    assert any("Swahili text" in i.value and "German speech" in i.value for i in at.info)
    assert list(at.dataframe[0].value.columns[1:3]) == ["German", "Swahili"]
    assert at.multiselect(key="hear_langs").value == ["swh_Latn", "deu_Latn"]
    at.switch_page("views/heatmap.py").run()  # a second cell replaces the first
    at.selectbox(key="cell_a").set_value("hin_Deva")
    at.selectbox(key="cell_b").set_value("hin_Deva")
    at.button(key="open_cell").click().run()
    assert at.query_params["cell"] == "text-speech~hin_Deva~hin_Deva"
    assert at.multiselect(key="item_langs").value == ["hin_Deva"]
    assert at.multiselect(key="hear_langs").value == ["hin_Deva"]


# ------------------------------------------------------------------------------------ downloads

def test_tables_and_charts_download_what_they_show(app, media):
    at = _open(app, "views/heatmap.py")
    shown = at.dataframe[0].value
    csv = pd.read_csv(io.BytesIO(_download(at, media, "baselines__csv")))
    assert list(csv.columns) == list(shown.columns) and len(csv) == len(shown)
    parquet = pd.read_parquet(io.BytesIO(_download(at, media, "baselines__parquet")))
    pd.testing.assert_frame_equal(parquet, shown.reset_index(drop=True), check_dtype=False)
    cells = pd.read_csv(io.BytesIO(_download(at, media, "heatmap__csv")))
    n = len(at.sidebar.multiselect(key="langs").value)
    assert len(cells[cells["type"] == "heatmap"]) == n * n


def test_every_page_offers_its_downloads(app):
    for page in ("views/overview.py", "views/heatmap.py", "views/layer_curves.py",
                 "views/compare.py", "views/projection.py", "views/findings.py",
                 "views/items.py"):
        at = _open(app, page)
        ids = [b.proto.id for b in at.get("download_button")]
        charts, tables = len(at.get("plotly_chart")), len(at.dataframe)
        assert sum(i.endswith("__csv") for i in ids) >= charts + tables, page
        assert sum(i.endswith("__parquet") for i in ids) == tables, page


# -------------------------------------------------------------------------------------- hearing

@needs_espeak
def test_a_matching_synthesis_plays_with_its_duration(app, media, store_path):
    at = _open(app, "views/items.py", hear_sentence="0", hear_langs="eng_Latn,deu_Latn")
    assert_clean(at)
    players = at.get("audio")
    assert len(players) == 1  # English matches; German's made-up duration does not
    wave, rate = sf.read(io.BytesIO(_file(media, players[0].proto.url)))
    with Store.open(store_path) as store:
        items = store.items("speech")
    stored = items[(items.lang == "eng_Latn") & (items.sentence_id == 0)]["duration_s"].iloc[0]
    assert len(wave) / rate == pytest.approx(stored, abs=1e-3)
    warnings = [w.value for w in at.warning]
    assert any("where the build's lasted" in w for w in warnings)


def test_a_missing_recording_says_so(app):
    at = _open(app, "views/items.py", hear_sentence="0", hear_langs="yor_Latn")
    assert_clean(at)
    assert not at.get("audio")
    assert any("not there" in w.value for w in at.warning)


def test_a_link_reopens_a_heatmap_difference(app):
    at = _open(app, "views/heatmap.py", heatmap_mode="difference", difference_kind="layer",
               b_layer="1", layer="3")
    assert_clean(at)
    assert at.radio(key="heatmap_mode").value == "difference"
    assert at.select_slider(key="difference_layer").value == 1
    assert at.sidebar.select_slider(key="layer").value == 3
    assert at.query_params["b_layer"] == "1"


def _picked_shapes(at: AppTest) -> list[dict]:
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return [s for s in spec["layout"].get("shapes", []) if s.get("name") == "picked cell"]


def test_a_picked_cell_is_outlined_and_every_cell_can_be_clicked(app):
    at = _open(app, "views/heatmap.py", langs="eng_Latn,deu_Latn,swh_Latn")
    assert_clean(at)
    assert not _picked_shapes(at)  # nothing outlined before the reader picks a cell
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    targets = [t for t in spec["data"] if t.get("meta") == CLICK_TARGETS]
    assert len(targets) == 1 and len(targets[0]["customdata"]) == 9
    assert ["swh_Latn", "deu_Latn"] in targets[0]["customdata"]
    assert at.get("plotly_chart")[0].proto.selection_mode == [PlotlyChartProto.SelectionMode.POINTS]
    at.selectbox(key="cell_a").set_value("swh_Latn").run()
    shapes = _picked_shapes(at)  # row Swahili (2), column German (the default second, 1)
    assert shapes and {(s["x0"], s["y0"]) for s in shapes} == {(0.5, 1.5)}


def test_a_difference_cell_opens_its_sentences_too(app):
    at = _open(app, "views/heatmap.py", heatmap_mode="difference")
    assert_clean(at)
    assert at.radio(key="heatmap_mode").value == "difference"
    at.selectbox(key="cell_a").set_value("swh_Latn")
    at.button(key="open_cell").click().run()
    assert_clean(at)
    assert at.title[0].value == "Items"
    assert at.query_params["cell"].startswith("text-speech~swh_Latn~")


def test_a_row_selection_does_not_outlive_a_filter(app):
    """Streamlit keeps a keyed table's selection as row positions when its rows change; the
    table's key names its rows, so a filtered table starts with no selection (no IndexError, no
    other item played in place of the one picked)."""
    at = _open(app, "views/items.py", item_view="items")
    assert_clean(at)
    shown = at.dataframe[0].value
    speech_rows = [i for i in range(len(shown)) if shown.iloc[i]["modality"] == "speech"
                   and shown.iloc[i]["language"] != "English"]
    last = speech_rows[-1]  # a row the English-only table will not have
    picked = shown.iloc[last]
    at.session_state[ci.rows_key("item_items", shown["item_id"])] = {
        "selection": {"rows": [last], "columns": [], "cells": []}}
    at.run()
    assert_clean(at)
    labels = " ".join(m.value for m in at.markdown)
    assert f"item {picked['item_id']}" in labels  # the selected row is the item heard
    at.multiselect(key="item_langs").set_value(["eng_Latn"]).run()
    assert_clean(at)
    assert len(at.dataframe[0].value) <= last
    assert f"item {picked['item_id']}" not in " ".join(m.value for m in at.markdown)
