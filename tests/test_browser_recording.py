"""End-to-end: "Your recording" in headless Chromium on the tiny store (tiny random Whisper):
upload a clip through the page's file input, wait for every chart, check there is no exception,
and save screenshots (to $CROSSMODAL_LENS_ARTIFACTS or pytest's tmp dir); then a file that is not
audio, which must give the page's message instead of a traceback."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import soundfile as sf
from test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORT_WIDTH,
    _fit_viewport_to_content,
    _save_png,
    artifacts_dir,
    playwright_api,
)

from devtools.dashboard_server import choose_option, serve_dashboard

#: waveform, 2 x neighbours, agreement, 2 x maps, frames
MIN_CHARTS = 7
ANALYSIS_TIMEOUT_MS = 240_000

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server_url(tiny_store_path):
    with serve_dashboard(tiny_store_path) as url:
        yield url


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    return artifacts_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A real FLEURS clip when ../shared has one, else an espeak-ng sentence as WAV."""
    from tests.conftest import SHARED_DIR

    fleurs_clip = SHARED_DIR / "data" / "fleurs_clips" / "cuttledoc" / "fleurs-en-001.ogg"
    if fleurs_clip.is_file():
        return fleurs_clip
    from core.audio import synthesize

    path = tmp_path_factory.mktemp("clip") / "sentence.wav"
    buffer = io.BytesIO()
    sf.write(buffer, synthesize("The weather is cold and rainy this morning.", "en-us"), 16_000,
             format="WAV")
    path.write_bytes(buffer.getvalue())
    return path


def _choose_english(page) -> None:
    choose_option(page, "Language", "English (eng_Latn)")
    page.wait_for_timeout(1000)  # the rerun the choice triggers


def _wait_idle(page, min_charts: int, timeout_ms: int) -> None:
    page.wait_for_function(
        """(n) => Array.from(document.querySelectorAll('.js-plotly-plot'))
                      .filter(plot => plot.querySelector('.main-svg')).length >= n
                 && !document.querySelector('[data-testid="stStatusWidget"] [data-testid="stSpinner"]')
                 && !document.querySelector('[data-testid="stProgress"]')
                 && !document.querySelector('[data-testid="stSkeleton"]')""",
        arg=min_charts, timeout=timeout_ms)
    page.wait_for_timeout(1000)


def test_upload_a_clip_and_see_every_chart(server_url, artifacts, clip):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": VIEWPORT_WIDTH, "height": 1000})
            page.goto(f"{server_url}/recording", wait_until="domcontentloaded")
            page.get_by_text("Upload or record a clip to start.").wait_for(timeout=30_000)
            _choose_english(page)
            page.locator('input[type="file"]').set_input_files(str(clip))
            _wait_idle(page, MIN_CHARTS, ANALYSIS_TIMEOUT_MS)
            exceptions = page.locator('[data-testid="stException"]')
            assert exceptions.count() == 0, exceptions.first.inner_text()
            errors = page.locator('[data-testid="stAlertContentError"]')
            assert errors.count() == 0, errors.first.inner_text()
            charts = page.locator(".js-plotly-plot")
            assert charts.count() >= MIN_CHARTS
            for i in range(charts.count()):
                box = charts.nth(i).bounding_box()
                assert box and box["width"] > 300 and box["height"] > 150, (i, box)
            main = page.locator('[data-testid="stMain"]').inner_text()
            for heading in ("Nearest stored items per layer", "Your text-vs-speech agreement",
                            "Your clip in the stored maps", "Where in the clip the sentence"):
                assert heading in main
            _fit_viewport_to_content(page)
            _save_png(page.screenshot(), artifacts / "recording.png")
            # the page is taller than one screenshot: the maps and the frame view on their own
            for name, index in (("recording_maps", -3), ("recording_frames", -1)):
                chart = charts.nth(charts.count() + index)
                chart.scroll_into_view_if_needed()
                _save_png(chart.screenshot(), artifacts / f"{name}.png")

            page.set_viewport_size({"width": VIEWPORT_WIDTH, "height": 900})
            page.locator('input[type="file"]').set_input_files(
                files=[{"name": "notes.wav", "mimeType": "audio/wav",
                        "buffer": b"these are my notes, not a recording " * 40}])
            message = page.get_by_text("this is not an audio file")
            message.wait_for(timeout=60_000)
            assert page.locator('[data-testid="stException"]').count() == 0
            assert page.locator(".js-plotly-plot").count() == 0
            _save_png(page.screenshot(), artifacts / "recording_not_audio.png")
        finally:
            browser.close()
