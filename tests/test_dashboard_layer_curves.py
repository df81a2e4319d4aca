"""The Layer curves page's groupings of the same-language curves under AppTest (synthetic store):
small multiples by resource level (the default), level means with languages on demand, and every
language on one chart; figures kept per process must follow every widget they depend on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from apptest_support import open_page
from synthetic_store import write_synthetic_store


@pytest.fixture(scope="module")
def synthetic_store_path(tmp_path_factory) -> Path:
    return write_synthetic_store(tmp_path_factory.mktemp("layer_curves") / "store.duckdb")


@pytest.fixture
def curves(synthetic_store_path, monkeypatch) -> AppTest:
    return open_page(synthetic_store_path, "views/layer_curves.py", monkeypatch)


def _first_figure(at: AppTest) -> dict:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def _languages_drawn(figure: dict) -> list[str]:
    return [t["name"] for t in figure["data"] if t.get("legendgroup") in ("high", "medium", "low")]


def test_default_is_one_panel_per_resource_level(curves):
    assert curves.radio(key="curves_grouping").value == "levels"
    figure = _first_figure(curves)
    assert "by resource level" in figure["layout"]["title"]["text"]
    assert {t.get("xaxis", "x") for t in figure["data"]} == {"x", "x2", "x3"}
    assert len(_languages_drawn(figure)) == 6
    assert figure["layout"]["legend"]["orientation"] == "h"


def test_level_means_draw_only_the_languages_asked_for(curves):
    curves.radio(key="curves_grouping").set_value("means").run()
    figure = _first_figure(curves)
    assert "mean per resource level" in figure["layout"]["title"]["text"]
    assert _languages_drawn(figure) == []
    curves.multiselect(key="curves_shown_langs").set_value(["hin_Deva", "eng_Latn"]).run()
    assert _languages_drawn(_first_figure(curves)) == ["English", "Hindi"]
    curves.sidebar.radio(key="view").set_value("minus_baseline").run()
    figure = _first_figure(curves)  # a kept figure must not survive a change of view
    assert "− shuffled baseline" in figure["layout"]["yaxis"]["title"]["text"]
    assert _languages_drawn(figure) == ["English", "Hindi"]


def test_every_language_on_one_chart_follows_the_language_filter(curves):
    curves.radio(key="curves_grouping").set_value("all").run()
    assert len(_languages_drawn(_first_figure(curves))) == 6
    curves.sidebar.multiselect(key="langs").set_value(["eng_Latn", "yor_Latn"]).run()
    assert _languages_drawn(_first_figure(curves)) == ["English", "Yoruba"]
