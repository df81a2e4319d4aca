"""Small multiples of the Projection page (dashboard.charts.projection_layers): one panel per
layer of each component, the points as an image over the row's shared extent, the selection as
markers in every panel."""

from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from dashboard.charts.projection import aligned_map_frames, projection_points
from dashboard.charts import point_raster
from dashboard.charts import projection_layers as layers_module
from dashboard.charts.projection_layers import (
    BACKGROUND_COLOUR,
    BACKGROUND_OPACITY,
    PANEL_PX,
    PANEL_SUPERSAMPLE,
    LayerRow,
    grid_domains,
    layer_images,
    layers_figure,
    position_slices,
    row_bounds,
)

from chart_fixtures import languages, tables  # noqa: F401 - fixtures


def _row(tables, languages, component):
    rows = tables["projections"]
    own = rows[rows["component"] == component]
    frames = [own[own["layer"] == layer].reset_index(drop=True)
              for layer in sorted(own["layer"].unique())]
    points = projection_points(aligned_map_frames(frames), languages)
    bounds = row_bounds(points)
    images = layer_images(points, bounds, n_maps=len(frames))
    return LayerRow(component, points, tuple(f"layer {i}" for i in range(len(frames))), images,
                    bounds)


def test_grid_domains_tile_the_figure_from_the_top_left():
    cells = grid_domains(2, 3, h_gap=0.0, v_gap=0.0)
    assert len(cells) == 6
    assert [*cells[0][0], *cells[0][1]] == pytest.approx([0.0, 1 / 3, 0.5, 1.0])
    assert [*cells[5][0], *cells[5][1]] == pytest.approx([2 / 3, 1.0, 0.0, 0.5])
    for (x0, x1), (y0, y1) in grid_domains(3, 7):
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


def test_layer_images_are_deterministic_pngs_one_per_map(tables, languages):
    row = _row(tables, languages, "text_decoder")
    again = _row(tables, languages, "text_decoder")
    assert len(row.images) == len(row.labels)
    assert all(image.startswith("data:image/png;base64,") for image in row.images)
    assert row.images == again.images
    fewer = row.points[row.points["lang"] != row.points["lang"].iloc[0]]
    assert layer_images(fewer, row.bounds, n_maps=len(row.labels)) != row.images


def test_the_selection_is_drawn_in_every_panel_of_both_components(tables, languages):
    text = _row(tables, languages, "text_decoder")
    speech = _row(tables, languages, "speech_encoder")
    items = tables["items"]
    chosen = [int(i) for i in items[(items["sentence_id"] == 1)
                                    & (items["lang"] == "deu_Latn")]["item_id"]]
    assert len(chosen) == 2  # its text and its speech
    fig = layers_figure([text, speech], languages, colour_by="language", selected=chosen)
    n_panels = len(text.labels) + len(speech.labels)
    assert len(fig.layout.images) == n_panels
    assert len(fig.data) == n_panels  # one marker trace per panel: the item of its modality
    assert all(len(trace.x) == 1 for trace in fig.data)
    # the markers sit where the aligned maps put the item, panel by panel
    first = text.points[(text.points["position"] == 0) & text.points["item_id"].isin(chosen)]
    assert fig.data[0].x[0] == pytest.approx(first["x"].iloc[0], abs=1e-3)
    # one extent per row: every panel of a row shows the same ranges
    ranges = {tuple(fig.layout[f"xaxis{'' if i == 0 else i + 1}"].range)
              for i in range(len(text.labels))}
    assert ranges == {(text.bounds.x0, text.bounds.x1)}
    labels = [a.text for a in fig.layout.annotations]
    assert labels == list(text.labels) + list(speech.labels)
    go.Figure(fig.to_dict())  # plotly accepts what was built without its validation


def test_no_selection_draws_the_maps_alone_and_no_rows_explain(tables, languages):
    row = _row(tables, languages, "speech_encoder")
    fig = layers_figure([row], languages, colour_by="resource level", selected=[])
    assert len(fig.data) == 0 and len(fig.layout.images) == len(row.labels)
    empty = layers_figure([], languages, colour_by="language", selected=[1])
    assert empty.layout.annotations and "No maps" in empty.layout.annotations[0].text


def test_position_slices_keep_each_maps_rows_in_their_order():
    positions = np.array([2, 0, 2, 1, 0, 2])
    assert [p.tolist() for p in position_slices(positions, 4)] == [[1, 4], [3], [0, 2, 5], []]
    assert [p.tolist() for p in position_slices(np.array([], dtype=int), 2)] == [[], []]


def _decoded(uri: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_layer_images_are_greyscale_copies_of_the_drawn_points(tables, languages):
    row = _row(tables, languages, "text_decoder")
    grey = point_raster.hex_rgba(BACKGROUND_COLOUR, BACKGROUND_OPACITY)
    for position, uri in enumerate(row.images):
        image = _decoded(uri)
        assert image.mode == "L"
        xy = row.points.loc[row.points["position"] == position, ["x", "y"]].to_numpy(float)
        drawn = point_raster.rasterise(xy, np.tile(np.array(grey, np.uint8), (len(xy), 1)),
                                       row.bounds, long_side=PANEL_PX, disc_fraction=0.02,
                                       supersample=PANEL_SUPERSAMPLE)
        rgb = np.asarray(drawn)
        # one grey over white: three equal channels, which the greyscale image holds exactly
        assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
        np.testing.assert_array_equal(np.asarray(image), rgb[..., 0])
        assert (np.asarray(image) < 255).any()  # the points are drawn


def test_a_large_selection_hovers_short_labels_a_small_one_the_texts(tables, languages,
                                                                     monkeypatch):
    text = _row(tables, languages, "text_decoder")
    speech = _row(tables, languages, "speech_encoder")
    items = tables["items"]
    chosen = [int(i) for i in items[items["sentence_id"].isin([1, 2])]["item_id"]]
    n_marks = sum(int(r.points["item_id"].isin(chosen).sum()) for r in (text, speech))
    small = layers_figure([text, speech], languages, colour_by="modality", selected=chosen)
    hovers = [h for t in small.data for h in t.hovertext]
    assert len(hovers) == n_marks and all("<br>" in h for h in hovers)  # label and text
    assert all(t.hovertemplate == "%{hovertext}<extra></extra>" for t in small.data)
    monkeypatch.setattr(layers_module, "FULL_HOVER_MARKS", n_marks - 1)
    large = layers_figure([text, speech], languages, colour_by="modality", selected=chosen)
    short = [h for t in large.data for h in t.hovertext]
    assert short == [h.split("<br>")[0] for h in hovers]  # the same items, labels only
    assert all("in the list above" in t.hovertemplate for t in large.data)
    # the markers are where they were, in the same colours
    for a, b in zip(small.data, large.data, strict=True):
        np.testing.assert_array_equal(a.x, b.x)
        assert list(a.marker.color) == list(b.marker.color)
    go.Figure(large.to_dict())
