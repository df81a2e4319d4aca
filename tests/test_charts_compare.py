"""Compare-models page: family rows and curves on path depth, stage spans and boundaries, the
compare figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.metrics.joint import Z_95
from dashboard import comparison
from dashboard.charts.common import LENGTH_BASELINE_NAME
from dashboard.charts.compare import compare_figure, run_colours
from dashboard.stages import boundaries, stage_spans, stage_summary
from chart_fixtures import data_lines, tables
from synthetic_store import RUN_ID, SHARED_RUN_ID, TEXT_RUN_ID


def test_family_rows_and_curve_use_path_depth(tables):
    llm = tables["runs"][SHARED_RUN_ID]["metrics"]
    svcca = llm[llm.metric == "svcca"]
    same = comparison.family_rows(svcca, "text-speech")
    assert (same.lang_a == same.lang_b).all() and set(same.pairing) == {"text-speech"}
    cross = comparison.family_rows(svcca, "text-text")
    assert (cross.lang_a != cross.lang_b).all()
    with pytest.raises(ValueError, match="unknown family"):
        comparison.family_rows(svcca, "speech-text")

    curve = comparison.family_curve(svcca, "text-speech")
    # text-speech: x is the speech side's path depth (llm_speech: 8 points)
    assert list(curve["depth"]) == pytest.approx(sorted(set(same["path_depth_b"])))
    assert set(curve["component"]) == {"llm_speech"}
    last = same[same.path_depth_b == 1.0]["value"]
    got = curve[curve.depth == 1.0].iloc[0]
    assert got["mean"] == pytest.approx(last.mean()) and got["pairs"] == 6
    half = Z_95 * last.std() / np.sqrt(6)
    assert got["ci_high"] - got["mean"] == pytest.approx(half)
    assert got["baseline"] == pytest.approx(same[same.path_depth_b == 1.0]["baseline_mean"].mean())
    text = comparison.family_curve(svcca, "text-text")
    assert list(text["depth"]) == [0.0, 0.25, 0.5, 0.75, 1.0] and text["pairs"].eq(15).all()


def test_stage_spans_and_boundaries(tables):
    layers = tables["runs"][SHARED_RUN_ID]["layers"]
    spans = stage_spans(layers, "llm_speech")
    assert list(spans["stage"]) == ["frontend", "encoder", "projector", "llm"]
    assert spans.iloc[1][["start", "end"]].tolist() == pytest.approx([1 / 7, 2 / 7])
    assert boundaries(spans) == pytest.approx([0.5 / 7, 2.5 / 7, 3.5 / 7])
    assert stage_summary(layers, "llm_speech") == "frontend 1 · encoder 2 · projector 1 · llm 4"
    assert stage_spans(layers, "nothing").empty and boundaries(stage_spans(layers, "x")) == []


def test_compare_figure_one_line_per_run_with_baselines_and_stages(tables):
    curves, spans = [], []
    for run_id, family_component in ((RUN_ID, "text_decoder"), (TEXT_RUN_ID, "text_encoder"),
                                     (SHARED_RUN_ID, "llm_text")):
        run = tables["runs"][run_id]
        rows = run["metrics"][run["metrics"].metric == "svcca"]
        curves.append(comparison.family_curve(rows, "text-text").assign(run=run_id))
        spans.append(stage_spans(run["layers"], family_component).assign(run=run_id))
    curves, spans = pd.concat(curves), pd.concat(spans)
    colours = run_colours([RUN_ID, TEXT_RUN_ID, SHARED_RUN_ID])
    fig = compare_figure(curves, spans, metric="svcca", family="text-text",
                         colours=colours)
    solid = [t for t in data_lines(fig) if t.line.dash is None]
    dashed = [t for t in data_lines(fig) if t.line.dash == "dash"]
    assert [t.name for t in solid] == [RUN_ID, TEXT_RUN_ID, SHARED_RUN_ID]
    assert [t.line.color for t in solid] == list(colours.values())
    assert [t.name for t in dashed] == [f"{r}: shuffled baseline" for r in colours]
    assert len([t for t in fig.data if t.fill == "toself"]) == 3
    e5 = [t for t in solid if t.name == TEXT_RUN_ID][0]
    assert len(e5.x) == 7 and e5.x[-1] == 1.0  # 7 points of its own path on the shared axis
    # stage boundaries: Whisper-like and e5 one each (frontend | stack), the LLM's text path none
    lines = [s for s in fig.layout.shapes if s.line.dash == "dot"]
    assert sorted(s.line.color for s in lines) == sorted([colours[RUN_ID], colours[TEXT_RUN_ID]])
    labels = {(a.text, a.font.color) for a in fig.layout.annotations}
    assert ("decoder", colours[RUN_ID]) in labels and ("encoder", colours[TEXT_RUN_ID]) in labels
    assert ("llm", colours[SHARED_RUN_ID]) in labels
    assert "relative depth" in fig.layout.xaxis.title.text
    empty = compare_figure(curves.iloc[0:0], spans, metric="svcca",
                           family="text-text")
    assert len(empty.data) == 0 and empty.layout.annotations


def test_compare_draws_the_length_only_baseline_only_when_asked(tables):
    run = tables["runs"][RUN_ID]
    rows = run["metrics"][run["metrics"].metric == "svcca"]
    curve = comparison.family_curve(rows, "text-text").assign(run=RUN_ID)
    cross = comparison.family_rows(rows, "text-text")
    expected = cross.groupby(cross["path_depth_a"].round(6))["length_baseline"].mean()
    np.testing.assert_allclose(curve["length_baseline"], expected.to_numpy())
    fig = compare_figure(curve, pd.DataFrame(), metric="svcca", family="text-text",
                         show_length=True)
    length = [t for t in data_lines(fig) if t.line.dash == "dashdot"]
    assert [t.name for t in length] == [f"{RUN_ID}: {LENGTH_BASELINE_NAME}"]
    np.testing.assert_allclose(length[0].y, expected.to_numpy())
    plain = compare_figure(curve, pd.DataFrame(), metric="svcca", family="text-text")
    assert not [t for t in plain.data if t.line.dash == "dashdot"]


def test_compare_residualised_view_has_no_interval_and_no_baseline(tables):
    run = tables["runs"][RUN_ID]
    rows = run["metrics"][run["metrics"].metric == "svcca"]
    curve = comparison.family_curve(rows, "text-text", view="residualised").assign(run=RUN_ID)
    assert curve["mean"].notna().all()
    assert curve[["ci_low", "ci_high", "baseline", "length_baseline"]].isna().all().all()
    fig = compare_figure(curve, pd.DataFrame(), metric="svcca", family="text-text",
                         show_ci=True, show_length=True)
    assert not [t for t in fig.data if t.fill == "toself"]
    assert not [t for t in fig.data if t.line.dash in ("dash", "dashdot")]
