"""Small multiples of the Projection page: every layer's aligned map side by side, one row per
component, with the selected items drawn over each (pure; no streamlit).

Why images: one row is 7 to 13 maps of 4,000 points each on the bundled store; as Plotly traces
that is 28,000 to 52,000 points for the browser to draw on every rerun, while here they are only
context for the selection. Each map's points are drawn once per run, component and language set
into a grey PNG placed in data coordinates (``point_raster``, as on the recording page); the
selected items stay vector markers, in the page's colouring, with hover text. Grey, not the
colouring: the selection stands out, and a change of colouring redraws no image (drawing a
component's images takes about 0.7 s). Panels of one row share their axes'
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
from dashboard.charts.projection import PROJECTION_COLOURINGS, colour_groups, point_hover
from dashboard.charts.theme import BASELINE_COLOUR, FONT, MODALITY_SYMBOLS, TEMPLATE

#: colour and opacity of the background points in the panels' images
BACKGROUND_COLOUR = "#8a8a8a"
BACKGROUND_OPACITY = 0.3
#: the images' longer side in pixels (a panel is about 200 px wide on screen)
PANEL_PX = 320
#: panels per figure row; a component with more maps wraps
MAX_COLUMNS = 7


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
    covering ``bounds``. Deterministic: the same points give the same bytes."""
    grey = point_raster.hex_rgba(BACKGROUND_COLOUR, BACKGROUND_OPACITY)
    images = []
    for position in range(n_maps):
        xy = points.loc[points["position"] == position, ["x", "y"]].to_numpy(dtype=float)
        rgba = np.tile(np.array(grey, dtype=np.uint8), (len(xy), 1))
        images.append(point_raster.png_data_uri(point_raster.rasterise(
            xy, rgba, bounds, long_side=long_side, disc_fraction=0.02)))
    return tuple(images)


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
                  selected: Collection[int], title: str = "The selection in every layer"
                  ) -> go.Figure:
    """One panel per map of each row (its label above), the map's points as a faded image, the
    ``selected`` items as ringed markers coloured by ``colour_by``. Built as plain dicts (plotly
    objects validate every value: most of a rerun's time); the tests check that plotly accepts
    them."""
    rows = [r for r in rows if len(r.labels)]
    if not rows:
        return empty_figure(title, "No maps to show.")
    cols = min(MAX_COLUMNS, max(len(r.labels) for r in rows))
    lines = [-(-len(r.labels) // cols) for r in rows]  # figure rows each component takes
    cells = grid_domains(sum(lines), cols)
    column = PROJECTION_COLOURINGS[colour_by]
    wanted = list(selected)
    traces, images, annotations, axes, first_line = [], [], [], {}, 0
    for row, n_lines in zip(rows, lines, strict=True):
        _, palette, _ = colour_groups(row.points, languages, colour_by)
        b = row.bounds
        picked = row.points[row.points["item_id"].isin(wanted)]
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
            here = picked[picked["position"] == position]
            if here.empty:
                continue
            traces.append(dict(
                type="scatter", x=here["x"].to_numpy(), y=here["y"].to_numpy(),
                xaxis=x_ref, yaxis=y_ref, mode="markers", showlegend=False,
                marker=dict(color=here[column].map(palette).fillna(BASELINE_COLOUR).to_numpy(
                                dtype=object),
                            size=7, line=dict(width=1, color="#111111"),
                            symbol=here["modality"].map(MODALITY_SYMBOLS).fillna("circle")
                            .to_numpy(dtype=object)),
                hovertext=np.asarray(here["hover"] if "hover" in here else point_hover(here),
                                     dtype=object),
                hovertemplate="%{hovertext}<extra></extra>"))
        first_line += n_lines
    layout = dict(images=images, annotations=annotations, template=TEMPLATE, font=FONT,
                  title=dict(text=html.escape(title)), height=80 + 200 * sum(lines),
                  margin=dict(l=30, r=10, t=70, b=10), showlegend=False, hovermode="closest",
                  **axes)
    return go.Figure(dict(data=traces, layout=layout), _validate=False)
