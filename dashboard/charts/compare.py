"""Chart of the "Compare models" page: curves of several runs on one relative-depth axis (pure).

Input frames come from ``dashboard.comparison``: ``curves`` (one row per run and depth: run, depth,
layer, mean, ci_low, ci_high, baseline, length_baseline, pairs) and ``spans`` (one row per run and stage span: run,
stage, start, end). No streamlit, no aggregation here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.common import (
    LENGTH_BASELINE_DASH,
    LENGTH_BASELINE_NAME,
    ci_band,
    empty_figure,
    fmt,
    fmt_int,
    value_axis_title,
)
from dashboard.charts.theme import CATEGORICAL, FONT, TEMPLATE
from dashboard.comparison import FAMILIES
from dashboard.stages import boundaries

#: stage label rows above the plot: pixels per run
_LABEL_ROW_PX = 20


def run_colours(runs: Sequence[str]) -> dict[str, str]:
    """One categorical colour per run, in the given order."""
    return {run: CATEGORICAL[i % len(CATEGORICAL)] for i, run in enumerate(runs)}


def compare_figure(curves: pd.DataFrame, spans: pd.DataFrame, *, metric: str, family: str,
                   view: str = "raw", show_ci: bool = True,
                   colours: Mapping[str, str] | None = None,
                   depth_note: str = "", show_length: bool = False) -> go.Figure:
    """One line per run: the family's mean over languages against relative path depth, with its CI
    band, its shuffled baseline (dashed, same colour), with ``show_length`` its length-only
    baseline (dash-dot, same colour) and its stage boundaries (dotted verticals, stage names above
    the plot, in the run's colour)."""
    title = f"{FAMILIES.get(family, family)} · {metric}, by relative depth along each model's path"
    if curves.empty:
        return empty_figure(title, "No run chosen has values for this family and metric.")
    runs = list(dict.fromkeys(curves["run"]))
    colours = dict(colours or run_colours(runs))
    fig = go.Figure()
    for run in runs:
        line = curves[curves["run"] == run].sort_values("depth")
        colour = colours.get(run, CATEGORICAL[0])
        if show_ci:
            band = ci_band(line["depth"], line["ci_low"], line["ci_high"], colour, f"{run}: 95% CI",
                            run, opacity=0.16)
            if band is not None:
                fig.add_trace(band)
        hover = [f"<b>{run}</b><br>relative depth: {fmt(r.depth, 2)} ({r.component} layer "
                 f"{fmt_int(r.layer)})<br>mean: <b>{fmt(r.mean)}</b><br>95% CI: "
                 f"[{fmt(r.ci_low)}, {fmt(r.ci_high)}]<br>shuffled baseline: "
                 f"{fmt(r.baseline)}<br>length-only baseline: {fmt(r.length_baseline)}<br>"
                 f"language pairs: {fmt_int(r.pairs)}"
                 for r in line.itertuples()]
        fig.add_trace(go.Scatter(
            x=line["depth"], y=line["mean"], mode="lines+markers", name=run, legendgroup=run,
            line=dict(color=colour, width=3), marker=dict(size=7), hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>"))
        if line["baseline"].notna().any():
            fig.add_trace(go.Scatter(
                x=line["depth"], y=line["baseline"], mode="lines", name=f"{run}: shuffled baseline",
                legendgroup=run, line=dict(color=colour, width=1.5, dash="dash"),
                hovertemplate=f"{run}<br>shuffled baseline: %{{y:.3f}}<extra></extra>"))
        if show_length and line["length_baseline"].notna().any():
            fig.add_trace(go.Scatter(
                x=line["depth"], y=line["length_baseline"], mode="lines",
                name=f"{run}: {LENGTH_BASELINE_NAME}", legendgroup=run,
                line=dict(color=colour, width=1.5, dash=LENGTH_BASELINE_DASH),
                hovertemplate=f"{run}<br>length-only baseline: %{{y:.3f}}<extra></extra>"))
    _add_stages(fig, spans, runs, colours)
    top = 70 + _LABEL_ROW_PX * len(runs)
    x_title = "relative depth along the model's whole path (0 = first point, 1 = last)"
    if depth_note:
        x_title += f"<br><sup>{depth_note}</sup>"
    fig.update_xaxes(title=dict(text=x_title), range=[-0.03, 1.03], tickformat=".1f",
                     zeroline=False)
    fig.update_yaxes(title=dict(text=value_axis_title(metric, view)))
    fig.update_layout(title=dict(text=title, y=0.98, yref="container", yanchor="top"),
                      template=TEMPLATE, font=FONT, height=500 + _LABEL_ROW_PX * len(runs),
                      hovermode="closest", margin=dict(l=10, r=10, t=top, b=10),
                      legend=dict(orientation="h", yanchor="top", y=-0.2, x=0))
    return fig


def _add_stages(fig: go.Figure, spans: pd.DataFrame, runs: Sequence[str],
                colours: Mapping[str, str]) -> None:
    """Dotted vertical lines between a run's stages and the stage names above the plot, one row of
    labels per run."""
    if spans is None or spans.empty:
        return
    for row, run in enumerate(runs):
        own = spans[spans["run"] == run].sort_values("start").reset_index(drop=True)
        if own.empty:
            continue
        colour = colours.get(run, CATEGORICAL[0])
        for x in boundaries(own):
            fig.add_shape(type="line", xref="x", yref="paper", x0=x, x1=x, y0=0, y1=1,
                          line=dict(color=colour, width=1.5, dash="dot"), layer="below")
        shift = 4 + (len(runs) - 1 - row) * _LABEL_ROW_PX  # first run's labels on top
        for span in own.itertuples():
            fig.add_annotation(
                x=float(np.mean([span.start, span.end])), y=1.0, yshift=shift, xref="x",
                yref="paper", text=str(span.stage), showarrow=False, yanchor="bottom",
                font=dict(size=11, color=colour),
                hovertext=f"{run}: {span.stage}, depth {span.start:.2f}-{span.end:.2f}")
