"""The Replication page's forest plot: one trace per corpus, each cell's interval as whiskers."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from core.replication import LONG_COLUMNS
from dashboard.charts.replication import cell_label, replication_figure


def _long(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


def test_one_trace_per_corpus_with_its_intervals_and_decisions():
    long = _long([("SVCCA", "raw", "A", "a", -0.10, -0.15, -0.04, "does not hold"),
                  ("SVCCA", "raw", "B", "b", -0.02, -0.08, 0.05, "not enough data"),
                  ("linear CKA", "raw", "A", "a", 0.20, 0.10, 0.31, "holds"),
                  ("linear CKA", "raw", "B", "b", math.nan, math.nan, math.nan, "not enough data")])
    figure = replication_figure(long, ["A", "B"], interval_scope="scope",
                                names={"A": "(A) first"})
    a, b = figure.data
    assert (a.name, b.name) == ("(A) first", "B")
    assert list(a.x) == [-0.10, 0.20] and list(b.x) == [-0.02]  # B has no linear CKA effect
    assert list(a.error_x.array) == pytest.approx([0.06, 0.11])
    assert list(a.error_x.arrayminus) == pytest.approx([0.05, 0.10])
    assert list(a.marker.symbol) == ["circle", "circle"] and list(b.marker.symbol) == ["circle-open"]
    # the corpora of one cell sit on either side of its row, never on another cell's row
    assert a.y[0] < 0 < b.y[0] < 0.5 and 0.5 < a.y[1] < 1
    assert list(figure.layout.yaxis.ticktext) == [cell_label("SVCCA", "raw"),
                                                  cell_label("linear CKA", "raw")]
    assert "scope" in figure.layout.xaxis.title.text


def test_no_effect_anywhere_gives_an_explanatory_empty_figure():
    long = _long([("SVCCA", "raw", "A", "a", math.nan, math.nan, math.nan, "not enough data")])
    figure = replication_figure(long, ["A"])
    assert not [t for t in figure.data if len(t.x or ())]
    assert "No corpus has an effect" in str(figure.layout.annotations[0].text)
