"""Charts of the Heatmap page: a language x language grid of one pairing, metric and layer, and
the summary of its two baselines (shuffled pairs, length only) beside it."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts.common import (
    CLICK_TARGETS,
    LENGTH_BASELINE_NAME,
    empty_figure,
    fmt,
    fmt_int,
    value_axis_title,
    value_hover,
)
from dashboard.charts.languages import (
    lang_label,
    language_levels,
    language_names,
    language_order,
    level_colour,
)
from dashboard.charts.theme import FONT, TEMPLATE
from dashboard.charts.transforms import (
    apply_view,
    component_pairs,
    grid_cells,
    pair_label,
)


def heatmap_cells(metrics: pd.DataFrame, order: Sequence[str], *, symmetric: bool) -> pd.DataFrame:
    """Every (lang_a, lang_b) cell of ``order`` x ``order`` with its metrics row (NaN if absent).

    For same-modality pairings a pair stored once is mirrored, since the metrics are symmetric.
    """
    return grid_cells(metrics, order, order, symmetric=symmetric)


def heatmap_figure(metrics: pd.DataFrame, languages: pd.DataFrame, *, pairing: str, metric: str,
                   view: str = "raw", layer_label: str = "", langs: Sequence[str] | None = None,
                   mark_length: bool = False, zrange: tuple[float, float] | None = None,
                   picked: tuple[str, str] | None = None) -> go.Figure:
    """Language x language heatmap of one pairing/metric/layer, languages ordered by resource level.

    For ``text-speech`` rows are the text language and columns the speech language, so the diagonal
    is same-sentence, same-language, cross-modal similarity. With ``mark_length`` a cell whose
    value is at or below its length-only baseline (sentence length alone predicts as much) gets a
    cross in its corner. ``zrange`` fixes the colour scale (e.g. ``dashboard.differences.value_range`` of
    every layer, so two layers compare by eye); None scales to this layer's values. Every cell
    with a value can be clicked (``add_cell_targets``); ``picked`` (row language, column
    language) is outlined.
    """
    title = f"{metric} · {pairing}" + (f" · {layer_label}" if layer_label else "")
    rows = metrics[metrics["pairing"] == pairing] if "pairing" in metrics else metrics.iloc[0:0]
    pairs = component_pairs(rows)
    if len(pairs) > 1:  # one heatmap = one component pair; never a mix of two
        rows = rows[(rows["component_a"] == pairs[0][0]) & (rows["component_b"] == pairs[0][1])]
        title += f" · {pair_label(pairs[0])}"
    present = set(rows["lang_a"]) | set(rows["lang_b"]) if not rows.empty else set()
    wanted = langs if langs is not None else present
    order = language_order(languages, [lang for lang in wanted if lang in present])
    if not order:
        return empty_figure(title, "No metric values for this selection.")
    side_a, side_b = pairing.split("-")
    cells = apply_view(heatmap_cells(rows, order, symmetric=side_a == side_b), view)
    n = len(order)
    z = cells["shown"].to_numpy(dtype=float).reshape(n, n)
    levels = language_levels(languages)
    full_names = language_names(languages, short=False)
    hover = np.array([
        f"{side_a} language: {lang_label(r.lang_a, full_names, levels)}<br>"
        f"{side_b} language: {lang_label(r.lang_b, full_names, levels)}<br>" + value_hover(r)
        for _, r in cells.iterrows()
    ], dtype=object).reshape(n, n)
    finite = z[np.isfinite(z)]
    diverging = view == "minus_baseline"
    scale = _colour_scale(diverging, zrange)
    heat = go.Heatmap(
        z=z, x=list(range(n)), y=list(range(n)), hovertext=hover,
        hovertemplate="%{hovertext}<extra></extra>", hoverongaps=False, **scale,
        colorbar=dict(title=dict(text=value_axis_title(metric, view).split(" (")[0], side="right")),
        xgap=1, ygap=1, name=title,
    )
    if n <= 14 and finite.size:
        heat.update(texttemplate="%{z:.2f}", textfont=dict(size=11))
    fig = go.Figure(heat)
    if mark_length:
        _mark_length_cells(fig, cells, n)
    _grid_layout(fig, languages, order, order, side_a, side_b, title)
    add_cell_targets(fig, order, order, hover, z)
    outline_cell(fig, order, order, picked)
    return fig


def cell_size(n_rows: int, n_cols: int) -> float:
    """A grid cell's side in pixels: square cells of 30 to 64 px, about 720 px for the longer side."""
    return float(np.clip(720 / max(n_rows, n_cols, 1), 30, 64))


def add_cell_targets(fig: go.Figure, rows: Sequence[str], columns: Sequence[str],
                     hover: np.ndarray, z: np.ndarray) -> None:
    """One invisible square marker on every cell with a value, carrying (row language, column
    language) as ``customdata``, so a click on a cell is a point selection Streamlit reports
    (Plotly gives no selection event for a heatmap trace, checked in Chromium with Streamlit
    1.67). The markers take over the cells' hover text (the heatmap's own hover is switched off,
    or the nearer marker would hide it); a clicked cell is veiled in white until the next redraw.
    """
    n_rows, n_cols = len(rows), len(columns)
    at = np.flatnonzero(np.isfinite(np.asarray(z, dtype=float)).ravel())
    if not at.size:
        return
    fig.data[0].update(hoverinfo="skip", hovertemplate=None)
    fig.add_trace(go.Scatter(
        x=at % n_cols, y=at // n_cols, mode="markers", meta=CLICK_TARGETS, showlegend=False,
        name="cells", customdata=[[rows[i // n_cols], columns[i % n_cols]] for i in at],
        hovertext=np.asarray(hover, dtype=object).ravel()[at],
        hovertemplate="%{hovertext}<extra></extra>",
        marker=dict(symbol="square", size=cell_size(n_rows, n_cols), color="rgba(0,0,0,0)",
                    line=dict(width=0)),
        selected=dict(marker=dict(color="rgba(255,255,255,0.45)")),
        unselected=dict(marker=dict(opacity=1))))


def outline_cell(fig: go.Figure, rows: Sequence[str], columns: Sequence[str],
                 picked: tuple[str, str] | None) -> None:
    """A black-and-white frame around the cell (row language, column language), if it is drawn."""
    if picked is None or picked[0] not in rows or picked[1] not in columns:
        return
    i, j = list(rows).index(picked[0]), list(columns).index(picked[1])
    for colour, width in (("white", 5), ("black", 2)):
        fig.add_shape(type="rect", xref="x", yref="y", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5,
                      y1=i + 0.5, line=dict(color=colour, width=width), name="picked cell")


def _colour_scale(diverging: bool, zrange: tuple[float, float] | None) -> dict:
    """Heatmap colour settings: Viridis, or RdBu centred at 0 for signed values; ``zrange`` fixes
    the ends (a diverging scale stays symmetric about 0, so 0 keeps its white)."""
    scale: dict = dict(colorscale="RdBu_r" if diverging else "Viridis",
                       zmid=0.0 if diverging else None)
    if zrange is not None and all(np.isfinite(zrange)):
        low, high = float(zrange[0]), float(zrange[1])
        if diverging:
            bound = max(abs(low), abs(high)) or 1.0
            low, high = -bound, bound
        scale.update(zmin=low, zmax=high, zauto=False, zmid=None)
    return scale


def _grid_layout(fig: go.Figure, languages: pd.DataFrame, rows: Sequence[str],
                 columns: Sequence[str], side_a: str, side_b: str, title: str) -> None:
    """Axes, level separators and size of a language grid (``rows`` x ``columns``, resource
    order): coloured language names, a white line and a level label where the level changes,
    square cells of 30 to 64 px."""
    names, levels = language_names(languages), language_levels(languages)
    n_rows, n_cols = len(rows), len(columns)
    cell = cell_size(n_rows, n_cols)
    longest = max((len(names.get(lang, lang)) for lang in columns), default=0)
    # names wider than their cell run together (the colour bar takes some of the width too)
    rotate = n_cols > 8 or longest * 7.5 > 0.7 * cell
    margin = dict(l=140, r=110, t=90, b=130 if rotate else 70)
    width, height = int(round(n_cols * cell)), int(round(n_rows * cell))

    def ticks(order: Sequence[str]) -> list[str]:
        return [f"<span style='color:{level_colour(levels.get(lang))}'>"
                f"{html.escape(names.get(lang, lang))}</span>" for lang in order]

    axis = dict(tickmode="array", showgrid=False, zeroline=False,
                automargin=False)  # fixed margins keep the cells square
    fig.update_xaxes(title=dict(text=f"{side_b} language (side b)"), tickangle=-45 if rotate else 0,
                     tickvals=list(range(n_cols)), ticktext=ticks(columns), **axis)
    fig.update_yaxes(title=dict(text=f"{side_a} language (side a)"), autorange="reversed",
                     tickvals=list(range(n_rows)), ticktext=ticks(rows), **axis)
    for boundary, level, start, stop in _level_groups(columns, levels):
        if boundary:
            fig.add_shape(type="line", xref="x", yref="y", line=dict(color="white", width=4),
                          x0=start - 0.5, x1=start - 0.5, y0=-0.5, y1=n_rows - 0.5)
        fig.add_annotation(x=(start + stop - 1) / 2, y=1.0, xref="x", yref="paper", yanchor="bottom",
                           text=f"<b>{level}</b>", showarrow=False,
                           font=dict(color=level_colour(level), size=12))
    for boundary, _, start, _ in _level_groups(rows, levels):
        if boundary:
            fig.add_shape(type="line", xref="x", yref="y", line=dict(color="white", width=4),
                          y0=start - 0.5, y1=start - 0.5, x0=-0.5, x1=n_cols - 0.5)
    fig.update_layout(
        title=dict(text=title, y=0.98, yref="container"), template=TEMPLATE, font=FONT,
        width=width + margin["l"] + margin["r"], height=height + margin["t"] + margin["b"],
        margin=margin,
    )


def _mark_length_cells(fig: go.Figure, cells: pd.DataFrame, n: int) -> None:
    """A cross in the top-right corner of every cell at or below its length-only baseline."""
    shown = cells["shown"].to_numpy(dtype=float)
    length = cells["shown_length_baseline"].to_numpy(dtype=float)
    at_or_below = np.flatnonzero(np.isfinite(shown) & np.isfinite(length) & (shown <= length))
    if not at_or_below.size:
        return
    fig.add_trace(go.Scatter(
        x=at_or_below % n + 0.3, y=at_or_below // n - 0.3, mode="markers",
        # on two lines: a narrow grid (a few languages) cut the one-line legend off
        name=f"at or below its {LENGTH_BASELINE_NAME}".replace(" (", "<br>("), hoverinfo="skip",
        marker=dict(symbol="x", size=9, color="white", line=dict(color="black", width=1)),
        showlegend=True))
    fig.update_layout(legend=dict(orientation="h", x=0, y=0, yref="container", yanchor="bottom"))


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
    """The two baselines behind a heatmap, summarised per pairing for the legend table: the
    shuffled-pairs baseline and the length-only baseline, with how many cells are at or below the
    latter (their value is no more than sentence length alone predicts)."""
    columns = ["pairing", "cells", "baseline mean", "baseline min", "baseline max",
               "mean baseline sd", "length-only baseline mean", "cells at or below length-only",
               "sentences per cell"]
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
        "length-only baseline mean": grouped["length_baseline"].mean(),
        "cells at or below length-only": (frame["value"] <= frame["length_baseline"]).groupby(
            frame["pairing"], sort=False).sum(),
        "sentences per cell": grouped["n_samples"].median() if "n_samples" in frame else np.nan,
    }).reset_index()
    return summary[columns].round(4)


def difference_figure(cells: pd.DataFrame, languages: pd.DataFrame, *, rows: Sequence[str],
                      columns: Sequence[str], metric: str, view: str, label_a: str, label_b: str,
                      side_a: str, side_b: str, zbound: float | None = None,
                      picked: tuple[str, str] | None = None) -> go.Figure:
    """A minus B per language cell (``dashboard.differences.difference_cells``) on a diverging
    scale centred at 0 (red: A higher, blue: B higher), ``rows`` x ``columns`` in resource order.

    A black dot marks a cell whose 95% interval lies wholly above or below 0; the hover gives both
    values, the difference with its interval, or why it has none. ``zbound`` fixes the scale to
    +/- zbound (one scale across layers); None: +/- the largest |difference| drawn. Cells can
    be clicked and ``picked`` is outlined, as in ``heatmap_figure``.
    """
    title = f"{metric} · A − B · A = {label_a} · B = {label_b}"
    if cells.empty or not np.isfinite(cells["difference"].to_numpy(float)).any():
        return empty_figure(title, "No cell has a value on both sides for this selection.")
    n_rows, n_cols = len(rows), len(columns)
    frame = cells.set_index(["lang_a", "lang_b"]).reindex(
        pd.MultiIndex.from_product([list(rows), list(columns)])).reset_index(names=["lang_a",
                                                                                    "lang_b"])
    z = frame["difference"].to_numpy(float).reshape(n_rows, n_cols)
    full_names, levels = language_names(languages, short=False), language_levels(languages)
    unit = {"minus_baseline": " (each minus its shuffled baseline)",
            "residualised": " (length-residualised)"}.get(view, "")
    hover = np.array([
        f"{side_a} language: {lang_label(r.lang_a, full_names, levels)}<br>"
        f"{side_b} language: {lang_label(r.lang_b, full_names, levels)}<br>"
        f"A ({html.escape(label_a)}): {fmt(r.shown_a)}<br>B ({html.escape(label_b)}): "
        f"{fmt(r.shown_b)}<br><b>A − B{unit}: {fmt(r.difference)}</b><br>"
        + (f"95% interval: [{fmt(r.low)}, {fmt(r.high)}] ({r.interval})"
           if np.isfinite(r.low) else f"no interval: {html.escape(str(r.interval))}")
        + f"<br>shuffled baselines: A {fmt(r.baseline_a)}, B {fmt(r.baseline_b)}"
        f"<br>n = {fmt_int(r.n_a)} / {fmt_int(r.n_b)} sentences"
        for r in frame.itertuples()], dtype=object).reshape(n_rows, n_cols)
    finite = np.abs(z[np.isfinite(z)])
    bound = float(zbound) if zbound is not None and np.isfinite(zbound) and zbound > 0 else \
        (float(finite.max()) or 1.0)
    heat = go.Heatmap(
        z=z, x=list(range(n_cols)), y=list(range(n_rows)), hovertext=hover,
        hovertemplate="%{hovertext}<extra></extra>", hoverongaps=False,
        colorscale="RdBu_r", zmid=None, zmin=-bound, zmax=bound, zauto=False,
        colorbar=dict(title=dict(text=f"A − B, {metric}", side="right")),
        xgap=1, ygap=1, name=title,
    )
    if max(n_rows, n_cols) <= 14:
        heat.update(texttemplate="%{z:+.2f}", textfont=dict(size=11))
    fig = go.Figure(heat)
    low, high = frame["low"].to_numpy(float), frame["high"].to_numpy(float)
    apart = np.flatnonzero(np.isfinite(low) & ((low > 0) | (high < 0)))
    if apart.size:
        fig.add_trace(go.Scatter(
            x=apart % n_cols - 0.3, y=apart // n_cols - 0.3, mode="markers", hoverinfo="skip",
            name="95% interval excludes 0", showlegend=True,
            marker=dict(symbol="circle", size=6, color="black", line=dict(color="white", width=1))))
        fig.update_layout(legend=dict(orientation="h", x=0, y=0, yref="container",
                                      yanchor="bottom"))
    _grid_layout(fig, languages, rows, columns, side_a, side_b, title)
    add_cell_targets(fig, rows, columns, hover, z)
    outline_cell(fig, rows, columns, picked)
    return fig
