"""Figures of the "Your recording" page (pure: frames/arrays in, plotly Figures out; no streamlit)."""

from __future__ import annotations

import html
import math
import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.box_stats import box_stats
from core.recording import FrameView
from dashboard.charts import point_raster
from dashboard.charts.common import empty_figure, wrap
from dashboard.charts.languages import language_names, language_order, language_palette
from dashboard.charts.projection import joint_members
from dashboard.charts.theme import BASELINE_COLOUR, FONT, OKABE_ITO, TEMPLATE

RECORDING_COLOUR = OKABE_ITO["vermillion"]
TRANSCRIPT_COLOUR = OKABE_ITO["blue"]
QUERY_COLOURS = {"recording": RECORDING_COLOUR, "transcript": TRANSCRIPT_COLOUR}
QUERY_SYMBOLS = {"recording": "star", "transcript": "x"}
CORPUS_COLOUR = OKABE_ITO["green"]
#: short value-axis titles (the page's caption gives the full description)
AXIS_LABEL = {"cosine": "cosine", "rsa": "profile correlation (RSA)"}
#: the agreement summary's columns (``core.recording.agreement_summary``) as the page shows
#: them, with what each says (the table's column help)
AGREEMENT_COLUMNS: dict[str, tuple[str, str]] = {
    "layer_name": ("layer", "The speech layer; the text side is read at the layer of the same "
                            "relative depth."),
    "measure": ("measure", "cosine: both sides share one space. profile correlation (RSA): the "
                           "spaces differ, so the clip's similarities to the stored sentences "
                           "are correlated with its text's."),
    "recording": ("your clip", "Agreement of your recording with its text at this layer, in "
                               "the row's measure: 1 = full agreement (the same direction, or "
                               "the same similarities to the stored sentences)."),
    "corpus_mean": ("corpus, same sentence: mean", "Mean agreement of the corpus's own speech "
                    "with the text of the same sentence: what a matching clip usually scores."),
    "corpus_p10": ("corpus: 10th percentile", "80% of the corpus's same-sentence pairs lie "
                   "between the 10th and the 90th percentile."),
    "corpus_p90": ("corpus: 90th percentile", "80% of the corpus's same-sentence pairs lie "
                   "between the 10th and the 90th percentile."),
    "shuffled_mean": ("other sentence (chance): mean", "Mean agreement of corpus speech with "
                      "the text of a different sentence: the chance level."),
    "percentile": ("your clip's percentile", "Share (%) of the corpus's same-sentence pairs "
                   "below your clip: 50 = a typical match, near 0 = below almost all of them."),
    "n_corpus": ("corpus pairs", "How many same-sentence pairs of the corpus the row compares "
                                 "with."),
    "corpus_scope": ("corpus pairs from", "The clip's language when the corpus holds it, else "
                                          "every language."),
}


def agreement_table(summary: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """The agreement summary as the page shows it: reader's column names (``AGREEMENT_COLUMNS``)
    and measure names, and each shown column's help text keyed by its new name."""
    shown = [c for c in AGREEMENT_COLUMNS if c in summary.columns]
    table = summary[shown].copy()
    if "measure" in table:
        table["measure"] = table["measure"].map(lambda m: AXIS_LABEL.get(m, m))
    if "corpus_scope" in table:
        table["corpus_scope"] = table["corpus_scope"].replace({"language": "the clip's language"})
    names = {c: AGREEMENT_COLUMNS[c][0] for c in shown}
    return table.rename(columns=names), {names[c]: AGREEMENT_COLUMNS[c][1] for c in shown}


#: small multiples per row in the map figure
MAP_COLUMNS = 4
#: the stored points' opacity in the maps (the clip's markers are opaque)
STORED_OPACITY = 0.55
#: the maps' legend of the stored items' languages (a second legend: the first is the clip's)
LANGUAGE_LEGEND = "legend2"
#: the maps' top margin, and where in it their title's middle sits (px from the figure's top):
#: the clip's legend takes the first ~25 px
MAP_TOP_PX = 84
MAP_TITLE_FROM_TOP_PX = 50


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title=dict(text=title), template=TEMPLATE, font=FONT, height=height,
                      margin=dict(l=10, r=10, t=60, b=10))
    return fig


def envelope(waveform: np.ndarray, sampling_rate: int, *, max_points: int = 1500
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, minima, maxima) per block: a waveform drawn with at most ``max_points`` columns."""
    wave = np.asarray(waveform, dtype=np.float32)
    if wave.size == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    block = max(1, math.ceil(wave.size / max_points))
    n = math.ceil(wave.size / block)
    padded = np.pad(wave, (0, n * block - wave.size), constant_values=np.nan).reshape(n, block)
    times = np.arange(n) * block / sampling_rate
    return times, np.nanmin(padded, axis=1), np.nanmax(padded, axis=1)


def waveform_figure(waveform: np.ndarray, sampling_rate: int, *, title: str = "Waveform"
                    ) -> go.Figure:
    """The clip's waveform as a min/max envelope over time."""
    times, low, high = envelope(waveform, sampling_rate)
    if times.size == 0:
        return empty_figure(title, "No samples.")
    fig = go.Figure([
        go.Scatter(x=times, y=high, mode="lines", line=dict(width=0.6, color=RECORDING_COLOUR),
                   hoverinfo="skip", showlegend=False),
        go.Scatter(x=times, y=low, mode="lines", line=dict(width=0.6, color=RECORDING_COLOUR),
                   fill="tonexty", fillcolor="rgba(213,94,0,0.45)", hoverinfo="skip",
                   showlegend=False),
    ])
    fig.update_xaxes(title=dict(text="time (s)"), range=[0, len(waveform) / sampling_rate])
    fig.update_yaxes(title=dict(text="amplitude"), range=[-1.05, 1.05])
    return _layout(fig, title, 220).update_layout(margin=dict(l=10, r=10, t=40, b=10))


def neighbour_score_figure(neighbours: pd.DataFrame, languages: pd.DataFrame, component: str,
                           *, title: str | None = None) -> go.Figure:
    """Cosine of the k nearest stored items per layer (one dot each, colour = its language,
    label = its rank), the nearest joined by a line: how the neighbourhood changes over depth."""
    rows = neighbours[neighbours["component"] == component]
    title = title or f"Nearest stored items per layer · {component}"
    if rows.empty:
        return empty_figure(title, "No stored states to compare with.")
    names = language_names(languages)
    order = language_order(languages, rows["lang"].unique())
    palette = language_palette(languages, order)  # the maps' colours too
    layer_names = list(dict.fromkeys(rows.sort_values("layer")["layer_name"]))
    fig = go.Figure()
    top = rows[rows["rank"] == 1].sort_values("layer")
    fig.add_trace(go.Scatter(x=top["layer_name"], y=top["score"], mode="lines",
                             line=dict(color=BASELINE_COLOUR, width=1.5), name="nearest",
                             hoverinfo="skip"))
    for lang in order:
        subset = rows[rows["lang"] == lang]
        hover = [f"#{r.rank} · <b>{html.escape(names.get(lang, lang))}</b> · {r.modality} · "
                 f"sentence {r.sentence_id}<br>{wrap(r.text)}<br>cosine {r.score:.4f}"
                 for r in subset.itertuples()]
        fig.add_trace(go.Scatter(
            x=subset["layer_name"], y=subset["score"], mode="markers+text", name=names.get(lang, lang),
            text=[str(r) for r in subset["rank"]], textposition="middle right",
            textfont=dict(size=10, color="#555555"),
            marker=dict(color=palette[lang], size=11, line=dict(width=0.6, color="white")),
            hovertext=hover, hovertemplate="%{hovertext}<extra></extra>"))
    query = str(rows["query"].iloc[0])
    fig.update_xaxes(title=dict(text="layer"), categoryorder="array", categoryarray=layer_names)
    fig.update_yaxes(title=dict(text=f"cosine to the {query}"))
    return _layout(fig, title, 420).update_layout(legend=dict(title=dict(text="neighbour language")))


def sentence_rank_figure(ranks: pd.DataFrame, *, title: str = "Rank of the sentence you said"
                         ) -> go.Figure:
    """Per layer, the rank (1 = nearest) of the best stored item of the matched sentence."""
    if ranks.empty:
        return empty_figure(title, "The sentence is not in the stored corpus.")
    fig = go.Figure()
    for (component, query), rows in ranks.groupby(["component", "query"], sort=False):
        rows = rows.sort_values("layer")
        hover = [f"{r.layer_name}: rank {r.rank} of {r.n_candidates} ({r.lang}, cosine "
                 f"{r.score:.4f})" for r in rows.itertuples()]
        fig.add_trace(go.Scatter(
            x=rows["depth"], y=rows["rank"], mode="lines+markers", name=f"{query} ({component})",
            line=dict(color=QUERY_COLOURS.get(query, BASELINE_COLOUR), width=2),
            marker=dict(symbol=QUERY_SYMBOLS.get(query, "circle"), size=10),
            hovertext=hover, hovertemplate="%{hovertext}<extra></extra>"))
    fig.update_xaxes(title=dict(text="path depth (0 = input, 1 = last layer)"), range=[-0.03, 1.03])
    fig.update_yaxes(title=dict(text="rank among stored items (1 = nearest)"), autorange="reversed",
                     type="log", dtick=1)
    return _layout(fig, title, 360)


def agreement_figure(rows: pd.DataFrame, *, title: str = "Your text-vs-speech agreement"
                     ) -> go.Figure:
    """Per layer: the corpus's same-sentence pairs (box), the shuffled baseline (grey box) and the
    clip (line with stars)."""
    if rows.empty:
        return empty_figure(title, "This run has no text and speech components to compare.")
    first = rows.iloc[0]
    names = list(dict.fromkeys(rows.sort_values("layer")["layer_name"]))
    scope = first["corpus_scope"]
    lang = first["lang"]
    fig = go.Figure()
    corpus = rows[rows["kind"] == "corpus"]
    shuffled = rows[rows["kind"] == "shuffled"]
    clip = rows[rows["kind"] == "recording"].sort_values("layer")
    label = (f"corpus: same sentence ({lang})" if scope == "language"
             else "corpus: same sentence (all languages)")
    fig.add_trace(go.Box(x=corpus["layer_name"], y=corpus["value"], name=label, boxpoints="all",
                         jitter=0.4, pointpos=0, marker=dict(color=CORPUS_COLOUR, size=4),
                         line=dict(color=CORPUS_COLOUR), offsetgroup="corpus"))
    # the baseline's thousands of values as five numbers per layer (core.box_stats)
    layer_boxes = [(name, box_stats(values))
                   for name, group in shuffled.groupby("layer_name", sort=False)
                   if np.isfinite(values := group["value"].to_numpy(dtype=np.float64)).any()]
    if layer_boxes:
        fig.add_trace(go.Box(
            x=[name for name, _ in layer_boxes], q1=[b.q1 for _, b in layer_boxes],
            median=[b.median for _, b in layer_boxes], q3=[b.q3 for _, b in layer_boxes],
            lowerfence=[b.minimum for _, b in layer_boxes],  # no points drawn: whiskers to
            upperfence=[b.maximum for _, b in layer_boxes],  # the extremes, as before
            name="shuffled baseline (other sentences)", marker=dict(color="#9A9A9A"),
            line=dict(color="#9A9A9A"), offsetgroup="shuffled",
            hovertext=[f"{name}: {b.n} shuffled pairs" for name, b in layer_boxes]))
    fig.add_trace(go.Scatter(x=clip["layer_name"], y=clip["value"], mode="lines+markers",
                             name="your recording vs its transcript",
                             line=dict(color=RECORDING_COLOUR, width=2.5),
                             marker=dict(symbol="star", size=14, color=RECORDING_COLOUR,
                                         line=dict(width=0.8, color="white"))))
    fig.update_xaxes(title=dict(text=f"{first['speech_component']} layer (text layer at the same "
                                     "depth)"), categoryorder="array", categoryarray=names)
    fig.update_yaxes(title=dict(text=AXIS_LABEL.get(first["measure"], first["measure"])))
    return _layout(fig, title, 440).update_layout(boxmode="group",
                                                  legend=dict(orientation="h", y=-0.2))


#: ``go.Figure(figure)`` takes each source trace's "type" out of its properties and puts it back
#: while copying; a StoredMap is shared by every session's thread, so two copies at once could see
#: a trace without its type (read as scatter). A map's own traces are all scatter now (its points
#: are images), so this guards the copy for any other trace type. Copies are made one at a time.
_COPY_LOCK = threading.Lock()


@dataclass(frozen=True)
class MapPanel:
    """One layer's panel of a stored map: where it sits in the grid and, per stored item, its
    first position in the panel (ids sorted, for lookup)."""
    row: int
    col: int
    item_ids: np.ndarray
    xy: np.ndarray


@dataclass(frozen=True)
class StoredMap:
    """The part of the map figure that does not depend on the clip: the panels with the stored
    points drawn as images, the language legend, axes and layout (nearly all of the figure's
    building time: the images take ~0.1 s per panel). Built once per run and component (the
    page caches it, and builds it while it waits for a clip) and copied for each clip by
    ``clip_map_figure`` (one copy at a time: ``_COPY_LOCK``); nothing is added to it."""
    figure: go.Figure
    panels: dict[int, MapPanel]
    hover: pd.Series  # item_id -> "language · modality · text" (HTML-escaped)


def stored_map(points: pd.DataFrame, placements: pd.DataFrame, languages: pd.DataFrame, *,
               component: str, layer_names: dict[int, str] | None = None,
               title: str | None = None) -> StoredMap:
    """Small multiples, one per layer of ``component`` that ``placements`` places the clip in
    (only their ``layer`` and ``params`` are read: which stored map each panel shows): the
    stored map, points coloured by language and faded.

    The thousands of background points carry no hover text: here the question is where the clip
    lands and next to what, which the ringed neighbours answer (the Projection page names every
    point). Hover labels for every stored point of every panel were most of this page's drawing
    time and of the data sent to the browser."""
    title = title or f"Your clip in the stored maps · {component}"
    here = placements[placements["component"] == component] if not placements.empty else placements
    if points.empty or here.empty:
        return StoredMap(empty_figure(title, "This run stored no 2-D maps for this component."),
                         {}, pd.Series(dtype=object))
    layers = sorted(int(v) for v in here["layer"].unique())
    rows_n = math.ceil(len(layers) / MAP_COLUMNS)
    cols_n = min(MAP_COLUMNS, len(layers))
    labels = [(layer_names or {}).get(layer, f"layer {layer}") for layer in layers]
    fig = make_subplots(rows=rows_n, cols=cols_n, subplot_titles=labels,
                        horizontal_spacing=0.03, vertical_spacing=0.08)
    names = language_names(languages)
    order = language_order(languages, points["lang"].dropna().unique())
    palette = language_palette(languages, order)  # the neighbour charts' colours too
    unique = points.drop_duplicates("item_id")
    hover = pd.Series([f"{html.escape(str(names.get(lang, lang)))} · {modality} · "
                       f"{html.escape(_short(text))}" for lang, modality, text in
                       zip(unique["lang"], unique["modality"], unique["text"], strict=True)],
                      index=unique["item_id"].astype(int).to_numpy(), dtype=object)
    # the stored points of each panel are an image in data coordinates (point_raster:
    # as WebGL traces they were most of the browser's work on this page); a legend of their own
    # keeps one entry per language, not clickable (a click would hide the entry, not the image's
    # points)
    code_of = {lang: i for i, lang in enumerate(order)}
    rgba = np.array([point_raster.hex_rgba(palette[lang], STORED_OPACITY) for lang in order]
                    + [point_raster.hex_rgba(BASELINE_COLOUR, STORED_OPACITY)], dtype=np.uint8)
    fig.add_traces([go.Scatter(x=[None], y=[None], mode="markers", name=names.get(lang, lang),
                               marker=dict(color=palette[lang], size=7), hoverinfo="skip",
                               legend=LANGUAGE_LEGEND)
                    for lang in order])
    point_components = points["component"].astype(str).to_numpy()
    point_layers = points["layer"].astype(int).to_numpy()
    point_items = points["item_id"].astype(int).to_numpy()
    point_codes = points["lang"].map(code_of).fillna(len(order)).to_numpy(int)
    point_xy = points[["x", "y"]].to_numpy(dtype=np.float64)
    params = here.drop_duplicates("layer").set_index("layer")["params"]
    panels, images, axes = {}, [], {}
    for i, layer in enumerate(layers):
        r, c = i // cols_n + 1, i % cols_n + 1
        chosen = np.zeros(len(points), dtype=bool)
        for member_component, member_layer in _map_members(params.loc[layer], component, layer):
            chosen |= (point_components == member_component) & (point_layers == member_layer)
        xy = point_xy[chosen]
        bounds = point_raster.padded_bounds(xy)
        subplot = fig.get_subplot(r, c)
        x_name, y_name = subplot.xaxis.plotly_name, subplot.yaxis.plotly_name  # xaxis3, ...
        x_ref, y_ref = x_name.replace("axis", ""), y_name.replace("axis", "")  # x3, ...
        images.append(dict(
            source=point_raster.png_data_uri(point_raster.rasterise(
                xy, rgba[point_codes[chosen]], bounds)),
            xref=x_ref, yref=y_ref, x=bounds.x0, y=bounds.y1, sizex=bounds.width,
            sizey=bounds.height, xanchor="left", yanchor="top", sizing="stretch",
            layer="below"))
        # equal scales on both axes (a round disc in the image stays round); the panel's
        # domain shrinks to fit instead of the range growing past the image
        axes[x_name] = dict(range=[bounds.x0, bounds.x1], constrain="domain")
        axes[y_name] = dict(range=[bounds.y0, bounds.y1], constrain="domain", scaleanchor=x_ref,
                            scaleratio=1)
        ids, first = np.unique(point_items[chosen], return_index=True)  # an item's first point
        panels[layer] = MapPanel(r, c, ids, xy[first])
    # the languages below the panels, in rows (at the side, 20 of them pushed the clip's own
    # entries below a scroll bar); the clip's entries (clickable: each hides its markers and
    # lines) at the top right, on a line above the title (placed below)
    fig.update_layout(
        images=images,
        legend=dict(orientation="h", x=1, xanchor="right", y=1, yref="container",
                    yanchor="top"),
        # its title above the entries (at their side it is not counted when rows wrap, so the
        # last entry of a row fell off the figure) and not clickable either (with two legends
        # a title click toggles its entries, a double click the other legend's)
        **{LANGUAGE_LEGEND: dict(orientation="h", yanchor="top", y=-0.02, x=0, itemclick=False,
                                 itemdoubleclick=False, titleclick=False, titledoubleclick=False,
                                 title=dict(text="stored items by language", side="top"))},
        **axes)
    fig.update_xaxes(showticklabels=False, zeroline=False, showgrid=False)
    fig.update_yaxes(showticklabels=False, zeroline=False, showgrid=False)
    height = 130 + 300 * rows_n
    # the clip's legend on a line of its own at the top, the title on the next (side by side
    # they met in a narrow window)
    _layout(fig, title, height).update_layout(
        margin=dict(t=MAP_TOP_PX),
        title=dict(y=1 - MAP_TITLE_FROM_TOP_PX / height, yref="container", yanchor="middle"))
    return StoredMap(fig, panels, hover)


def map_panels(placements: pd.DataFrame, component: str
               ) -> tuple[tuple[tuple[int, str], ...], tuple[tuple[int, str], ...]]:
    """``((layer, params), ...)`` and ``((layer, layer_name), ...)`` of ``component``'s
    placements: what its stored map depends on, hashable (a cache key), the same for every clip
    of a run."""
    here = placements[placements["component"] == component].drop_duplicates("layer") \
        .sort_values("layer")
    layers = [int(v) for v in here["layer"]]
    return (tuple(zip(layers, (str(v) for v in here["params"]), strict=True)),
            tuple(zip(layers, (str(v) for v in here["layer_name"]), strict=True)))


def panel_frame(component: str, panels: tuple[tuple[int, str], ...]) -> pd.DataFrame:
    """``map_panels``' first tuple as the frame ``stored_map`` reads (component, layer, params)."""
    return pd.DataFrame({"component": component, "layer": [layer for layer, _ in panels],
                         "params": [params for _, params in panels]})


def run_stored_map(projections: pd.DataFrame, languages: pd.DataFrame, *, component: str,
                   method: str, panels: tuple[tuple[int, str], ...],
                   layer_names: tuple[tuple[int, str], ...]) -> StoredMap:
    """``stored_map`` of a run's ``method`` maps (``projections``: all of the run's rows) for
    the panels ``map_panels`` gives: what the page caches per run, component and method."""
    points = projections[projections["method"] == method].reset_index(drop=True)
    return stored_map(points, panel_frame(component, panels), languages, component=component,
                      layer_names=dict(layer_names))


def stored_map_figure(stored: StoredMap) -> go.Figure:
    """A copy of the stored map alone (what the page shows while it waits for a clip)."""
    with _COPY_LOCK:  # plotly's copy briefly edits the source traces (see _COPY_LOCK)
        return go.Figure(stored.figure)


def clip_map_figure(stored: StoredMap, placements: pd.DataFrame, *, component: str
                    ) -> go.Figure:
    """A copy of the stored map with the clip placed into each panel (star: recording, x:
    transcript), lines to the neighbours it was placed by, ringed and named on hover."""
    fig = stored_map_figure(stored)
    here = placements[placements["component"] == component] if not placements.empty else placements
    if not stored.panels or here.empty:
        return fig
    traces, trace_rows, trace_cols = [], [], []
    legend_done: set[str] = set()
    for p in here.itertuples():
        panel = stored.panels.get(int(p.layer))
        if panel is None:
            continue
        colour = QUERY_COLOURS.get(p.query, BASELINE_COLOUR)
        wanted = np.asarray(p.neighbour_ids, dtype=np.int64)
        at = np.minimum(np.searchsorted(panel.item_ids, wanted), max(len(panel.item_ids) - 1, 0))
        found = (panel.item_ids[at] == wanted) if len(panel.item_ids) else \
            np.zeros(len(wanted), bool)
        ranks = np.flatnonzero(found) + 1  # a neighbour keeps its rank when another is off the map
        xy = panel.xy[at[found]]
        xs = [v for x in xy[:, 0].tolist() for v in (p.x, x, None)]  # None: a gap between lines
        ys = [v for y in xy[:, 1].tolist() for v in (p.y, y, None)]
        traces += [
            go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=colour, width=0.8),
                       hoverinfo="skip", showlegend=False, legendgroup=p.query),
            go.Scatter(
                x=xy[:, 0], y=xy[:, 1], mode="markers", showlegend=False, legendgroup=p.query,
                marker=dict(symbol="circle-open", size=10, color=colour, line=dict(width=1.5)),
                hovertext=[f"neighbour {rank} of your {p.query}: {stored.hover.get(int(item), '')}"
                           for rank, item in zip(ranks, wanted[found], strict=True)],
                hovertemplate="%{hovertext}<extra></extra>"),
            go.Scatter(
                x=[p.x], y=[p.y], mode="markers", name=f"your {p.query}", legendgroup=p.query,
                showlegend=f"q:{p.query}" not in legend_done,
                marker=dict(symbol=QUERY_SYMBOLS.get(p.query, "circle"), size=13, color=colour,
                            opacity=0.9, line=dict(width=1.0, color="white")),
                hovertext=[f"your {p.query}, placed by its {len(xy)} nearest stored items"],
                hovertemplate="%{hovertext}<extra></extra>")]
        trace_rows += [panel.row] * 3
        trace_cols += [panel.col] * 3
        legend_done.add(f"q:{p.query}")
    fig.add_traces(traces, rows=trace_rows, cols=trace_cols)
    return fig


def map_figure(points: pd.DataFrame, placements: pd.DataFrame, languages: pd.DataFrame, *,
               component: str, layer_names: dict[int, str] | None = None,
               title: str | None = None) -> go.Figure:
    """``stored_map`` then ``clip_map_figure``: the whole map figure in one call."""
    stored = stored_map(points, placements, languages, component=component,
                        layer_names=layer_names, title=title)
    return clip_map_figure(stored, placements, component=component)


def _short(text: object, limit: int = 90) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _map_members(params: object, component: str, layer: int) -> set[tuple[str, int]]:
    members = set(joint_members(params))
    return members or {(component, layer)}


def frame_figure(view: FrameView, waveform: np.ndarray, sampling_rate: int, *,
                 title: str | None = None) -> go.Figure:
    """Waveform above, layers x time heatmap below (one column per 20 ms encoder frame)."""
    title = title or (f"Where the clip carries the sentence · {view.speech_component} frames vs "
                      f"the transcript through {view.text_component}")
    if view.values.size == 0:
        return empty_figure(title, "No frames.")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.22, 0.78],
                        vertical_spacing=0.04)
    times, low, high = envelope(waveform, sampling_rate)
    fig.add_trace(go.Scatter(x=times, y=high, mode="lines", line=dict(width=0.5,
                             color=RECORDING_COLOUR), hoverinfo="skip", showlegend=False), 1, 1)
    fig.add_trace(go.Scatter(x=times, y=low, mode="lines", line=dict(width=0.5,
                             color=RECORDING_COLOUR), fill="tonexty",
                             fillcolor="rgba(213,94,0,0.45)", hoverinfo="skip", showlegend=False),
                  1, 1)
    values = np.where(np.isfinite(view.values), view.values, np.nan)
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    labels = [f"{name} (clip {pooled:+.2f})" for name, pooled in
              zip(view.layer_names, view.pooled, strict=True)]
    fig.add_trace(go.Heatmap(
        z=values, x=view.times_s + 0.01, y=labels, zmid=0, zmin=-limit, zmax=limit,
        colorscale="RdBu_r", colorbar=dict(title=dict(text="agreement"), len=0.75, y=0.38),
        hovertemplate="%{y}<br>t = %{x:.2f} s<br>%{z:.3f}<extra></extra>"), 2, 1)
    fig.update_yaxes(showticklabels=False, row=1, col=1, range=[-1.05, 1.05])
    fig.update_xaxes(title=dict(text="time (s) · one column per 20 ms encoder frame"), row=2, col=1)
    fig.update_yaxes(title=dict(text="layer"), row=2, col=1)
    fig.update_traces(colorbar=dict(title=dict(text=AXIS_LABEL.get(view.measure, "agreement"))),
                      selector=dict(type="heatmap"))
    return _layout(fig, title, 200 + 42 * len(labels))
