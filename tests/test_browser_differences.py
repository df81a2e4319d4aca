"""End-to-end in headless Chromium: the Heatmap page's differences and fixed colour scale, and the
Layer curves' grouped views, on the real `streamlit run` server. Saves a screenshot of each to
$CROSSMODAL_LENS_ARTIFACTS (or pytest's tmp dir).

On the synthetic store by default; $CROSSMODAL_LENS_BROWSER_STORE points it at another store (the
bundled one refreshes docs/screenshots/heatmap_*.png and layer_curves_*.png; there the difference
of two runs and the voice difference are drawn too). Skips without /usr/bin/chromium or playwright.
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

TIMEOUT_MS = 30_000
VIEWPORT = {"width": 1400, "height": 1000}

pytestmark = pytest.mark.slow

playwright_api = require_browser()


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    with served(lambda: write_synthetic_store(tmp_path_factory.mktemp("browser_differences") / "store.duckdb")) as url:
        yield url


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    chosen = os.environ.get("CROSSMODAL_LENS_ARTIFACTS")
    directory = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _settled(page, charts: int, text: str | None = None) -> None:
    """``charts`` Plotly charts drawn (and ``text`` on the page), the script finished."""
    if text is not None:
        page.get_by_text(text).first.wait_for(timeout=TIMEOUT_MS)
    page.wait_for_function(
        """(n) => Array.from(document.querySelectorAll('.js-plotly-plot'))
                      .filter(plot => plot.querySelector('.main-svg')).length >= n
                 && !document.querySelector('[data-testid="stStatusWidget"] [data-testid="stSpinner"]')
                 && !document.querySelector('[data-testid="stSkeleton"]')""",
        arg=charts, timeout=TIMEOUT_MS)
    page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)
    page.wait_for_timeout(1000)
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.first.inner_text()


def _shoot(page, path: Path) -> None:
    """The page to its content's height, as a PNG (256 colours when over 300 KB: docs/screenshots
    stay small)."""
    fit_viewport_to_content(page, max_height=3000)
    png = page.screenshot()
    if len(png) > 300_000:
        image = Image.open(io.BytesIO(png)).convert("RGB")
        image.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)
    else:
        path.write_bytes(png)
    page.set_viewport_size(VIEWPORT)


def _title(page) -> str:
    return page.locator(".js-plotly-plot .gtitle").first.text_content() or ""


def _heatmap_views(page, server_url: str, artifacts: Path, *, every_view: bool) -> None:
    page.goto(f"{server_url}/heatmap", wait_until="domcontentloaded")
    _settled(page, 1)
    if every_view:
        page.get_by_text("One colour scale for every layer").click()
        _settled(page, 1)
        _shoot(page, artifacts / "heatmap_fixed_scale.png")
    page.get_by_text("a difference A − B", exact=True).click()
    _settled(page, 1, "B differs from A in")
    assert "A − B" in _title(page)
    _shoot(page, artifacts / "heatmap_difference_layer.png")
    if not every_view:
        return
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("text-text", exact=True).click()
    _settled(page, 1)
    page.get_by_text("another run (model)", exact=True).click()
    _settled(page, 1, "B: run")
    _shoot(page, artifacts / "heatmap_difference_run.png")
    sidebar.get_by_text("speech-speech", exact=True).click()
    _settled(page, 1)
    voice = page.get_by_text("language change vs voice change", exact=True)
    if voice.count():  # a store whose languages have a second voice (the bundled one)
        voice.click()
        _settled(page, 1, "second voice")
        assert "second voice" in _title(page)
        _shoot(page, artifacts / "heatmap_difference_voice.png")


def _layer_curve_views(page, server_url: str, artifacts: Path) -> None:
    page.goto(f"{server_url}/layer_curves", wait_until="domcontentloaded")
    _settled(page, 2)
    assert "by resource level" in _title(page)
    scrollbars = page.locator(".js-plotly-plot").first.locator(".legend .scrollbar")
    for i in range(scrollbars.count()):  # plotly adds one; it has a size when it scrolls
        box = scrollbars.nth(i).bounding_box()
        assert box is None or box["height"] == 0, f"the legend scrolls: {box}"
    _shoot(page, artifacts / "layer_curves_levels.png")
    page.get_by_text("level means (+ languages on demand)", exact=True).click()
    _settled(page, 2, "Also draw these languages")
    assert "mean per resource level" in _title(page)
    _shoot(page, artifacts / "layer_curves_means.png")


def test_heatmap_differences_and_layer_curves_by_level(server_url, artifacts):
    """A difference and the grouped layer curves on any store; with
    $CROSSMODAL_LENS_BROWSER_STORE (docs screenshots) also the fixed scale and the run and voice
    differences."""
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            _heatmap_views(page, server_url, artifacts,
                           every_view=bool(os.environ.get(BROWSER_STORE_ENV)))
            _layer_curve_views(page, server_url, artifacts)
        finally:
            browser.close()
