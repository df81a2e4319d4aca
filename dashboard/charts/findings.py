"""Charts of the Findings page: a verdict's badge colour, a small chart of a finding's details,
and SVCCA's sensitivity to k."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.common import ci_band, empty_figure, fmt
from dashboard.charts.theme import CATEGORICAL, FONT, SERIES_COLOURS, TEMPLATE

VERDICT_COLOURS: dict[str, str] = {
    "holds": "green", "supported": "green", "replicated": "green",
    "partially holds": "orange", "partial": "orange", "mixed": "orange",
    "not enough data": "gray", "inconclusive": "gray", "n/a": "gray", "not applicable": "gray",
    "does not hold": "red", "not supported": "red", "contradicted": "red",
}


def verdict_colour(verdict: object) -> str:
    """Badge colour for a finding's verdict (core.findings: holds / does not hold / not enough
    data; core.verdicts adds mixed and not applicable); an unknown verdict is grey, never green."""
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
                band = ci_band(group[x], group["ci_low"], group["ci_high"], colour, f"{name} CI",
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
        return empty_figure(title, "No SVCCA-at-k rows in this run (built before they existed).")
    fig = go.Figure()
    for i, (family, line) in enumerate(table.groupby("family", sort=False)):
        colour = SERIES_COLOURS.get(str(family), CATEGORICAL[i % len(CATEGORICAL)])
        line = line.sort_values("k")
        symbols = ["circle-open" if w else "circle" for w in line["warn"]]
        hover = [f"<b>{family}</b><br>k = {int(r.k)} (n = {int(r.n_samples)} sentences)<br>"
                 f"SVCCA {fmt(r.value)}, baseline {fmt(r.baseline)}, above it "
                 f"{fmt(r.above_baseline)}" + ("<br><b>baseline near the value</b>" if r.warn else "")
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
