"""Many dashboard sessions at once on one server (issue 10: load), all on loopback.

Starts the real server (``streamlit run dashboard/app.py``) on a store and opens ``--sessions``
sessions, spread over the pages; every session changes a widget again and again for ``--seconds``:
the page's radio groups and select-sliders in turn (a page without either is rerun). A response
time is the time from the change to the server's ``script_finished`` message for the rerun it
caused, so it is the server's time to recompute and send the whole page, not a browser's drawing.
Errors: exception elements sent by the server, runs not finished within ``--timeout``, and
sessions that failed.

Two kinds of client:

- ``--client protocol`` (default): each session speaks Streamlit's websocket protocol (protobuf
  ``BackMsg`` / ``ForwardMsg``, Streamlit's own classes) as the browser does, sending the widget
  values it changed and reading every message, but drawing nothing. On a small machine this is
  the server's cost: twenty headless browsers on the same two cores would measure the browsers.
- ``--client browser``: headless Chromium, one browser context (one Streamlit session) each,
  widgets changed by key presses and clicks (sliders, radios; a page without either is reloaded).

Clients and server share the machine; the report says how many cores, and how many CPU seconds
the server used.

    .venv/bin/python -m bench.bench_load                         # 20 sessions, 120 s, bundled store
    .venv/bin/python -m bench.bench_load --client browser --sessions 5 --seconds 30 --store S
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


class ProtocolClient:
    """One session spoken to in Streamlit's own websocket protocol (protobuf BackMsg/ForwardMsg),
    as the browser does, but without drawing anything: what the server costs, without 20
    browsers competing with it for the same cores."""

    def __init__(self, websocket, session: Session, timeout_s: float):
        self.ws, self.session, self.timeout_s = websocket, session, timeout_s
        self.widgets: dict[str, tuple[str, list[str]]] = {}  # id -> (kind, options)
        self.values: dict[str, str] = {}                     # id -> option we set

    async def rerun(self) -> None:
        """Ask for a script run with the widget values set so far; return at its end."""
        from streamlit.proto.BackMsg_pb2 import BackMsg

        message = BackMsg()
        message.rerun_script.page_name = self.session.path
        for widget_id, value in self.values.items():
            state = message.rerun_script.widget_states.widgets.add()
            state.id = widget_id
            if self.widgets[widget_id][0] == "radio":
                state.string_value = value
            else:
                state.string_array_value.data.append(value)
        await self.ws.send(message.SerializeToString())
        await self.wait_finished(time.monotonic() + self.timeout_s)

    async def wait_finished(self, deadline: float) -> None:
        """Read messages until a successful ``script_finished``; TimeoutError at ``deadline``
        (one deadline for the whole run, however many messages it sends)."""
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        while True:
            data = await asyncio.wait_for(self.ws.recv(), max(0.0, deadline - time.monotonic()))
            if isinstance(data, str):
                continue
            forward = ForwardMsg()
            forward.ParseFromString(data)
            kind = forward.WhichOneof("type")
            if kind == "delta" and forward.delta.WhichOneof("type") == "new_element":
                self._note(forward.delta.new_element)
            elif kind == "script_finished":
                if forward.script_finished in (ForwardMsg.FINISHED_SUCCESSFULLY,
                                               ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY):
                    return

    def _note(self, element) -> None:
        kind = element.WhichOneof("type")
        if kind == "exception":
            self.session.exceptions += 1
        elif kind == "radio" and len(element.radio.options) > 1:
            self.widgets[element.radio.id] = ("radio", list(element.radio.options))
        elif kind == "slider" and len(element.slider.options) > 1:  # select_slider
            self.widgets[element.slider.id] = ("select_slider", list(element.slider.options))

    def change(self, step: int) -> str:
        """Set the next widget (in turn) to another option; "" when the page has none."""
        if not self.widgets:
            return ""
        widget_id = sorted(self.widgets)[step % len(self.widgets)]
        kind, options = self.widgets[widget_id]
        current = self.values.get(widget_id, options[0] if kind == "radio" else options[-1])
        index = options.index(current) if current in options else 0
        self.values[widget_id] = options[(index + 1) % len(options)] if kind == "radio" else \
            options[index - 1 if index > 0 else 1]
        return f"{kind} {step % len(self.widgets)}"


async def run_protocol_session(url: str, session: Session, until: float, timeout_s: float
                               ) -> None:
    import websockets

    try:
        async with websockets.connect(url.replace("http", "ws", 1) + "/_stcore/stream",
                                      subprotocols=["streamlit"], max_size=None) as websocket:
            client = ProtocolClient(websocket, session, timeout_s)
            await asyncio.wait_for(client.rerun(), LOAD_TIMEOUT_S)  # the page's first run
            step = 0
            while time.monotonic() < until:
                session.action = client.change(step) or "rerun"
                start = time.perf_counter()
                try:
                    await client.rerun()
                    session.times_s.append(time.perf_counter() - start)
                except TimeoutError:
                    session.timeouts += 1
                    # the late run's messages must not end the next measurement: wait it out
                    await client.wait_finished(time.monotonic() + LOAD_TIMEOUT_S)
                step += 1
    except Exception as error:  # noqa: BLE001 - reported per session, the others go on
        session.failed = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"


async def drive_protocol(url: str, n_sessions: int, seconds: float, timeout_s: float,
                         pages: tuple[str, ...] = PAGES) -> list[Session]:
    sessions = [Session(i, pages[i % len(pages)]) for i in range(n_sessions)]
    until = time.monotonic() + seconds
    await asyncio.gather(*(run_protocol_session(url, s, until, timeout_s) for s in sessions))
    return sessions


async def drive(url: str, n_sessions: int, seconds: float, timeout_s: float,
                pages: tuple[str, ...] = PAGES) -> list[Session]:
    from playwright.async_api import async_playwright

    from devtools.dashboard_server import CHROMIUM, CHROMIUM_ARGS

    sessions = [Session(i, pages[i % len(pages)]) for i in range(n_sessions)]
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
    parser.add_argument("--client", choices=("protocol", "browser"), default="protocol",
                        help="protocol: Streamlit's websocket protocol, nothing drawn (the "
                             "server's cost); browser: headless Chromium per session")
    parser.add_argument("--pages", default=",".join(PAGES),
                        help="URL paths the sessions are spread over (overview is the empty one)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="a rerun not finished after this many seconds counts as an error")
    args = parser.parse_args(argv)

    from devtools.dashboard_server import cpu_seconds, serve_dashboard

    with serve_dashboard(Path(args.store), with_process=True) as (url, server):
        cpu_before, started = cpu_seconds(server.pid), time.perf_counter()
        driver = drive_protocol if args.client == "protocol" else drive
        pages = tuple(args.pages.split(","))
        sessions = asyncio.run(driver(url, args.sessions, args.seconds, args.timeout, pages))
        server_cpu = cpu_seconds(server.pid) - cpu_before
        wall = time.perf_counter() - started
    times = [t for s in sessions for t in s.times_s]
    print(f"{args.sessions} {args.client} sessions x {args.seconds:.0f} s on {args.store} "
          f"({os.cpu_count()} "
          f"cores, clients and server on the same machine); wall {wall:.0f} s; the server used "
          f"{server_cpu:.0f} CPU s ({server_cpu / wall:.2f} cores on average)")
    print(f"{'page':<14} {'sessions':>8} {'reruns':>7} {'p50 s':>7} {'p95 s':>7} {'errors':>7}")
    for path in pages:
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
