"""The Projection page in headless Chromium on the real server: a box selection drawn with the
mouse on a map lists the selected sentences and draws them in every layer's panel; a layer change
keeps the selection. Screenshots: projection.png (as opened), projection_selection.png,
projection_layer.png in
$CROSSMODAL_LENS_ARTIFACTS (or a pytest temporary folder).

$CROSSMODAL_LENS_BROWSER_STORE points it at another store (the bundled one, to refresh
docs/screenshots) instead of the synthetic one.
"""

from __future__ import annotations

import pytest
# server_url is test_browser's fixture (the synthetic store, or $CROSSMODAL_LENS_BROWSER_STORE);
# importing test_browser also skips this module where Chromium or playwright is missing
from test_browser import (  # noqa: F401 - server_url: a fixture, used by name
    CHROMIUM,
    CHROMIUM_ARGS,
    PAGE_TIMEOUT_MS,
    VIEWPORT_WIDTH,
    _save_png,
    _wait_for_app,
    artifacts_dir,
    playwright_api,
    server_url,
)

from devtools.dashboard_server import fit_viewport_to_content

pytestmark = pytest.mark.slow


#: the small multiples figure is drawn (its title is SVG text)
_LAYERS_DRAWN = """() => Array.from(document.querySelectorAll('.js-plotly-plot .gtitle'))
                       .some(t => t.textContent.includes('in every layer'))"""


def _main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def _drag_box(page, plot) -> None:
    """A box selection over the middle of the plot area (Plotly's drag layer)."""
    area = plot.locator(".nsewdrag").first.bounding_box()
    x0, y0 = area["x"] + area["width"] * 0.05, area["y"] + area["height"] * 0.05
    x1, y1 = area["x"] + area["width"] * 0.5, area["y"] + area["height"] * 0.5
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=12)
    page.mouse.up()


def test_box_selection_is_listed_and_followed_through_layers(server_url, tmp_path_factory):
    artifacts = artifacts_dir(tmp_path_factory)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": VIEWPORT_WIDTH, "height": 1100})
            page.goto(f"{server_url}/projection", wait_until="domcontentloaded")
            _wait_for_app(page, 1)
            assert "Nothing selected yet" in _main_text(page)
            fit_viewport_to_content(page, max_height=4000)
            _save_png(page.screenshot(), artifacts / "projection.png")
            page.set_viewport_size({"width": VIEWPORT_WIDTH, "height": 1100})
            maps = page.locator(".js-plotly-plot")
            n_maps = maps.count()
            _drag_box(page, maps.first)
            listed = page.get_by_role("button", name="These sentences in the other languages")
            listed.wait_for(timeout=PAGE_TIMEOUT_MS)
            _wait_for_app(page, n_maps + 1)  # + the small multiples
            page.wait_for_function(_LAYERS_DRAWN, timeout=PAGE_TIMEOUT_MS)
            assert "Nothing selected yet" not in _main_text(page)
            assert "Hear a selected speech item" in _main_text(page)
            assert page.locator('[data-testid="stException"]').count() == 0
            summary = page.get_by_text("items:", exact=False).first.inner_text()
            # the small multiples draw the selection in each panel: one trace per panel
            panels = page.locator(".js-plotly-plot", has_text="in every layer")
            assert panels.locator(".scatterlayer .trace").count() >= 2
            fit_viewport_to_content(page, max_height=4000)
            _save_png(page.screenshot(), artifacts / "projection_selection.png")

            page.set_viewport_size({"width": VIEWPORT_WIDTH, "height": 1100})
            title = page.locator(".js-plotly-plot .gtitle").first.text_content()
            slider = page.locator('[data-testid="stSlider"] input[type="range"]').first
            slider.focus()
            slider.press("ArrowLeft")
            # the big map shows the layer before: its title names it
            page.wait_for_function(
                """(t) => { const g = document.querySelector('.js-plotly-plot .gtitle');
                            return g && g.textContent !== t; }""",
                arg=title, timeout=PAGE_TIMEOUT_MS)
            _wait_for_app(page, n_maps + 1)
            page.wait_for_function(_LAYERS_DRAWN, timeout=PAGE_TIMEOUT_MS)
            assert page.locator('[data-testid="stException"]').count() == 0
            # the selection survives the layer change
            assert page.get_by_text("items:", exact=False).first.inner_text() == summary
            fit_viewport_to_content(page, max_height=4000)
            _save_png(page.screenshot(), artifacts / "projection_layer.png")
        finally:
            browser.close()
