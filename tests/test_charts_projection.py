"""Projection (UMAP) maps and figures: joint members, symbols per modality, colourings,
connected sentences, previews."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard.charts.languages import language_palette
from dashboard.charts.projection import (
    aligned_map_frames,
    item_labels,
    map_base,
    map_views,
    partner_positions,
    point_hover,
    point_label,
    projection_figure,
    projection_maps,
    projection_points,
    selection_trace,
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


# ------------------------------------------------- aligned maps, views, selection (issue 22)

def _valid(fig) -> None:
    """Plotly accepts the figure as built (the builders skip plotly's per-value validation)."""
    import plotly.graph_objects as go

    go.Figure(fig.to_dict())


def test_map_views_put_text_and_speech_side_by_side_where_spaces_differ(tables):
    rows = tables["projections"][["component", "layer", "method", "params"]]
    views = map_views(projection_maps(rows, tables["components"]), tables["components"])
    assert list(views) == ["text_decoder | speech_encoder (side by side)", "speech_encoder",
                           "text_decoder"]
    assert views["text_decoder | speech_encoder (side by side)"] == ("text_decoder",
                                                                    "speech_encoder")


def test_map_views_of_a_run_with_joint_maps_have_no_side_by_side(tables):
    run = tables["runs"][SHARED_RUN_ID]
    rows = run["projections"][["component", "layer", "method", "params"]]
    views = map_views(projection_maps(rows, run["components"]), run["components"])
    assert all(len(members) == 1 for members in views.values())
    assert "llm_text + llm_speech" in views


def test_partner_positions_pick_the_nearest_depth():
    assert partner_positions([0.0, 0.5, 1.0], [0.0, 0.25, 0.5, 0.75, 1.0]) == [0, 2, 4]
    assert partner_positions([0.0, 0.3, 1.0], [0.0, 0.6]) == [0, 0, 1]
    assert partner_positions([0.5], [0.25, 0.75]) == [0]  # a tie: the earlier one
    with pytest.raises(ValueError, match="no maps"):
        partner_positions([0.0], [])


def _map_frames(tables, component="text_decoder"):
    rows = tables["projections"]
    own = rows[rows["component"] == component]
    return [own[own["layer"] == layer].reset_index(drop=True)
            for layer in sorted(own["layer"].unique())]


def test_aligned_map_frames_undo_a_turned_layer_and_keep_its_distances(tables):
    frames = _map_frames(tables)
    reference = aligned_map_frames(frames)
    turned = [f.copy() for f in frames]
    angle = 2.1
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    xy = turned[2][["x", "y"]].to_numpy() @ rotation @ np.diag([1.0, -1.0]) + [40.0, -7.0]
    turned[2] = turned[2].assign(x=xy[:, 0], y=xy[:, 1]).sample(frac=1.0, random_state=0)
    aligned = aligned_map_frames(turned)
    assert list(aligned.groupby("position").size()) == [len(f) for f in frames]
    for position in range(len(frames)):
        a = reference[reference["position"] == position].sort_values("item_id")
        b = aligned[aligned["position"] == position].sort_values("item_id")
        np.testing.assert_allclose(b[["x", "y"]].to_numpy(), a[["x", "y"]].to_numpy(),
                                   atol=1e-9)
    first = aligned[aligned["position"] == 0].sort_values("item_id")
    np.testing.assert_array_equal(first[["x", "y"]].to_numpy(),
                                  frames[0].sort_values("item_id")[["x", "y"]].to_numpy())
    assert aligned_map_frames([]).empty


def test_selected_items_are_drawn_on_top_and_the_rest_fades(tables, languages):
    points = _layer_points(tables, languages)
    chosen = [int(i) for i in points["item_id"].iloc[[0, 5, 9]]] + [10**9]  # one not on the map
    fig = projection_figure(points, languages, selected=chosen)
    on_top = [t for t in fig.data if t.legendgroup == "selection"]
    assert len(on_top) == 1 and sorted(on_top[0].customdata) == sorted(chosen[:3])
    assert on_top[0].name == "selected (3)"
    colour = [t for t in fig.data if t.legendgroup == "colour"]
    assert all(t.marker.opacity < 0.5 for t in colour)
    # every point carries its item id, the selection's points their own colour and symbol
    assert sorted(i for t in colour for i in t.customdata) == sorted(points["item_id"])
    by_id = {int(i): (t.marker.color, s) for t in colour
             for i, s in zip(t.customdata, np.broadcast_to(t.marker.symbol, len(t.customdata)),
                             strict=True)}
    for item, colour_, symbol in zip(on_top[0].customdata, on_top[0].marker.color,
                                     np.broadcast_to(on_top[0].marker.symbol,
                                                     len(on_top[0].customdata)), strict=True):
        assert by_id[int(item)] == (colour_, symbol)
    # the selection sends no labels of its own: hovering it shows its faded point's, which lies
    # exactly beneath
    assert on_top[0].hoverinfo == "skip" and on_top[0].hovertext is None
    beneath = {(float(x), float(y)): text for t in colour
               for x, y, text in zip(t.x, t.y, t.hovertext, strict=True)}
    assert all(beneath.get((float(x), float(y))) for x, y in zip(on_top[0].x, on_top[0].y,
                                                                 strict=True))
    _valid(fig)


def test_no_selection_on_the_map_leaves_it_unfaded(tables, languages):
    points = _layer_points(tables, languages)
    fig = projection_figure(points, languages, selected=[10**9], sentence_id=2,
                            ranges=((-20.0, 20.0), (-10.0, 10.0)), legend=False)
    assert not [t for t in fig.data if t.legendgroup == "selection"]
    assert all(t.marker.opacity > 0.5 for t in fig.data if t.legendgroup == "colour")
    assert list(fig.layout.xaxis.range) == [-20.0, 20.0] and fig.layout.showlegend is False
    _valid(fig)


def test_a_cached_base_gives_the_same_figure(tables, languages):
    points = _layer_points(tables, languages)
    base = map_base(points, languages, "modality")
    chosen = [int(points["item_id"].iloc[3])]
    built = projection_figure(points, languages, colour_by="modality", selected=chosen)
    reused = projection_figure(points, languages, colour_by="modality", selected=chosen, base=base)
    assert built.to_json() == reused.to_json()
    assert selection_trace(base, []) is None


def test_map_base_uses_precomputed_hover_labels(tables, languages):
    points = _layer_points(tables, languages)
    labelled = points.assign(hover=[f"label {i}" for i in points["item_id"]])
    base = map_base(labelled, languages)
    for trace in base["traces"]:
        assert list(trace["hovertext"]) == [f"label {i}" for i in trace["customdata"]]


def test_item_labels_equal_each_rows_own_labels_made_once_per_item(tables, languages):
    rows = tables["projections"]
    frames = [rows[rows["layer"] == layer].reset_index(drop=True)
              for layer in sorted(rows["layer"].unique())]
    points = projection_points(aligned_map_frames(frames), languages)
    assert points["item_id"].duplicated().any()  # each item once per layer
    labels = item_labels(points)
    assert list(labels.index) == list(points.index)
    assert list(labels["hover"]) == point_hover(points)
    assert list(labels["label"]) == point_label(points)
    # the short label is the hover label's first line
    assert all(h.split("<br>")[0] == s for h, s in zip(labels["hover"], labels["label"],
                                                        strict=True))
    assert item_labels(points.iloc[:0]).empty
