"""The Projection page under AppTest on the synthetic store: the side-by-side view of a run whose
text and speech live in different spaces, and the linked selection (AppTest cannot drag a box on
a Plotly chart, so the page's own selection state is set as a selection leaves it, and the
selection event's handling is tested in test_projection_selection.py and in Chromium in
test_browser_projection.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from apptest_support import assert_clean, chart_specs, open_page
from dashboard import state
from synthetic_store import LAYER_NAMES, RUN_ID, SHARED_RUN_ID, write_synthetic_store

PAGE = "views/projection.py"
SIDE_BY_SIDE = "text_decoder | speech_encoder (side by side)"
SELECTION = "projection_selection"


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    return write_synthetic_store(tmp_path_factory.mktemp("projection") / "store.duckdb")


@pytest.fixture(scope="module")
def items(store_path):
    from core.store import Store

    with Store.open(store_path, read_only=True) as store:
        return store.items()


@pytest.fixture
def page(store_path, monkeypatch) -> AppTest:
    return open_page(store_path, PAGE, monkeypatch)


def _ids(items, **where) -> list[int]:
    chosen = items
    for column, values in where.items():
        chosen = chosen[chosen[column].isin(values)]
    return [int(i) for i in chosen["item_id"]]


def test_text_and_speech_of_different_spaces_open_side_by_side(page):
    assert_clean(page)
    assert page.selectbox(key="projection_component").value == SIDE_BY_SIDE
    figures = chart_specs(page)
    assert len(figures) == 2  # one map per space, no small multiples before a selection
    titles = [f["layout"]["title"]["text"] for f in figures]
    assert "text_decoder" in titles[0] and "speech_encoder" in titles[1]
    kinds = [{t.get("legendgroup") for t in f["data"]} for f in figures]
    assert all("colour" in k for k in kinds)
    assert "Nothing selected yet" in " ".join(c.value for c in page.caption)
    # the points carry their item ids (what a box selection returns)
    ids = [i for t in figures[0]["data"] if t.get("legendgroup") == "colour"
           for i in _decoded(t["customdata"])]
    assert len(ids) == len(set(ids)) > 0


def _decoded(values) -> list[int]:
    """customdata as plotly sends it: a list, or a typed array in base64."""
    if isinstance(values, dict):
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def test_a_selection_is_listed_linked_and_followed_through_layers(page, items):
    chosen = _ids(items, lang=["deu_Latn"], sentence_id=[1, 2], modality=["text"])
    page.session_state[SELECTION] = chosen
    page.run()
    assert_clean(page)
    table = page.dataframe[0].value
    assert list(table["language"]) == ["German", "German"]
    assert set(table["modality"]) == {"text"} and list(table["sentence"]) == [1, 2]
    figures = chart_specs(page)
    assert len(figures) == 3  # both maps + the small multiples
    selected = [t for t in figures[0]["data"] if t.get("legendgroup") == "selection"]
    assert sorted(_decoded(selected[0]["customdata"])) == sorted(chosen)
    layers = figures[2]
    assert len(layers["layout"]["images"]) == len(layers["layout"]["annotations"])  # a panel each
    # the selected text items are in every text panel; speech panels hold none of them
    assert sum(len(_decoded(t["x"])) for t in layers["data"]) == len(chosen) * len(LAYER_NAMES)

    page.select_slider(key=f"projection_layer_{SIDE_BY_SIDE}").set_value(1).run()
    assert_clean(page)
    assert page.session_state[SELECTION] == chosen  # kept across a layer change
    assert "block 1" in chart_specs(page)[0]["layout"]["title"]["text"]

    page.button(key="projection_other_languages").click().run()
    grown = page.session_state[SELECTION]
    assert sorted(grown) == sorted(_ids(items, sentence_id=[1, 2], modality=["text"]))
    assert len(page.dataframe[0].value) == len(grown)

    page.button(key="projection_clear").click().run()
    assert_clean(page)
    assert page.session_state[SELECTION] == []
    assert len(chart_specs(page)) == 2


def test_a_speech_selection_offers_its_speech_and_survives_another_map(page, items):
    chosen = _ids(items, lang=["eng_Latn"], sentence_id=[0], modality=["speech"])
    page.session_state[SELECTION] = chosen
    page.run()
    assert_clean(page)
    assert page.selectbox(key="projection_play").options  # a play control for its speech
    page.selectbox(key="projection_component").set_value("speech_encoder").run()
    assert_clean(page)
    assert page.session_state[SELECTION] == chosen
    assert len(chart_specs(page)) == 2  # one map + the small multiples


def test_the_item_chosen_to_hear_stays_the_same_when_the_selection_grows(page, items):
    chosen = _ids(items, lang=["swh_Latn"], sentence_id=[2], modality=["speech"])
    page.session_state[SELECTION] = chosen
    page.run()
    assert_clean(page)
    play = page.selectbox(key="projection_play")
    (heard,) = chosen
    assert play.options == [next(o for o in play.options if o.startswith("Swahili · sentence 2"))]
    assert int(play.value) == heard  # the value is the item id, the label its language and text
    page.button(key="projection_other_languages").click().run()
    assert_clean(page)
    assert len(page.session_state[SELECTION]) > len(chosen)  # rows moved: others sort first
    assert int(page.selectbox(key="projection_play").value) == heard  # still Swahili, sentence 2


def test_stale_selection_ids_read_as_nothing_selected(page):
    page.session_state[SELECTION] = [10**9]
    page.run()
    assert_clean(page)
    assert "Nothing selected yet" in " ".join(c.value for c in page.caption)


def test_joint_maps_keep_one_map_with_the_selection(page, items):
    page.sidebar.selectbox(key="run_id").set_value(SHARED_RUN_ID).run()
    assert SIDE_BY_SIDE not in page.selectbox(key="projection_component").options
    page.selectbox(key="projection_component").set_value("llm_text + llm_speech").run()
    chosen = _ids(items, lang=["deu_Latn"], sentence_id=[3])
    page.session_state[SELECTION] = chosen
    page.run()
    assert_clean(page)
    figures = chart_specs(page)
    selected = [t for t in figures[0]["data"] if t.get("legendgroup") == "selection"]
    assert sorted(_decoded(selected[0]["customdata"])) == sorted(chosen)  # text and speech
    assert page.sidebar.selectbox(key="run_id").value == SHARED_RUN_ID != RUN_ID


def test_the_small_multiples_are_prepared_ahead_into_the_pages_cache(store_path, monkeypatch):
    """What the page starts when nothing is selected: the images (and the marks' arrays) are
    made in that thread, and the rerun that needs them finds them cached, equal to drawing them
    there."""
    import os
    import threading

    from dashboard.charts import projection_layers

    drawn_in, marked_in = [], []
    draw, mark = projection_layers.layer_images, projection_layers.point_marks

    # threads recorded as objects: another test's page may have left its own thread (of the
    # same name) drawing for its store meanwhile, which must not count here
    def recorded(*args, **kwargs):
        drawn_in.append(threading.current_thread())
        return draw(*args, **kwargs)

    def marked(*args, **kwargs):
        marked_in.append(threading.current_thread())
        return mark(*args, **kwargs)

    monkeypatch.setattr(projection_layers, "layer_images", recorded)
    monkeypatch.setattr(projection_layers, "point_marks", marked)
    state.projection_layer_images.clear()
    state.projection_point_marks.clear()
    ref = state.StoreRef(str(store_path), os.stat(store_path).st_mtime_ns)
    labels = ("text_decoder", "speech_encoder")
    langs = tuple(sorted(state.languages(ref)["lang"]))
    ahead = state.projection_layers_ahead(ref, RUN_ID, labels, langs, "language")
    ahead.join(timeout=60)
    assert ahead.name == "projection-layers" and not ahead.is_alive()
    assert [t for t in drawn_in if t is ahead] == [t for t in marked_in if t is ahead] \
        == [ahead] * len(labels)
    for label in labels:
        images = state.projection_layer_images(ref, RUN_ID, label, langs)
        points = state.aligned_projection(ref, RUN_ID, label)
        assert images == draw(points[points["lang"].isin(langs)],
                              state.aligned_bounds(ref, RUN_ID, label),
                              n_maps=int(points["position"].max()) + 1)
        state.projection_point_marks(ref, RUN_ID, label, langs, "language")
    here = threading.current_thread()  # the rerun made nothing again
    assert here not in drawn_in and here not in marked_in
