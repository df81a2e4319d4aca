"""Projection (UMAP) maps and figures: joint members, symbols per modality, colourings,
connected sentences, previews."""

from __future__ import annotations

import pandas as pd
import pytest

from dashboard.charts.languages import language_palette
from dashboard.charts.projection import (
    projection_figure,
    projection_maps,
    projection_points,
    sentence_previews,
)
from chart_fixtures import languages, tables
from synthetic_store import LAYER_NAMES, SHARED_RUN_ID


def test_projection_maps_group_joint_members(tables):
    # the speech-LLM run: text and speech meet in the LLM's space, mapped jointly there only
    run = tables["runs"][SHARED_RUN_ID]
    rows = run["projections"]
    maps = projection_maps(rows[["component", "layer", "method", "params"]],
                           run["components"])
    joint = maps[maps["components"] == "llm_text + llm_speech"].reset_index(drop=True)
    assert list(joint["members"]) == [(("llm_text", 2), ("llm_speech", 4)),
                                      (("llm_text", 3), ("llm_speech", 5)),
                                      (("llm_text", 4), ("llm_speech", 7))]
    assert joint.loc[2, "label"] == "llm_text llm 4 · llm_speech llm 4"
    assert joint.loc[0, "label"] == "llm_text llm 2 · llm_speech llm 1"
    # points of the audio space are never mapped together with text
    alone = maps[maps["components"] == "llm_speech"]
    assert {m[0][1] for m in alone["members"]} == {0, 1, 2, 3, 6}


def test_projection_maps_of_different_spaces_are_separate(tables):
    rows = tables["projections"]  # Whisper-like: encoder and decoder spaces differ
    maps = projection_maps(rows[["component", "layer", "method", "params"]],
                           tables["components"])
    assert sorted(set(maps["components"])) == ["speech_encoder", "text_decoder"]
    assert len(maps) == 2 * len(LAYER_NAMES)
    assert list(maps[maps["components"] == "text_decoder"]["label"]) == list(LAYER_NAMES)


def test_projection_maps_without_joint_params_are_single_layers():
    rows = pd.DataFrame({"component": ["a", "a"], "layer": [0, 1], "method": "umap",
                         "params": ['{"seed": 0}', None]})
    maps = projection_maps(rows)
    assert list(maps["members"]) == [(("a", 0),), (("a", 1),)]
    assert list(maps["label"]) == ["layer 0", "layer 1"]


def _layer_points(tables, languages, layer=0):
    rows = tables["projections"]
    return projection_points(rows[rows["layer"] == layer], languages)


def test_projection_by_language_uses_symbols_for_modality(tables, languages):
    points = _layer_points(tables, languages)
    fig = projection_figure(points, languages, colour_by="language")
    colour_traces = [t for t in fig.data if t.legendgroup == "colour"]
    assert [t.name for t in colour_traces] == ["English", "German", "Spanish", "Hindi", "Swahili",
                                               "Yoruba"]
    assert sum(len(t.x) for t in colour_traces) == len(points)
    assert set(colour_traces[0].marker.symbol) == {"circle", "diamond"}
    assert {t.name for t in fig.data if t.legendgroup == "symbols"} == {"text", "speech"}
    assert "UMAP 1" in fig.layout.xaxis.title.text and "UMAP 2" in fig.layout.yaxis.title.text
    assert "[eng_Latn #0]" in " ".join(colour_traces[0].hovertext)


def test_projection_of_some_languages_keeps_each_languages_colour(tables, languages):
    """A projection showing only some languages (the sidebar's choice) colours them as the
    whole table does, like the recording page's charts."""
    points = _layer_points(tables, languages)
    some = points[points["lang"].isin(["hin_Deva", "yor_Latn"])]
    fig = projection_figure(some, languages, colour_by="language")
    colours = {t.name: t.marker.color for t in fig.data if t.legendgroup == "colour"}
    whole = language_palette(languages)
    assert colours == {"Hindi": whole["hin_Deva"], "Yoruba": whole["yor_Latn"]}


@pytest.mark.parametrize("colour_by, groups", [("modality", ["text", "speech"]),
                                                ("resource level", ["high resource",
                                                                    "medium resource",
                                                                    "low resource"])])
def test_projection_other_colourings(tables, languages, colour_by, groups):
    fig = projection_figure(_layer_points(tables, languages), languages, colour_by=colour_by)
    assert [t.name for t in fig.data if t.legendgroup == "colour"] == groups


def test_projection_connects_a_sentence(tables, languages):
    points = _layer_points(tables, languages, layer=2)
    fig = projection_figure(points, languages, sentence_id=3)
    links = [t for t in fig.data if t.name and t.name.startswith("sentence 3")]
    assert len(links) == 3  # text path, speech path, text<->speech segments
    text_path = [t for t in links if "text across" in t.name][0]
    assert len(text_path.x) == 6
    segments = [t for t in links if "↔" in t.name][0]
    assert len(segments.x) == 6 * 3  # (text, speech, gap) per language


def test_projection_rejects_unknown_colouring_and_explains_empty(tables, languages):
    with pytest.raises(ValueError, match="colour_by"):
        projection_figure(_layer_points(tables, languages), languages, colour_by="size")
    empty = projection_figure(_layer_points(tables, languages).iloc[0:0], languages)
    assert len(empty.data) == 0 and empty.layout.annotations


def test_sentence_previews_prefer_english(tables, languages):
    previews = sentence_previews(_layer_points(tables, languages))
    assert len(previews) == 8 and previews[2].startswith("[eng_Latn #2]")
