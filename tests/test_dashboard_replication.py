"""The Replication page and the per-run verdict cache on the synthetic store (AppTest); the page on
real halves is tested in tests/test_halves.py."""

from __future__ import annotations

# ruff: noqa: F811 - app and synthetic_store_path are test_dashboard's fixtures, imported to be requested

from synthetic_store import RUN_ID
from test_dashboard import app, synthetic_store_path  # noqa: F401 - fixtures


def test_replication_page_without_groups_says_how_to_make_some(app):
    at = app.run().switch_page("views/replication.py").run()
    assert not at.exception and not at.error
    assert "precompute halves" in at.warning[0].value
    assert "Not replicated" in at.info[0].value and "synthetic-e5" in at.info[0].value
    assert "reads only text" in at.info[0].value


def test_findings_tables_stay_and_only_the_detail_follows_the_sidebar_metric(app):
    at = app.run().switch_page("views/findings.py").run()
    tables = [d.value for d in at.dataframe if "control" in d.value.columns]
    assert at.sidebar.selectbox(key="run_id").value == RUN_ID
    at.sidebar.selectbox(key="metric").set_value("linear_cka").run()
    assert not at.exception and not at.error
    after = [d.value for d in at.dataframe if "control" in d.value.columns]
    assert len(after) == len(tables) == 3
    for before, now in zip(tables, after):
        assert before.equals(now)  # every metric and control, whatever the sidebar says
    details = [m.value for m in at.markdown if "-badge[linear_cka, raw" in m.value]
    assert len(details) == 3  # findings 1, 3, 4 (2 does not apply)
