"""Same-language text-vs-speech curves read by resource level: twenty language lines on one chart
are a tangle, so these charts group them.

- ``level_panels_figure``: small multiples, one panel per resource level with its languages as
  thin lines and the level's mean as a thick line with a band; one shared y axis.
- ``level_means_figure``: one chart, one thick line per level with its band, and only the
  languages asked for as thin lines (languages on demand).

The band of a level mean is bootstrapped jointly over the level's languages (every row of a run
uses the same sentence resamples: ``core.metrics.joint.mean_interval``). Legends are horizontal
under the plot and wrap instead of scrolling. Traces are built as plain dicts and hover text is
formatted column-wise, because plotly's per-trace validation dominated the page's rerun time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.metrics.joint import Z_95, mean_interval
from core.store.vectors import bootstrap_matrix
from dashboard.charts.common import (
    LENGTH_BASELINE_DASH,
    LENGTH_BASELINE_NAME,
    empty_figure,
    layer_name,
    rgba,
    value_axis_title,
)
from dashboard.charts.languages import (
    language_colours,
    language_levels,
    language_names,
    language_order,
    level_colour,
)
from dashboard.charts.layer_curves import layer_axis, x_values
from dashboard.charts.theme import BASELINE_COLOUR, FONT, LENGTH_BASELINE_COLOUR, TEMPLATE
from dashboard.charts.transforms import apply_view, component_pairs, dedupe_cells, pair_label

LEVEL_SERIES_COLUMNS = ["level", "x", "layer_a", "mean", "ci_low", "ci_high", "ci_method",
                        "languages", "baseline", "baseline_sd", "length_baseline"]


def same_language_rows(metrics: pd.DataFrame, view: str, x_axis: str,
                       langs: Sequence[str] | None = None) -> pd.DataFrame:
    """Same-language text-speech rows of one component pair, one per (language, layer), in
    ``view`` (``apply_view`` columns) with ``x`` for ``x_axis``. A run with several text-speech
    component pairs keeps the first (the page picks one before calling)."""
    needed = {"pairing", "lang_a", "lang_b", "layer_a"}
    if metrics.empty or not needed <= set(metrics.columns):
        return metrics.iloc[0:0]
    rows = metrics[(metrics["pairing"] == "text-speech") & (metrics["lang_a"] == metrics["lang_b"])]
    if langs is not None:
        rows = rows[rows["lang_a"].isin(list(langs))]
    pairs = component_pairs(rows)
    if len(pairs) > 1:
        rows = rows[(rows["component_a"] == pairs[0][0]) & (rows["component_b"] == pairs[0][1])]
    if rows.empty:
        return rows
    rows = apply_view(dedupe_cells(rows, ["lang_a", "layer_a", "layer_b"]), view)
    return rows.assign(x=x_values(rows, x_axis)).sort_values(["x", "lang_a"], kind="stable")


def level_series(rows: pd.DataFrame, languages: pd.DataFrame, view: str) -> pd.DataFrame:
    """Per resource level and x, the mean over the level's languages with its 95% interval (joint
    bootstrap over the shared sentence resamples where the rows carry them; none in the
    residualised view), how many languages, and the mean shuffled and length-only baselines."""
    if rows.empty:
        return pd.DataFrame(columns=LEVEL_SERIES_COLUMNS)
    levels = language_levels(languages)
    level = np.array([levels.get(lang, "unknown") for lang in rows["lang_a"].astype(object)],
                     dtype=object)
    x = rows["x"].to_numpy(float)
    shown = rows["shown"].to_numpy(float)
    columns = {name: rows[name].to_numpy(float) for name in (
        "layer_a", "baseline_mean", "shown_baseline", "shown_baseline_sd", "shown_length_baseline")}
    boot = bootstrap_matrix(rows) if view != "residualised" else None  # one decode for all rows
    level_order = list(dict.fromkeys(levels.get(lang, "unknown")
                                     for lang in language_order(languages, rows["lang_a"])))
    records = []
    for name in level_order:
        for value in np.unique(x[level == name]):
            at = np.flatnonzero((level == name) & (x == value) & np.isfinite(shown))
            if not at.size:
                continue
            offsets = columns["baseline_mean"][at] if view == "minus_baseline" else None
            mean, low, high, method = mean_interval(shown[at], None if boot is None else boot[at],
                                                    offsets)
            if view == "residualised":
                low = high = np.nan
                method = "none (no bootstrap of residualised values is stored)"
            records.append({"level": name, "x": value, "layer_a": columns["layer_a"][at[0]],
                            "mean": mean, "ci_low": low, "ci_high": high, "ci_method": method,
                            "languages": int(at.size),
                            "baseline": _nanmean(columns["shown_baseline"][at]),
                            "baseline_sd": _nanmean(columns["shown_baseline_sd"][at]),
                            "length_baseline": _nanmean(columns["shown_length_baseline"][at])})
    return pd.DataFrame(records, columns=LEVEL_SERIES_COLUMNS)


def _nanmean(values: np.ndarray) -> float:
    """The mean of the finite values (NaN when there are none), without a warning."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _hover(rows: pd.DataFrame, label: str, layer_names: Sequence[str] | None) -> list[str]:
    """Hover text of a language line, formatted column-wise (no ``iterrows``)."""
    def f(values) -> list[str]:
        return ["n/a" if not np.isfinite(v) else f"{v:.3f}" for v in np.asarray(values, float)]
    layers = [layer_name(layer, layer_names) for layer in rows["layer_a"]]
    return [f"<b>{label}</b><br>layer: {layer}<br>value: <b>{v}</b><br>95% CI: [{lo}, {hi}]"
            f"<br>shuffled baseline: {b}<br>length-only baseline: {ln}<br>n = {n} sentences"
            for layer, v, lo, hi, b, ln, n in zip(
                layers, f(rows["shown"]), f(rows["shown_low"]), f(rows["shown_high"]),
                f(rows["shown_baseline"]), f(rows["shown_length_baseline"]),
                rows["n_samples"] if "n_samples" in rows else ["n/a"] * len(rows), strict=True)]


def _language_trace(line: pd.DataFrame, name: str, colour: str, layer_names, *, axis: int,
                    level: str, show_ci: bool, width: float = 1.6, opacity: float = 0.9) -> dict:
    trace = dict(type="scatter", x=line["x"].to_numpy(), y=line["shown"].to_numpy(),
                 mode="lines+markers", name=name, legendgroup=level,
                 line=dict(color=colour, width=width), marker=dict(size=5), opacity=opacity,
                 hovertext=_hover(line, name, layer_names),
                 hovertemplate="%{hovertext}<extra></extra>", connectgaps=False,
                 xaxis=f"x{axis if axis > 1 else ''}", yaxis=f"y{axis if axis > 1 else ''}")
    if show_ci and line["shown_low"].notna().any():
        trace["error_y"] = dict(type="data", symmetric=False,
                                array=(line["shown_high"] - line["shown"]).to_numpy(),
                                arrayminus=(line["shown"] - line["shown_low"]).to_numpy(),
                                thickness=1, width=2, color=rgba(colour, 0.45))
    return trace


def _mean_traces(series: pd.DataFrame, level: str, *, axis: int, show_ci: bool, dash=None,
                 legend: bool = True) -> list[dict]:
    """A level's mean line (thick, the level's colour) and, with ``show_ci``, its band."""
    colour = level_colour(level)
    ref = dict(xaxis=f"x{axis if axis > 1 else ''}", yaxis=f"y{axis if axis > 1 else ''}")
    name = f"{level}-resource mean"
    traces = []
    keep = series[np.isfinite(series["ci_low"].to_numpy(float))
                  & np.isfinite(series["ci_high"].to_numpy(float))]
    if show_ci and not keep.empty:
        x = keep["x"].to_numpy(float)
        traces.append(dict(type="scatter", x=np.concatenate([x, x[::-1]]),
                           y=np.concatenate([keep["ci_high"].to_numpy(float),
                                             keep["ci_low"].to_numpy(float)[::-1]]),
                           fill="toself", fillcolor=rgba(colour, 0.18), line=dict(width=0),
                           hoverinfo="skip", showlegend=False, legendgroup=f"mean {level}",
                           mode="lines", name=f"{name}: 95% CI", **ref))
    hover = [f"<b>{name}</b> ({n} languages)<br>mean: <b>{m:.3f}</b><br>95% CI of the mean: "
             + (f"[{lo:.3f}, {hi:.3f}] ({method})" if np.isfinite(lo) else f"none ({method})")
             for n, m, lo, hi, method in zip(series["languages"], series["mean"],
                                             series["ci_low"], series["ci_high"],
                                             series["ci_method"], strict=True)]
    traces.append(dict(type="scatter", x=series["x"].to_numpy(), y=series["mean"].to_numpy(),
                       mode="lines+markers", name=name, legendgroup=f"mean {level}",
                       showlegend=legend, line=dict(color=colour, width=4, dash=dash),
                       marker=dict(size=8, symbol="diamond"), hovertext=hover,
                       hovertemplate="%{hovertext}<extra></extra>", **ref))
    return traces


def _baseline_traces(series: pd.DataFrame, *, axis: int, show_length: bool,
                     legend: bool) -> list[dict]:
    """The shuffled baseline (dashed grey, ±1.96 sd band) and, with ``show_length``, the
    length-only baseline (black dash-dot), each the mean over ``series``' levels per x."""
    ref = dict(xaxis=f"x{axis if axis > 1 else ''}", yaxis=f"y{axis if axis > 1 else ''}")
    xs = np.unique(series["x"].to_numpy(float))
    at = [series["x"].to_numpy(float) == x for x in xs]
    per_x = pd.DataFrame({"x": xs, **{name: [_nanmean(series[column].to_numpy(float)[m])
                                             for m in at]
                                      for name, column in (("base", "baseline"),
                                                           ("sd", "baseline_sd"),
                                                           ("length", "length_baseline"))}})
    traces: list[dict] = []
    if per_x["base"].notna().any():
        x = per_x["x"].to_numpy(float)
        low = (per_x["base"] - Z_95 * per_x["sd"]).to_numpy(float)
        high = (per_x["base"] + Z_95 * per_x["sd"]).to_numpy(float)
        if np.isfinite(low).all() and np.isfinite(high).all():
            traces.append(dict(type="scatter", x=np.concatenate([x, x[::-1]]),
                               y=np.concatenate([high, low[::-1]]), fill="toself",
                               fillcolor=rgba(BASELINE_COLOUR, 0.12), line=dict(width=0),
                               hoverinfo="skip", showlegend=False, legendgroup="baseline",
                               mode="lines", name="shuffled baseline band", **ref))
        traces.append(dict(type="scatter", x=x, y=per_x["base"].to_numpy(), mode="lines",
                           name="shuffled baseline (mean ± 1.96 sd)", legendgroup="baseline",
                           showlegend=legend, line=dict(color=BASELINE_COLOUR, dash="dash", width=2),
                           hovertemplate="shuffled baseline: %{y:.3f}<extra></extra>", **ref))
    if show_length and per_x["length"].notna().any():
        traces.append(dict(type="scatter", x=per_x["x"].to_numpy(), y=per_x["length"].to_numpy(),
                           mode="lines", name=LENGTH_BASELINE_NAME, legendgroup="length_baseline",
                           showlegend=legend, line=dict(color=LENGTH_BASELINE_COLOUR,
                                                        dash=LENGTH_BASELINE_DASH, width=2),
                           hovertemplate="length-only baseline: %{y:.3f} (mean over "
                                         "languages)<extra></extra>", **ref))
    return traces


def _title(metrics: pd.DataFrame, metric: str, what: str) -> str:
    pairs = component_pairs(metrics[metrics["pairing"] == "text-speech"]) \
        if "pairing" in metrics else []
    return (f"Text vs speech of the same sentence, {what} · {metric}"
            + (f" · {pair_label(pairs[0])}" if len(pairs) > 1 else ""))


def _layout(fig: go.Figure, *, title: str, metric: str, view: str, height: int,
            legend_y: float = -0.16) -> None:
    """Title, size, the horizontal legend under the plot (wraps, never scrolls), the value axis."""
    fig.update_layout(title=dict(text=title), template=TEMPLATE, font=FONT, height=height,
                      hovermode="closest",
                      legend=dict(orientation="h", yanchor="top", y=legend_y, x=0,
                                  groupclick="toggleitem", tracegroupgap=4),
                      margin=dict(l=10, r=10, t=100, b=10),
                      yaxis=dict(title=dict(text=value_axis_title(metric, view))))


NO_ROWS = "No same-language text-speech values for this selection."


def _languages_by_level(rows: pd.DataFrame, languages: pd.DataFrame
                        ) -> tuple[list[str], dict[str, str]]:
    """The rows' languages in display order, and each known language's resource level."""
    return language_order(languages, rows["lang_a"].unique()), language_levels(languages)


def level_panels_figure(metrics: pd.DataFrame, languages: pd.DataFrame, *, metric: str,
                        view: str = "raw", show_ci: bool = True, x_axis: str = "layer",
                        layer_names: Sequence[str] | None = None,
                        langs: Sequence[str] | None = None,
                        show_length: bool = False) -> go.Figure:
    """Small multiples: one panel per resource level (its languages thin, its mean thick with a
    band, the shuffled baseline dashed), one y axis shared by all panels so levels compare by
    eye. ``show_ci`` draws the mean's band (each language's CI is in its hover: seven lines'
    whiskers would hide each other)."""
    title = _title(metrics, metric, "by resource level")
    rows = same_language_rows(metrics, view, x_axis, langs)
    if rows.empty:
        return empty_figure(title, NO_ROWS)
    order, levels_of = _languages_by_level(rows, languages)
    levels = list(dict.fromkeys(levels_of.get(lang, "unknown") for lang in order))
    colours, names = language_colours(languages, order), language_names(languages)
    series = level_series(rows, languages, view)
    by_lang = {lang: line for lang, line in rows.groupby("lang_a", sort=False)}
    traces: list[dict] = []
    for axis, level in enumerate(levels, start=1):
        members = [lang for lang in order if levels_of.get(lang, "unknown") == level]
        own = series[series["level"] == level]
        traces += _baseline_traces(own, axis=axis, show_length=show_length, legend=axis == 1)
        traces += _mean_traces(own, level, axis=axis, show_ci=show_ci)
        traces += [_language_trace(by_lang[lang], names.get(lang, lang), colours[lang],
                                   layer_names, axis=axis, level=level, show_ci=False)
                   for lang in members]  # whiskers of seven lines hide them: CIs in the hover
    gap = 0.04
    width = (1 - gap * (len(levels) - 1)) / len(levels)
    layout: dict = {}
    for i, level in enumerate(levels):
        suffix = str(i + 1) if i else ""
        start = i * (width + gap)
        layout[f"xaxis{suffix}"] = dict(domain=[start, start + width], anchor=f"y{suffix}")
        layout[f"yaxis{suffix}"] = dict(anchor=f"x{suffix}", matches="y" if i else None,
                                        showticklabels=i == 0)
        count = sum(levels_of.get(lang, "unknown") == level for lang in order)
        layout.setdefault("annotations", []).append(dict(
            text=f"<b>{level} resource</b><br>{count} language{'s' if count != 1 else ''}",
            x=start + width / 2, xref="paper", y=1.0, yref="paper", yanchor="bottom",
            showarrow=False, font=dict(color=level_colour(level), size=13)))
    fig = go.Figure(data=traces, layout=layout)
    for i in range(len(levels)):
        layer_axis(fig, x_axis, layer_names, rows["layer_a"].tolist(), xaxis=i + 1,
                   title=i == len(levels) // 2)
    fig.update_xaxes(tickangle=-45, tickfont=dict(size=11))
    _layout(fig, title=title, metric=metric, view=view, height=640, legend_y=-0.36)
    return fig


def level_means_figure(metrics: pd.DataFrame, languages: pd.DataFrame, *, metric: str,
                       view: str = "raw", show_ci: bool = True, x_axis: str = "layer",
                       layer_names: Sequence[str] | None = None,
                       langs: Sequence[str] | None = None, shown_langs: Sequence[str] = (),
                       show_length: bool = False) -> go.Figure:
    """One thick line per resource level (the mean over its languages, with its band), and thin
    lines for the languages in ``shown_langs`` only (languages on demand)."""
    title = _title(metrics, metric, "mean per resource level")
    rows = same_language_rows(metrics, view, x_axis, langs)
    if rows.empty:
        return empty_figure(title, NO_ROWS)
    order, levels_of = _languages_by_level(rows, languages)
    series = level_series(rows, languages, view)
    traces = _baseline_traces(series, axis=1, show_length=show_length, legend=True)
    for level in dict.fromkeys(levels_of.get(lang, "unknown") for lang in order):
        traces += _mean_traces(series[series["level"] == level], level, axis=1, show_ci=show_ci)
    colours, names = language_colours(languages, order), language_names(languages)
    for lang in [lang for lang in order if lang in set(shown_langs)]:
        traces.append(_language_trace(rows[rows["lang_a"] == lang], names.get(lang, lang),
                                      colours[lang], layer_names, axis=1,
                                      level=levels_of.get(lang, "unknown"), show_ci=show_ci,
                                      width=1.4, opacity=0.8))
    fig = go.Figure(data=traces)
    layer_axis(fig, x_axis, layer_names, rows["layer_a"].tolist())
    _layout(fig, title=title, metric=metric, view=view, height=520)
    return fig
