"""Charts of the Projection page: the stored 2-D maps (UMAP) of pooled states, coloured by
language, modality or resource level, with one sentence linked across languages and modalities."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

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


def projection_figure(points: pd.DataFrame, languages: pd.DataFrame, *, colour_by: str = "language",
                      sentence_id: int | None = None, title: str = "UMAP projection") -> go.Figure:
    """2-D scatter of pooled states: colour by language/modality/resource level, symbol by modality.

    With ``sentence_id`` the chosen sentence is linked across languages (one path per modality) and
    across modalities (a dotted segment per language).
    """
    if colour_by not in PROJECTION_COLOURINGS:
        raise ValueError(f"colour_by must be one of {', '.join(PROJECTION_COLOURINGS)}")
    points = points.dropna(subset=["x", "y"]) if not points.empty else points
    if points.empty:
        return empty_figure(title, "No projection stored for this component and layer.")
    column = PROJECTION_COLOURINGS[colour_by]
    order = language_order(languages, points["lang"].dropna().unique())
    if colour_by == "language":
        groups = order
        palette = language_palette(languages, order)
        label = language_names(languages)
    elif colour_by == "modality":
        groups = [m for m in ("text", "speech") if m in set(points["modality"])] + sorted(
            set(points["modality"].dropna()) - {"text", "speech"})
        palette, label = MODALITY_COLOURS, {}
    else:
        groups = sorted(points["resource_level"].unique(), key=level_rank)
        palette = {lvl: level_colour(lvl) for lvl in groups}
        label = {lvl: f"{lvl} resource" for lvl in groups}
    fig = go.Figure()
    for group in groups:
        subset = points[points[column] == group]
        if subset.empty:
            continue
        hover = [f"<b>{html.escape(str(r['name']))}</b> · {r['modality']} · sentence "
                 f"{fmt_int(r.get('sentence_id'))}<br>{wrap(r.get('text'))}"
                 for _, r in subset.iterrows()]
        fig.add_trace(go.Scatter(
            x=subset["x"], y=subset["y"], mode="markers", name=label.get(group, str(group)),
            marker=dict(color=palette.get(group, BASELINE_COLOUR), size=10, opacity=0.85,
                        symbol=[MODALITY_SYMBOLS.get(m, "circle") for m in subset["modality"]],
                        line=dict(width=0.5, color="white")),
            hovertext=hover, hovertemplate="%{hovertext}<extra></extra>", legendgroup="colour",
            legendgrouptitle=dict(text=f"colour = {colour_by}"),
        ))
    for modality in ("text", "speech"):
        if modality in set(points["modality"]):
            fig.add_trace(go.Scatter(
                x=[None], y=[None], mode="markers", name=modality,
                marker=dict(symbol=MODALITY_SYMBOLS[modality], color="#777777", size=10),
                legendgroup="symbols", legendgrouptitle=dict(text="symbol = modality"),
                hoverinfo="skip",
            ))
    if sentence_id is not None:
        _add_sentence_links(fig, points, order, int(sentence_id))
    fig.update_xaxes(title=dict(text="UMAP 1 (arbitrary units)"), zeroline=False)
    fig.update_yaxes(title=dict(text="UMAP 2 (arbitrary units)"), zeroline=False)
    fig.update_layout(title=dict(text=title), template=TEMPLATE, font=FONT, height=600,
                      hovermode="closest", legend=dict(groupclick="toggleitem"),
                      margin=dict(l=10, r=10, t=60, b=10))
    return fig


def _add_sentence_links(fig: go.Figure, points: pd.DataFrame, order: Sequence[str],
                        sentence_id: int) -> None:
    chosen = points[points["sentence_id"] == sentence_id]
    if chosen.empty:
        return
    rank = {lang: i for i, lang in enumerate(order)}
    chosen = chosen.assign(rank=chosen["lang"].map(rank)).sort_values(["modality", "rank"])
    dashes = {"text": "solid", "speech": "dash"}
    for modality, path in chosen.groupby("modality", sort=False):
        fig.add_trace(go.Scatter(
            x=path["x"], y=path["y"], mode="lines+markers+text", text=path["lang"].str[:3],
            textposition="top center", textfont=dict(size=10),
            name=f"sentence {sentence_id}: {modality} across languages",
            line=dict(color="#222222", width=1.5, dash=dashes.get(modality, "dot")),
            marker=dict(size=12, symbol=MODALITY_SYMBOLS.get(modality, "circle"),
                        color="rgba(0,0,0,0)", line=dict(color="#222222", width=2)),
            hoverinfo="skip",
        ))
    xs, ys = [], []
    for _, pair in chosen.groupby("lang"):
        if {"text", "speech"} <= set(pair["modality"]):
            t, s = pair[pair["modality"] == "text"].iloc[0], pair[pair["modality"] == "speech"].iloc[0]
            xs += [t["x"], s["x"], None]
            ys += [t["y"], s["y"], None]
    if xs:
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip",
                                 name=f"sentence {sentence_id}: text ↔ speech",
                                 line=dict(color=OKABE_ITO["vermillion"], width=1.5, dash="dot")))
