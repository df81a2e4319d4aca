"""Pure chart builders: contract-shaped DataFrames in, plotly Figures out.

No streamlit and no SQL here, so every chart can be unit-tested on small frames and reused outside
the app. Inputs are the store's tables as documented in docs/ARCHITECTURE.md (``metrics``,
``languages``, ``items``, ``projections`` joined with ``items``). Every builder copes with empty
frames and NaN values by drawing an explanatory empty figure or leaving gaps, never by raising.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.languages import RESOURCE_LEVELS as CORE_RESOURCE_LEVELS
from core.metrics.joint import mean_interval
from core.store.vectors import bootstrap_matrix

PAIRINGS: tuple[str, ...] = ("text-text", "speech-speech", "text-speech")

#: view key -> label shown in the sidebar toggle
VIEWS: dict[str, str] = {
    "raw": "raw",
    "residualised": "length-residualised",
    "minus_baseline": "minus shuffled baseline",
}

#: resource levels from most to least data (core.languages), then "unknown"; any other level sorts
#: after these, alphabetically
RESOURCE_LEVELS: tuple[str, ...] = (*CORE_RESOURCE_LEVELS, "unknown")

# Okabe & Ito (2008) colour-blind-safe palette.
OKABE_ITO = {
    "black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
}
#: one colour family (base hue) per resource level
LEVEL_COLOURS: dict[str, str] = {
    "high": OKABE_ITO["blue"],
    "medium": OKABE_ITO["orange"],
    "low": OKABE_ITO["purple"],
    "unknown": "#7F7F7F",
}
MODALITY_COLOURS: dict[str, str] = {"text": OKABE_ITO["blue"], "speech": OKABE_ITO["vermillion"]}
MODALITY_SYMBOLS: dict[str, str] = {"text": "circle", "speech": "diamond"}
#: categorical palette for many languages: Okabe-Ito (no yellow/black) then Tol's "safe" set
CATEGORICAL: tuple[str, ...] = (
    OKABE_ITO["blue"], OKABE_ITO["orange"], OKABE_ITO["green"], OKABE_ITO["vermillion"],
    OKABE_ITO["purple"], OKABE_ITO["sky"], "#332288", "#117733", "#999933", "#882255",
    "#44AA99", "#661100", "#DDCC77", "#AA4499", "#888888",
)
#: one colour per language, the same on every chart that colours by language (``language_palette``:
#: the Projection page, the recording page's neighbour charts and maps; the Layer curves colour
#: languages by resource level, ``language_colours``): the categorical colours above without the two
#: the recording page keeps for the clip (Okabe-Ito blue and vermillion), then seven from Kelly's
#: (1965) list of colours of maximum contrast (black as Okabe-Ito's), each the one farthest in
#: CIELAB from all before it and from the clip's two, every colour faded on white as the maps'
#: stored points are. 20 distinct colours (the bundled store's languages), repeated beyond.
LANGUAGE_PALETTE: tuple[str, ...] = (
    *(c for c in CATEGORICAL if c not in (OKABE_ITO["blue"], OKABE_ITO["vermillion"])),
    "#8DB600", "#000000", "#F99379", "#BE0032", "#654522", "#DCD300", "#604E97",
)
BASELINE_COLOUR = "#555555"
#: the comparison families of the layer curves
FAMILY_COLOURS: dict[str, str] = {
    "text-text (cross-lingual)": OKABE_ITO["blue"],
    "speech-speech (cross-lingual)": OKABE_ITO["orange"],
    "text-speech (cross-lingual)": OKABE_ITO["green"],
    "text-speech (same language)": OKABE_ITO["vermillion"],
    "speech-speech (same language, another voice)": OKABE_ITO["purple"],
}
SERIES_COLOURS: dict[str, str] = {
    **FAMILY_COLOURS,
    # finding details
    "text-text": OKABE_ITO["blue"], "speech-speech": OKABE_ITO["orange"],
    "speech, same language, another voice": OKABE_ITO["purple"],
    "text-speech, same language": OKABE_ITO["vermillion"],
    "text-text, cross-lingual": OKABE_ITO["blue"],
}
FONT = dict(family="Inter, 'Source Sans Pro', Arial, sans-serif", size=13)
#: trace types the dashboard draws (TEMPLATE keeps plotly_white's defaults for these only)
TRACE_TYPES = ("scatter", "scattergl", "box", "heatmap", "bar")


def _template() -> go.layout.Template:
    """plotly_white, with its per-trace defaults kept for ``TRACE_TYPES`` only.

    A figure copies its template when the template is set: plotly_white's defaults for two dozen
    trace types (maps, 3-D, polar, ...) made that copy ~50 ms per figure, a tenth of the
    recording page's drawing time; the layout and the defaults of what is drawn are unchanged
    (tested: the same JSON for every trace type drawn)."""
    import plotly.io as pio

    white = pio.templates["plotly_white"]
    return go.layout.Template(layout=white.layout,
                              data={kind: white.data[kind] for kind in TRACE_TYPES})


TEMPLATE = _template()
Z95 = 1.959963984540054


# --------------------------------------------------------------------------------------- languages

def level_rank(level: object) -> tuple[int, str]:
    """Sort key: known levels in RESOURCE_LEVELS order, then any other level alphabetically."""
    name = _level_name(level)
    if name in RESOURCE_LEVELS:
        return (RESOURCE_LEVELS.index(name), name)
    return (len(RESOURCE_LEVELS), name)


def _level_name(level: object) -> str:
    if level is None or (isinstance(level, float) and math.isnan(level)) or level is pd.NA:
        return "unknown"
    return str(level).strip().lower() or "unknown"


def language_order(languages: pd.DataFrame, langs: Iterable[str] | None = None) -> list[str]:
    """Languages ordered high -> low resource, then by Whisper training hours (most first), then code.

    ``langs`` restricts (and may extend) the set; languages missing from the table sort last.
    """
    table = _language_table(languages)
    wanted = list(dict.fromkeys(langs)) if langs is not None else list(table.index)
    return sorted(wanted, key=lambda lang: _language_sort_key(table, lang))


def _language_sort_key(table: pd.DataFrame, lang: str) -> tuple:
    if lang not in table.index:
        return (len(RESOURCE_LEVELS) + 1, "", 0.0, lang)
    row = table.loc[lang]
    hours = -float(row["whisper_hours"]) if pd.notna(row["whisper_hours"]) else 0.0
    return (*level_rank(row["resource_level"]), hours, lang)


def _language_table(languages: pd.DataFrame) -> pd.DataFrame:
    """``languages`` indexed by lang with the columns the charts read (missing ones filled)."""
    table = languages.copy() if languages is not None else pd.DataFrame()
    for column, default in (("lang", None), ("name", None), ("resource_level", "unknown"),
                            ("whisper_hours", np.nan)):
        if column not in table.columns:
            table[column] = default
    table = table.drop_duplicates("lang").set_index("lang", drop=False)
    table["name"] = table["name"].where(table["name"].notna(), table["lang"])
    table["resource_level"] = table["resource_level"].map(_level_name)
    return table


def language_levels(languages: pd.DataFrame) -> dict[str, str]:
    return _language_table(languages)["resource_level"].to_dict()


def language_names(languages: pd.DataFrame, *, short: bool = True) -> dict[str, str]:
    """lang -> display name; ``short`` drops a parenthesised qualifier ("Chinese (Mandarin, ...)"
    -> "Chinese") so tick labels and legends stay readable; hovers use the full name."""
    names = _language_table(languages)["name"].astype(str)
    return (names.map(short_name) if short else names).to_dict()


def short_name(name: str) -> str:
    """"Chinese (Mandarin, Simplified)" -> "Chinese"; names without a qualifier are kept."""
    return re.sub(r"\s*\(.*\)\s*$", "", name) or name


def language_palette(languages: pd.DataFrame, langs: Iterable[str] = ()) -> dict[str, str]:
    """A colour per language (``LANGUAGE_PALETTE``), dealt over the whole language table in
    ``language_order`` and then ``langs`` missing from it (by code): a language keeps its colour
    whichever languages a chart shows, so the charts of a page (and the pages) agree."""
    order = language_order(languages)
    known = set(order)
    order += sorted(lang for lang in dict.fromkeys(langs) if lang not in known)
    return {lang: LANGUAGE_PALETTE[i % len(LANGUAGE_PALETTE)] for i, lang in enumerate(order)}


def level_colour(level: object) -> str:
    return LEVEL_COLOURS.get(_level_name(level), LEVEL_COLOURS["unknown"])


def language_colours(languages: pd.DataFrame, langs: Iterable[str] | None = None) -> dict[str, str]:
    """One colour family per resource level, one shade per language inside it (dark -> light)."""
    order = language_order(languages, langs)
    levels = language_levels(languages)
    by_level: dict[str, list[str]] = {}
    for lang in order:
        by_level.setdefault(levels.get(lang, "unknown"), []).append(lang)
    colours = {}
    for level, members in by_level.items():
        for lang, shade in zip(members, _shades(level_colour(level), len(members)), strict=True):
            colours[lang] = shade
    return colours


def _shades(hex_colour: str, count: int) -> list[str]:
    """``count`` shades of one hue, from darker to lighter, all still distinguishable from white."""
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
    if count == 1:
        return [hex_colour]
    shades = []
    for t in np.linspace(-0.45, 0.35, count):
        mixed = rgb * (1 + t) if t < 0 else rgb + (255 - rgb) * t
        shades.append("#" + "".join(f"{int(round(min(max(c, 0), 255))):02X}" for c in mixed))
    return shades


def _lang_label(lang: str, names: dict[str, str], levels: dict[str, str]) -> str:
    return html.escape(f"{names.get(lang, lang)} ({lang}, {levels.get(lang, 'unknown')} resource)")


# ------------------------------------------------------------------------------------------ values

def apply_view(metrics: pd.DataFrame, view: str) -> pd.DataFrame:
    """Add the columns every chart plots: ``shown`` (+ ``shown_low``/``shown_high`` CI bounds) and
    ``shown_baseline`` (+ ``shown_baseline_sd``) in the units of the chosen view.

    - raw: the metric value, its bootstrap CI and the shuffled-pairs baseline.
    - residualised: the metric after regressing sentence length out of each side. The store has no
      CI or shuffled baseline for it, so those are NaN (charts then draw no band and no baseline).
    - minus_baseline: value minus the shuffled-pairs baseline mean (0 = chance level); the CI moves
      with it and the baseline becomes 0 with its spread kept.
    """
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; expected one of {', '.join(VIEWS)}")
    out = metrics.copy()
    for column in ("value", "ci_low", "ci_high", "baseline_mean", "baseline_std", "length_baseline",
                   "value_residualised"):
        out[column] = pd.to_numeric(out[column], errors="coerce") if column in out else np.nan
    if view == "raw":
        out["shown"], out["shown_low"], out["shown_high"] = out["value"], out["ci_low"], out["ci_high"]
        out["shown_baseline"], out["shown_baseline_sd"] = out["baseline_mean"], out["baseline_std"]
    elif view == "residualised":
        out["shown"] = out["value_residualised"]
        for column in ("shown_low", "shown_high", "shown_baseline", "shown_baseline_sd"):
            out[column] = np.nan
    else:
        out["shown"] = out["value"] - out["baseline_mean"]
        out["shown_low"] = out["ci_low"] - out["baseline_mean"]
        out["shown_high"] = out["ci_high"] - out["baseline_mean"]
        out["shown_baseline"] = out["baseline_mean"] * 0.0
        out["shown_baseline_sd"] = out["baseline_std"]
    return out


def value_axis_title(metric: str, view: str) -> str:
    unit = {"raw": "", "residualised": ", length-residualised", "minus_baseline": " − shuffled baseline"}
    return f"{metric}{unit.get(view, '')} (unitless similarity)"


def _fmt(x: object, digits: int = 3) -> str:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _fmt_int(x: object) -> str:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(value) else f"{int(value)}"


def _value_hover(row: pd.Series) -> str:
    ci = (f"[{_fmt(row['shown_low'])}, {_fmt(row['shown_high'])}]"
          if pd.notna(row["shown_low"]) and pd.notna(row["shown_high"]) else "n/a")
    baseline = _fmt(row["shown_baseline"])
    if pd.notna(row["shown_baseline"]) and pd.notna(row["shown_baseline_sd"]):
        baseline += f" ± {_fmt(row['shown_baseline_sd'])}"
    return (f"value: <b>{_fmt(row['shown'])}</b><br>95% CI: {ci}<br>"
            f"shuffled baseline: {baseline}<br>"
            f"length-only baseline: {_fmt(row.get('length_baseline'))}<br>"
            f"n = {_fmt_int(row.get('n_samples'))} sentences")


def _empty_figure(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=15, color="#555555"))
    fig.update_layout(title=dict(text=title), xaxis=dict(visible=False), yaxis=dict(visible=False),
                      height=320, font=FONT, template=TEMPLATE)
    return fig


#: what tells two rows of one pairing apart besides the cell keys: never merged by a dedupe
_IDENTITY_COLUMNS = ("run_id", "metric", "component_a", "component_b", "pooling")


def _dedupe_cells(metrics: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per cell: a metric stored with several ``params`` keeps the first params string.

    Rows of different component pairs (Seamless' text_encoder vs speech_encoder and
    text_decoder_text vs text_decoder_speech are both text-speech), runs, metrics or poolings are
    different cells, whatever ``keys`` says.
    """
    if metrics.empty:
        return metrics
    keys = [*[c for c in _IDENTITY_COLUMNS if c in metrics.columns and c not in keys], *keys]
    sort_cols = [c for c in ("params",) if c in metrics.columns]
    frame = metrics.sort_values(sort_cols, kind="stable") if sort_cols else metrics
    return frame.drop_duplicates(keys, keep="first")


def component_pairs(metrics: pd.DataFrame) -> list[tuple[str, str]]:
    """Distinct (component_a, component_b) of metric rows, in stored order."""
    if metrics.empty or not {"component_a", "component_b"} <= set(metrics.columns):
        return []
    return list(dict.fromkeys(zip(metrics["component_a"].astype(str),
                                  metrics["component_b"].astype(str), strict=True)))


def _pair_label(pair: tuple[str, str]) -> str:
    return f"{pair[0]} vs {pair[1]}"


# ----------------------------------------------------------------------------------------- heatmap

def heatmap_cells(metrics: pd.DataFrame, order: Sequence[str], *, symmetric: bool) -> pd.DataFrame:
    """Every (lang_a, lang_b) cell of ``order`` x ``order`` with its metrics row (NaN if absent).

    For same-modality pairings a pair stored once is mirrored, since the metrics are symmetric.
    """
    rows = _dedupe_cells(metrics, ["lang_a", "lang_b"])
    if symmetric and not rows.empty:
        mirrored = rows.rename(columns={"lang_a": "lang_b", "lang_b": "lang_a"})
        rows = pd.concat([rows, mirrored], ignore_index=True).drop_duplicates(
            ["lang_a", "lang_b"], keep="first")
    grid = pd.MultiIndex.from_product([list(order), list(order)], names=["lang_a", "lang_b"])
    return rows.set_index(["lang_a", "lang_b"]).reindex(grid).reset_index()


def heatmap_figure(metrics: pd.DataFrame, languages: pd.DataFrame, *, pairing: str, metric: str,
                   view: str = "raw", layer_label: str = "", langs: Sequence[str] | None = None
                   ) -> go.Figure:
    """Language x language heatmap of one pairing/metric/layer, languages ordered by resource level.

    For ``text-speech`` rows are the text language and columns the speech language, so the diagonal
    is same-sentence, same-language, cross-modal similarity.
    """
    title = f"{metric} · {pairing}" + (f" · {layer_label}" if layer_label else "")
    rows = metrics[metrics["pairing"] == pairing] if "pairing" in metrics else metrics.iloc[0:0]
    pairs = component_pairs(rows)
    if len(pairs) > 1:  # one heatmap = one component pair; never a mix of two
        rows = rows[(rows["component_a"] == pairs[0][0]) & (rows["component_b"] == pairs[0][1])]
        title += f" · {_pair_label(pairs[0])}"
    present = set(rows["lang_a"]) | set(rows["lang_b"]) if not rows.empty else set()
    wanted = langs if langs is not None else present
    order = language_order(languages, [lang for lang in wanted if lang in present])
    if not order:
        return _empty_figure(title, "No metric values for this selection.")
    side_a, side_b = pairing.split("-")
    cells = apply_view(heatmap_cells(rows, order, symmetric=side_a == side_b), view)
    n = len(order)
    z = cells["shown"].to_numpy(dtype=float).reshape(n, n)
    names, levels = language_names(languages), language_levels(languages)
    full_names = language_names(languages, short=False)
    hover = np.array([
        f"{side_a} language: {_lang_label(r.lang_a, full_names, levels)}<br>"
        f"{side_b} language: {_lang_label(r.lang_b, full_names, levels)}<br>" + _value_hover(r)
        for _, r in cells.iterrows()
    ], dtype=object).reshape(n, n)
    finite = z[np.isfinite(z)]
    diverging = view == "minus_baseline"
    heat = go.Heatmap(
        z=z, x=list(range(n)), y=list(range(n)), hovertext=hover,
        hovertemplate="%{hovertext}<extra></extra>", hoverongaps=False,
        colorscale="RdBu_r" if diverging else "Viridis", zmid=0.0 if diverging else None,
        colorbar=dict(title=dict(text=value_axis_title(metric, view).split(" (")[0], side="right")),
        xgap=1, ygap=1, name=title,
    )
    if n <= 14 and finite.size:
        heat.update(texttemplate="%{z:.2f}", textfont=dict(size=11))
    fig = go.Figure(heat)
    ticks = [f"<span style='color:{level_colour(levels.get(lang))}'>"
             f"{html.escape(names.get(lang, lang))}</span>" for lang in order]
    rotate = n > 8
    margin = dict(l=140, r=110, t=90, b=130 if rotate else 70)
    side = int(round(n * float(np.clip(720 / n, 30, 64))))  # square cells, 30 to 64 px each
    axis = dict(tickmode="array", tickvals=list(range(n)), ticktext=ticks, showgrid=False,
                zeroline=False, automargin=False)  # fixed margins keep the plot area square
    fig.update_xaxes(title=dict(text=f"{side_b} language (side b)"), tickangle=-45 if rotate else 0,
                     **axis)
    fig.update_yaxes(title=dict(text=f"{side_a} language (side a)"), autorange="reversed", **axis)
    for boundary, level, start, stop in _level_groups(order, levels):
        if boundary:
            for kind in ("x", "y"):
                coords = dict(x0=start - 0.5, x1=start - 0.5, y0=-0.5, y1=n - 0.5) if kind == "x" else \
                    dict(y0=start - 0.5, y1=start - 0.5, x0=-0.5, x1=n - 0.5)
                fig.add_shape(type="line", xref="x", yref="y", line=dict(color="white", width=4),
                              **coords)
        fig.add_annotation(x=(start + stop - 1) / 2, y=1.0, xref="x", yref="paper", yanchor="bottom",
                           text=f"<b>{level}</b>", showarrow=False,
                           font=dict(color=level_colour(level), size=12))
    fig.update_layout(
        title=dict(text=title, y=0.98, yref="container"), template=TEMPLATE, font=FONT,
        width=side + margin["l"] + margin["r"], height=side + margin["t"] + margin["b"],
        margin=margin,
    )
    return fig


def _level_groups(order: Sequence[str], levels: dict[str, str]) -> list[tuple[bool, str, int, int]]:
    """(starts a new group after another?, level, first index, end index) per resource level run."""
    groups: list[tuple[bool, str, int, int]] = []
    for i, lang in enumerate(order):
        level = levels.get(lang, "unknown")
        if groups and groups[-1][1] == level:
            boundary, _, start, _ = groups[-1]
            groups[-1] = (boundary, level, start, i + 1)
        else:
            groups.append((bool(groups), level, i, i + 1))
    return groups


def baseline_summary(metrics: pd.DataFrame) -> pd.DataFrame:
    """The shuffled-pairs baseline behind a heatmap, summarised per pairing for the legend table."""
    columns = ["pairing", "cells", "baseline mean", "baseline min", "baseline max",
               "mean baseline sd", "sentences per cell"]
    if metrics.empty:
        return pd.DataFrame(columns=columns)
    frame = apply_view(metrics, "raw")
    grouped = frame.groupby("pairing", sort=False)
    summary = pd.DataFrame({
        "cells": grouped.size(),
        "baseline mean": grouped["baseline_mean"].mean(),
        "baseline min": grouped["baseline_mean"].min(),
        "baseline max": grouped["baseline_mean"].max(),
        "mean baseline sd": grouped["baseline_std"].mean(),
        "sentences per cell": grouped["n_samples"].median() if "n_samples" in frame else np.nan,
    }).reset_index()
    return summary[columns].round(4)


# ------------------------------------------------------------------------------------ layer curves

def _x_values(rows: pd.DataFrame, x_axis: str) -> pd.Series:
    if x_axis == "depth":
        if "depth" in rows and rows["depth"].notna().any():
            return pd.to_numeric(rows["depth"], errors="coerce")
        top = max(float(rows["layer_a"].max()), 1.0)
        return rows["layer_a"].astype(float) / top
    return rows["layer_a"].astype(float)


def _layer_axis(fig: go.Figure, x_axis: str, layer_names: Sequence[str] | None,
                layers: Sequence[float]) -> None:
    if x_axis == "depth":
        fig.update_xaxes(title=dict(text="relative depth (0 = input embedding, 1 = last layer)"),
                         range=[-0.03, 1.03], tickformat=".1f")
        return
    ticks = sorted({int(layer) for layer in layers if pd.notna(layer)})
    fig.update_xaxes(title=dict(text="layer"), tickmode="array", tickvals=ticks,
                     ticktext=[layer_name(i, layer_names) for i in ticks])


def layer_name(layer: object, layer_names: Sequence[str] | None) -> str:
    """The component's name for a layer index ("block 3"), or "layer 3" when it has none."""
    if layer is None or pd.isna(layer):
        return "n/a"
    i = int(layer)
    return str(layer_names[i]) if layer_names and 0 <= i < len(layer_names) else f"layer {i}"


def _band(x: Sequence[float], low: Sequence[float], high: Sequence[float], colour: str, name: str,
          legendgroup: str, opacity: float = 0.15, showlegend: bool = False) -> go.Scatter | None:
    """A filled CI band (closed polygon) over the finite points, or None if nothing is finite."""
    x, low, high = (np.asarray(v, dtype=float) for v in (x, low, high))
    keep = np.isfinite(x) & np.isfinite(low) & np.isfinite(high)
    if not keep.any():
        return None
    x, low, high = x[keep], low[keep], high[keep]
    return go.Scatter(
        x=np.concatenate([x, x[::-1]]), y=np.concatenate([high, low[::-1]]), fill="toself",
        fillcolor=_rgba(colour, opacity), line=dict(width=0), hoverinfo="skip", name=name,
        legendgroup=legendgroup, showlegend=showlegend, mode="lines",
    )


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def layer_curves_figure(metrics: pd.DataFrame, languages: pd.DataFrame, *, metric: str,
                        view: str = "raw", show_ci: bool = True, x_axis: str = "layer",
                        layer_names: Sequence[str] | None = None,
                        langs: Sequence[str] | None = None) -> go.Figure:
    """Same-language, same-sentence text-vs-speech similarity over layers, one line per language.

    Lines are coloured by resource level (one colour family per level), CIs are whiskers (bands of
    twenty languages would hide each other); the shuffled baseline is the dashed grey line with a
    ±1.96 sd band.
    """
    title = f"Text vs speech of the same sentence, per language · {metric}"
    rows = metrics[(metrics["pairing"] == "text-speech") & (metrics["lang_a"] == metrics["lang_b"])] \
        if {"pairing", "lang_a", "lang_b"} <= set(metrics.columns) else metrics.iloc[0:0]
    if langs is not None:
        rows = rows[rows["lang_a"].isin(list(langs))]
    if rows.empty:
        return _empty_figure(title, "No same-language text-speech values for this selection.")
    rows = apply_view(_dedupe_cells(rows, ["lang_a", "layer_a", "layer_b"]), view)
    rows = rows.assign(x=_x_values(rows, x_axis)).sort_values("x")
    pairs = component_pairs(rows) or [("", "")]
    order = language_order(languages, rows["lang_a"].unique())
    colours, names, levels = language_colours(languages, order), language_names(languages), \
        language_levels(languages)
    full_names = language_names(languages, short=False)
    symbols = ["circle", "square", "diamond", "triangle-up", "x", "star", "hexagon", "cross"]
    fig = go.Figure()
    _add_baseline(fig, rows, "shuffled baseline (mean ± 1.96 sd)")
    dashes = ["solid", "dot", "dashdot", "longdash"]
    for (index, pair), lang in ((p, lang) for p in enumerate(pairs) for lang in order):
        line = rows[rows["lang_a"] == lang]
        if len(pairs) > 1:  # one line per language and component pair, never the two mixed
            line = line[(line["component_a"] == pair[0]) & (line["component_b"] == pair[1])]
            if line.empty:
                continue
        level = levels.get(lang, "unknown")
        colour = colours[lang]
        rank = order.index(lang) - order.index(next(x for x in order if levels.get(x) == level))
        whiskers = None
        if show_ci and line["shown_low"].notna().any():
            whiskers = dict(type="data", symmetric=False, array=line["shown_high"] - line["shown"],
                            arrayminus=line["shown"] - line["shown_low"], thickness=1.2, width=3,
                            color=_rgba(colour, 0.6))
        hover = [f"<b>{_lang_label(lang, full_names, levels)}</b><br>"
                 f"layer: {html.escape(layer_name(r.layer_a, layer_names))}<br>" + _value_hover(r)
                 for _, r in line.iterrows()]
        name = names.get(lang, lang) + (f" · {_pair_label(pair)}" if len(pairs) > 1 else "")
        fig.add_trace(go.Scatter(
            x=line["x"], y=line["shown"], mode="lines+markers", name=name,
            line=dict(color=colour, width=2, dash=dashes[index % len(dashes)] if index else None),
            marker=dict(symbol=symbols[rank % len(symbols)], size=7),
            error_y=whiskers, hovertext=hover, hovertemplate="%{hovertext}<extra></extra>",
            connectgaps=False,
            legendgroup=level, legendgrouptitle=dict(text=f"{level} resource"),
        ))
    _layer_axis(fig, x_axis, layer_names, rows["layer_a"].tolist())
    fig.update_yaxes(title=dict(text=value_axis_title(metric, view)))
    fig.update_layout(title=dict(text=title), template=TEMPLATE, font=FONT, height=520,
                      hovermode="closest", legend=dict(groupclick="toggleitem"),
                      margin=dict(l=10, r=10, t=60, b=10))
    return fig


def _add_baseline(fig: go.Figure, rows: pd.DataFrame, name: str) -> None:
    """Dashed grey shuffled-baseline line (mean over the rows per x) with a ±1.96 sd band."""
    per_x = rows.groupby("x", sort=True).agg(base=("shown_baseline", "mean"),
                                             sd=("shown_baseline_sd", "mean")).reset_index()
    if not per_x["base"].notna().any():
        return
    band = _band(per_x["x"], per_x["base"] - Z95 * per_x["sd"], per_x["base"] + Z95 * per_x["sd"],
                 BASELINE_COLOUR, name, "baseline", opacity=0.12)
    if band is not None:
        fig.add_trace(band)
    fig.add_trace(go.Scatter(
        x=per_x["x"], y=per_x["base"], mode="lines", name=name, legendgroup="baseline",
        line=dict(color=BASELINE_COLOUR, dash="dash", width=2),
        hovertemplate="shuffled baseline: %{y:.3f}<extra></extra>",
    ))


def pairing_series(metrics: pd.DataFrame, view: str = "raw") -> pd.DataFrame:
    """Per relative depth, the mean over language pairs of each comparison family, with a 95% CI.

    Families: cross-lingual text-text, speech-speech and text-speech, and same-language text-speech
    (the modality gap alone). A family with several component pairs (Seamless' two text-speech
    pairs) gives one series per pair (``series`` = family · pair; ``family``, ``components``).
    Grouping by depth keeps stacks of different lengths comparable;
    ``layer_a`` is side a's layer there (for labels). The CI is bootstrapped jointly over the
    language pairs of a depth (the same sentence resamples for every row: ``core.metrics.joint.
    mean_interval``) where the rows carry their bootstrap values, else from their spread as if
    independent (``ci_method`` says which). Speech-speech rows of one language (voice change) are
    their own family.
    """
    columns = ["series", "layer_a", "depth", "mean", "ci_low", "ci_high", "ci_method", "baseline",
               "pairs", "family", "components"]
    needed = {"pairing", "lang_a", "lang_b", "layer_a"}
    if metrics.empty or not needed <= set(metrics.columns):
        return pd.DataFrame(columns=columns)
    rows = apply_view(_dedupe_cells(metrics, ["pairing", "lang_a", "lang_b", "layer_a", "layer_b"]
                                    if "layer_b" in metrics else ["pairing", "lang_a", "lang_b",
                                                                  "layer_a"]), view)
    if "depth" not in rows or rows["depth"].isna().all():
        rows["depth"] = rows["layer_a"] / max(float(rows["layer_a"].max()), 1.0)
    rows["depth"] = rows["depth"].astype(float).round(6)
    same = rows["lang_a"] == rows["lang_b"]
    families = {
        "text-text (cross-lingual)": (rows["pairing"] == "text-text") & ~same,
        "speech-speech (cross-lingual)": (rows["pairing"] == "speech-speech") & ~same,
        "text-speech (cross-lingual)": (rows["pairing"] == "text-speech") & ~same,
        "text-speech (same language)": (rows["pairing"] == "text-speech") & same,
        "speech-speech (same language, another voice)": (rows["pairing"] == "speech-speech") & same,
    }
    parts = []
    for family, mask in families.items():
        subset = rows[mask & rows["shown"].notna()]
        pairs = component_pairs(subset) or [None]
        for pair in pairs:  # a family of several component pairs: one series per pair
            own = subset if pair is None else subset[(subset["component_a"] == pair[0])
                                                     & (subset["component_b"] == pair[1])]
            if own.empty:
                continue
            records = []
            for depth, at in own.groupby("depth", sort=True):
                boot = bootstrap_matrix(at) if view != "residualised" else None
                offsets = at["baseline_mean"].to_numpy() if view == "minus_baseline" else None
                mean, low, high, method = mean_interval(at["shown"].to_numpy(), boot, offsets)
                if view == "residualised":
                    low = high = np.nan  # no bootstrap of residualised values is stored
                records.append({"depth": depth, "layer_a": at["layer_a"].iloc[0], "mean": mean,
                                "ci_low": low, "ci_high": high, "ci_method": method,
                                "pairs": len(at), "baseline": at["shown_baseline"].mean()})
            stats = pd.DataFrame(records)
            stats["series"] = family + (f" · {_pair_label(pair)}" if len(pairs) > 1 else "")
            stats["family"] = family
            stats["components"] = _pair_label(pair) if pair is not None else ""
            parts.append(stats[columns])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def pairing_curves_figure(metrics: pd.DataFrame, *, metric: str, view: str = "raw",
                          show_ci: bool = True, x_axis: str = "layer",
                          layer_names: Sequence[str] | None = None) -> go.Figure:
    """Mean cross-lingual similarity over layers for text-text vs speech-speech vs text-speech.

    Speech lines below text lines = larger cross-lingual differences in speech (finding 3); the
    same-language text-speech line below the cross-lingual text-text line = a modality gap larger
    than the language gap (finding 4). Dashed lines of the same colour are each family's shuffled
    baseline.
    """
    title = f"Mean similarity over language pairs, per comparison · {metric}"
    series = pairing_series(metrics, view)
    if series.empty:
        return _empty_figure(title, "No metric values for this selection.")
    series = series.assign(x=series["depth"])
    fig = go.Figure()
    first_of_family: dict[str, str] = {}
    for name, line in series.groupby("series", sort=False):
        family = str(line["family"].iloc[0])
        colour = SERIES_COLOURS.get(family, BASELINE_COLOUR)
        dash = None if first_of_family.setdefault(family, name) == name else "dot"
        if show_ci:
            band = _band(line["x"], line["ci_low"], line["ci_high"], colour, f"{name} CI", name,
                         opacity=0.18)
            if band is not None:
                fig.add_trace(band)
        hover = [f"<b>{name}</b><br>relative depth: {_fmt(r.depth, 2)} (layer {_fmt_int(r.layer_a)} "
                 f"of side a)<br>mean: <b>{_fmt(r['mean'])}</b><br>"
                 f"95% CI of the mean: [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}] ({r.ci_method})<br>"
                 f"shuffled baseline: {_fmt(r.baseline)}<br>language pairs: {_fmt_int(r.pairs)}"
                 for _, r in line.iterrows()]
        fig.add_trace(go.Scatter(
            x=line["x"], y=line["mean"], mode="lines+markers", name=name, legendgroup=name,
            line=dict(color=colour, width=3, dash=dash), hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>",
        ))
        if line["baseline"].notna().any():
            fig.add_trace(go.Scatter(
                x=line["x"], y=line["baseline"], mode="lines", name=f"{name}: shuffled baseline",
                legendgroup=name, showlegend=False, line=dict(color=colour, width=1.5, dash="dash"),
                hovertemplate=f"{name}<br>shuffled baseline: %{{y:.3f}}<extra></extra>",
            ))
    if x_axis == "depth":
        _layer_axis(fig, "depth", layer_names, [])
    else:  # name the depths with the layers of the same-language text-speech family's side a
        anchor = series[series["family"] == "text-speech (same language)"]
        anchor = (anchor if not anchor.empty else series).drop_duplicates("depth")
        fig.update_xaxes(title=dict(text="layer (at matching relative depth)"), tickmode="array",
                         tickvals=list(anchor["depth"]),
                         ticktext=[layer_name(layer, layer_names) for layer in anchor["layer_a"]])
    fig.update_yaxes(title=dict(text=value_axis_title(metric, view)))
    fig.update_layout(title=dict(text=title), template=TEMPLATE, font=FONT, height=460,
                      legend=dict(orientation="h", yanchor="top", y=-0.18, x=0),
                      margin=dict(l=10, r=10, t=60, b=10))
    return fig


# -------------------------------------------------------------------------------------- projection

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
        members = _joint_members(row.params) or ((str(row.component), int(row.layer)),)
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


def _joint_members(params: object) -> tuple[tuple[str, int], ...]:
    try:
        parsed = json.loads(params) if isinstance(params, str) else params
        joint = parsed.get("joint") if isinstance(parsed, dict) else None
        members = tuple((str(m).rsplit(":", 1)[0], int(str(m).rsplit(":", 1)[1])) for m in joint or ())
    except (ValueError, TypeError, IndexError, AttributeError):
        return ()
    return members


def projection_points(projections: pd.DataFrame, languages: pd.DataFrame) -> pd.DataFrame:
    """Store projection rows (already joined with their item) plus the language's name and level."""
    table = _language_table(languages)
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


def _wrap(text: object, width: int = 60, limit: int = 240) -> str:
    if not isinstance(text, str) or not text:
        return ""
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    words, lines, current = text.split(), [], ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    lines.append(current)
    return "<br>".join(html.escape(line) for line in lines)


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
        return _empty_figure(title, "No projection stored for this component and layer.")
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
                 f"{_fmt_int(r.get('sentence_id'))}<br>{_wrap(r.get('text'))}"
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


# ---------------------------------------------------------------------------------------- overview

def language_summary(items: pd.DataFrame, languages: pd.DataFrame,
                     voices: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per corpus language: name, resource level, Whisper hours, item counts, voices (``voices``:
    lang, voice_rank, voice of the store's speech), median and mean speech CER and how many clips
    the CER comes from (a build may transcribe a sample)."""
    table = _language_table(languages)
    langs = language_order(languages, list(table.index) + (
        list(items["lang"].dropna().unique()) if "lang" in items else []))
    counts = (items.groupby(["lang", "modality"]).size().unstack(fill_value=0)
              if not items.empty else pd.DataFrame())
    speech = items[items["modality"] == "speech"] if "modality" in items else items.iloc[0:0]
    cer = pd.to_numeric(speech["cer"], errors="coerce").groupby(speech["lang"]) \
        if "cer" in speech else None
    out = pd.DataFrame({"lang": langs})
    out["name"] = out["lang"].map(table["name"]).fillna(out["lang"])
    out["resource level"] = out["lang"].map(table["resource_level"]).fillna("unknown")
    out["whisper hours"] = out["lang"].map(table["whisper_hours"])
    for modality in ("text", "speech"):
        out[f"{modality} items"] = out["lang"].map(
            counts[modality] if modality in counts else pd.Series(dtype=int)).fillna(0).astype(int)
    # The median is the headline: a clip the model loops on scores CER > 1 and drags the mean.
    out["median CER (speech)"] = out["lang"].map(cer.median() if cer is not None else {})
    out["mean CER (speech)"] = out["lang"].map(cer.mean() if cer is not None else {})
    out["CER clips"] = out["lang"].map(cer.count() if cer is not None else {}).fillna(0).astype(int)
    if voices is not None and not voices.empty:
        named = voices.sort_values(["lang", "voice_rank"]).drop_duplicates(["lang", "voice_rank"])
        named = named.assign(short=named["voice"].astype(str).str.split().str[-1])
        out["voices"] = out["lang"].map(named.groupby("lang")["short"].agg(" + ".join)).fillna("")
    return out


def corpus_counts(items: pd.DataFrame, speech_items_all_voices: int | None = None
                  ) -> dict[str, int]:
    """Headline numbers of the corpus in the store: languages, sentences, text and speech items.

    ``items`` holds each sentence's first voice only (what the metrics pair); pass the number of
    speech items over every voice so the headline counts second-voice clips too."""
    if items.empty:
        return {"Languages": 0, "Sentences": 0, "Text items": 0, "Speech items": 0}
    speech = int((items["modality"] == "speech").sum())
    return {"Languages": int(items["lang"].nunique()),
            "Sentences": int(items["sentence_id"].nunique()),
            "Text items": int((items["modality"] == "text").sum()),
            "Speech items": speech if speech_items_all_voices is None else
            int(speech_items_all_voices)}


def components_table(components: pd.DataFrame, layers: pd.DataFrame | None = None) -> pd.DataFrame:
    """A run's components for display: layer names joined into one string, the stages along each
    path ("frontend 1 · encoder 6", from the layers table), the representation space(s) and what
    the component is fed besides its input (conditioning) as readable text."""
    from dashboard.stages import stage_summary  # noqa: PLC0415 - stages imports nothing of ours

    table = components.copy()
    if "layer_names" in table:
        table["layer_names"] = [", ".join(map(str, names)) if names is not None else ""
                                for names in table["layer_names"]]
    if layers is not None and not layers.empty and "component" in table:
        table["stages"] = [stage_summary(layers, c) for c in table["component"]]
        spaces = {str(c): ", ".join(dict.fromkeys(str(v) for v in group["space"].dropna()))
                  for c, group in layers.groupby("component", sort=False)}
        fallback = table["space"] if "space" in table else pd.Series("", index=table.index)
        table["space"] = [spaces.get(str(c)) or f for c, f in zip(table["component"], fallback,
                                                                   strict=True)]
    if "conditioning" in table:
        table["conditioning"] = [_conditioning_text(c) for c in table["conditioning"]]
    first = [c for c in ("component", "modality", "space", "stages", "conditioning", "n_layers",
                         "dim") if c in table.columns]
    return table[first + [c for c in table.columns if c not in first]]


def _conditioning_text(conditioning: object) -> str:
    if isinstance(conditioning, str):
        try:
            conditioning = json.loads(conditioning)
        except ValueError:
            return conditioning
    if not conditioning:
        return "none (the input alone)"
    if isinstance(conditioning, dict):
        return "; ".join(f"{k}: {v}" for k, v in conditioning.items())
    return str(conditioning)


def cer_figure(summary: pd.DataFrame, *, unavailable: str | None = None) -> go.Figure:
    """Median character error rate of the speech per language (how well the model hears it).

    ``unavailable``: why the run has no CER (a text-only model, a model that cannot transcribe),
    shown instead of bars."""
    title = "How well the model transcribes the speech (median CER per language)"
    if unavailable:
        return _empty_figure(title, html.escape(unavailable))
    data = summary.dropna(subset=["median CER (speech)"]) if not summary.empty else summary
    if data.empty:
        return _empty_figure(title, "No character error rates stored (speech was not transcribed).")
    data = data.assign(short=data["name"].astype(str).map(short_name))
    fig = go.Figure()
    for level, group in data.groupby("resource level", sort=False):
        fig.add_trace(go.Bar(
            x=group["short"], y=group["median CER (speech)"], name=f"{level} resource",
            marker_color=level_colour(level), customdata=group[["mean CER (speech)"]],
            hovertemplate="%{x}<br>median CER: %{y:.1%}<br>mean CER: %{customdata[0]:.1%}<extra>"
                          + f"{level} resource</extra>",
        ))
    fig.update_xaxes(title=dict(text="language (ordered by resource level)"),
                     categoryorder="array", categoryarray=list(data["short"]))
    fig.update_yaxes(title=dict(text="median CER (lower = clearer)"), tickformat=".0%",
                     rangemode="tozero")
    fig.update_layout(title=dict(text=title), template=TEMPLATE, font=FONT, height=380,
                      barmode="group", bargap=0.25, margin=dict(l=10, r=10, t=60, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1, xanchor="right"))
    return fig


# ---------------------------------------------------------------------------------------- findings

VERDICT_COLOURS: dict[str, str] = {
    "holds": "green", "supported": "green", "replicated": "green",
    "partially holds": "orange", "partial": "orange", "mixed": "orange",
    "not enough data": "gray", "inconclusive": "gray", "n/a": "gray",
    "does not hold": "red", "not supported": "red", "contradicted": "red",
}


def verdict_colour(verdict: object) -> str:
    """Badge colour for a finding's verdict (core.findings: holds / does not hold / not enough
    data); an unknown verdict is grey, never green."""
    text = " ".join(str(verdict).strip().lower().replace("_", " ").split())
    if text in VERDICT_COLOURS:
        return VERDICT_COLOURS[text]
    if text.startswith(("not ", "does not", "un")) or "contradict" in text:
        return "red"
    if "partial" in text or "mixed" in text:
        return "orange"
    return "gray"


_X_COLUMNS = ("depth", "relative_depth", "layer", "layer_a")
_Y_COLUMNS = ("value", "gap", "mean", "similarity", "difference", "delta")
_LINE_SERIES = ("series", "pairing", "comparison", "modality", "group", "component", "lang")
_BAR_CATEGORIES = ("resource_level", "level", "lang", "name", "pairing", "series")
_BAR_COLOURS = ("adaptation", "component", "series", "modality", "pairing", "group")


def finding_figure(details: pd.DataFrame, *, metric: str = "", title: str = "") -> go.Figure | None:
    """A small chart of a finding's details when their shape allows one, else None (show a table).

    Lines over relative depth (one per ``series``, CI band from ``ci_low``/``ci_high``) when there is
    a depth or layer column; grouped bars per category (e.g. resource level) otherwise.
    """
    if details is None or details.empty:
        return None
    numeric = [c for c in details.columns if pd.api.types.is_numeric_dtype(details[c])]
    y = next((c for c in _Y_COLUMNS if c in numeric), None)
    if y is None:
        return None
    x = next((c for c in _X_COLUMNS if c in numeric), None)
    has_ci = {"ci_low", "ci_high"} <= set(numeric)
    y_title = {"value": metric or "value", "gap": f"gap = 1 − {metric}" if metric else "gap"}.get(
        y, y.replace("_", " "))
    fig = go.Figure()
    if x is not None:
        series = next((c for c in _LINE_SERIES if c in details.columns and c not in numeric), None)
        groups = details.groupby(series, sort=False) if series else [("", details)]
        for i, (name, group) in enumerate(groups):
            colour = SERIES_COLOURS.get(str(name), CATEGORICAL[i % len(CATEGORICAL)])
            group = group.sort_values(x)
            if has_ci:
                band = _band(group[x], group["ci_low"], group["ci_high"], colour, f"{name} CI",
                             str(name))
                if band is not None:
                    fig.add_trace(band)
            derived = any(word in str(name) for word in ("minus", "difference"))
            fig.add_trace(go.Scatter(
                x=group[x], y=group[y], mode="lines+markers", name=str(name), legendgroup=str(name),
                line=dict(color=colour, width=2.5, dash="dot" if derived else None),
                hovertemplate=f"{name}<br>{x}: %{{x:.2f}}<br>{y_title}: %{{y:.3f}}<extra></extra>"))
        x_title = "relative depth (0 = embedding, 1 = last layer)" if "depth" in x else "layer"
        show_legend = series is not None
    else:
        category = next((c for c in _BAR_CATEGORIES if c in details.columns and c not in numeric),
                        None)
        if category is None:
            return None
        colour_by = next((c for c in _BAR_COLOURS if c in details.columns and c not in numeric
                          and c != category), None)
        groups = details.groupby(colour_by, sort=False) if colour_by else [("", details)]
        for i, (name, group) in enumerate(groups):
            error = (dict(type="data", symmetric=False, array=group["ci_high"] - group[y],
                          arrayminus=group[y] - group["ci_low"]) if has_ci else None)
            fig.add_trace(go.Bar(
                x=group[category].astype(str), y=group[y], name=str(name), error_y=error,
                marker_color=CATEGORICAL[i % len(CATEGORICAL)],
                hovertemplate=f"%{{x}}<br>{y_title}: %{{y:.3f}}<extra>{name}</extra>"))
        x_title = category.replace("_", " ")
        show_legend = colour_by is not None
        fig.update_layout(barmode="group")
    fig.update_xaxes(title=dict(text=x_title))
    fig.update_yaxes(title=dict(text=y_title))
    fig.update_layout(title=dict(text=title), template=TEMPLATE, font=FONT, height=360,
                      showlegend=show_legend, legend=dict(orientation="h", y=-0.25, x=0),
                      margin=dict(l=10, r=10, t=50 if title else 20, b=10))
    return fig


# ------------------------------------------------------------------------------ SVCCA's k sensitivity

def k_sensitivity_figure(table: pd.DataFrame, *, title: str = "") -> go.Figure:
    """SVCCA (solid) and its shuffled baseline (dashed) against k, one colour per comparison family
    (``core.findings.k_sensitivity``); hollow markers where the baseline reaches 80% of the value."""
    title = title or "SVCCA and its shuffled baseline against k (means over pairs and layers)"
    if table is None or table.empty:
        return _empty_figure(title, "No SVCCA-at-k rows in this run (built before they existed).")
    fig = go.Figure()
    for i, (family, line) in enumerate(table.groupby("family", sort=False)):
        colour = SERIES_COLOURS.get(str(family), CATEGORICAL[i % len(CATEGORICAL)])
        line = line.sort_values("k")
        symbols = ["circle-open" if w else "circle" for w in line["warn"]]
        hover = [f"<b>{family}</b><br>k = {int(r.k)} (n = {int(r.n_samples)} sentences)<br>"
                 f"SVCCA {_fmt(r.value)}, baseline {_fmt(r.baseline)}, above it "
                 f"{_fmt(r.above_baseline)}" + ("<br><b>baseline near the value</b>" if r.warn else "")
                 for r in line.itertuples()]
        fig.add_trace(go.Scatter(x=line["k"], y=line["value"], mode="lines+markers", name=str(family),
                                 legendgroup=str(family), line=dict(color=colour, width=2.5),
                                 marker=dict(symbol=symbols, size=9), hovertext=hover,
                                 hovertemplate="%{hovertext}<extra></extra>"))
        fig.add_trace(go.Scatter(x=line["k"], y=line["baseline"], mode="lines",
                                 name=f"{family}: shuffled baseline", legendgroup=str(family),
                                 showlegend=False, line=dict(color=colour, width=1.5, dash="dash"),
                                 hovertemplate=f"{family}<br>baseline at k=%{{x}}: %{{y:.3f}}"
                                               "<extra></extra>"))
    fig.update_xaxes(title=dict(text="k (SVCCA directions kept, log scale)"), type="log",
                     tickvals=sorted(table["k"].unique()))
    fig.update_yaxes(title=dict(text="SVCCA (solid) and shuffled baseline (dashed)"))
    fig.update_layout(title=dict(text=title), template=TEMPLATE, font=FONT, height=400,
                      legend=dict(orientation="h", y=-0.22, x=0), margin=dict(l=10, r=10, t=50, b=10))
    return fig
