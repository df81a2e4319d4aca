"""dashboard.downloads: what the download buttons hold (CSV and Parquet of a table, a chart's
numbers) and the toolbar's image format."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from chart_fixtures import languages, metric_rows, tables  # noqa: F401 (fixtures)
from dashboard import downloads
from dashboard.charts.common import CLICK_TARGETS
from dashboard.charts.heatmap import heatmap_figure


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"lang": ["eng_Latn", "swh_Latn"], "value": [0.5, np.nan],
                         "names": [["a", "b"], None], "blob": [b"\x00\xff", None],
                         "config": [{"k": 20}, {"k": 5}]}, index=[7, 9])


def test_csv_and_parquet_hold_every_row_and_column():
    frame = _frame()
    from_csv = pd.read_csv(io.BytesIO(downloads.csv_bytes(frame)))
    from_parquet = pd.read_parquet(io.BytesIO(downloads.parquet_bytes(frame)))
    for read in (from_csv, from_parquet):
        assert list(read.columns) == list(frame.columns)
        assert list(read["lang"]) == ["eng_Latn", "swh_Latn"]
        assert read["value"].iloc[0] == 0.5 and np.isnan(read["value"].iloc[1])
        assert read["names"].iloc[0] == '["a", "b"]' and read["blob"].iloc[0] == "00ff"
        assert read["config"].iloc[1] == '{"k": 5}'


def test_heatmap_data_has_one_row_per_cell_with_its_labels():
    z = np.array([[1.0, 2.0], [3.0, np.nan]])
    figure = go.Figure(go.Heatmap(z=z, x=["a", "b"], y=["r", "s"], name="cells"))
    frame = downloads.figure_frame(figure)
    assert len(frame) == 4
    assert list(zip(frame["y"], frame["x"], frame["z"], strict=True))[:3] == \
        [("r", "a", 1.0), ("r", "b", 2.0), ("s", "a", 3.0)]
    assert frame["name"].eq("cells").all()


def test_chart_data_leaves_out_traces_drawn_only_to_be_clicked(tables, languages):
    rows = metric_rows(tables, pairing="text-speech", layer=2)
    figure = heatmap_figure(rows, languages, pairing="text-speech", metric="svcca")
    assert any(t.meta == CLICK_TARGETS for t in figure.data)
    frame = downloads.figure_frame(figure)
    assert set(frame["type"]) == {"heatmap"} and len(frame) == 36
    assert frame["hovertext"].str.contains("95% CI").all()  # the cells' hover, once


def test_line_chart_data_keeps_each_trace_and_its_points():
    figure = go.Figure([go.Scatter(x=[0, 1, 2], y=[0.1, 0.2, 0.3], name="eng"),
                        go.Scatter(x=[0, 1], y=[0.5, 0.4], name="swh", text=["p", "q"])])
    frame = downloads.figure_frame(figure)
    assert list(frame["trace"]) == [0, 0, 0, 1, 1]
    assert list(frame["y"]) == [0.1, 0.2, 0.3, 0.5, 0.4]
    assert list(frame.loc[frame["name"] == "swh", "text"]) == ["p", "q"]
    assert downloads.figure_frame(go.Figure()).empty


def test_toolbar_saves_the_chosen_format_under_the_chart_name():
    config = downloads.chart_config("svg", "heatmap · svcca/text-speech")
    assert config["toImageButtonOptions"]["format"] == "svg"
    assert config["toImageButtonOptions"]["filename"] == "heatmap_svcca_text-speech"
    assert downloads.chart_config("png", "x")["toImageButtonOptions"]["scale"] == 2
    with pytest.raises(ValueError, match="image format"):
        downloads.chart_config("pdf", "x")
