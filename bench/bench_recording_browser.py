"""Latency of "Your recording" in a real browser: from the upload to the last chart drawn.

``bench_recording`` times the server's part (decode, model, neighbours, figures built and
serialised); this one times what a user waits for. It starts the dashboard as a user does
(``streamlit run dashboard/app.py``, via ``devtools.dashboard_server``) on a store, opens the page
in headless Chromium (playwright, Debian's ``/usr/bin/chromium``), chooses the language, waits until
the page has prepared the run (model loaded and warmed up, stored maps built: the "Upload or record
a clip to start." message with no spinner), then uploads a clip through the file input and reads,
from a MutationObserver installed in the page before the upload:

- ``started``: upload to the page's progress bar shown (the upload has reached the server and
  the rerun's first elements the browser);
- ``first chart``: upload to the first change inside a Plotly chart (the waveform);
- ``first section``: upload to the first change inside a chart of the analysis' sections (any chart
  but the waveform: they need the model's states, so none can come before the model stage ends);
- ``server``: upload to the page's progress bar gone (the script's last line empties it: every
  element has been sent, and the browser has processed them; a renderer busy drawing reads that
  last message later than the script ends, which ``--timeline`` shows);
- ``drawn``: upload to the last change inside any Plotly chart (its final draw, relayouts after
  late width changes included), once ``--min-charts`` charts are on the page and nothing changed
  for ``--quiet-ms``;
- ``after server``: ``drawn - server``, the drawing left once the browser has read the script's
  end (less than the browser's own part: a busy renderer reads that end late, see ``--timeline``);
- ``sections``: ``drawn - first section``. For a ``cached`` clip the server answers from its
  caches at once, so this is about what drawing the sections takes the browser; a new clip cannot
  be drawn sooner than its model stage (``bench_recording``) plus that.

Also the CPU seconds of the server process and of Chromium's processes over each upload: on a
machine where both share the cores, the browser's part competes with the server's. With
``--timeline``, the cores each used per 0.25 s over each clip length's first new clip (server,
Chromium's renderer, the rest of Chromium): which of them the page waits for, when.

Each repeat opens the page afresh. ``new clip``: the clip differs from every earlier one in one
sample (a new content hash), so the server recomputes it; ``cached``: the same bytes again (the
page's per-clip caches answer). Clips as in ``bench_recording`` (FLEURS English cut or joined, or
espeak-ng without ../shared).

    .venv/bin/python -m bench.bench_recording_browser --store data/crossmodal_lens.duckdb
    .venv/bin/python -m bench.bench_recording_browser --seconds 5 --repeats 5 --screenshots out/
    .venv/bin/python -m bench.bench_recording_browser --seconds 5 --repeats 2 --timeline
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.bench_recording import speech, wav_bytes  # noqa: E402

#: waveform, neighbours x 2 (encoder, decoder), agreement, maps x 2, frames (a sentence-rank
#: chart too when the clip says a stored sentence)
MIN_CHARTS = 7
TIMEOUT_MS = 300_000

#: timestamps (performance.now) of the last change inside a Plotly chart and of the progress
#: bar's removal, kept on window.__lens; reset before each upload
OBSERVER_JS = """() => {
  const lens = window.__lens = {start: performance.now(), lastPlot: null, progressGone: null,
                                sawProgress: false, progressSeen: null, firstPlot: null,
                                firstSection: null};
  // charts on the page before the upload (the stored maps shown while it waits) do not count
  document.querySelectorAll('.js-plotly-plot').forEach((plot) => { plot.dataset.lensOld = '1'; });
  const observer = new MutationObserver((mutations) => {
    const now = performance.now();
    for (const m of mutations) {
      const node = m.target.nodeType === 1 ? m.target : m.target.parentElement;
      const plot = node && node.closest ? node.closest('.js-plotly-plot') : null;
      if (plot && !plot.dataset.lensOld) {
        lens.lastPlot = now;
        if (lens.firstPlot === null) lens.firstPlot = now;
        if (lens.firstSection === null && !plot.closest('.st-key-recording_wave')) {
          lens.firstSection = now;
        }
      }
    }
    const progress = document.querySelector('[data-testid="stProgress"]');
    if (progress && !lens.sawProgress) lens.progressSeen = now;
    if (progress) lens.sawProgress = true;
    else if (lens.sawProgress && lens.progressGone === null) lens.progressGone = now;
  });
  observer.observe(document.body, {subtree: true, childList: true, attributes: true,
                                   characterData: true});
  lens.observer = observer;
}"""

#: true once ``n`` charts have an svg, no progress bar or spinner is shown and no chart changed
#: for ``quiet`` ms
SETTLED_JS = """([n, quiet]) => {
  const lens = window.__lens;
  const plots = Array.from(document.querySelectorAll('.js-plotly-plot'))
                     .filter(p => p.querySelector('.main-svg')).length;
  const busy = document.querySelector('[data-testid="stProgress"]')
            || document.querySelector('[data-testid="stStatusWidget"] [data-testid="stSpinner"]')
            || document.querySelector('[data-testid="stSkeleton"]');
  return plots >= n && !busy && lens.progressGone !== null && lens.lastPlot !== null
         && performance.now() - lens.lastPlot > quiet;
}"""


def distinct_clip(wave: np.ndarray, index: int) -> bytes:
    """``wave`` as WAV, differing from the clips of other ``index`` in one sample's least
    significant bit pattern (inaudible; a different content hash, so no cached result)."""
    changed = wave.copy()
    changed[index % len(changed)] += (index + 1) / 32768.0
    return wav_bytes(changed)


def wait_prepared(page, timeout_ms: int) -> None:
    """Until the page waits for a clip with its preparation done (no spinner) and the stored maps
    it shows meanwhile drawn."""
    page.get_by_text("Upload or record a clip to start.").wait_for(timeout=timeout_ms)
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stSpinner"]')
                 && !document.querySelector('[data-testid="stStatusWidget"]')
                 && Array.from(document.querySelectorAll('.js-plotly-plot'))
                         .every(plot => plot.querySelector('.main-svg'))""",
        timeout=timeout_ms)
    page.wait_for_timeout(1000)  # the stored maps shown while waiting: drawn, as for a user


def chromium_cpu_by_kind(root_pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of the processes under ``root_pid`` named like Chromium, by
    kind: ``renderer`` (the page: its scripts, layout and painting) and ``other`` (the browser
    process, GPU process with its software rasteriser, utilities)."""
    import psutil

    totals = {"renderer": 0.0, "other": 0.0}
    for process in psutil.Process(root_pid).children(recursive=True):
        try:
            if "chrom" in process.name():
                times = process.cpu_times()
                kind = "renderer" if "--type=renderer" in process.cmdline() else "other"
                totals[kind] += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return totals


def chromium_cpu(root_pid: int) -> float:
    """CPU seconds (user + system) of every process under ``root_pid`` named like Chromium."""
    return sum(chromium_cpu_by_kind(root_pid).values())


class CpuTimeline:
    """Cores used per interval by the server and by Chromium (renderer, other), sampled in a
    thread while an upload runs: where, on a shared machine, the browser's drawing and the
    server's work compete (e.g. the model stage slowed by the page's own rerun)."""

    def __init__(self, server_pid: int, browser_root_pid: int, interval_s: float = 0.25):
        self.server_pid, self.browser_root_pid = server_pid, browser_root_pid
        self.interval_s = interval_s
        self.samples: list[tuple[float, float, float, float]] = []
        self._stop = None
        self._thread = None

    def _sample(self) -> None:
        """Totals every ``interval_s`` from the thread's start (a few ms before the upload's own
        zero). A Chromium process that ends or starts meanwhile skews that interval (totals are
        summed over the processes alive at each sample)."""
        import psutil

        from devtools.dashboard_server import cpu_seconds

        start = time.perf_counter()
        while True:
            try:
                chromium = chromium_cpu_by_kind(self.browser_root_pid)
                server = cpu_seconds(self.server_pid)
            except (psutil.Error, OSError):  # a process gone: keep what was sampled
                return
            self.samples.append((time.perf_counter() - start, server, chromium["renderer"],
                                 chromium["other"]))
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> Self:
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def rows(self) -> list[tuple[float, float, float, float, float]]:
        """(from s, to s, server cores, renderer cores, other Chromium cores) per interval."""
        return [(t0, t1, (s1 - s0) / (t1 - t0), (r1 - r0) / (t1 - t0), (o1 - o0) / (t1 - t0))
                for (t0, s0, r0, o0), (t1, s1, r1, o1) in zip(self.samples, self.samples[1:])
                if t1 > t0]


def print_timeline(timeline: CpuTimeline, result: dict) -> None:
    print(f"{'':>14} cores used while the first new clip was analysed and drawn "
          f"(server | Chromium renderer | other Chromium; started {result['started']:.2f}, "
          f"server {result['server']:.2f}, drawn {result['drawn']:.2f} s):")
    for t0, t1, server, renderer, other in timeline.rows():
        if t0 > result["drawn"] + timeline.interval_s:
            break
        print(f"{'':>14} {t0:5.2f}-{t1:5.2f} s  {server:4.2f} | {renderer:4.2f} | {other:4.2f}")


def upload(page, url: str, clip: Path, lang_label: str, min_charts: int, quiet_ms: int,
           server_pid: int, screenshot: Path | None = None,
           timeline: CpuTimeline | None = None, typed: str | None = None) -> dict:
    """Open the page, prepare, upload ``clip``; the timings of one upload. ``typed``: typed into
    "What is said" before the upload (the page then decodes no transcript)."""

    from devtools.dashboard_server import choose_option, cpu_seconds, fit_viewport_to_content

    page.goto(f"{url}/recording", wait_until="domcontentloaded")
    wait_prepared(page, TIMEOUT_MS)
    choose_option(page, "Language", lang_label, timeout_ms=30_000)
    wait_prepared(page, TIMEOUT_MS)
    if typed:
        said = page.locator('[data-testid="stTextInput"]').filter(
            has_text="What is said").locator("input")
        said.fill(typed)
        said.press("Enter")  # commits the text: one rerun, still waiting for a clip
        page.wait_for_timeout(500)
        wait_prepared(page, TIMEOUT_MS)
    page.evaluate(OBSERVER_JS)
    server_cpu, browser_cpu = cpu_seconds(server_pid), chromium_cpu(os.getpid())
    with timeline if timeline is not None else contextlib.nullcontext():
        page.locator('input[type="file"]').set_input_files(str(clip))
        page.wait_for_function(SETTLED_JS, arg=[min_charts, quiet_ms], timeout=TIMEOUT_MS,
                               polling=100)
    lens = page.evaluate("() => ({start: __lens.start, lastPlot: __lens.lastPlot, "
                         "progressGone: __lens.progressGone, progressSeen: __lens.progressSeen, "
                         "firstPlot: __lens.firstPlot, firstSection: __lens.firstSection})")
    server_cpu = cpu_seconds(server_pid) - server_cpu
    browser_cpu = chromium_cpu(os.getpid()) - browser_cpu
    errors = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    if errors.count():
        raise RuntimeError(f"the page shows an error: {errors.first.inner_text()}")
    if lens["firstSection"] is None or page.locator(".st-key-recording_wave").count() != 1:
        raise RuntimeError("no section's chart told apart from the waveform (its element key "
                           "`recording_wave` is how the observer does that)")
    if screenshot is not None:
        size = page.viewport_size
        fit_viewport_to_content(page, settle_ms=1500)
        page.screenshot(path=str(screenshot))
        page.set_viewport_size(size)
    server_s = (lens["progressGone"] - lens["start"]) / 1000
    drawn_s = (lens["lastPlot"] - lens["start"]) / 1000
    result = {"started": (lens["progressSeen"] - lens["start"]) / 1000,
              "first chart": (lens["firstPlot"] - lens["start"]) / 1000,
              "first section": (lens["firstSection"] - lens["start"]) / 1000, "server": server_s,
              "drawn": max(drawn_s, server_s), "after server": max(drawn_s - server_s, 0.0),
              "server cpu": server_cpu, "browser cpu": browser_cpu,
              "charts": page.locator(".js-plotly-plot").count()}
    result["sections"] = result["drawn"] - result["first section"]
    return result


COLUMNS = ("started", "first chart", "first section", "server", "drawn", "after server", "sections",
           "server cpu", "browser cpu")


def main(argv: list[str] | None = None) -> int:
    sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--store", default=str(REPO_ROOT / "data" / "crossmodal_lens.duckdb"))
    parser.add_argument("--lang-label", default="English (eng_Latn)",
                        help="the Language box's option to choose")
    parser.add_argument("--seconds", default="5,20")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-charts", type=int, default=MIN_CHARTS)
    parser.add_argument("--quiet-ms", type=int, default=1500,
                        help="no chart changed for this long: drawing is over")
    parser.add_argument("--width", type=int, default=1400, help="browser viewport width")
    parser.add_argument("--typed", default=None,
                        help="type this into 'What is said' before each upload (no transcript "
                             "is then decoded), e.g. the clip's transcript")
    parser.add_argument("--timeline", action="store_true",
                        help="also print the cores the server and Chromium used, per 0.25 s, "
                             "over each clip length's first new clip")
    parser.add_argument("--screenshots", type=Path, default=None,
                        help="folder for a screenshot of the whole page after each clip length's "
                             "last (cached) run")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from devtools.dashboard_server import CHROMIUM, CHROMIUM_ARGS, serve_dashboard

    if args.screenshots is not None:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    print(f"store {args.store}; Chromium {CHROMIUM} {' '.join(CHROMIUM_ARGS)}; viewport width "
          f"{args.width}; times in s from the upload")
    print(f"{'clip':>14} " + " ".join(f"{c:>12}" for c in COLUMNS))

    def row(label: str, runs: list[dict], note: str = "") -> None:
        medians = {c: statistics.median(r[c] for r in runs) for c in COLUMNS}
        print(f"{label:>14} " + " ".join(f"{medians[c]:>12.2f}" for c in COLUMNS) + f"   {note}")

    with serve_dashboard(args.store, with_process=True) as (url, server), \
            sync_playwright() as playwright, \
            tempfile.TemporaryDirectory(prefix="bench-recording-browser-") as folder:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": args.width, "height": 1000})
            start = time.perf_counter()
            page.goto(f"{url}/recording", wait_until="domcontentloaded")
            wait_prepared(page, TIMEOUT_MS)
            print(f"{'':>14} page prepared (model loaded, stored maps built) "
                  f"{time.perf_counter() - start:.1f} s after the first visit")
            index = 0
            for seconds in (float(s) for s in args.seconds.split(",")):
                wave = speech(seconds)
                fresh, cached, timelines = [], [], []
                for repeat in range(args.repeats):
                    path = Path(folder) / f"clip-{index}.wav"
                    path.write_bytes(distinct_clip(wave, index))
                    index += 1
                    timeline = (CpuTimeline(server.pid, os.getpid())
                                if args.timeline and repeat == 0 else None)
                    fresh.append(upload(page, url, path, args.lang_label, args.min_charts,
                                        args.quiet_ms, server.pid, timeline=timeline,
                                        typed=args.typed))
                    if timeline is not None:
                        timelines.append((timeline, fresh[-1]))
                    shot = (args.screenshots / f"recording-{seconds:.0f}s.png"
                            if args.screenshots is not None and repeat == args.repeats - 1
                            else None)
                    cached.append(upload(page, url, path, args.lang_label, args.min_charts,
                                         args.quiet_ms, server.pid, screenshot=shot,
                                         typed=args.typed))
                row(f"{seconds:.0f}s new clip", fresh,
                    f"(median of {args.repeats}; {fresh[0]['charts']} charts)")
                row(f"{seconds:.0f}s cached", cached, "(same bytes again: the page's caches)")
                for timeline, result in timelines:
                    print_timeline(timeline, result)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
