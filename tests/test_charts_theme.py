"""The charts' slim plotly template."""

from __future__ import annotations

from dashboard.charts.theme import TEMPLATE, TRACE_TYPES


def test_the_slim_template_draws_every_trace_type_as_plotly_white():
    """TEMPLATE keeps plotly_white's layout and the defaults of the trace types drawn:
    a figure of each type under it gives the JSON plotly_white gives, template aside."""
    import plotly.graph_objects as go
    import plotly.io as pio

    white = pio.templates["plotly_white"]
    kept = set(TEMPLATE.data.to_plotly_json())
    assert kept == set(white.data.to_plotly_json()) & set(TRACE_TYPES)  # box: none
    for kind in TRACE_TYPES:
        trace = {"type": kind, "x": [0, 1], "y": [1, 2]} if kind != "heatmap" else \
            {"type": kind, "z": [[0, 1], [1, 0]]}
        slim = go.Figure(data=[trace], layout={"template": TEMPLATE}).to_dict()
        full = go.Figure(data=[trace], layout={"template": white}).to_dict()
        assert slim["data"] == full["data"]
        assert slim["layout"]["template"]["layout"] == full["layout"]["template"]["layout"]
        assert slim["layout"]["template"]["data"].get(kind) == \
            full["layout"]["template"]["data"].get(kind)
