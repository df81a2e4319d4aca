"""Heatmap builders: language order, axis labels, mirrored same-modality grids, NaN gaps,
diverging colours around zero, and the baseline summary."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dashboard.charts.common import CLICK_TARGETS, LENGTH_BASELINE_NAME
from dashboard.charts.heatmap import baseline_summary, difference_figure, heatmap_figure
from dashboard.charts.theme import LEVEL_COLOURS
from chart_fixtures import LEVEL_ORDER, languages, metric_row, metric_rows, tables, traces_of
from synthetic_store import NAN_CELL


def test_heatmap_text_speech_orders_languages_and_labels_axes(tables, languages):
    rows = metric_rows(tables, pairing="text-speech", layer=2)
    fig = heatmap_figure(rows, languages, pairing="text-speech", metric="svcca",
                         layer_label="block 2")
    (heat,) = traces_of(fig, "heatmap")
    z = np.asarray(heat.z, dtype=float)
    assert z.shape == (6, 6)
    # Rows = text language, columns = speech language, both in resource order.
    expected = rows.set_index(["lang_a", "lang_b"])["value"]
    assert z[0, 3] == pytest.approx(expected[("eng_Latn", "hin_Deva")])
    assert z[3, 0] == pytest.approx(expected[("hin_Deva", "eng_Latn")])
    names = [t.split(">")[1].split("<")[0] for t in fig.layout.xaxis.ticktext]
    assert names == ["English", "German", "Spanish", "Hindi", "Swahili", "Yoruba"]
    assert "speech language" in fig.layout.xaxis.title.text
    assert "text language" in fig.layout.yaxis.title.text
    assert fig.layout.yaxis.autorange == "reversed"
    assert "block 2" in fig.layout.title.text and "text-speech" in fig.layout.title.text
    # Tick labels coloured by level; white separators between the three level groups on both axes.
    assert LEVEL_COLOURS["low"] in fig.layout.xaxis.ticktext[-1]
    assert len(fig.layout.shapes) == 4
    # Hover carries value, CI, baseline and n.
    hover = heat.hovertext[0][3]
    for part in ("value:", "95% CI", "shuffled baseline", "n = 200"):
        assert part in hover


def test_heatmap_same_modality_is_mirrored_and_nan_stays_a_gap(tables, languages):
    pairing, metric, layer, lang_a, lang_b = NAN_CELL
    rows = metric_rows(tables, metric=metric, pairing=pairing, layer=layer)
    assert rows[["lang_a", "lang_b"]].apply(tuple, axis=1).nunique() == 15  # one triangle stored
    fig = heatmap_figure(rows, languages, pairing=pairing, metric=metric)
    z = np.asarray(fig.data[0].z, dtype=float)
    finite = np.isfinite(z)
    np.testing.assert_array_equal(z[finite], z.T[finite])
    assert not finite.diagonal().any()  # a language with itself is not stored for same-modality
    i, j = LEVEL_ORDER.index(lang_a), LEVEL_ORDER.index(lang_b)
    assert np.isnan(z[i, j]) and np.isnan(z[j, i])
    assert "value: <b>n/a</b>" in fig.data[0].hovertext[i][j]
    json.loads(fig.to_json())  # NaN serialises


def test_heatmap_minus_baseline_is_diverging_around_zero(tables, languages):
    rows = metric_rows(tables, pairing="text-speech", layer=0)
    fig = heatmap_figure(rows, languages, pairing="text-speech", metric="svcca",
                         view="minus_baseline")
    heat = fig.data[0]
    assert heat.zmid == 0.0
    first = rows[(rows.lang_a == "eng_Latn") & (rows.lang_b == "eng_Latn")].iloc[0]
    assert heat.z[0][0] == pytest.approx(first.value - first.baseline_mean)


def test_heatmap_respects_language_subset(tables, languages):
    rows = metric_rows(tables, pairing="text-speech", layer=1)
    fig = heatmap_figure(rows, languages, pairing="text-speech", metric="svcca",
                         langs=["yor_Latn", "eng_Latn"])
    assert np.asarray(fig.data[0].z).shape == (2, 2)
    assert "English" in fig.layout.yaxis.ticktext[0]


def test_heatmap_without_rows_explains_instead_of_raising(languages):
    empty = pd.DataFrame([metric_row()]).iloc[0:0]
    fig = heatmap_figure(empty, languages, pairing="text-text", metric="svcca")
    assert len(fig.data) == 0
    assert "No metric values" in fig.layout.annotations[0].text


def test_baseline_summary_matches_the_rows(tables):
    rows = metric_rows(tables, pairing="text-text", layer=3)
    summary = baseline_summary(rows)
    assert list(summary["pairing"]) == ["text-text"]
    assert summary.loc[0, "cells"] == len(rows)
    assert summary.loc[0, "baseline mean"] == pytest.approx(rows["baseline_mean"].mean(), abs=1e-4)
    assert summary.loc[0, "baseline max"] == pytest.approx(rows["baseline_mean"].max(), abs=1e-4)
    assert baseline_summary(rows.iloc[0:0]).empty


@pytest.mark.parametrize("metric, line", [
    ("svcca", "SVCCA (k = 4, n = 200 sentences): range 0 to 1, chance rises with k/n"),
    ("linear_cka", "linear CKA (n = 200 sentences): range 0 to 1, chance above 0 (see the "
                   "shuffled baseline)"),
])
def test_heatmap_hover_says_what_the_metric_means(tables, languages, metric, line):
    rows = metric_rows(tables, metric=metric, pairing="text-speech", layer=2)
    (heat,) = traces_of(heatmap_figure(rows, languages, pairing="text-speech", metric=metric),
                        "heatmap")
    assert line in heat.hovertext[0][0] and line in heat.hovertext[5][2]


def test_heatmap_hover_gives_the_chance_level_of_the_rows_k_and_pool_size(languages):
    rows = pd.DataFrame([metric_row(metric="mutual_knn", params='{"k": 10}', n_samples=200)])
    (heat,) = traces_of(heatmap_figure(rows, languages, pairing="text-speech",
                                       metric="mutual_knn"), "heatmap")
    assert "mutual kNN (k = 10, N = 200 sentences): range 0 to 1, chance ≈ k/(N - 1) = 0.050" \
        in heat.hovertext[0][0]


def test_heatmap_marks_cells_at_or_below_their_length_only_baseline_when_asked(tables, languages):
    rows = metric_rows(tables, pairing="text-speech", layer=0).copy()
    lifted = ((rows.lang_a == "eng_Latn") & (rows.lang_b == "eng_Latn")) | \
        ((rows.lang_a == "hin_Deva") & (rows.lang_b == "yor_Latn"))
    rows["length_baseline"] = rows["value"] + np.where(lifted, 0.1, -0.05)
    for view in ("raw", "minus_baseline"):  # the shift keeps which side of it a value is
        fig = heatmap_figure(rows, languages, pairing="text-speech", metric="svcca", view=view,
                             mark_length=True)
        marks = [t for t in fig.data if t.type == "scatter" and t.meta != CLICK_TARGETS]
        assert len(marks) == 1
        assert marks[0].name.replace("<br>", " ") == f"at or below its {LENGTH_BASELINE_NAME}"
        # English is column/row 0, Hindi row 3, Yoruba column 5 (resource-level order)
        assert sorted(zip(np.round(marks[0].x - 0.3), np.round(marks[0].y + 0.3))) == \
            [(0.0, 0.0), (5.0, 3.0)]
    assert not [t for t in heatmap_figure(rows, languages, pairing="text-speech",
                                          metric="svcca").data
                if t.type == "scatter" and t.meta != CLICK_TARGETS]
    assert not [t for t in heatmap_figure(rows, languages, pairing="text-speech", metric="svcca",
                                          view="residualised", mark_length=True).data
                if t.type == "scatter" and t.meta != CLICK_TARGETS]
    summary = baseline_summary(rows)
    assert summary.loc[0, "cells at or below length-only"] == 2
    assert summary.loc[0, "length-only baseline mean"] == pytest.approx(
        rows["length_baseline"].mean(), abs=1e-4)


def test_fixed_colour_range_is_kept_and_stays_symmetric_when_diverging(tables, languages):
    rows = metric_rows(tables, pairing="text-speech", layer=2)
    (heat,) = traces_of(heatmap_figure(rows, languages, pairing="text-speech", metric="svcca",
                                       zrange=(0.1, 0.9)), "heatmap")
    assert (heat.zmin, heat.zmax, heat.zauto) == (0.1, 0.9, False)
    (signed,) = traces_of(heatmap_figure(rows, languages, pairing="text-speech", metric="svcca",
                                         view="minus_baseline", zrange=(-0.2, 0.6)), "heatmap")
    assert (signed.zmin, signed.zmax) == (-0.6, 0.6)
    (free,) = traces_of(heatmap_figure(rows, languages, pairing="text-speech", metric="svcca"),
                        "heatmap")
    assert free.zmin is None and free.zmax is None


def _difference_cells(rows, columns, values, low=None, high=None) -> pd.DataFrame:
    keys = [(a, b) for a in rows for b in columns]
    n = len(keys)
    low = np.full(n, np.nan) if low is None else np.asarray(low, dtype=float)
    high = np.full(n, np.nan) if high is None else np.asarray(high, dtype=float)
    return pd.DataFrame({
        "lang_a": [a for a, _ in keys], "lang_b": [b for _, b in keys],
        "shown_a": np.asarray(values) + 0.5, "shown_b": np.full(n, 0.5),
        "difference": values, "low": low, "high": high, "baseline_a": 0.1, "baseline_b": 0.1,
        "n_a": 200.0, "n_b": 200.0,
        "interval": np.where(np.isfinite(low), "joint bootstrap (shared resamples)",
                             "the two runs drew their sentence resamples differently")})


def test_difference_figure_is_diverging_at_zero_marks_intervals_and_takes_rectangles(languages):
    rows, columns = ["yor_Latn", "eng_Latn"], ["hin_Deva", "eng_Latn", "swh_Latn"]
    values = np.array([0.1, -0.3, 0.0, 0.2, np.nan, -0.05])
    low = values - np.array([0.05, 0.05, 0.05, 0.3, np.nan, 0.01])
    cells = _difference_cells(rows, columns, values, low, values + (values - low))
    fig = difference_figure(cells, languages, rows=rows, columns=columns, metric="svcca",
                            view="raw", label_a="block 4", label_b="block 1", side_a="text",
                            side_b="speech")
    (heat,) = traces_of(fig, "heatmap")
    z = np.asarray(heat.z, dtype=float)
    assert z.shape == (2, 3)
    np.testing.assert_allclose(z.ravel(), values)
    assert heat.colorscale[0][1] != heat.colorscale[-1][1]  # a two-sided scale
    assert (heat.zmin, heat.zmax) == (-0.3, 0.3)  # symmetric about 0: white is 0
    assert "A = block 4" in fig.layout.title.text and "B = block 1" in fig.layout.title.text
    # dots at cells whose interval excludes 0: (yor, hin) 0.1 ± 0.05 and (yor, eng) -0.3 ± 0.05
    # and (eng, swh) -0.05 ± 0.01; not (eng, hin) 0.2 ± 0.3 nor the zero cell
    (dots,) = [t for t in traces_of(fig) if t.name == "95% interval excludes 0"]
    assert sorted(zip(np.round(np.asarray(dots.x) + 0.3).astype(int),
                      np.round(np.asarray(dots.y) + 0.3).astype(int))) == [(0, 0), (1, 0), (2, 1)]
    hover = heat.hovertext[0][1]
    assert "A − B: -0.300" in hover and "95% interval: [-0.350, -0.250]" in hover
    assert "Yoruba" in hover and "English" in hover
    fixed = difference_figure(cells, languages, rows=rows, columns=columns, metric="svcca",
                              view="raw", label_a="a", label_b="b", side_a="text",
                              side_b="speech", zbound=0.8)
    assert (fixed.data[0].zmin, fixed.data[0].zmax) == (-0.8, 0.8)
    json.loads(fig.to_json())


def test_difference_figure_says_why_a_cell_has_no_interval_and_explains_an_empty_grid(languages):
    cells = _difference_cells(["eng_Latn"], ["deu_Latn"], np.array([0.2]))
    fig = difference_figure(cells, languages, rows=["eng_Latn"], columns=["deu_Latn"],
                            metric="linear_cka", view="minus_baseline", label_a="run A",
                            label_b="run B", side_a="text", side_b="text")
    hover = fig.data[0].hovertext[0][0]
    assert "no interval: the two runs drew their sentence resamples differently" in hover
    assert "A − B (each minus its shuffled baseline)" in hover
    assert not [t for t in traces_of(fig) if t.name == "95% interval excludes 0"]
    empty = difference_figure(cells.assign(difference=np.nan), languages, rows=["eng_Latn"],
                              columns=["deu_Latn"], metric="svcca", view="raw", label_a="a",
                              label_b="b", side_a="text", side_b="text")
    assert "No cell has a value on both sides" in empty.layout.annotations[0].text


def _click_targets(fig):
    return [t for t in fig.data if t.meta == CLICK_TARGETS]


def test_every_cell_with_a_value_is_a_click_target_carrying_its_languages_and_hover(tables,
                                                                                    languages):
    pairing, metric, layer, lang_a, lang_b = NAN_CELL
    rows = metric_rows(tables, metric=metric, pairing=pairing, layer=layer)
    fig = heatmap_figure(rows, languages, pairing=pairing, metric=metric)
    heat, (targets,) = fig.data[0], _click_targets(fig)
    z = np.asarray(heat.z, dtype=float)
    assert len(targets.x) == np.isfinite(z).sum()  # gaps (NaN cells, the diagonal) are not targets
    assert heat.hoverinfo == "skip"  # the targets carry the hover, or they would hide it
    hover = np.asarray(heat.hovertext, dtype=object)
    for x, y, (row, column), text in zip(targets.x, targets.y, targets.customdata,
                                         targets.hovertext, strict=True):
        assert (LEVEL_ORDER[y], LEVEL_ORDER[x]) == (row, column)
        assert text == hover[y][x] and np.isfinite(z[y, x])
    i, j = LEVEL_ORDER.index(lang_a), LEVEL_ORDER.index(lang_b)
    assert [lang_a, lang_b] not in [list(c) for c in targets.customdata]
    assert (j, i) not in set(zip(targets.x, targets.y))


def test_a_picked_cell_is_outlined_where_it_is_drawn_and_nowhere_else(tables, languages):
    rows = metric_rows(tables, pairing="text-speech", layer=2)

    def outlines(**kwargs):
        fig = heatmap_figure(rows, languages, pairing="text-speech", metric="svcca", **kwargs)
        return {(s.x0, s.y0, s.x1, s.y1) for s in fig.layout.shapes if s.name == "picked cell"}

    assert outlines() == set()
    # Hindi is row 3 (text), Yoruba column 5 (speech), in resource order
    assert outlines(picked=("hin_Deva", "yor_Latn")) == {(4.5, 2.5, 5.5, 3.5)}
    assert outlines(picked=("hin_Deva", "yor_Latn"), langs=["eng_Latn", "hin_Deva"]) == set()
    cells = _difference_cells(["yor_Latn", "eng_Latn"], ["hin_Deva", "eng_Latn"],
                              np.array([0.1, 0.2, np.nan, 0.3]))
    fig = difference_figure(cells, languages, rows=["yor_Latn", "eng_Latn"],
                            columns=["hin_Deva", "eng_Latn"], metric="svcca", view="raw",
                            label_a="a", label_b="b", side_a="text", side_b="speech",
                            picked=("eng_Latn", "eng_Latn"))
    assert {(s.x0, s.y0) for s in fig.layout.shapes if s.name == "picked cell"} == {(0.5, 0.5)}
    (targets,) = _click_targets(fig)
    assert [list(c) for c in targets.customdata] == [["yor_Latn", "hin_Deva"],
                                                     ["yor_Latn", "eng_Latn"],
                                                     ["eng_Latn", "eng_Latn"]]
