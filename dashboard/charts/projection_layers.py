"""Small multiples of the Projection page: every layer's aligned map side by side, one row per
component, with the selected items drawn over each (pure; no streamlit).

Why images: one row is 7 to 13 maps of 4,000 points each on the bundled store; as Plotly traces
that is 28,000 to 52,000 points for the browser to draw on every rerun, while here they are only
context for the selection. Each map's points are drawn once per run, component, colouring and
language set into a PNG placed in data coordinates (``point_raster``, as on the recording page);
the selected items stay vector markers with hover text. Panels of one row share their axes'
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
from plotly.subplots import make_subplots

from dashboard.charts import point_raster
from dashboard.charts.common import empty_figure
from dashboard.charts.projection import PROJECTION_COLOURINGS, colour_groups, point_hover
from dashboard.charts.theme import BASELINE_COLOUR, FONT, MODALITY_SYMBOLS, TEMPLATE

#: opacity of the background points in the panels' images
BACKGROUND_OPACITY = 0.35
#: the images' longer side in pixels (a panel is about 200 px wide on screen)
PANEL_PX = 320
#: panels per figure row; a component with more maps wraps
MAX_COLUMNS = 7


@dataclass(frozen=True)
class LayerRow:
    """One component's maps for the small multiples: the aligned points of every map
    (``position`` numbers the maps), each map's label, the images of its points, the extent
    they cover, and the position of the map the page shows large (framed; None: none)."""
    title: str
    points: pd.DataFrame
    labels: tuple[str, ...]
    images: tuple[str, ...]
    bounds: point_raster.Bounds
    current: int | None = None


def row_bounds(points: pd.DataFrame) -> point_raster.Bounds:
    """The extent every panel of a row shows: all its aligned maps' points, padded."""
    return point_raster.padded_bounds(points[["x", "y"]].to_numpy(dtype=float))


def layer_images(points: pd.DataFrame, languages: pd.DataFrame, colour_by: str,
                 bounds: point_raster.Bounds, *, n_maps: int,
                 long_side: int = PANEL_PX) -> tuple[str, ...]:
    """Per map (``position`` 0 to ``n_maps - 1``), a PNG data URI of its points coloured by ``colour_by``,
    faded, covering ``bounds``. Deterministic: the same points give the same bytes."""
    column = PROJECTION_COLOURINGS[colour_by]
    groups, palette, _ = colour_groups(points, languages, colour_by)
    colours = {g: point_raster.hex_rgba(palette.get(g, BASELINE_COLOUR), BACKGROUND_OPACITY)
               for g in groups}
    fallback = point_raster.hex_rgba(BASELINE_COLOUR, BACKGROUND_OPACITY)
    images = []
    for position in range(n_maps):
        here = points[points["position"] == position]
        rgba = np.array([colours.get(g, fallback) for g in here[column]], dtype=np.uint8)
        images.append(point_raster.png_data_uri(point_raster.rasterise(
            here[["x", "y"]].to_numpy(dtype=float), rgba.reshape(-1, 4), bounds,
            long_side=long_side, disc_fraction=0.02)))
    return tuple(images)


def layers_figure(rows: Sequence[LayerRow], languages: pd.DataFrame, *, colour_by: str,
                  selected: Collection[int], title: str = "The selection in every layer") -> go.Figure:
    """One panel per map of each row (its label above), the map's points as a faded image, the
    ``selected`` items as ringed markers coloured by ``colour_by``; each row's ``current`` map
    is framed."""
    rows = [r for r in rows if len(r.labels)]
    if not rows:
        return empty_figure(title, "No maps to show.")
    cols = min(MAX_COLUMNS, max(len(r.labels) for r in rows))
    lines = [-(-len(r.labels) // cols) for r in rows]  # figure rows each component takes
    titles: list[str] = []
    for row, n_lines in zip(rows, lines, strict=True):
        padded = list(row.labels) + [""] * (n_lines * cols - len(row.labels))
        titles += [f"{row.title} · {label}" if label else "" for label in padded]
    fig = make_subplots(rows=sum(lines), cols=cols, subplot_titles=titles,
                        horizontal_spacing=0.01, vertical_spacing=0.06)
    column = PROJECTION_COLOURINGS[colour_by]
    wanted = list(selected)
    images, axes, first_line = [], {}, 0
    for row, n_lines in zip(rows, lines, strict=True):
        _, palette, _ = colour_groups(row.points, languages, colour_by)
        b = row.bounds
        for position, image in enumerate(row.images):
            r, c = first_line + position // cols + 1, position % cols + 1
            subplot = fig.get_subplot(r, c)
            x_name, y_name = subplot.xaxis.plotly_name, subplot.yaxis.plotly_name
            x_ref, y_ref = x_name.replace("axis", ""), y_name.replace("axis", "")
            images.append(dict(source=image, xref=x_ref, yref=y_ref, x=b.x0, y=b.y1,
                               sizex=b.width, sizey=b.height, xanchor="left", yanchor="top",
                               sizing="stretch", layer="below"))
            axes[x_name] = dict(range=[b.x0, b.x1], constrain="domain",
                                showline=position == row.current, mirror=True, linewidth=2,
                                linecolor="#111111")
            axes[y_name] = dict(range=[b.y0, b.y1], constrain="domain", scaleanchor=x_ref,
                                scaleratio=1, showline=position == row.current, mirror=True,
                                linewidth=2, linecolor="#111111")
            here = row.points[(row.points["position"] == position)
                              & row.points["item_id"].isin(wanted)]
            if here.empty:
                continue
            fig.add_trace(go.Scatter(
                x=here["x"], y=here["y"], mode="markers", showlegend=False,
                marker=dict(color=here[column].map(palette).fillna(BASELINE_COLOUR).tolist(),
                            size=7, line=dict(width=1, color="#111111"),
                            symbol=here["modality"].map(MODALITY_SYMBOLS).fillna("circle")
                            .tolist()),
                hovertext=point_hover(here), hovertemplate="%{hovertext}<extra></extra>"),
                row=r, col=c)
        first_line += n_lines
    fig.update_xaxes(showticklabels=False, zeroline=False, showgrid=False)
    fig.update_yaxes(showticklabels=False, zeroline=False, showgrid=False)
    fig.update_annotations(font=dict(size=11))
    fig.update_layout(images=images, template=TEMPLATE, font=FONT,
                      title=dict(text=html.escape(title)), height=90 + 230 * sum(lines),
                      margin=dict(l=10, r=10, t=70, b=10), showlegend=False,
                      hovermode="closest", **axes)
    return fig
