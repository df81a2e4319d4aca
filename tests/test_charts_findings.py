"""Findings charts: verdict colours, lines over depth, bars per level, and every synthetic
metric and finding chartable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard.charts.findings import finding_figure, verdict_colour
from dashboard.charts.heatmap import heatmap_figure
from core.store.tables import PAIRINGS
from chart_fixtures import languages, metric_rows, tables, traces_of
from synthetic_store import METRICS


@pytest.mark.parametrize("verdict, colour", [("holds", "green"), ("does not hold", "red"),
                                             ("Not enough data", "gray"), ("partially holds", "orange"),
                                             ("banana", "gray")])
def test_verdict_colour(verdict, colour):
    assert verdict_colour(verdict) == colour


def test_finding_figure_lines_over_depth_with_bands():
    details = pd.DataFrame({"depth": [0.0, 1.0, 0.0, 1.0], "series": ["a", "a", "b", "b"],
                            "value": [0.1, 0.5, 0.2, 0.3], "ci_low": [0.0, 0.4, 0.1, 0.2],
                            "ci_high": [0.2, 0.6, 0.3, 0.4], "n_langs": [3, 3, 3, 3]})
    fig = finding_figure(details, metric="svcca")
    lines = [t for t in fig.data if t.fill != "toself"]
    assert [t.name for t in lines] == ["a", "b"]
    np.testing.assert_allclose(lines[0].y, [0.1, 0.5])
    assert len([t for t in fig.data if t.fill == "toself"]) == 2
    assert fig.layout.xaxis.title.text.startswith("relative depth")
    assert fig.layout.yaxis.title.text == "svcca"


def test_finding_figure_bars_per_level_coloured_by_component():
    details = pd.DataFrame({"resource_level": ["high", "high", "low", "low"],
                            "component": ["plain", "adapted", "plain", "adapted"],
                            "gap": [0.5, 0.3, 0.6, 0.55], "ci_low": [0.4, 0.2, 0.5, 0.45],
                            "ci_high": [0.6, 0.4, 0.7, 0.65]})
    fig = finding_figure(details, metric="svcca")
    assert [t.type for t in fig.data] == ["bar", "bar"]
    assert [t.name for t in fig.data] == ["plain", "adapted"]
    assert list(fig.data[0].x) == ["high", "low"]
    assert fig.layout.yaxis.title.text == "gap = 1 − svcca"


def test_finding_figure_is_none_when_not_chartable():
    assert finding_figure(pd.DataFrame({"note": ["no numbers here"]})) is None
    assert finding_figure(pd.DataFrame({"value": [1.0, 2.0]})) is None
    assert finding_figure(pd.DataFrame()) is None


def test_findings_of_the_synthetic_tables_are_chartable(tables, languages):
    from core.findings import compute_findings

    components = pd.DataFrame({"component": ["speech_encoder", "text_decoder"],
                               "modality": ["speech", "text"], "description": ["", ""]})
    findings = compute_findings(metric_rows(tables), languages, components, metric="svcca")
    assert len(findings) == 4
    charted = [finding_figure(f.details, metric="svcca") for f in findings]
    # 1, 3 and 4 carry per-depth details; 2 needs a length-adapted component the tables lack.
    assert [fig is not None for fig in charted] == [True, False, True, True]
    assert verdict_colour(findings[1].verdict) == "gray"


def test_every_metric_in_the_synthetic_tables_is_chartable(tables, languages):
    for metric in METRICS:
        rows = metric_rows(tables, metric=metric)
        for pairing in PAIRINGS:
            fig = heatmap_figure(rows[rows.layer_a == 1], languages, pairing=pairing,
                                 metric=metric)
            assert traces_of(fig, "heatmap")
