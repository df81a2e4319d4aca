"""Server time of the Projection page's widget changes (issue 22: under 300 ms on the bundled store).

Starts the real server (``streamlit run dashboard/app.py``) on a store and opens one session on
/projection in Streamlit's websocket protocol (``bench.bench_load``'s way: what the browser sends,
nothing drawn), then does, in turn, what a user does there: a box selection on the first map (the
chart's selection event, with the selected points' item ids as the browser sends them), every
layer of the slider and back, each colouring, "these sentences in the other languages", another
map, and clearing the selection (a page without these buttons, e.g. an older version, skips
them). A time is from sending the change to the server's
``script_finished`` for the rerun it caused: the server's time to recompute and send the page.
The first time a layer, colouring or selection is seen its maps are computed (``cold``); later
visits reuse the page's caches (``warm``).

    .venv/bin/python -m bench.bench_projection                  # bundled store, 3 rounds
    .venv/bin/python -m bench.bench_projection --store S --rounds 5 --select-langs 3
    .venv/bin/python -m bench.bench_projection --think 2   # a pause before the first selection
    .venv/bin/python -m bench.bench_projection --displacement   # how far points move per layer

``--displacement`` starts no server: for every run and component of the store it prints the mean
distance an item moves from one layer's stored map to the next, as stored and after the page's
Procrustes alignment (``core.map_alignment.align_chain``), next to the maps' mean span.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.bench_load import ProtocolClient, Session  # noqa: E402 - after the path is set

TIMEOUT_S = 180


class Page(ProtocolClient):
    """One session on one page, in Streamlit's protocol (``bench_load.ProtocolClient``, whose
    ``wait_finished`` it reuses): the widgets the last run drew, the values set so far, and a
    rerun that returns when the script has finished."""

    def __init__(self, websocket, path: str):
        super().__init__(websocket, Session(0, path), TIMEOUT_S)
        self.path = path
        self.values: dict[str, tuple[str, object]] = {}      # id -> (proto field, value)
        self.charts: list[str] = []                          # plotly chart ids, in page order
        self.exceptions: list[str] = []

    async def rerun(self, trigger: str | None = None) -> float:
        """Send the values set so far (and a button's trigger); the seconds to script_finished."""
        from streamlit.proto.BackMsg_pb2 import BackMsg

        message = BackMsg()
        message.rerun_script.page_name = self.path
        for widget_id, (field, value) in self.values.items():
            state = message.rerun_script.widget_states.widgets.add()
            state.id = widget_id
            if field == "string_array_value":
                state.string_array_value.data.append(str(value))
            else:
                setattr(state, field, value)
        if trigger is not None:
            state = message.rerun_script.widget_states.widgets.add()
            state.id, state.trigger_value = trigger, True
        self.widgets, self.charts = {}, []
        start = time.perf_counter()
        await self.ws.send(message.SerializeToString())
        await self.wait_finished(time.monotonic() + TIMEOUT_S)
        return time.perf_counter() - start

    def _note(self, element) -> None:
        kind = element.WhichOneof("type")
        if kind == "exception":
            self.exceptions.append(element.exception.message)
        elif kind == "radio":
            self.widgets[element.radio.id] = ("radio", list(element.radio.options))
        elif kind == "slider":
            self.widgets[element.slider.id] = ("select_slider", list(element.slider.options))
        elif kind == "selectbox":
            self.widgets[element.selectbox.id] = ("selectbox", list(element.selectbox.options))
        elif kind == "button":
            self.widgets[element.button.id] = ("button", [element.button.label])
        elif kind == "plotly_chart":
            self.charts.append(element.plotly_chart.id)

    def find(self, kind: str, id_part: str = "", label: str = "") -> str:
        for widget_id, (found, options) in self.widgets.items():
            if found == kind and id_part in widget_id and (not label or label in options):
                return widget_id
        raise LookupError(f"no {kind} widget {id_part or label!r} on the page: {self.widgets}")


def selection_event(item_ids: list[int]) -> str:
    """A Plotly selection event as the browser sends it: points with their customdata."""
    points = [{"customdata": int(i), "curve_number": 0, "point_index": n, "point_number": n}
              for n, i in enumerate(item_ids)]
    return json.dumps({"selection": {"points": points, "point_indices": list(range(len(points))),
                                     "box": [{"x": [0, 1], "y": [0, 1]}], "lasso": []}})


async def drive(url: str, item_ids: list[int], rounds: int, think: float = 0.0
                ) -> tuple[dict, list[str]]:
    """The sequence of changes, ``rounds`` times; ``think``: seconds between opening the page and
    the first selection (a user looking at the map; the page prepares the small multiples then)."""
    import websockets

    times: dict[str, list[float]] = defaultdict(list)
    seen: set[tuple] = set()

    async with websockets.connect(url.replace("http", "ws", 1) + "/_stcore/stream",
                                  subprotocols=["streamlit"], max_size=None) as websocket:
        page = Page(websocket, "projection")
        times["open the page"].append(await page.rerun())
        await asyncio.sleep(think)

        def record(action: str, key: tuple, seconds: float) -> None:
            times[f"{action} ({'warm' if key in seen else 'cold'})"].append(seconds)
            seen.add(key)

        for round_ in range(rounds):
            chart = page.charts[0]
            page.values[chart] = ("string_value", selection_event(item_ids[round_::rounds]))
            record("box selection", ("select", round_), await page.rerun())
            slider = page.find("select_slider", "projection_layer")
            options = page.widgets[slider][1]
            colour = page.find("radio", "projection_colour")
            for option in [*reversed(options[:-1]), *options[1:]]:
                page.values[slider] = ("string_array_value", option)
                record("layer", ("layer", option, page.values.get(colour)), await page.rerun())
            for option in page.widgets[colour][1][1:] + page.widgets[colour][1][:1]:
                page.values[colour] = ("string_value", option)
                record("colour", ("colour", option), await page.rerun())
            for action, label, key in (
                    ("other languages", "These sentences in the other languages", ("other", round_)),
                    ("clear selection", "Clear selection", ("clear",))):
                try:
                    button = page.find("button", label=label)
                except LookupError:  # a page without selection (an older version): skipped
                    continue
                record(action, key, await page.rerun(trigger=button))
        chooser = page.find("selectbox", "projection_component")
        for option in page.widgets[chooser][1][1:]:
            page.values[chooser] = ("string_value", option)
            record("another map", ("map", option), await page.rerun())
    return times, page.exceptions


def selected_items(store: Path, n_langs: int) -> list[int]:
    """The text items of the first ``n_langs`` languages of the store's first complete speech
    run's languages, sorted (a cluster in Whisper's text decoder maps)."""
    from core.store import Store

    with Store.open(store, read_only=True) as opened:
        items = opened.items("text")
    langs = sorted(items["lang"].unique())[:n_langs]
    return sorted(int(i) for i in items[items["lang"].isin(langs)]["item_id"])


def displacement(store: Path) -> None:
    """Mean per-layer travel of the items, stored maps vs aligned, per run and component."""
    import numpy as np

    from core.map_alignment import align_chain, mean_displacement
    from core.store import Store

    print(f"{'run':<36} {'component':<16} {'span':>6} {'stored':>7} {'aligned':>8}  per layer "
          "(stored -> aligned)")
    with Store.open(store, read_only=True) as opened:
        for run_id in opened.runs()["run_id"]:
            rows = opened.projections(run_id)
            for component, own in rows.groupby("component", sort=True):
                maps = [(layer["item_id"].to_numpy(), layer[["x", "y"]].to_numpy(dtype=float))
                        for _, layer in own.sort_values("layer").groupby("layer")]
                aligned = align_chain(maps)
                stored = [mean_displacement(a[0], a[1], b[0], b[1])
                          for a, b in zip(maps, maps[1:], strict=False)]
                moved = [mean_displacement(maps[i][0], aligned[i], maps[i + 1][0], aligned[i + 1])
                         for i in range(len(maps) - 1)]
                span = float(np.mean([np.ptp(xy, axis=0).max() for _, xy in maps]))
                pairs = " ".join(f"{a:.1f}->{b:.1f}" for a, b in zip(stored, moved, strict=True))
                print(f"{run_id:<36} {component:<16} {span:>6.1f} {np.mean(stored):>7.2f} "
                      f"{np.mean(moved):>8.2f}  {pairs}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--store", default=str(REPO_ROOT / "data" / "crossmodal_lens.duckdb"))
    parser.add_argument("--rounds", type=int, default=3,
                        help="how many times the whole sequence runs (a new selection each)")
    parser.add_argument("--select-langs", type=int, default=2,
                        help="a selection holds the text items of this many languages")
    parser.add_argument("--think", type=float, default=0.0,
                        help="seconds between opening the page and the first selection (default "
                             "0: select at once, the worst case)")
    parser.add_argument("--displacement", action="store_true",
                        help="print how far items move between layers, stored vs aligned maps, "
                             "and exit (no server)")
    args = parser.parse_args(argv)
    if args.displacement:
        displacement(Path(args.store))
        return 0

    from devtools.dashboard_server import serve_dashboard

    ids = selected_items(Path(args.store), args.select_langs)
    with serve_dashboard(Path(args.store)) as url:
        started = time.perf_counter()
        times, exceptions = asyncio.run(drive(url, ids, args.rounds, args.think))
        wall = time.perf_counter() - started
    print(f"/projection on {args.store}: {args.rounds} rounds, selections of "
          f"{len(ids) // args.rounds} text items, {os.cpu_count()} cores (client and server on "
          f"the same machine), {args.think:g} s before the first selection, wall {wall:.0f} s")
    print(f"{'action':<28} {'n':>4} {'median s':>9} {'max s':>7}")
    for action, values in times.items():
        print(f"{action:<28} {len(values):>4} {statistics.median(values):>9.3f} "
              f"{max(values):>7.3f}")
    warm = [t for a, v in times.items() if "(warm)" in a for t in v]
    if warm:
        print(f"{'all warm changes':<28} {len(warm):>4} {statistics.median(warm):>9.3f} "
              f"{max(warm):>7.3f}")
    for message in exceptions:
        print("EXCEPTION:", message.splitlines()[0][:200])
    return 1 if exceptions else 0


if __name__ == "__main__":
    sys.exit(main())
