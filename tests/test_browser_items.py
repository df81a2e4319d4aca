"""Headless Chromium on the real server: a stored sentence's speech plays in the browser with the
duration the build stored, and a copied URL opened in a new browser session shows the same view.

Screenshots go to $CROSSMODAL_LENS_ARTIFACTS (or pytest's tmp dir); with
$CROSSMODAL_LENS_BROWSER_STORE (e.g. the bundled store) the playback check uses that store's
first English sentence instead of the synthetic one.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from core.store import Store
from devtools.dashboard_server import CHROMIUM, CHROMIUM_ARGS, serve_dashboard
from items_store import PLAYABLE, write_items_store

# skips this module too where test_browser skips (no Chromium, no playwright)
from browser_support import chosen_store
from test_browser import (PAGE_TIMEOUT_MS, VIEWPORT_WIDTH, _fit_viewport_to_content, _save_png,
                          _wait_for_app, artifacts_dir, playwright_api)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    def build() -> Path:
        folder = tmp_path_factory.mktemp("browser_items")
        return write_items_store(folder / "store.duckdb", folder / "cache")

    return chosen_store(build)


@pytest.fixture(scope="module")
def server_url(store, tmp_path_factory):
    cache = tmp_path_factory.mktemp("speech_cache")
    with serve_dashboard(store, extra_env={"CROSSMODAL_LENS_CACHE": str(cache)}) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _stored_duration(store: Path, lang: str, sentence_id: int) -> float:
    with Store.open(store) as opened:
        items = opened.items("speech")
    row = items[(items["lang"] == lang) & (items["sentence_id"] == sentence_id)]
    return float(row["duration_s"].iloc[0])


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")
def test_a_sentence_plays_in_the_browser_with_its_stored_duration(server_url, store, browser,
                                                                  tmp_path_factory):
    lang, sentences = PLAYABLE
    page = browser.new_page(viewport={"width": VIEWPORT_WIDTH, "height": 1000})
    latin = "eng_Latn,deu_Latn,spa_Latn,swh_Latn"  # scripts every Chromium font has
    page.goto(f"{server_url}/items?hear_sentence={sentences[0]}&hear_langs={lang}"
              f"&item_langs={latin}&item_voices=0",
              wait_until="domcontentloaded")
    _wait_for_app(page, 1)
    player = page.locator('[data-testid="stAudio"] audio, audio').first
    player.wait_for(state="attached", timeout=PAGE_TIMEOUT_MS)
    duration = page.wait_for_function(
        """() => { const a = document.querySelector('audio');
                   if (!a) return null;
                   if (a.readyState < 1) { a.load(); return null; }
                   return a.duration; }""", timeout=PAGE_TIMEOUT_MS).json_value()
    assert duration == pytest.approx(_stored_duration(store, lang, sentences[0]), abs=0.01)
    assert page.locator('[data-testid="stException"]').count() == 0
    _fit_viewport_to_content(page)
    _save_png(page.screenshot(), artifacts_dir(tmp_path_factory) / "items.png")
    page.close()


def test_a_copied_url_opens_the_same_view_in_a_new_session(server_url, browser, tmp_path_factory):
    first = browser.new_context(viewport={"width": VIEWPORT_WIDTH, "height": 1000}).new_page()
    first.goto(f"{server_url}/heatmap?pairing=speech-speech&view=minus_baseline"
               "&langs=eng_Latn,deu_Latn,swh_Latn",
               wait_until="domcontentloaded")
    _wait_for_app(first, 1)
    first.wait_for_function("() => location.search.includes('layer=')",
                            timeout=PAGE_TIMEOUT_MS)
    link = first.url
    query = parse_qs(urlparse(link).query)
    assert query["pairing"] == ["speech-speech"] and query["view"] == ["minus_baseline"]
    assert {"run_id", "metric", "layer", "langs"} <= set(query)
    title = first.locator(".js-plotly-plot .gtitle").first.text_content()

    second = browser.new_context(viewport={"width": VIEWPORT_WIDTH, "height": 1000}).new_page()
    second.goto(link, wait_until="domcontentloaded")
    _wait_for_app(second, 1)
    assert second.locator(".js-plotly-plot .gtitle").first.text_content() == title
    assert "speech-speech" in title
    checked = second.locator('[data-testid="stSidebar"] [role="radiogroup"] '
                             'label:has(input:checked)').all_inner_texts()
    assert any("speech-speech" in text for text in checked)
    assert any("minus shuffled baseline" in text for text in checked)
    assert second.locator('[data-testid="stException"]').count() == 0
    # the chart's toolbar camera saves SVG, drawn by the browser (no kaleido on the server)
    second.locator(".js-plotly-plot").first.hover()
    with second.expect_download(timeout=PAGE_TIMEOUT_MS) as saved:
        second.locator('.js-plotly-plot .modebar-btn[data-title^="Download plot"]').first.click()
    assert saved.value.suggested_filename == "heatmap.svg"
    assert "<svg" in Path(saved.value.path()).read_text(encoding="utf-8")[:2000]
    _fit_viewport_to_content(second)
    _save_png(second.screenshot(), artifacts_dir(tmp_path_factory) / "heatmap_from_link.png")
    first.context.close()
    second.context.close()


def _cell_centre(page, row: int, column: int) -> tuple[float, float]:
    """Page coordinates of heatmap cell (row, column): Plotly's own axes map a cell's index to
    pixels, so the click lands on that cell whatever the layout."""
    return tuple(page.evaluate(
        """([row, column]) => {
             const gd = document.querySelector('.js-plotly-plot');
             const box = gd.getBoundingClientRect(), L = gd._fullLayout;
             return [box.left + L.xaxis._offset + L.xaxis.l2p(column),
                     box.top + L.yaxis._offset + L.yaxis.l2p(row)]; }""", [row, column]))


def test_a_clicked_heatmap_cell_opens_its_sentences(server_url, browser, tmp_path_factory):
    page = browser.new_context(viewport={"width": VIEWPORT_WIDTH, "height": 1200}).new_page()
    page.goto(f"{server_url}/heatmap?pairing=text-speech&langs=eng_Latn,deu_Latn,swh_Latn",
              wait_until="domcontentloaded")
    _wait_for_app(page, 1)
    rows = page.evaluate("() => document.querySelector('.js-plotly-plot')._fullLayout"
                         ".yaxis.ticktext.map(t => t.replace(/<[^>]*>/g, ''))")
    assert rows == ["English", "German", "Swahili"]  # resource order, rows = text language
    page.mouse.click(*_cell_centre(page, 2, 1))  # Swahili text x German speech
    picked = page.wait_for_function(
        """() => { const value = label => document.querySelector(
                     `[data-testid="stSelectbox"] input[aria-label="${label}"]`)?.value;
                   const row = value('Row (text)'), column = value('Column (speech)');
                   return row === 'Swahili' ? [row, column] : null; }""",
        timeout=PAGE_TIMEOUT_MS).json_value()
    assert picked == ["Swahili", "German"]
    # the clicked cell is outlined in the redrawn figure
    page.wait_for_function(
        """() => (document.querySelector('.js-plotly-plot').layout.shapes || [])
                 .some(s => s.name === 'picked cell' && s.x0 === 0.5 && s.y0 === 1.5)""",
        timeout=PAGE_TIMEOUT_MS)
    _fit_viewport_to_content(page)
    _save_png(page.screenshot(), artifacts_dir(tmp_path_factory) / "heatmap_cell_clicked.png")
    page.get_by_role("button", name="Open its sentences").click()
    page.wait_for_function("() => location.pathname.endsWith('/items')", timeout=PAGE_TIMEOUT_MS)
    query = parse_qs(urlparse(page.url).query)
    assert query["item_langs"] == ["swh_Latn,deu_Latn"]
    assert query["cell"] == ["text-speech~swh_Latn~deu_Latn"]
    assert page.locator('[data-testid="stException"]').count() == 0
    page.context.close()
