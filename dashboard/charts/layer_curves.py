"""Charts of the Layer curves page: same-language text-vs-speech similarity per language over
layers, and the mean of each comparison family (cross-lingual text-text, speech-speech,
text-speech; same-language text-speech) over relative depth."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.metrics.joint import Z_95, mean_interval
from core.store.vectors import bootstrap_matrix
from dashboard.charts.common import (
    LENGTH_BASELINE_DASH,
    LENGTH_BASELINE_NAME,
    ci_band,
    empty_figure,
    fmt,
    fmt_int,
    layer_name,
    metric_hover,
    rgba,
    rows_settings,
    value_axis_title,
    value_hover,
)
from dashboard.charts.languages import (
    lang_label,
    language_colours,
    language_levels,
    language_names,
    language_order,
)
from dashboard.charts.theme import (
    BASELINE_COLOUR,
    FONT,
    LENGTH_BASELINE_COLOUR,
    SERIES_COLOURS,
    TEMPLATE,
)
from dashboard.charts.transforms import apply_view, component_pairs, dedupe_cells, pair_label


def x_values(rows: pd.DataFrame, x_axis: str) -> pd.Series:
    """The x of each row: its layer index, or its relative depth (``x_axis`` "depth")."""
    if x_axis == "depth":
        if "depth" in rows and rows["depth"].notna().any():
            return pd.to_numeric(rows["depth"], errors="coerce")
        top = max(float(rows["layer_a"].max()), 1.0)
        return rows["layer_a"].astype(float) / top
    return rows["layer_a"].astype(float)


def layer_axis(fig: go.Figure, x_axis: str, layer_names: Sequence[str] | None,
               layers: Sequence[float], *, xaxis: int = 1, title: bool = True) -> None:
    """Ticks and title of x axis number ``xaxis``: layer names, or relative depth in [0, 1]."""
    name = f"xaxis{xaxis if xaxis > 1 else ''}"
    if x_axis == "depth":
        fig.layout[name].update(
            title=dict(text="relative depth (0 = input embedding, 1 = last layer)" if title
                       else ""), range=[-0.03, 1.03], tickformat=".1f")
        return
    ticks = sorted({int(layer) for layer in layers if pd.notna(layer)})
    fig.layout[name].update(title=dict(text="layer" if title else ""), tickmode="array",
                            tickvals=ticks, ticktext=[layer_name(i, layer_names) for i in ticks])


def layer_curves_figure(metrics: pd.DataFrame, languages: pd.DataFrame, *, metric: str,
                        view: str = "raw", show_ci: bool = True, x_axis: str = "layer",
                        layer_names: Sequence[str] | None = None,
                        langs: Sequence[str] | None = None,
                        show_length: bool = False) -> go.Figure:
    """Same-language, same-sentence text-vs-speech similarity over layers, one line per language.

    Lines are coloured by resource level (one colour family per level), CIs are whiskers (bands of
    twenty languages would hide each other); the shuffled baseline is the dashed grey line with a
    ±1.96 sd band; with ``show_length`` the length-only baseline (mean over languages) is the
    black dash-dot line.
    """
    title = f"Text vs speech of the same sentence, per language · {metric}"
    rows = metrics[(metrics["pairing"] == "text-speech") & (metrics["lang_a"] == metrics["lang_b"])] \
        if {"pairing", "lang_a", "lang_b"} <= set(metrics.columns) else metrics.iloc[0:0]
    if langs is not None:
        rows = rows[rows["lang_a"].isin(list(langs))]
    if rows.empty:
        return empty_figure(title, "No same-language text-speech values for this selection.")
    rows = apply_view(dedupe_cells(rows, ["lang_a", "layer_a", "layer_b"]), view)
    rows = rows.assign(x=x_values(rows, x_axis)).sort_values("x")
    pairs = component_pairs(rows) or [("", "")]
    order = language_order(languages, rows["lang_a"].unique())
    colours, names, levels = language_colours(languages, order), language_names(languages), \
        language_levels(languages)
    full_names = language_names(languages, short=False)
    symbols = ["circle", "square", "diamond", "triangle-up", "x", "star", "hexagon", "cross"]
    fig = go.Figure()
    _add_baseline(fig, rows, "shuffled baseline (mean ± 1.96 sd)")
    if show_length:
        _add_length_baseline(fig, rows)
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
                            color=rgba(colour, 0.6))
        hover = [f"<b>{lang_label(lang, full_names, levels)}</b><br>"
                 f"layer: {html.escape(layer_name(r.layer_a, layer_names))}<br>" + value_hover(r)
                 for _, r in line.iterrows()]
        name = names.get(lang, lang) + (f" · {pair_label(pair)}" if len(pairs) > 1 else "")
        fig.add_trace(go.Scatter(
            x=line["x"], y=line["shown"], mode="lines+markers", name=name,
            line=dict(color=colour, width=2, dash=dashes[index % len(dashes)] if index else None),
            marker=dict(symbol=symbols[rank % len(symbols)], size=7),
            error_y=whiskers, hovertext=hover, hovertemplate="%{hovertext}<extra></extra>",
            connectgaps=False,
            legendgroup=level, legendgrouptitle=dict(text=f"{level} resource"),
        ))
    layer_axis(fig, x_axis, layer_names, rows["layer_a"].tolist())
    fig.update_yaxes(title=dict(text=value_axis_title(metric, view)))
    fig.update_layout(title=dict(text=title), template=TEMPLATE, font=FONT, height=620,
                      hovermode="closest",
                      legend=dict(groupclick="toggleitem", orientation="h", yanchor="top", y=-0.14,
                                  x=0),  # under the plot: wraps instead of scrolling
                      margin=dict(l=10, r=10, t=60, b=10))
    return fig


def _add_baseline(fig: go.Figure, rows: pd.DataFrame, name: str) -> None:
    """Dashed grey shuffled-baseline line (mean over the rows per x) with a ±1.96 sd band."""
    per_x = rows.groupby("x", sort=True).agg(base=("shown_baseline", "mean"),
                                             sd=("shown_baseline_sd", "mean")).reset_index()
    if not per_x["base"].notna().any():
        return
    band = ci_band(per_x["x"], per_x["base"] - Z_95 * per_x["sd"],
                   per_x["base"] + Z_95 * per_x["sd"], BASELINE_COLOUR, name, "baseline",
                   opacity=0.12)
    if band is not None:
        fig.add_trace(band)
    fig.add_trace(go.Scatter(
        x=per_x["x"], y=per_x["base"], mode="lines", name=name, legendgroup="baseline",
        line=dict(color=BASELINE_COLOUR, dash="dash", width=2),
        hovertemplate="shuffled baseline: %{y:.3f}<extra></extra>",
    ))


def _add_length_baseline(fig: go.Figure, rows: pd.DataFrame) -> None:
    """Black dash-dot length-only baseline: its mean over the rows (languages) per x."""
    per_x = rows.groupby("x", sort=True).agg(
        base=("shown_length_baseline", "mean"), low=("shown_length_baseline", "min"),
        high=("shown_length_baseline", "max")).reset_index()
    if not per_x["base"].notna().any():
        return
    fig.add_trace(go.Scatter(
        x=per_x["x"], y=per_x["base"], mode="lines", name=LENGTH_BASELINE_NAME,
        legendgroup="length_baseline", customdata=per_x[["low", "high"]].to_numpy(),
        line=dict(color=LENGTH_BASELINE_COLOUR, dash=LENGTH_BASELINE_DASH, width=2),
        hovertemplate="length-only baseline: %{y:.3f} (mean over languages; "
                      "%{customdata[0]:.3f} to %{customdata[1]:.3f})<extra></extra>",
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
    their own family. ``baseline`` and ``length_baseline``: the mean shuffled-pairs and
    length-only baselines of the depth's rows, in the view's units.
    """
    columns = ["series", "layer_a", "depth", "mean", "ci_low", "ci_high", "ci_method", "baseline",
               "length_baseline", "pairs", "family", "components"]
    needed = {"pairing", "lang_a", "lang_b", "layer_a"}
    if metrics.empty or not needed <= set(metrics.columns):
        return pd.DataFrame(columns=columns)
    rows = apply_view(dedupe_cells(metrics, ["pairing", "lang_a", "lang_b", "layer_a", "layer_b"]
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
                                "pairs": len(at), "baseline": at["shown_baseline"].mean(),
                                "length_baseline": at["shown_length_baseline"].mean()})
            stats = pd.DataFrame(records)
            stats["series"] = family + (f" · {pair_label(pair)}" if len(pairs) > 1 else "")
            stats["family"] = family
            stats["components"] = pair_label(pair) if pair is not None else ""
            parts.append(stats[columns])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def pairing_curves_figure(metrics: pd.DataFrame, *, metric: str, view: str = "raw",
                          show_ci: bool = True, x_axis: str = "layer",
                          layer_names: Sequence[str] | None = None,
                          show_length: bool = False) -> go.Figure:
    """Mean cross-lingual similarity over layers for text-text vs speech-speech vs text-speech.

    Speech lines below text lines = larger cross-lingual differences in speech (finding 3); the
    same-language text-speech line below the cross-lingual text-text line = a modality gap larger
    than the language gap (finding 4). Dashed lines of the same colour are each family's shuffled
    baseline; with ``show_length``, dash-dot lines of the same colour its length-only baseline
    (one legend entry shows or hides them all).
    """
    title = f"Mean similarity over language pairs, per comparison · {metric}"
    series = pairing_series(metrics, view)
    if series.empty:
        return empty_figure(title, "No metric values for this selection.")
    series = series.assign(x=series["depth"])
    meaning = metric_hover(metric, rows_settings(metrics))
    fig = go.Figure()
    first_of_family: dict[str, str] = {}
    for name, line in series.groupby("series", sort=False):
        family = str(line["family"].iloc[0])
        colour = SERIES_COLOURS.get(family, BASELINE_COLOUR)
        dash = None if first_of_family.setdefault(family, name) == name else "dot"
        if show_ci:
            band = ci_band(line["x"], line["ci_low"], line["ci_high"], colour, f"{name} CI", name,
                            opacity=0.18)
            if band is not None:
                fig.add_trace(band)
        hover = [f"<b>{name}</b><br>relative depth: {fmt(r.depth, 2)} (layer {fmt_int(r.layer_a)} "
                 f"of side a)<br>mean: <b>{fmt(r['mean'])}</b><br>"
                 f"95% CI of the mean: [{fmt(r.ci_low)}, {fmt(r.ci_high)}] ({r.ci_method})<br>"
                 f"shuffled baseline: {fmt(r.baseline)}<br>language pairs: {fmt_int(r.pairs)}"
                 f"<br>{meaning}" for _, r in line.iterrows()]
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
        if show_length and line["length_baseline"].notna().any():
            fig.add_trace(go.Scatter(
                x=line["x"], y=line["length_baseline"], mode="lines",
                name=f"{name}: length-only baseline", legendgroup="length_baseline",
                showlegend=False, line=dict(color=colour, width=1.5, dash=LENGTH_BASELINE_DASH),
                hovertemplate=f"{name}<br>length-only baseline: %{{y:.3f}}<extra></extra>",
            ))
    if any(t.legendgroup == "length_baseline" for t in fig.data):  # one key for all of them
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="lines", name=LENGTH_BASELINE_NAME,
            legendgroup="length_baseline",
            line=dict(color=LENGTH_BASELINE_COLOUR, width=1.5, dash=LENGTH_BASELINE_DASH)))
    if x_axis == "depth":
        layer_axis(fig, "depth", layer_names, [])
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
