"""The Layer x layer page in headless Chromium on the real server: a run's own matrix, a matrix
between two runs, and a difference, each saved as a screenshot.

Store: the synthetic store with simulated matrices (tests/matrix_fixtures.py), or
$CROSSMODAL_LENS_BROWSER_STORE (e.g. a copy of the bundled store after `precompute matrices`, to
refresh docs/screenshots with CROSSMODAL_LENS_ARTIFACTS=docs/screenshots).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from browser_support import require_browser, served
from devtools.dashboard_server import CHROMIUM, CHROMIUM_ARGS, fit_viewport_to_content
from matrix_fixtures import write_matrix_store
from test_browser import _save_png as save_png  # noqa: the recording browser test does the same
from test_browser import _wait_for_app as wait_for_app
from test_browser import artifacts_dir

pytestmark = pytest.mark.slow

playwright_api = require_browser()
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    with served(lambda: write_matrix_store(tmp_path_factory.mktemp("browser_matrix") / "store.duckdb")) as url:
        yield url


def _choose(page, label: str, option: str) -> None:
    """Pick ``option`` (its shown text, a prefix) in the sidebar selectbox labelled ``label``."""
    box = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(
        has_text=label).first
    box.click()
    page.get_by_role("option").filter(has_text=option).first.click()
    page.wait_for_timeout(500)  # the rerun starts
    wait_for_app(page, 1)


def _shot(page, artifacts: Path, name: str) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, \
        page.locator('[data-testid="stException"]').first.inner_text()
    fit_viewport_to_content(page, max_height=4000)
    save_png(page.screenshot(), artifacts / name)
    page.set_viewport_size({"width": 1400, "height": 1000})


def test_layer_matrix_views_in_chromium(server_url, tmp_path_factory):
    artifacts = artifacts_dir(tmp_path_factory)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{server_url}/layer-matrix", wait_until="domcontentloaded")
            wait_for_app(page, 1)
            main = page.locator('[data-testid="stMain"]')
            assert "Best match per layer, calibrated" in main.inner_text()
            box = page.locator(".js-plotly-plot").first.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 300
            _shot(page, artifacts, "layer_matrix.png")

            _choose(page, "Runs", "×")
            runs = page.get_by_role("combobox", name="Runs")
            assert "×" in runs.first.input_value()
            assert "text_encoder" in main.inner_text()  # the e5(-like) run's component on an axis
            _shot(page, artifacts, "layer_matrix_runs.png")

            page.get_by_text("Difference A − B", exact=True).click()
            page.get_by_text("A − B", exact=True).first.wait_for(timeout=TIMEOUT_MS)
            wait_for_app(page, 1)
            assert "A − B" in main.inner_text()
            _shot(page, artifacts, "layer_matrix_difference.png")
        finally:
            browser.close()
