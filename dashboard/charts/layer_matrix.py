"""Charts of the Layer x layer page: one matrix (every layer of one side against every layer of the
other) with its best matches marked, a table of those matches, and the difference of two matrices.

Pure: DataFrames of ``Store.layer_matrices`` rows in, plotly figures / frames out. Rows of a matrix
are side a's layers (bottom to top: input to output), columns side b's (left to right).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.metrics.joint import difference_intervals
from core.store.vectors import as_blob, decode_resamples
from dashboard.charts.common import empty_figure, fmt, layer_name
from dashboard.charts.theme import FONT, TEMPLATE

#: where a cell's mark sits: its upper-right corner (the value stays readable in the middle)
CORNER = 0.3
#: marker of a line's best match: calibrated significant vs not
SIGNIFICANT_SYMBOL, NOT_SIGNIFICANT_SYMBOL = "star", "circle-open"
DIFFERENCE_NOTE = ("No interval: the two matrices were not computed on the same sentence "
                   "resamples ({why}), so the difference is shown without one. Read it as a "
                   "description, not a test.")


def _as_list(z: np.ndarray) -> list[list[float | None]]:
    """Plain nested lists with None for missing cells (a gap in the heatmap)."""
    return [[float(v) if np.isfinite(v) else None for v in row] for row in z]


def _names(layers: Sequence[int], names: Sequence[str] | None) -> list[str]:
    return [layer_name(layer, names) for layer in layers]


def matrix_grid(cells: pd.DataFrame, column: str = "value") -> tuple[list[int], list[int], np.ndarray]:
    """(layers of a, layers of b, (n_a, n_b) values of ``column``; NaN where a cell is missing)."""
    layers_a = sorted(int(v) for v in cells.layer_a.unique())
    layers_b = sorted(int(v) for v in cells.layer_b.unique())
    grid = cells.pivot_table(index="layer_a", columns="layer_b", values=column, aggfunc="first",
                             dropna=False)
    grid = grid.reindex(index=layers_a, columns=layers_b)
    return layers_a, layers_b, grid.to_numpy(dtype=float)


def _cell_hover(row, name_a: str, name_b: str) -> str:
    """One cell's hover: value and CI, shuffled baseline, and its best-match status (a row tuple)."""
    lines = [f"<b>{html.escape(name_a)} × {html.escape(name_b)}</b>",
             f"value {fmt(row.value)}  95% CI [{fmt(row.ci_low)}, {fmt(row.ci_high)}]",
             f"shuffled baseline {fmt(row.baseline_mean)} ± {fmt(row.baseline_std)}"]
    if bool(row.row_best):
        verdict = "calibrated: significant" if row.row_p <= row.alpha else "calibrated: not significant"
        lines.append(f"best of its row · p = {fmt(row.row_p)} (row max null, "
                     f"threshold {fmt(row.row_threshold)}) · {verdict}")
    if bool(row.col_best):
        lines.append(f"best of its column · p = {fmt(row.col_p)} (threshold "
                     f"{fmt(row.col_threshold)})")
    lines.append(f"n = {int(row.n_samples)} sentences" +
                 (f", mean of {int(row.n_langs)} matrices" if int(row.n_langs) > 1 else ""))
    return "<br>".join(lines)


def _laid_out(fig: go.Figure, title: str, ticks_a: list[str], ticks_b: list[str], label_a: str,
              label_b: str) -> go.Figure:
    """The matrices' common layout: cells about square, layer names as ticks (input at the
    bottom), legend below."""
    n_a, n_b = len(ticks_a), len(ticks_b)
    cell = int(np.clip(560 / max(n_a, n_b), 34, 64))
    axis = dict(tickmode="array", showgrid=False, zeroline=False)
    fig.update_layout(
        title=dict(text=title), template=TEMPLATE, font=FONT,
        height=cell * n_a + 230, width=cell * n_b + 360,
        xaxis=dict(title=dict(text=label_b), tickvals=list(range(n_b)), ticktext=ticks_b,
                   range=[-0.5, n_b - 0.5], tickangle=-45 if n_b > 8 else 0, **axis),
        yaxis=dict(title=dict(text=label_a), tickvals=list(range(n_a)), ticktext=ticks_a,
                   range=[-0.5, n_a - 0.5], **axis),
        legend=dict(orientation="h", yanchor="top", y=-0.18 if n_b <= 8 else -0.26, x=0))
    return fig


def best_marks(cells: pd.DataFrame, along: str = "row") -> pd.DataFrame:
    """The best-match cells of each row (``along="row"``) or column, with ``significant`` (the
    calibrated p-value of that line's maximum at most alpha)."""
    flag, p = ("row_best", "row_p") if along == "row" else ("col_best", "col_p")
    marks = cells[cells[flag].astype(bool)].copy()
    marks["p_value"] = marks[p]
    marks["significant"] = marks[p] <= marks["alpha"]
    return marks


def matrix_figure(cells: pd.DataFrame, *, names_a: Sequence[str] | None = None,
                  names_b: Sequence[str] | None = None, title: str = "", label_a: str = "a",
                  label_b: str = "b", along: str = "row") -> go.Figure:
    """Heatmap of one matrix (one metric), the best match of each row (or column) marked: a star
    where it clears the calibrated threshold of the line's maximum, an open circle where not."""
    if cells.empty or not np.isfinite(cells.value.to_numpy(dtype=float)).any():
        return empty_figure(title, "No values for this matrix.")
    layers_a, layers_b, z = matrix_grid(cells)
    ticks_a, ticks_b = _names(layers_a, names_a), _names(layers_b, names_b)
    by_cell = {(int(row.layer_a), int(row.layer_b)): row for row in cells.itertuples()}
    hover = [[_cell_hover(by_cell[(a, b)], ticks_a[i], ticks_b[j])
              if (a, b) in by_cell else "" for j, b in enumerate(layers_b)]
             for i, a in enumerate(layers_a)]
    fig = go.Figure(go.Heatmap(
        z=_as_list(z), x=list(range(len(layers_b))), y=list(range(len(layers_a))),
        colorscale="Viridis", hovertext=hover,
        hovertemplate="%{hovertext}<extra></extra>", hoverongaps=False, xgap=1, ygap=1,
        colorbar=dict(title=dict(text="value")),
        texttemplate="%{z:.2f}" if len(layers_b) <= 14 else None, textfont=dict(size=11)))
    marks = best_marks(cells, along)
    for significant, symbol, name in ((True, SIGNIFICANT_SYMBOL, "best match, calibrated p ≤ α"),
                                      (False, NOT_SIGNIFICANT_SYMBOL, "best match, not significant")):
        chosen = marks[marks.significant == significant]
        fig.add_trace(go.Scatter(
            x=[layers_b.index(int(b)) + CORNER for b in chosen.layer_b],
            y=[layers_a.index(int(a)) + CORNER for a in chosen.layer_a],
            mode="markers", name=name, hoverinfo="skip", showlegend=True,
            marker=dict(symbol=symbol, size=13, color="white" if significant else "black",
                        line=dict(color="black", width=1.2 if significant else 1.8))))
    return _laid_out(fig, title, ticks_a, ticks_b, label_a, label_b)


def best_match_table(cells: pd.DataFrame, *, names_a: Sequence[str] | None = None,
                     names_b: Sequence[str] | None = None, along: str = "row") -> pd.DataFrame:
    """One line per row (or column) layer: its best match, the value, the calibrated p-value and
    threshold of the line's maximum, and whether it clears it."""
    marks = best_marks(cells, along).sort_values("layer_a" if along == "row" else "layer_b")
    own, other = (("layer_a", "layer_b") if along == "row" else ("layer_b", "layer_a"))
    own_names, other_names = (names_a, names_b) if along == "row" else (names_b, names_a)
    threshold = "row_threshold" if along == "row" else "col_threshold"
    return pd.DataFrame({
        "layer": [layer_name(v, own_names) for v in marks[own]],
        "best match": [layer_name(v, other_names) for v in marks[other]],
        "value": marks.value.round(4).to_numpy(),
        "baseline": marks.baseline_mean.round(4).to_numpy(),
        "calibrated p": marks.p_value.round(4).to_numpy(),
        "threshold (max null)": marks[threshold].round(4).to_numpy(),
        "match": np.where(marks.significant, "significant", "not significant"),
    })


def resampling_mismatch(first: pd.DataFrame, second: pd.DataFrame) -> str | None:
    """Why two matrices' resamples are not the same sentence draws, or None when they are (the
    same seed, resample count and sentence count, and both kept their bootstrap values)."""
    if "resamples" not in first or "resamples" not in second:
        return "bootstrap values not loaded"
    if first.resamples.map(as_blob).isna().any() or second.resamples.map(as_blob).isna().any():
        return "one of them was stored without its bootstrap values"
    for column, what in (("seed", "seeds"), ("n_bootstrap", "resample counts"),
                         ("n_samples", "sentence counts")):
        values = set(first[column]) | set(second[column])
        if len(values) > 1:
            return f"different {what}: {', '.join(str(v) for v in sorted(values))}"
    return None


def matrix_difference(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """Cells of first minus second (same layer indices), with an interval from the differences
    inside each shared resample where ``resampling_mismatch`` finds none (else NaN bounds)."""
    shared = resampling_mismatch(first, second) is None
    merged = first.merge(second, on=["layer_a", "layer_b"], suffixes=("_1", "_2"))
    rows = []
    for row in merged.itertuples():
        if shared:
            difference, low, high = (float(x[0]) for x in difference_intervals(
                np.array([row.value_1]), np.array([row.value_2]),
                decode_resamples(as_blob(row.resamples_1)),
                decode_resamples(as_blob(row.resamples_2))))
        else:
            difference, low, high = row.value_1 - row.value_2, math.nan, math.nan
        rows.append({"layer_a": row.layer_a, "layer_b": row.layer_b, "value": difference,
                     "ci_low": low, "ci_high": high, "first": row.value_1, "second": row.value_2})
    return pd.DataFrame(rows, columns=["layer_a", "layer_b", "value", "ci_low", "ci_high", "first",
                                       "second"])


def difference_figure(difference: pd.DataFrame, *, names_a: Sequence[str] | None = None,
                      names_b: Sequence[str] | None = None, title: str = "", label_a: str = "a",
                      label_b: str = "b") -> go.Figure:
    """A minus B on a diverging scale centred at 0 (symmetric range); a dot marks cells whose 95%
    interval excludes 0 (only where the difference has intervals)."""
    if difference.empty or not np.isfinite(difference.value.to_numpy(dtype=float)).any():
        return empty_figure(title, "No cells to subtract.")
    layers_a, layers_b, z = matrix_grid(difference)
    ticks_a, ticks_b = _names(layers_a, names_a), _names(layers_b, names_b)
    by_cell = {(int(row.layer_a), int(row.layer_b)): row for row in difference.itertuples()}
    hover = []
    for a, name_a in zip(layers_a, ticks_a):
        line = []
        for b, name_b in zip(layers_b, ticks_b):
            if (a, b) not in by_cell:
                line.append("")
                continue
            row = by_cell[(a, b)]
            interval = (f"95% interval [{fmt(row.ci_low)}, {fmt(row.ci_high)}]"
                        if np.isfinite(row.ci_low) else "no interval")
            line.append(f"<b>{html.escape(name_a)} × {html.escape(name_b)}</b><br>"
                        f"A − B = {fmt(row.value)}  {interval}<br>"
                        f"A {fmt(row.first)} · B {fmt(row.second)}")
        hover.append(line)
    limit = float(np.nanmax(np.abs(z))) or 1.0
    fig = go.Figure(go.Heatmap(
        z=_as_list(z), x=list(range(len(layers_b))), y=list(range(len(layers_a))),
        colorscale="RdBu_r", zmid=0.0, zmin=-limit,
        zmax=limit, hovertext=hover, hovertemplate="%{hovertext}<extra></extra>",
        hoverongaps=False, xgap=1, ygap=1, colorbar=dict(title=dict(text="A − B")),
        texttemplate="%{z:+.2f}" if len(layers_b) <= 14 else None, textfont=dict(size=11)))
    decided = difference[(difference.ci_low > 0) | (difference.ci_high < 0)]
    if not decided.empty:
        fig.add_trace(go.Scatter(
            x=[layers_b.index(int(b)) + CORNER for b in decided.layer_b],
            y=[layers_a.index(int(a)) + CORNER for a in decided.layer_a], mode="markers",
            name="95% interval excludes 0", hoverinfo="skip", showlegend=True,
            marker=dict(symbol="circle", size=7, color="black")))
    return _laid_out(fig, title, ticks_a, ticks_b, label_a, label_b)
