"""What the AppTest modules share: the app, opening one page on a store, the figures a page drew,
and the check that a run raised nothing and showed no error."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from dashboard import state

#: the dashboard's entry script, as AppTest runs it
APP = str(state.APP_PATH)


def open_page(store: Path | str, page: str, monkeypatch, *, timeout_s: float = 60) -> AppTest:
    """A fresh session on ``store`` (through the dashboard's store variable), run once on the
    default page and then switched to ``page`` (a path under dashboard/, e.g. views/heatmap.py)."""
    monkeypatch.setenv(state.STORE_ENV, str(store))
    at = AppTest.from_file(APP, default_timeout=timeout_s)
    at.run()
    return at.switch_page(page).run()


def chart_specs(at: AppTest) -> list[dict]:
    """Every Plotly figure the last run drew, as the JSON spec the browser receives."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def assert_clean(at: AppTest, where: str = "") -> AppTest:
    """The last run raised no exception and showed no ``st.error``; ``where`` names the step."""
    prefix = f"{where}: " if where else ""
    assert not at.exception, f"{prefix}{[e.value for e in at.exception]}"
    assert not at.error, f"{prefix}{[e.value for e in at.error]}"
    return at
