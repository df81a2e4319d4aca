"""The Heatmap page's difference modes and fixed colour scale, under AppTest: on the synthetic store
(layer, run and pairing differences) and on the tiny real store (the voice difference: its
languages have a second voice)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import state
from synthetic_store import LAYER_NAMES, TEXT_RUN_ID, write_synthetic_store

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def synthetic_store_path(tmp_path_factory) -> Path:
    return write_synthetic_store(tmp_path_factory.mktemp("differences") / "store.duckdb")


def _heatmap(store: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv(state.STORE_ENV, str(store))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    at.run()
    return at.switch_page("views/heatmap.py").run()


def _figure(at: AppTest) -> dict:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    (chart,) = at.get("plotly_chart")
    return json.loads(chart.proto.spec)


def _captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def test_fixed_colour_scale_is_the_same_for_every_layer(synthetic_store_path, monkeypatch):
    at = _heatmap(synthetic_store_path, monkeypatch)
    assert "zmin" not in _figure(at)["data"][0]
    at.toggle(key="heatmap_fixed_scale").set_value(True).run()
    last = _figure(at)["data"][0]
    at.sidebar.select_slider(key="layer").set_value(0).run()
    first = _figure(at)["data"][0]
    assert (first["zmin"], first["zmax"]) == (last["zmin"], last["zmax"])
    assert first["zmin"] < first["zmax"]


def test_difference_of_two_layers_with_shared_interval(synthetic_store_path, monkeypatch):
    at = _heatmap(synthetic_store_path, monkeypatch)
    at.radio(key="heatmap_mode").set_value("difference").run()
    kinds = at.radio(key="difference_kind")
    assert kinds.value == "layer"
    assert set(kinds.options) >= {"another layer", "another pairing", "another run (model)"}
    figure = _figure(at)
    assert f"A = {LAYER_NAMES[-1]}" in figure["layout"]["title"]["text"]
    heat = figure["data"][0]
    assert heat["zmin"] == -heat["zmax"]
    assert "95% intervals from the shared sentence resamples" in _captions(at)
    at.select_slider(key="difference_layer").set_value(1).run()
    assert f"B = {LAYER_NAMES[1]}" in _figure(at)["layout"]["title"]["text"]


def test_difference_of_two_pairings_says_raw_chance_levels_differ(synthetic_store_path,
                                                                  monkeypatch):
    at = _heatmap(synthetic_store_path, monkeypatch)
    at.radio(key="heatmap_mode").set_value("difference").run()
    at.radio(key="difference_kind").set_value("pairing").run()
    title = _figure(at)["layout"]["title"]["text"]
    assert "text-speech" in title and "text-text" in title
    assert "different chance levels" in _captions(at)
    at.sidebar.radio(key="view").set_value("minus_baseline").run()
    _figure(at)
    assert "different chance levels" not in _captions(at)


def test_difference_of_two_runs_without_a_recorded_seed_draws_no_interval(synthetic_store_path,
                                                                         monkeypatch):
    at = _heatmap(synthetic_store_path, monkeypatch)
    at.sidebar.radio(key="pairing").set_value("text-text").run()
    at.radio(key="heatmap_mode").set_value("difference").run()
    at.radio(key="difference_kind").set_value("run").run()
    assert at.selectbox(key="difference_run").value == TEXT_RUN_ID
    figure = _figure(at)
    assert "synthetic-e5" in figure["layout"]["title"]["text"]
    assert "No interval: the runs do not record their seed" in _captions(at)
    assert not [t for t in figure["data"] if t.get("name") == "95% interval excludes 0"]


def test_voice_difference_on_the_tiny_real_store(tiny_store_path, monkeypatch):
    at = _heatmap(tiny_store_path, monkeypatch)
    at.radio(key="heatmap_mode").set_value("difference").run()
    assert "language change vs voice change" not in at.radio(key="difference_kind").options
    assert "pick the speech-speech pairing" in _captions(at)
    at.sidebar.radio(key="pairing").set_value("speech-speech").run()
    at.radio(key="difference_kind").set_value("voice").run()
    figure = _figure(at)
    assert "second voice" in figure["layout"]["title"]["text"]
    assert len(figure["data"][0]["z"]) == 3  # every tiny language has a second voice
    assert "a change of language lowers speech similarity" in _captions(at)
