"""Charts of the Projection page: the stored 2-D maps (UMAP) of pooled states, coloured by
language, modality or resource level, with one sentence linked across languages and modalities."""

from __future__ import annotations

import html
import json
from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.map_alignment import align_chain
from dashboard.charts.common import empty_figure, fmt_int, layer_name, wrap
from dashboard.charts.languages import (
    language_names,
    language_order,
    language_palette,
    language_table,
    level_colour,
    level_rank,
)
from dashboard.charts.theme import (
    BASELINE_COLOUR,
    FONT,
    MODALITY_COLOURS,
    MODALITY_SYMBOLS,
    OKABE_ITO,
    TEMPLATE,
)

PROJECTION_COLOURINGS: dict[str, str] = {"language": "lang", "modality": "modality",
                                         "resource level": "resource_level"}
#: opacity of the points outside a selection (they stay visible as context)
FADED_OPACITY = 0.18
#: the ring around selected points
SELECTED_RING = "#111111"


def projection_maps(rows: pd.DataFrame, components: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per stored 2-D map, from projection rows (component, layer, method, params).

    precompute maps a text and a speech layer together when it can and records the members in
    ``params["joint"]`` (``["text_decoder:3", "speech_encoder:3"]``); rows without it are a map of
    their own (component, layer). Columns: ``map_id``, ``members`` (tuple of (component, layer)),
    ``components`` (label of the component set), ``label`` (layer label), ``order``, ``method``.
    """
    columns = ["map_id", "members", "components", "label", "order", "method"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    names = {}
    if components is not None and not components.empty:
        names = {r.component: list(r.layer_names) if r.layer_names is not None else []
                 for r in components.itertuples()}
    maps = {}
    for row in rows.drop_duplicates(["component", "layer", "method"]).itertuples():
        members = joint_members(row.params) or ((str(row.component), int(row.layer)),)
        map_id = f"{row.method}:" + "+".join(f"{comp}:{layer}" for comp, layer in members)
        if map_id in maps:
            continue
        labels = [layer_name(layer, names.get(comp)) for comp, layer in members]
        same_layer = len(set(labels)) == 1 and len({layer for _, layer in members}) == 1
        label = labels[0] if same_layer else " · ".join(
            f"{comp} {lab}" for (comp, _), lab in zip(members, labels, strict=True))
        maps[map_id] = {"map_id": map_id, "members": members,
                        "components": " + ".join(c for c, _ in members), "label": label,
                        "order": min(layer for _, layer in members), "method": row.method}
    return pd.DataFrame(list(maps.values()), columns=columns).sort_values(
        ["components", "order"], kind="stable").reset_index(drop=True)


def joint_members(params: object) -> tuple[tuple[str, int], ...]:
    """The (component, layer) members a stored map's ``params["joint"]`` lists; () when it has
    none (a map of one component and layer)."""
    try:
        parsed = json.loads(params) if isinstance(params, str) else params
        joint = parsed.get("joint") if isinstance(parsed, dict) else None
        members = tuple((str(m).rsplit(":", 1)[0], int(str(m).rsplit(":", 1)[1])) for m in joint or ())
    except (ValueError, TypeError, IndexError, AttributeError):
        return ()
    return members


def projection_points(projections: pd.DataFrame, languages: pd.DataFrame) -> pd.DataFrame:
    """Store projection rows (already joined with their item) plus the language's name and level."""
    table = language_table(languages)
    points = projections.copy()
    points["resource_level"] = points["lang"].map(table["resource_level"]).fillna("unknown")
    points["name"] = points["lang"].map(table["name"]).fillna(points["lang"])
    return points


def sentence_previews(points: pd.DataFrame, prefer: str = "eng_Latn") -> dict[int, str]:
    """sentence_id -> its text, in ``prefer`` when that language is present (for pickers)."""
    if points.empty:
        return {}
    ranked = points.assign(_first=points["lang"] != prefer).sort_values(["_first", "lang"])
    firsts = ranked.drop_duplicates("sentence_id")
    return {int(r.sentence_id): str(r.text) for r in firsts.itertuples() if pd.notna(r.sentence_id)}


def map_views(maps: pd.DataFrame, components: pd.DataFrame | None = None) -> dict[str, tuple[str, ...]]:
    """The page's map choices: label -> the component labels drawn side by side.

    Every stored component set (``maps["components"]``) is a view of its own. Where text and
    speech were mapped separately because they live in different representation spaces (no joint
    map in the run, as for Whisper), each text and speech component pair is also offered side by
    side, first: one map per space, linked by selection, instead of one map coloured by a
    modality it cannot show. Pairs keep the components' order in ``components``.
    """
    labels = list(dict.fromkeys(maps["components"])) if not maps.empty else []
    views: dict[str, tuple[str, ...]] = {}
    joint = any(" + " in label for label in labels)
    if components is not None and not components.empty and not joint:
        by_modality = {m: [c for c in group["component"] if c in labels]
                       for m, group in components.groupby("modality", sort=False)}
        space = dict(zip(components["component"], components.get("space", components["component"]),
                         strict=True))
        for text in by_modality.get("text", []):
            for speech in by_modality.get("speech", []):
                if space.get(text) != space.get(speech):
                    views[f"{text} | {speech} (side by side)"] = (text, speech)
    views.update({label: (label,) for label in labels})
    return views


def partner_positions(depths_a: Sequence[float], depths_b: Sequence[float]) -> list[int]:
    """For each map of side a (by relative depth), the position of side b's map at the nearest
    relative depth (the earlier one on a tie): the layer shown beside it in a side-by-side view."""
    if not len(depths_b):
        raise ValueError("side b has no maps")
    return [min(range(len(depths_b)), key=lambda j, d=float(d): (abs(float(depths_b[j]) - d), j))
            for d in depths_a]


def aligned_map_frames(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The maps of one component set in layer order (each a frame with ``item_id``, ``x``,
    ``y``), concatenated with their ``position`` and each map moved rigidly onto the one before
    (``core.map_alignment.align_chain``): the stored UMAP maps, turned, mirrored or shifted so
    that a layer change moves points only where the layers differ."""
    if not frames:
        return pd.DataFrame(columns=["position", "item_id", "x", "y"])
    aligned = align_chain([(f["item_id"].to_numpy(), f[["x", "y"]].to_numpy(dtype=float))
                           for f in frames])
    out = [f.assign(position=i, x=xy[:, 0], y=xy[:, 1])
           for i, (f, xy) in enumerate(zip(frames, aligned, strict=True))]
    return pd.concat(out, ignore_index=True)


#: characters of a sentence in a point's hover label: the hover text of thousands of points is
#: most of a map's bytes (the selection list below the maps shows the whole sentence)
HOVER_TEXT_CHARS = 120


def point_label(points: pd.DataFrame) -> list[str]:
    """Short label per point, its hover label's first line: language name, modality, sentence
    id (escaped)."""
    names = points["name"].astype(str).map(html.escape)
    ids = points["sentence_id"].map(fmt_int)
    return [f"<b>{n}</b> · {m} · sentence {i}"
            for n, m, i in zip(names, points["modality"], ids, strict=True)]


def point_hover(points: pd.DataFrame) -> list[str]:
    """Hover label per point: ``point_label`` and the text (escaped, cut at
    ``HOVER_TEXT_CHARS``)."""
    texts = points["text"].map(lambda text: wrap(text, limit=HOVER_TEXT_CHARS))
    return [f"{label}<br>{text}" for label, text in zip(point_label(points), texts, strict=True)]


def item_labels(points: pd.DataFrame) -> pd.DataFrame:
    """``point_hover`` (column ``hover``) and ``point_label`` (column ``label``) of each row,
    made once per item: an item's labels are the same in every layer's map, and the aligned
    maps of a component hold each item once per layer (7 to 13 times), so labelling each row
    wrapped the same text that many times (most of opening the page)."""
    if points.empty:
        return pd.DataFrame({"hover": pd.Series([], dtype=object),
                             "label": pd.Series([], dtype=object)}, index=points.index)
    firsts = points.drop_duplicates("item_id")
    hover = dict(zip(firsts["item_id"], point_hover(firsts), strict=True))
    label = dict(zip(firsts["item_id"], point_label(firsts), strict=True))
    return pd.DataFrame({"hover": points["item_id"].map(hover),
                         "label": points["item_id"].map(label)}, index=points.index)


def colour_groups(points: pd.DataFrame, languages: pd.DataFrame, colour_by: str
                  ) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """The groups a colouring splits ``points`` into (in legend order), their colours and their
    legend labels."""
    if colour_by not in PROJECTION_COLOURINGS:
        raise ValueError(f"colour_by must be one of {', '.join(PROJECTION_COLOURINGS)}")
    if colour_by == "language":
        order = language_order(languages, points["lang"].dropna().unique())
        return order, language_palette(languages, order), language_names(languages)
    if colour_by == "modality":
        groups = [m for m in ("text", "speech") if m in set(points["modality"])] + sorted(
            set(points["modality"].dropna()) - {"text", "speech"})
        return groups, dict(MODALITY_COLOURS), {}
    groups = sorted(points["resource_level"].unique(), key=level_rank)
    return (groups, {lvl: level_colour(lvl) for lvl in groups},
            {lvl: f"{lvl} resource" for lvl in groups})


def map_base(points: pd.DataFrame, languages: pd.DataFrame, colour_by: str = "language"
             ) -> dict:
    """The part of a map figure that does not change with the selection: one WebGL trace per
    colour group (item ids as ``customdata``, hover text) and the symbol legend, as plain dicts
    of numpy arrays.

    Why not plotly objects of lists: those validate and deep-copy every value of every point
    (0.5 s for a 4,000-point map, most of a rerun), where arrays are copied whole. The traces are
    checked once by the tests instead (``go.Figure(figure.to_dict())`` accepts them), and the
    page caches them per map, colouring and language set (plotly sends the arrays as typed
    binary arrays).
    """
    column = PROJECTION_COLOURINGS[colour_by]
    groups, palette, label = colour_groups(points, languages, colour_by)
    hover = np.asarray(points["hover"] if "hover" in points else point_hover(points),
                       dtype=object)
    symbols = points["modality"].map(MODALITY_SYMBOLS).fillna("circle").to_numpy(dtype=object)
    values = points[column].to_numpy(dtype=object)
    xy = points[["x", "y"]].to_numpy(dtype=np.float64)
    ids = points["item_id"].to_numpy(dtype=np.int64)
    traces = []
    for group in groups:
        here = values == group
        if not here.any():
            continue
        own = symbols[here]
        traces.append(dict(
            type="scattergl", x=xy[here, 0], y=xy[here, 1], mode="markers",
            name=label.get(group, str(group)),
            marker=dict(color=palette.get(group, BASELINE_COLOUR), size=8, opacity=0.85,
                        symbol=own[0] if (own == own[0]).all() else own,
                        line=dict(width=0.5, color="white")),
            customdata=ids[here], hovertext=hover[here],
            hovertemplate="%{hovertext}<extra></extra>",
            legendgroup="colour", legendgrouptitle=dict(text=f"colour = {colour_by}")))
    legend = [dict(type="scatter", x=[None], y=[None], mode="markers", name=modality,
                   marker=dict(symbol=MODALITY_SYMBOLS[modality], color="#777777", size=10),
                   legendgroup="symbols", legendgrouptitle=dict(text="symbol = modality"),
                   hoverinfo="skip")
              for modality in ("text", "speech") if modality in set(points["modality"])]
    return {"traces": traces, "legend": legend}


def selection_trace(base: dict, selected: Collection[int]) -> dict | None:
    """The selected items of a map (``map_base``) as one trace on top: the same colours and
    symbols, larger, ringed; None when none of them is on this map.

    Without hover text of its own (``hoverinfo="skip"``): each selected point lies exactly on its
    faded point in ``base``, whose label the hover shows, so the labels are not sent twice (a
    selection of a thousand items made its map half as large again)."""
    wanted = np.fromiter((int(i) for i in selected), dtype=np.int64)
    parts = []
    for trace in base["traces"]:
        here = np.isin(trace["customdata"], wanted)
        if here.any():
            symbol = trace["marker"]["symbol"]
            parts.append((trace["x"][here], trace["y"][here], trace["customdata"][here],
                          np.full(int(here.sum()), trace["marker"]["color"], dtype=object),
                          symbol[here] if isinstance(symbol, np.ndarray)
                          else np.full(int(here.sum()), symbol, dtype=object)))
    if not parts:
        return None
    x, y, ids, colours, symbols = (np.concatenate(column) for column in zip(*parts))
    return dict(type="scattergl", x=x, y=y, mode="markers", name=f"selected ({len(ids)})",
                marker=dict(color=colours, size=11, opacity=1.0,
                            symbol=symbols[0] if (symbols == symbols[0]).all() else symbols,
                            line=dict(width=1.5, color=SELECTED_RING)),
                customdata=ids, hoverinfo="skip", legendgroup="selection")


def projection_figure(points: pd.DataFrame, languages: pd.DataFrame, *, colour_by: str = "language",
                      sentence_id: int | None = None, title: str = "UMAP projection",
                      selected: Collection[int] = (),
                      ranges: tuple[tuple[float, float], tuple[float, float]] | None = None,
                      height: int = 600, legend: bool = True, base: dict | None = None
                      ) -> go.Figure:
    """2-D scatter of pooled states: colour by language/modality/resource level, symbol by modality.

    Each point carries its item id as ``customdata`` (what a box or lasso selection returns).
    With ``selected`` item ids the other points fade and the selected ones are drawn on top,
    ringed. ``ranges`` fixes the axes (the extent of every layer's aligned map, so the frame does
    not move with the layer); ``legend=False`` leaves the legend out (the left of two maps side
    by side, which share the right one's). With ``sentence_id`` the chosen sentence is linked
    across languages (one path per modality) and across modalities (a dotted segment per
    language). ``base``: ``map_base(points, languages, colour_by)`` when the caller has it cached.
    """
    if colour_by not in PROJECTION_COLOURINGS:
        raise ValueError(f"colour_by must be one of {', '.join(PROJECTION_COLOURINGS)}")
    points = points.dropna(subset=["x", "y"]) if not points.empty else points
    if points.empty:
        return empty_figure(title, "No projection stored for this component and layer.")
    base = base if base is not None else map_base(points, languages, colour_by)
    on_top = selection_trace(base, selected) if len(selected) else None
    traces = [dict(t, marker=dict(t["marker"], opacity=FADED_OPACITY)) if on_top else t
              for t in base["traces"]]
    traces += ([on_top] if on_top else []) + base["legend"]
    if sentence_id is not None:
        order = language_order(languages, points["lang"].dropna().unique())
        traces += sentence_link_traces(points, order, int(sentence_id))
    axis = dict(zeroline=False, automargin=True)
    layout = dict(
        title=dict(text=title), template=TEMPLATE, font=FONT, height=height,
        hovermode="closest", legend=dict(groupclick="toggleitem"), showlegend=legend,
        dragmode="select", margin=dict(l=10, r=10, t=60, b=10),
        xaxis=dict(axis, title=dict(text="UMAP 1 (arbitrary units)"),
                   **({"range": list(ranges[0])} if ranges else {})),
        yaxis=dict(axis, title=dict(text="UMAP 2 (arbitrary units)"),
                   **({"range": list(ranges[1])} if ranges else {})))
    return go.Figure(dict(data=traces, layout=layout), _validate=False)


def sentence_link_traces(points: pd.DataFrame, order: Sequence[str], sentence_id: int
                         ) -> list[dict]:
    """One sentence linked across languages (a path per modality, in ``order``) and across
    modalities (a dotted segment per language holding both), as trace dicts."""
    chosen = points[points["sentence_id"] == sentence_id]
    if chosen.empty:
        return []
    rank = {lang: i for i, lang in enumerate(order)}
    chosen = chosen.assign(rank=chosen["lang"].map(rank)).sort_values(["modality", "rank"])
    dashes = {"text": "solid", "speech": "dash"}
    traces = []
    for modality, path in chosen.groupby("modality", sort=False):
        traces.append(dict(
            type="scatter", x=path["x"].tolist(), y=path["y"].tolist(),
            mode="lines+markers+text", text=path["lang"].str[:3].tolist(),
            textposition="top center", textfont=dict(size=10),
            name=f"sentence {sentence_id}: {modality} across languages",
            line=dict(color="#222222", width=1.5, dash=dashes.get(modality, "dot")),
            marker=dict(size=12, symbol=MODALITY_SYMBOLS.get(modality, "circle"),
                        color="rgba(0,0,0,0)", line=dict(color="#222222", width=2)),
            hoverinfo="skip"))
    xs, ys = [], []
    for _, pair in chosen.groupby("lang"):
        if {"text", "speech"} <= set(pair["modality"]):
            t, s = pair[pair["modality"] == "text"].iloc[0], pair[pair["modality"] == "speech"].iloc[0]
            xs += [float(t["x"]), float(s["x"]), None]
            ys += [float(t["y"]), float(s["y"]), None]
    if xs:
        traces.append(dict(type="scatter", x=xs, y=ys, mode="lines", hoverinfo="skip",
                           name=f"sentence {sentence_id}: text ↔ speech",
                           line=dict(color=OKABE_ITO["vermillion"], width=1.5, dash="dot")))
    return traces
