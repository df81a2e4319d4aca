"""Many dashboard sessions at once on one server (issue 10: load), all on loopback.

Starts the real server (``streamlit run dashboard/app.py``) on a store, opens ``--sessions``
browser sessions (headless Chromium, one browser context each, so one Streamlit session each),
spread over the pages, and lets every session change a widget again and again for ``--seconds``:
its sliders (arrow keys) and radio groups (the first unselected option) in turn, or a reload
on a page without either. A response time is the time from the key press or click to the server's
``script_finished`` message for the rerun it caused (read from the session's websocket and parsed
with Streamlit's own protobuf), so it is the server's time to recompute and send the whole page,
not the browser's drawing. Errors: exception elements sent by the server, script runs that did
not finish within ``--timeout``, and sessions that failed to load.

The clients run on the same machine as the server, so on a small machine they compete with it for
the CPU; the report says how many cores there were.

    .venv/bin/python -m bench.bench_load                         # 20 sessions, 120 s, bundled store
    .venv/bin/python -m bench.bench_load --sessions 5 --seconds 30 --store S
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

#: pages the sessions are spread over (URL paths)
PAGES = ("heatmap", "", "layer_curves", "projection", "findings", "compare")
LOAD_TIMEOUT_S = 180


@dataclass
class Session:
    index: int
    path: str
    times_s: list[float] = field(default_factory=list)
    exceptions: int = 0
    timeouts: int = 0
    failed: str | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    action: str = ""


def _watch(session: Session, websocket) -> None:
    """Set ``session.finished`` on every successful script run; count exception elements."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    def on_frame(payload) -> None:
        if isinstance(payload, str):
            return
        message = ForwardMsg()
        try:
            message.ParseFromString(payload)
        except Exception:  # noqa: BLE001 - not a ForwardMsg: ignore the frame
            return
        kind = message.WhichOneof("type")
        if kind == "script_finished" and message.script_finished in (
                ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY):
            session.finished.set()
        elif kind == "delta" and message.delta.WhichOneof("type") == "new_element" and \
                message.delta.new_element.WhichOneof("type") == "exception":
            session.exceptions += 1

    websocket.on("framereceived", on_frame)


async def _act(page, step: int) -> str:
    """Change one widget, taking the page's sliders and radio groups in turn: a slider moves one
    step (towards its other end when it sits at one), a radio group gets its first unselected
    option. A page with neither is reloaded (a new session, the whole page computed again)."""
    sliders = page.locator('[data-testid="stSlider"]:visible input[type="range"]')
    groups = page.locator('[role="radiogroup"]:visible')
    n_sliders, n_groups = await sliders.count(), await groups.count()
    if not n_sliders + n_groups:
        await page.reload(wait_until="domcontentloaded")
        return "reload"
    choice = step % (n_sliders + n_groups)
    if choice < n_sliders:
        slider = sliders.nth(choice)
        value, low, high = [float(await slider.get_attribute(a) or 0)
                            for a in ("value", "min", "max")]
        key = "ArrowLeft" if value >= high or (value > low and (step // 4) % 2) else "ArrowRight"
        await slider.focus()
        await slider.press(key)
        return f"slider {choice} {key}"
    group = groups.nth(choice - n_sliders)
    option = group.locator("label:has(input:not(:checked)):visible").first
    await option.click(timeout=10_000)
    return f"radio group {choice - n_sliders}"


async def run_session(browser, url: str, session: Session, until: float, timeout_s: float) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = await context.new_page()
        page.on("websocket", lambda ws: _watch(session, ws))
        session.finished.clear()
        await page.goto(f"{url}/{session.path}", wait_until="domcontentloaded",
                        timeout=LOAD_TIMEOUT_S * 1000)
        await asyncio.wait_for(session.finished.wait(), LOAD_TIMEOUT_S)
        step = 0
        while time.monotonic() < until:
            session.finished.clear()
            start = time.perf_counter()
            session.action = await _act(page, step)
            try:
                await asyncio.wait_for(session.finished.wait(), timeout_s)
                session.times_s.append(time.perf_counter() - start)
            except TimeoutError:
                session.timeouts += 1
            step += 1
    except Exception as error:  # noqa: BLE001 - reported per session, the others go on
        session.failed = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    finally:
        await context.close()


async def drive(url: str, n_sessions: int, seconds: float, timeout_s: float) -> list[Session]:
    from playwright.async_api import async_playwright

    from dashboard.server import CHROMIUM, CHROMIUM_ARGS

    sessions = [Session(i, PAGES[i % len(PAGES)]) for i in range(n_sessions)]
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            until = time.monotonic() + seconds
            await asyncio.gather(*(run_session(browser, url, s, until, timeout_s)
                                   for s in sessions))
        finally:
            await browser.close()
    return sessions


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--store", default=str(REPO_ROOT / "data" / "crossmodal_lens.duckdb"))
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=120.0,
                        help="how long every session keeps changing widgets")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="a rerun not finished after this many seconds counts as an error")
    args = parser.parse_args(argv)

    from dashboard.server import cpu_seconds, serve_dashboard

    with serve_dashboard(Path(args.store), with_process=True) as (url, server):
        cpu_before, started = cpu_seconds(server.pid), time.perf_counter()
        sessions = asyncio.run(drive(url, args.sessions, args.seconds, args.timeout))
        server_cpu = cpu_seconds(server.pid) - cpu_before
        wall = time.perf_counter() - started
    times = [t for s in sessions for t in s.times_s]
    print(f"{args.sessions} sessions x {args.seconds:.0f} s on {args.store} ({os.cpu_count()} "
          f"cores, clients and server on the same machine); wall {wall:.0f} s; the server used "
          f"{server_cpu:.0f} CPU s ({server_cpu / wall:.2f} cores on average)")
    print(f"{'page':<14} {'sessions':>8} {'reruns':>7} {'p50 s':>7} {'p95 s':>7} {'errors':>7}")
    for path in PAGES:
        mine = [s for s in sessions if s.path == path]
        if not mine:
            continue
        values = [t for s in mine for t in s.times_s]
        errors = sum(s.exceptions + s.timeouts + (s.failed is not None) for s in mine)
        print(f"{'/' + path:<14} {len(mine):>8} {len(values):>7} {_percentile(values, 50):>7.2f} "
              f"{_percentile(values, 95):>7.2f} {errors:>7}")
    errors = sum(s.exceptions + s.timeouts + (s.failed is not None) for s in sessions)
    print(f"{'all':<14} {len(sessions):>8} {len(times):>7} {_percentile(times, 50):>7.2f} "
          f"{_percentile(times, 95):>7.2f} {errors:>7}   (mean {statistics.fmean(times) if times else float('nan'):.2f} s)")
    for s in sessions:
        if s.failed or s.exceptions or s.timeouts:
            print(f"  session {s.index} (/{s.path}, last action {s.action!r}): "
                  f"{s.exceptions} exceptions, {s.timeouts} timeouts"
                  + (f", failed: {s.failed}" if s.failed else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
