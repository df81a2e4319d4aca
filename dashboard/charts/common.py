"""Helpers every chart module draws with: number formats, hover text, the empty figure that
explains why nothing is drawn, CI bands, layer names and wrapped hover text.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.metrics.descriptions import metric_line
from dashboard.charts.theme import FONT, TEMPLATE

#: the ``meta`` of a trace that is drawn only to be clicked (invisible markers over a heatmap's
#: cells): the chart's data export leaves it out, since it repeats the cells
CLICK_TARGETS = "click-targets"
#: the legend label of the length-only baseline (``core.metrics.nulls.length_baseline``), and its
#: line style: dash-dot, apart from the shuffled baseline's dashes
LENGTH_BASELINE_NAME = "length-only baseline (what sentence length alone predicts)"
LENGTH_BASELINE_DASH = "dashdot"
#: why the length-residualised view draws no interval and no baseline, said where it is chosen
RESIDUALISED_NOTE = ("The length-residualised view has no confidence intervals and no baselines: "
                     "the store keeps only the residualised value itself, so none are drawn.")


def value_axis_title(metric: str, view: str) -> str:
    """The value axis title of ``metric`` in ``view`` (what the numbers on a chart are)."""
    unit = {"raw": "", "residualised": ", length-residualised", "minus_baseline": " − shuffled baseline"}
    return f"{metric}{unit.get(view, '')} (unitless similarity)"


def fmt(x: object, digits: int = 3) -> str:
    """``x`` with ``digits`` decimals for hover text; "n/a" for missing or non-numeric values."""
    try:
        value = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def fmt_int(x: object) -> str:
    """``x`` as a whole number for hover text; "n/a" for missing or non-numeric values."""
    try:
        value = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(value) else f"{int(value)}"


def metric_hover(metric: str, settings: Iterable[tuple[object, object]] = ()) -> str:
    """The hover line that says what a number of ``metric`` means: its name, parameters (from
    the rows' (params, n_samples) ``settings``), range and chance level, HTML-escaped, in grey."""
    return f"<span style='color:#666666'>{html.escape(metric_line(metric, settings))}</span>"


def rows_settings(rows: pd.DataFrame) -> list[tuple[object, object]]:
    """The (params, n_samples) pairs of metric rows, for ``metric_hover`` (empty when absent)."""
    if rows.empty or "n_samples" not in rows:
        return []
    params = rows["params"] if "params" in rows else [None] * len(rows)
    as_text = [json.dumps(p, sort_keys=True) if isinstance(p, dict) else
               p if isinstance(p, str) else None for p in params]
    return list(dict.fromkeys(zip(as_text, rows["n_samples"], strict=True)))


def value_hover(row: pd.Series) -> str:
    """Hover text of one cell (an ``apply_view`` row): value, CI, both baselines and n, then
    the metric's line (``metric_hover``) when the row names its metric."""
    ci = (f"[{fmt(row['shown_low'])}, {fmt(row['shown_high'])}]"
          if pd.notna(row["shown_low"]) and pd.notna(row["shown_high"]) else "n/a")
    baseline = fmt(row["shown_baseline"])
    if pd.notna(row["shown_baseline"]) and pd.notna(row["shown_baseline_sd"]):
        baseline += f" ± {fmt(row['shown_baseline_sd'])}"
    length = row.get("shown_length_baseline", row.get("length_baseline"))
    return (f"value: <b>{fmt(row['shown'])}</b><br>95% CI: {ci}<br>"
            f"shuffled baseline: {baseline}<br>"
            f"length-only baseline: {fmt(length)}<br>"
            f"n = {fmt_int(row.get('n_samples'))} sentences"
            + (f"<br>{metric_hover(str(row['metric']), [(row.get('params'), row.get('n_samples'))])}"
               if pd.notna(row.get("metric")) else ""))


def empty_figure(title: str, message: str) -> go.Figure:
    """A figure that says why nothing is drawn (``message``), in place of an empty chart."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=15, color="#555555"))
    fig.update_layout(title=dict(text=title), xaxis=dict(visible=False), yaxis=dict(visible=False),
                      height=320, font=FONT, template=TEMPLATE)
    return fig


def layer_name(layer: object, layer_names: Sequence[str] | None) -> str:
    """The component's name for a layer index ("block 3"), or "layer 3" when it has none."""
    if layer is None or pd.isna(layer):
        return "n/a"
    i = int(layer)
    return str(layer_names[i]) if layer_names and 0 <= i < len(layer_names) else f"layer {i}"


def ci_band(x: Sequence[float], low: Sequence[float], high: Sequence[float], colour: str,
            name: str, legendgroup: str, opacity: float = 0.15, showlegend: bool = False
            ) -> go.Scatter | None:
    """A filled CI band (closed polygon) over the finite points, or None if nothing is finite."""
    x, low, high = (np.asarray(v, dtype=float) for v in (x, low, high))
    keep = np.isfinite(x) & np.isfinite(low) & np.isfinite(high)
    if not keep.any():
        return None
    x, low, high = x[keep], low[keep], high[keep]
    return go.Scatter(
        x=np.concatenate([x, x[::-1]]), y=np.concatenate([high, low[::-1]]), fill="toself",
        fillcolor=rgba(colour, opacity), line=dict(width=0), hoverinfo="skip", name=name,
        legendgroup=legendgroup, showlegend=showlegend, mode="lines",
    )


def rgba(hex_colour: str, alpha: float) -> str:
    """``#RRGGBB`` with an opacity, as plotly reads it."""
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def wrap(text: object, width: int = 60, limit: int = 240) -> str:
    """A sentence for hover text: cut at ``limit`` characters, HTML-escaped, broken into lines
    of about ``width``."""
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
