"""Small multiples of the Projection page: every layer's aligned map side by side, one row per
component, with the selected items drawn over each (pure; no streamlit).

Why images: one row is 7 to 13 maps of 4,000 points each on the bundled store; as Plotly traces
that is 28,000 to 52,000 points for the browser to draw on every rerun, while here they are only
context for the selection. Each map's points are drawn once per run, component and language set
into a grey PNG placed in data coordinates (``point_raster``, as on the recording page); the
selected items stay vector markers, in the page's colouring, with hover text (short labels
for a selection of thousands, ``FULL_HOVER_MARKS``). Grey, not the
colouring: the selection stands out, and a change of colouring redraws no image (drawing a
component's 7 images takes about 45 ms on the bundled store). Panels of one row share their axes'
ranges, the extent of all its aligned maps, so a point's travel from panel to panel is its
movement between layers.
"""

from __future__ import annotations

import html
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import point_raster
from dashboard.charts.common import empty_figure
from dashboard.charts.projection import (
    PROJECTION_COLOURINGS,
    colour_groups,
    point_hover,
    point_label,
)
from dashboard.charts.theme import BASELINE_COLOUR, FONT, MODALITY_SYMBOLS, TEMPLATE

#: colour and opacity of the background points in the panels' images
BACKGROUND_COLOUR = "#8a8a8a"
BACKGROUND_OPACITY = 0.3
#: the images' longer side in pixels (a panel is about 200 px wide on screen)
PANEL_PX = 320
#: drawn this many times larger, then reduced (``point_raster.rasterise``): 2, not the recording
#: page's 3, looks the same at this size (the panels' overlapping grey discs) and draws the
#: images of a component a third faster (a selection's first rerun draws them)
PANEL_SUPERSAMPLE = 2
#: panels per figure row; a component with more maps wraps
MAX_COLUMNS = 7
#: up to this many markers in all panels, each one's hover shows its sentence's text; above it
#: only its short label (language, modality, sentence), the text being in the list above the
#: panels. Why: every item is drawn once per layer, so the texts of a large selection were most
#: of the figure (2.7 of 4.1 MB, and most of the page's rerun, for 2,680 items in 14 panels);
#: 5,000 markers (a selection of 700 items in 7 layers) keep them under about 0.8 MB
FULL_HOVER_MARKS = 5_000
#: the hover of a marker without its text (``FULL_HOVER_MARKS``)
SHORT_HOVER = "%{hovertext}<br><i>(its text: in the list above)</i><extra></extra>"


@dataclass(frozen=True)
class LayerRow:
    """One component's maps for the small multiples: the aligned points of every map
    (``position`` numbers the maps), each map's label, the images of its points and the extent
    they cover."""
    title: str
    points: pd.DataFrame
    labels: tuple[str, ...]
    images: tuple[str, ...]
    bounds: point_raster.Bounds


def row_bounds(points: pd.DataFrame) -> point_raster.Bounds:
    """The extent every panel of a row shows: all its aligned maps' points, padded."""
    return point_raster.padded_bounds(points[["x", "y"]].to_numpy(dtype=float))


def layer_images(points: pd.DataFrame, bounds: point_raster.Bounds, *, n_maps: int,
                 long_side: int = PANEL_PX) -> tuple[str, ...]:
    """Per map (``position`` 0 to ``n_maps - 1``), a PNG data URI of its points in faded grey,
    covering ``bounds``. Deterministic: the same points give the same bytes.

    Why greyscale PNGs: the points are one grey blended over white, so the image's three
    channels are equal and a one-channel PNG holds it exactly, with no palette to compute
    (quantising was a third of each image's time)."""
    grey = point_raster.hex_rgba(BACKGROUND_COLOUR, BACKGROUND_OPACITY)
    if not grey[0] == grey[1] == grey[2]:
        raise ValueError(f"the background colour must be a grey: {BACKGROUND_COLOUR}")
    xy = points[["x", "y"]].to_numpy(dtype=float)
    images = []
    for rows in position_slices(points["position"].to_numpy(), n_maps):
        own = xy[rows]
        rgba = np.tile(np.array(grey, dtype=np.uint8), (len(own), 1))
        image = point_raster.rasterise(own, rgba, bounds, long_side=long_side,
                                       disc_fraction=0.02, supersample=PANEL_SUPERSAMPLE)
        images.append(point_raster.png_data_uri(image.convert("L"), colours=None))
    return tuple(images)


def position_slices(positions: np.ndarray, n_maps: int) -> list[np.ndarray]:
    """Row numbers of each map's points (``positions[i]`` is row i's map, 0 to ``n_maps - 1``),
    in their original order: one stable sort instead of a filter per map."""
    positions = np.asarray(positions)
    order = np.argsort(positions, kind="stable")
    cuts = np.searchsorted(positions[order], np.arange(n_maps + 1), side="left")
    return [order[cuts[p]:cuts[p + 1]] for p in range(n_maps)]


def grid_domains(n_lines: int, cols: int, *, h_gap: float = 0.01, v_gap: float = 0.06
                 ) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """(x domain, y domain) of every cell of an ``n_lines`` x ``cols`` grid, row by row from the
    top (what ``make_subplots`` computes, without building its figure)."""
    width = (1 - h_gap * (cols - 1)) / cols
    height = (1 - v_gap * (n_lines - 1)) / n_lines
    cells = []
    for line in range(n_lines):
        top = 1 - line * (height + v_gap)
        for col in range(cols):
            left = col * (width + h_gap)
            cells.append(((left, left + width), (max(0.0, top - height), top)))
    return cells


def layers_figure(rows: Sequence[LayerRow], languages: pd.DataFrame, *, colour_by: str,
                  selected: Collection[int], title: str = "The selection in every layer",
                  marks: Sequence[dict[str, np.ndarray]] | None = None) -> go.Figure:
    """One panel per map of each row (its label above), the map's points as a faded image, the
    ``selected`` items as ringed markers coloured by ``colour_by``, their hover labels with the
    sentence's text up to ``FULL_HOVER_MARKS`` markers (their short labels above). ``marks``:
    each row's ``point_marks`` when the caller has them cached (made here otherwise). Built as
    plain dicts (plotly objects validate every value: most of a rerun's time); the tests check
    that plotly accepts them."""
    if marks is None:
        marks = [point_marks(row.points, languages, colour_by) for row in rows]
    kept = [(row, own) for row, own in zip(rows, marks, strict=True) if len(row.labels)]
    if not kept:
        return empty_figure(title, "No maps to show.")
    rows = [row for row, _ in kept]
    cols = min(MAX_COLUMNS, max(len(r.labels) for r in rows))
    lines = [-(-len(r.labels) // cols) for r in rows]  # figure rows each component takes
    cells = grid_domains(sum(lines), cols)
    wanted = np.fromiter((int(i) for i in selected), dtype=np.int64)
    picked = [{key: values[np.isin(own["item_id"], wanted)] for key, values in own.items()}
              for _, own in kept]
    full = sum(len(p["item_id"]) for p in picked) <= FULL_HOVER_MARKS
    template = "%{hovertext}<extra></extra>" if full else SHORT_HOVER
    traces, images, annotations, axes, first_line = [], [], [], {}, 0
    for row, own, n_lines in zip(rows, picked, lines, strict=True):
        b = row.bounds
        hover = own["hover" if full else "label"]
        panels = position_slices(own["position"], len(row.labels))
        for position, (image, label) in enumerate(zip(row.images, row.labels, strict=True)):
            cell = first_line * cols + position
            (x0, x1), (y0, y1) = cells[cell]
            n = "" if cell == 0 else str(cell + 1)
            x_ref, y_ref = f"x{n}", f"y{n}"
            frame = dict(showline=True, mirror=True, linewidth=1, linecolor="#dddddd",
                         showticklabels=False, zeroline=False, showgrid=False,
                         constrain="domain")
            axes[f"xaxis{n}"] = dict(frame, domain=[x0, x1], anchor=y_ref, range=[b.x0, b.x1])
            axes[f"yaxis{n}"] = dict(frame, domain=[y0, y1], anchor=x_ref, range=[b.y0, b.y1],
                                     scaleanchor=x_ref, scaleratio=1)
            if position % cols == 0:  # the component's name at the start of each of its lines
                axes[f"yaxis{n}"]["title"] = dict(text=html.escape(row.title),
                                                  font=dict(size=11))
            annotations.append(dict(text=html.escape(label), x=(x0 + x1) / 2, y=y1,
                                    xref="paper", yref="paper", xanchor="center",
                                    yanchor="bottom", showarrow=False, font=dict(size=11)))
            images.append(dict(source=image, xref=x_ref, yref=y_ref, x=b.x0, y=b.y1,
                               sizex=b.width, sizey=b.height, xanchor="left", yanchor="top",
                               sizing="stretch", layer="below"))
            here = panels[position]
            if not len(here):
                continue
            symbols = own["symbol"][here]
            traces.append(dict(
                type="scatter", x=own["x"][here], y=own["y"][here],
                xaxis=x_ref, yaxis=y_ref, mode="markers", showlegend=False,
                marker=dict(color=own["colour"][here], size=7,
                            line=dict(width=1, color="#111111"),
                            symbol=symbols[0] if (symbols == symbols[0]).all() else symbols),
                hovertext=hover[here], hovertemplate=template))
        first_line += n_lines
    layout = dict(images=images, annotations=annotations, template=TEMPLATE, font=FONT,
                  title=dict(text=html.escape(title)), height=80 + 200 * sum(lines),
                  margin=dict(l=30, r=10, t=70, b=10), showlegend=False, hovermode="closest",
                  **axes)
    return go.Figure(dict(data=traces, layout=layout), _validate=False)


def point_marks(points: pd.DataFrame, languages: pd.DataFrame, colour_by: str
                ) -> dict[str, np.ndarray]:
    """One row's points (every map's) as the arrays its markers read: ``item_id``,
    ``position``, ``x``, ``y``, marker ``colour`` (``colour_by``'s palette) and ``symbol`` (the
    modality's), ``hover`` (the points' ``hover`` column, else ``point_hover``) and ``label``
    (``label``, else ``point_label``). Made once per row, language set and colouring (the page
    caches them), so a selection only picks rows out of arrays."""
    _, palette, _ = colour_groups(points, languages, colour_by)
    column = PROJECTION_COLOURINGS[colour_by]
    return {
        "item_id": points["item_id"].to_numpy(dtype=np.int64),
        "position": points["position"].to_numpy(dtype=np.int64),
        "x": points["x"].to_numpy(dtype=np.float32),  # a panel is 200 px: 4 bytes a value
        "y": points["y"].to_numpy(dtype=np.float32),  # are plenty, and half of 8 to send
        "colour": points[column].map(palette).fillna(BASELINE_COLOUR).to_numpy(dtype=object),
        "symbol": points["modality"].map(MODALITY_SYMBOLS).fillna("circle").to_numpy(
            dtype=object),
        "hover": np.asarray(points["hover"] if "hover" in points else point_hover(points),
                            dtype=object),
        "label": np.asarray(points["label"] if "label" in points else point_label(points),
                            dtype=object)}
