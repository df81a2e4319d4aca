"""Why the Heatmap's differences use difference ± 1.96 SD of per-resample differences, and why two
runs of one store may share resamples: both measured on a store's stored bootstrap values.

1. Percentile intervals of per-resample differences (layer A minus layer B, one run): how often they
   leave out the difference itself, per metric and pairing. A resample repeats sentences, which
   moves SVCCA and CKA by different amounts at different layers, so the per-resample differences
   are shifted from the estimate.
2. Shared resamples across runs: the correlation, per language pair, of two runs' per-resample
   deviations (resample b minus the row's mean over resamples), against the same with one run's
   resamples in shuffled order. Runs that drew the same sentences in resample b correlate above
   that control; the dashboard draws an interval across runs only when their configs say so
   (``dashboard.differences.shared_resamples``).

    .venv/bin/python -m bench.bench_difference_intervals                 # the bundled store
    .venv/bin/python -m bench.bench_difference_intervals --store S --run-a R1 --run-b R2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from core.store import Store  # noqa: E402
from core.store.vectors import bootstrap_matrix  # noqa: E402

METRICS = ("svcca", "linear_cka", "cka_debiased", "mutual_knn")


def _layer_rows(store: Store, run_id: str, metric: str, pairing: str, layer: int):
    rows = store.metrics(run_id, metric=metric, pairing=pairing, layer=layer, with_resamples=True)
    return rows.drop_duplicates(["lang_a", "lang_b"]).sort_values(["lang_a", "lang_b"])


def percentile_misses(store: Store, run_id: str) -> None:
    """Per metric and pairing: the last layer minus the middle one."""
    print(f"1. percentile intervals of per-resample differences, run {run_id}: share of cells "
          "whose percentile interval leaves out the difference itself")
    print(f"{'metric':<13} {'pairing':<14} {'layers':<8} {'cells':>5} {'left out':>9} "
          f"{'median shift':>13} {'median SD':>10}")
    for metric in METRICS:
        for pairing in ("text-text", "speech-speech", "text-speech"):
            rows = store.metrics(run_id, metric=metric, pairing=pairing)
            if rows.empty:
                continue
            top = int(rows["layer_a"].max())
            middle = top // 2
            a = _layer_rows(store, run_id, metric, pairing, top)
            b = _layer_rows(store, run_id, metric, pairing, middle)
            keys = a[["lang_a", "lang_b"]].merge(b[["lang_a", "lang_b"]])
            a = a.merge(keys)
            b = b.merge(keys)
            boot_a, boot_b = bootstrap_matrix(a), bootstrap_matrix(b)
            if boot_a is None or boot_b is None:
                continue
            difference = a["value"].to_numpy(float) - b["value"].to_numpy(float)
            per_resample = boot_a - boot_b
            low = np.nanpercentile(per_resample, 2.5, axis=1)
            high = np.nanpercentile(per_resample, 97.5, axis=1)
            out = float(np.mean((difference < low) | (difference > high)))
            shift = float(np.median(np.nanmean(per_resample, axis=1) - difference))
            sd = float(np.median(np.nanstd(per_resample, axis=1, ddof=1)))
            print(f"{metric:<13} {pairing:<14} {f'{top}-{middle}':<8} {len(a):>5} {out:>9.0%} "
                  f"{shift:>+13.4f} {sd:>10.4f}")


def cross_run_correlation(store: Store, run_a: str, run_b: str, seed: int = 0) -> None:
    """Text-text at each run's last layer, per language pair."""
    print(f"\n2. per-resample deviations of {run_a} vs {run_b} (text-text, last layers): median "
          "correlation over language pairs")
    rng = np.random.default_rng(seed)
    for metric in METRICS:
        rows = [store.metrics(r, metric=metric, pairing="text-text") for r in (run_a, run_b)]
        if any(r.empty for r in rows):
            continue
        a = _layer_rows(store, run_a, metric, "text-text", int(rows[0]["layer_a"].max()))
        b = _layer_rows(store, run_b, metric, "text-text", int(rows[1]["layer_a"].max()))
        keys = a[["lang_a", "lang_b"]].merge(b[["lang_a", "lang_b"]])
        boot_a, boot_b = bootstrap_matrix(a.merge(keys)), bootstrap_matrix(b.merge(keys))
        if boot_a is None or boot_b is None or boot_a.shape != boot_b.shape:
            continue
        dev_a = boot_a - np.nanmean(boot_a, axis=1, keepdims=True)
        dev_b = boot_b - np.nanmean(boot_b, axis=1, keepdims=True)
        same = [np.corrcoef(x, y)[0, 1] for x, y in zip(dev_a, dev_b, strict=True)]
        shuffled = [np.corrcoef(x, y[rng.permutation(y.size)])[0, 1]
                    for x, y in zip(dev_a, dev_b, strict=True)]
        print(f"{metric:<13} resample b with resample b: {np.nanmedian(same):+.2f}   "
              f"with a shuffled resample order: {np.nanmedian(shuffled):+.2f}   "
              f"({len(same)} language pairs)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--store", default=str(REPO_ROOT / "data" / "crossmodal_lens.duckdb"))
    parser.add_argument("--run-a", default=None, help="default: the store's first run")
    parser.add_argument("--run-b", default=None, help="default: the store's second run")
    args = parser.parse_args(argv)
    with Store.open(args.store) as store:
        runs = list(store.runs()["run_id"])
        run_a = args.run_a or runs[0]
        percentile_misses(store, run_a)
        run_b = args.run_b or (runs[1] if len(runs) > 1 else None)
        if run_b is not None:
            cross_run_correlation(store, run_a, run_b)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
