"""End-to-end: the Replication page in headless Chromium, on the tiny store split into halves.

Saves ``replication.png`` to $CROSSMODAL_LENS_ARTIFACTS (or pytest's tmp dir);
$CROSSMODAL_LENS_BROWSER_STORE points it at another store holding parts (e.g. a copy of the bundled
store after `precompute halves`, to refresh docs/screenshots/replication.png).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from browser_support import chosen_store
from test_browser import (  # skips this module too where Chromium or playwright is missing
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORT_WIDTH,
    _fit_viewport_to_content,
    _save_png,
    _wait_for_app,
    artifacts_dir,
    playwright_api,
)

from core.store import Store
from devtools.dashboard_server import serve_dashboard
from precompute.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def split_store_path(request, tmp_path_factory) -> Path:
    def build() -> Path:
        path = tmp_path_factory.mktemp("browser_replication") / "tiny.duckdb"
        shutil.copyfile(request.getfixturevalue("tiny_store_path"), path)
        with Store.open(path) as store:
            (parent,) = store.runs().run_id
        assert main(["halves", "--store", str(path), "--run", parent]) == 0
        return path

    return chosen_store(build)


def test_replication_page_renders_in_chromium(split_store_path, tmp_path_factory):
    artifacts = artifacts_dir(tmp_path_factory)
    with serve_dashboard(split_store_path) as url, playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": VIEWPORT_WIDTH, "height": 1000})
            page.goto(f"{url}/replication", wait_until="domcontentloaded")
            _wait_for_app(page, 3)  # findings 1, 3 and 4 (2 does not apply to Whisper)
            main_text = page.locator('[data-testid="stMain"]').inner_text()
            assert page.locator('[data-testid="stException"]').count() == 0
            assert "corpora: not applicable" in main_text
            assert "part 1 of 2" in main_text and "part 2 of 2" in main_text
            charts = page.locator(".js-plotly-plot")
            for i in range(charts.count()):
                box = charts.nth(i).bounding_box()
                assert box and box["width"] > 300 and box["height"] > 150, f"chart {i}: {box}"
            _fit_viewport_to_content(page)
            _save_png(page.screenshot(), artifacts / "replication.png")
        finally:
            browser.close()
