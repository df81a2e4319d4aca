"""Layer x layer matrices: what computing them costs, what they add to a store, and the page's
server time per widget change.

``compute``: one language's matrices of a run with itself (text-speech, and the component against
itself with a second language), from the store's activations, timed per matrix and per cell, and
the projection to a whole ``precompute matrices`` over every language.

``page``: the Layer x layer page under Streamlit's AppTest on a store holding matrices: each widget
change is one rerun of the page script (the server's time to recompute the page: queries, figure,
table; not the browser's drawing or the websocket). Every change is timed on first use (cold
query cache) and again (warm); the target is under 300 ms each.

    .venv/bin/python -m bench.bench_matrices compute --store data/crossmodal_lens.duckdb
    .venv/bin/python -m bench.bench_matrices page --store /tmp/store_with_matrices.duckdb
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

TARGET_MS = 300


def bench_compute(store_path: Path, run_id: str | None, lang: str, other: str,
                  n_permutations: int, threads: int) -> None:
    from core.metrics.layer_matrix import BETWEEN_SPACES, MatrixRequest, matrices_cells
    from core.store import Store

    with Store.open(store_path) as store:
        runs = store.runs()
        run_id = run_id or runs.run_id.iloc[0]
        config = store.run(run_id)["config"]
        components = store.components(run_id)
        sides, keys = {}, {}
        for component, n_layers in zip(components.component, components.n_layers):
            for which in (lang, other):
                keys[(component, which)] = []
                for layer in range(int(n_layers)):
                    _, vectors = store.activations(run_id, component, layer, [which])
                    sides[(component, which, layer)] = vectors
                    keys[(component, which)].append((component, which, layer))
    names = list(components.component)
    requests = []
    for pair in config.get("modality_pairs") or []:
        requests.append(MatrixRequest(tuple(keys[(pair[0], lang)]), tuple(keys[(pair[1], lang)])))
    for component in names:
        requests.append(MatrixRequest(tuple(keys[(component, lang)]),
                                      tuple(keys[(component, other)])))
    n_cells = sum(len(r.keys_a) * len(r.keys_b) for r in requests)
    from precompute.matrices import torch_threads

    started = time.perf_counter()
    with torch_threads(threads):  # as `precompute matrices --threads` (default 1)
        matrices_cells(sides, requests, BETWEEN_SPACES, n_permutations=n_permutations,
                       n_bootstrap=int(config.get("n_bootstrap", 200)),
                       seed=int(config.get("seed", 0)), device="cpu")
    wall = time.perf_counter() - started
    n_sides = len({key for r in requests for key in (*r.keys_a, *r.keys_b)})
    n_langs = len(config.get("run_langs") or config.get("corpus_langs") or [lang])
    print(f"{run_id}: {len(requests)} matrices, {n_cells} cells, {n_sides} layer sides, "
          f"{n_permutations} shuffles, {config.get('n_bootstrap')} resamples: {wall:.1f} s "
          f"({wall / n_cells * 1000:.0f} ms per cell, {wall / n_sides:.2f} s per side) on "
          f"{threads} thread(s) of {os.cpu_count()} cores")
    # the cost is mostly per side (its SVD and bootstrap directions); one language adds half of
    # these sides (the other language's are the pivot's, prepared once for every language)
    print(f"projection for {n_langs} languages, if the cost is per side: about "
          f"{wall / 2 * n_langs / 60:.1f} min")


def bench_page(store_path: Path, repeats: int) -> None:
    from streamlit.testing.v1 import AppTest

    os.environ["CROSSMODAL_LENS_STORE"] = str(store_path)
    app = REPO_ROOT / "dashboard" / "app.py"
    at = AppTest.from_file(str(app), default_timeout=120)
    at.run()
    started = time.perf_counter()
    at.switch_page("views/layer_matrix.py").run()
    print(f"switch to the page (store already open, its queries cold): {(time.perf_counter() - started) * 1000:.0f} ms")
    if at.exception:
        raise SystemExit(f"page failed: {[e.value for e in at.exception]}")

    def timed(label: str, change) -> float:
        began = time.perf_counter()
        change()
        at.run()
        elapsed = (time.perf_counter() - began) * 1000
        if at.exception:
            raise SystemExit(f"{label} failed: {[e.value for e in at.exception]}")
        return elapsed

    changes = []
    n_run_pairs = len(at.sidebar.selectbox(key="lm_a_runs").options)
    changes.append(("language -> one language", "lm_a_langs", 1, "selectbox"))
    changes.append(("language -> mean", "lm_a_langs", 0, "selectbox"))
    changes.append(("metric -> linear CKA", "lm_metric", 1, "selectbox"))
    changes.append(("best match per column", "lm_along", 1, "radio"))
    changes.append(("metric -> SVCCA", "lm_metric", 0, "selectbox"))
    if n_run_pairs > 1:
        changes.append(("runs -> two runs", "lm_a_runs", 1, "selectbox"))
        changes.append(("runs -> one run", "lm_a_runs", 0, "selectbox"))
    changes.append(("mode -> difference", "lm_mode", 1, "radio"))
    changes.append(("B language -> another", "lm_b_langs", 2, "selectbox"))
    changes.append(("B components -> another", "lm_b_components", 1, "selectbox"))
    changes.append(("mode -> matrix", "lm_mode", 0, "radio"))
    from core.store import Store

    with Store.open(store_path) as store:
        sets = store.layer_matrix_sets()

    def options(key: str) -> list:
        """The real values a selectbox offers now (AppTest lists them formatted)."""
        prefix = key[:5]  # lm_a_ / lm_b_
        if key == "lm_metric":
            return ["svcca", "linear_cka", "cka_debiased", "mutual_knn"]
        runs = at.sidebar.selectbox(key=f"{prefix}runs").value
        chosen = sets[(sets.run_a == runs[0]) & (sets.run_b == runs[1])]
        if key.endswith("runs"):
            return list(dict.fromkeys(zip(sets.run_a, sets.run_b)))
        if key.endswith("components"):
            return list(dict.fromkeys(zip(chosen.component_a, chosen.component_b, chosen.pairing)))
        combo = at.sidebar.selectbox(key=f"{prefix}components").value
        chosen = chosen[(chosen.component_a == combo[0]) & (chosen.component_b == combo[1])
                        & (chosen.pairing == combo[2])]
        return sorted(zip(chosen.lang_a, chosen.lang_b), key=lambda p: (p[0] != "mean", p))

    results: dict[str, list[float]] = {}
    for _ in range(repeats):
        for label, key, index, kind in changes:
            if kind == "selectbox":
                widget = at.sidebar.selectbox(key=key)
                values = options(key)
            else:
                widget = at.sidebar.radio(key=key)
                values = list(widget.options)
            if index >= len(values):
                continue
            results.setdefault(label, []).append(
                timed(label, lambda w=widget, v=values[index]: w.set_value(v)))
    print(f"{'widget change':<28} {'first (cold)':>12} {'median warm':>12} {'max warm':>9}")
    worst = 0.0
    for label, times in results.items():
        warm = times[1:] or times
        worst = max(worst, max(times))
        print(f"{label:<28} {times[0]:>10.0f}ms {statistics.median(warm):>10.0f}ms "
              f"{max(warm):>7.0f}ms")
    print(f"slowest change: {worst:.0f} ms (target < {TARGET_MS} ms); {os.cpu_count()} cores, "
          "AppTest in-process (server-side script time)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    compute = sub.add_parser("compute")
    compute.add_argument("--store", type=Path, default=REPO_ROOT / "data" / "crossmodal_lens.duckdb")
    compute.add_argument("--run")
    compute.add_argument("--lang", default="deu_Latn")
    compute.add_argument("--other", default="eng_Latn")
    compute.add_argument("--n-permutations", type=int, default=100)
    compute.add_argument("--threads", type=int, default=1)
    page = sub.add_parser("page")
    page.add_argument("--store", type=Path, required=True)
    page.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.what == "compute":
        bench_compute(args.store, args.run, args.lang, args.other, args.n_permutations,
                      args.threads)
    else:
        bench_page(args.store, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
