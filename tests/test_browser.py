"""End-to-end: the real `streamlit run` server on the synthetic store, driven by headless Chromium.

Visits every page, waits for the Plotly charts to render, checks that no Streamlit exception box
appears, and saves one screenshot per page to $CROSSMODAL_LENS_ARTIFACTS (or pytest's tmp dir).
Skips when /usr/bin/chromium or the playwright package is missing.

$CROSSMODAL_LENS_BROWSER_STORE points the run at another store (e.g. the bundled one, to refresh
docs/screenshots) instead of the synthetic one.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from synthetic_store import write_synthetic_store

from browser_support import BROWSER_STORE_ENV, require_browser, served
from devtools.dashboard_server import (
    CHROMIUM,
    CHROMIUM_ARGS,
    fit_viewport_to_content,
)

#: url path -> how many Plotly charts the page draws at least; a deep link comes first, on purpose:
#: a fresh server must route it through app.py's st.navigation too
PAGES = {"heatmap": 1, "": 1, "layer_curves": 2, "compare": 1, "projection": 1, "findings": 1}
NAV_TITLES = ["Overview", "Heatmap", "Layer curves", "Layer x layer", "Compare models",
              "Projection (UMAP)", "Findings", "Replication", "Items", "Your recording"]
PAGE_TIMEOUT_MS = 20_000
VIEWPORT_WIDTH = 1400
VIEWPORT_MAX_HEIGHT = 4000
MAX_PNG_BYTES = 300_000

pytestmark = pytest.mark.slow

playwright_api = require_browser()


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    with served(lambda: write_synthetic_store(tmp_path_factory.mktemp("browser") / "store.duckdb")) as url:
        yield url


def artifacts_dir(tmp_path_factory) -> Path:
    """$CROSSMODAL_LENS_ARTIFACTS, else a pytest temporary folder, for screenshots."""
    chosen = os.environ.get("CROSSMODAL_LENS_ARTIFACTS")
    directory = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    return artifacts_dir(tmp_path_factory)


def _wait_for_app(page, min_charts: int) -> None:
    """Charts drawn, and the script finished (no "running" status widget, no skeletons)."""
    page.wait_for_function(
        """(n) => Array.from(document.querySelectorAll('.js-plotly-plot'))
                      .filter(plot => plot.querySelector('.main-svg')).length >= n
                 && !document.querySelector('[data-testid="stStatusWidget"] [data-testid="stSpinner"]')
                 && !document.querySelector('[data-testid="stSkeleton"]')""",
        arg=min_charts, timeout=PAGE_TIMEOUT_MS)
    page.wait_for_load_state("networkidle", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_timeout(800)  # Plotly finishes its transitions


def _fit_viewport_to_content(page) -> None:
    fit_viewport_to_content(page, max_height=VIEWPORT_MAX_HEIGHT)


def _save_png(png: bytes, path: Path) -> None:
    """As taken, or as a 256-colour PNG when larger than 300 KB (docs/screenshots stay small)."""
    if len(png) <= MAX_PNG_BYTES:
        path.write_bytes(png)
        return
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)


def test_every_page_renders_in_chromium(server_url, artifacts):
    # Functional checks only: how fast pages load is measured in bench/, not asserted here.
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": VIEWPORT_WIDTH, "height": 1000})
            for path, min_charts in PAGES.items():
                page.goto(f"{server_url}/{path}", wait_until="domcontentloaded")
                _wait_for_app(page, min_charts)
                nav = [text.split("\n")[-1].strip()  # drop the icon's ligature name
                       for text in page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()]
                assert nav == NAV_TITLES, f"page /{path} did not go through app.py: {nav}"
                exceptions = page.locator('[data-testid="stException"]')
                assert exceptions.count() == 0, (
                    f"page /{path} shows an exception: {exceptions.first.inner_text()}")
                charts = page.locator(".js-plotly-plot")
                assert charts.count() >= min_charts, f"page /{path}: {charts.count()} charts"
                for i in range(charts.count()):
                    box = charts.nth(i).bounding_box()
                    assert box and box["width"] > 300 and box["height"] > 200, (
                        f"page /{path}: chart {i} is not visible ({box})")
                _fit_viewport_to_content(page)
                _save_png(page.screenshot(), artifacts / f"{path or 'overview'}.png")
            if not os.environ.get(BROWSER_STORE_ENV):
                _compare_speech_families(page, server_url, artifacts)
        finally:
            browser.close()


def _compare_speech_families(page, server_url: str, artifacts: Path) -> None:
    """On the synthetic store's compare page, speech-speech draws two runs and lists the text-only
    one as not comparable (with its reason) instead of dropping it."""
    page.set_viewport_size({"width": VIEWPORT_WIDTH, "height": 1000})
    page.goto(f"{server_url}/compare", wait_until="domcontentloaded")
    _wait_for_app(page, 1)
    page.get_by_text("cross-lingual speech-speech", exact=True).click()
    note = page.get_by_text("not comparable, because")
    note.wait_for(timeout=PAGE_TIMEOUT_MS)
    _wait_for_app(page, 1)
    assert note.count() == 1
    assert "reads only text" in page.locator('[data-testid="stMain"]').inner_text()
    legend = page.locator(".js-plotly-plot .legendtext").all_text_contents()
    assert "synthetic-speech-llm" in legend and "synthetic-e5" not in legend
    _fit_viewport_to_content(page)
    _save_png(page.screenshot(), artifacts / "compare_speech.png")
