"""Chart of the Replication page: one finding's effects on each corpus, side by side.

A forest plot: one row per metric x control cell, one marker per corpus (dodged vertically), each
with its 95% interval as a horizontal whisker, and the zero line a verdict is read against. Cells
a corpus could not compute are left out of that corpus's trace (the table beside says why).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.common import empty_figure
from dashboard.charts.theme import BASELINE_COLOUR, CATEGORICAL, FONT, TEMPLATE

#: Vertical spread of the corpora's markers within a cell's row (in row units).
DODGE = 0.5


def cell_label(metric: str, control: str) -> str:
    return f"{metric} · {control}"


def replication_figure(long: pd.DataFrame, corpora: Sequence[str], *, title: str = "",
                       interval_scope: str = "",
                       names: Mapping[str, str] | None = None) -> go.Figure:
    """Effects (``core.replication.LONG_COLUMNS`` rows of one finding) per cell and corpus, with
    their intervals (``interval_scope`` says what they cover); ``names``: each corpus's legend
    entry (default: the corpus). An explanatory empty figure when no corpus has an effect."""
    names = names or {}
    rows = long[pd.to_numeric(long["effect"], errors="coerce").notna()] if not long.empty else long
    if rows.empty:
        return empty_figure(title or "Effects per corpus",
                            "No corpus has an effect for this finding (see the table).")
    cells = list(dict.fromkeys(cell_label(m, c) for m, c in zip(long["metric"], long["control"])))
    position = {cell: i for i, cell in enumerate(cells)}
    n = max(len(corpora), 1)
    fig = go.Figure()
    for k, corpus in enumerate(corpora):
        own = rows[rows["corpus"] == corpus]
        if own.empty:
            continue
        offset = (k - (n - 1) / 2) * (DODGE / max(n - 1, 1)) if n > 1 else 0.0
        labels = [cell_label(m, c) for m, c in zip(own["metric"], own["control"])]
        effect = own["effect"].astype(float).to_numpy()
        low = own["ci_low"].astype(float).to_numpy()
        high = own["ci_high"].astype(float).to_numpy()
        plus = [h - e if math.isfinite(h) else 0.0 for e, h in zip(effect, high)]
        minus = [e - lo if math.isfinite(lo) else 0.0 for e, lo in zip(effect, low)]
        colour = CATEGORICAL[k % len(CATEGORICAL)]
        fig.add_trace(go.Scatter(
            x=effect, y=[position[c] + offset for c in labels], mode="markers",
            name=str(names.get(corpus, corpus)),
            marker=dict(color=colour, size=9, symbol=["circle" if v in ("holds", "does not hold")
                                                      else "circle-open" for v in own["verdict"]],
                        line=dict(color=colour, width=2)),
            error_x=dict(type="data", array=plus, arrayminus=minus, color=colour, thickness=2,
                         width=4),
            customdata=list(zip(labels, own["verdict"], low, high)),
            hovertemplate=(f"{corpus}<br>%{{customdata[0]}}<br>effect %{{x:+.3f}} "
                           "[%{customdata[2]:+.3f}, %{customdata[3]:+.3f}]<br>"
                           "%{customdata[1]}<extra></extra>")))
    fig.add_vline(x=0, line=dict(color=BASELINE_COLOUR, width=1, dash="dash"))
    fig.update_layout(
        template=TEMPLATE, font=FONT, title=title or None,
        height=110 + 42 * len(cells), margin=dict(l=10, r=10, t=40 if title else 10, b=60),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
        xaxis=dict(title=("effect above the shuffled baseline"
                          + (f"; whiskers: {interval_scope}" if interval_scope else "")),
                   zeroline=False),
        yaxis=dict(tickmode="array", tickvals=list(range(len(cells))), ticktext=cells,
                   autorange="reversed", range=[len(cells) - 0.5, -0.5], showgrid=False))
    return fig
