"""How much faster the batched grid is than looping the reference functions pair by pair.

Both compute, for every pair and metric: the value, a shuffled-pairs baseline, a bootstrap CI, a
length-only baseline and a length-residualised value, from the same permutation and resample indices;
the benchmark asserts they agree to 1e-6 on every pair it runs the reference for. The reference loop is
slow, so it runs on a subset of pairs and its time is extrapolated per pair (said so in the table).

    .venv/bin/python -m bench.bench_metrics            # bundled store (if built) + synthetic grid
    .venv/bin/python -m bench.bench_metrics --quick    # small sizes, a minute or so

Runs (a) on the bundled store's activations when data/crossmodal_lens.duckdb exists and (b) on a
synthetic 30-language x 25-layer grid (text-speech same language, text-text and speech-speech against
a pivot language, at each layer).
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from core.metrics import grid, nulls
from core.metrics import similarity as sim
from core.store import Store

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "data" / "crossmodal_lens.duckdb"
COMPARED = ["value", "baseline_mean", "baseline_std", "ci_low", "ci_high", "length_baseline",
            "value_residualised"]


@dataclass
class Workload:
    name: str
    sides: dict[str, np.ndarray]
    lengths: dict[str, np.ndarray]
    pairs: list[tuple[str, str]]


@dataclass
class Timing:
    workload: str
    n_pairs: int
    n_sentences: int
    dims: str
    grid_s: float
    reference_pairs: int
    reference_s: float

    @property
    def reference_per_pair_s(self) -> float:
        return self.reference_s / self.reference_pairs

    @property
    def speedup(self) -> float:
        return self.reference_per_pair_s * self.n_pairs / self.grid_s


def synthetic_workload(n_langs: int, n_layers: int, n_sentences: int, dim: int, seed: int = 0) -> Workload:
    """Activations with a shared sentence signal growing over layers, plus language/modality parts."""
    rng = np.random.default_rng(seed)
    content = rng.standard_normal((n_sentences, 32))
    tokens = rng.integers(8, 60, n_sentences).astype(float)
    sides, lengths = {}, {}
    langs = [f"lang{i:02d}" for i in range(n_langs)]
    for layer in range(n_layers):
        shared = (layer + 1) / n_layers
        mixing = rng.standard_normal((32, dim)) / np.sqrt(32)
        for lang in langs:
            for modality in ("text", "speech"):
                own = rng.standard_normal((n_sentences, dim))
                key = f"{modality}|{layer}|{lang}"
                sides[key] = shared * content @ mixing + (1 - shared) * own
                lengths[key] = tokens if modality == "text" else tokens * rng.uniform(0.25, 0.4, n_sentences)
    pairs = []
    for layer in range(n_layers):
        pivot = langs[0]
        for lang in langs:
            pairs.append((f"text|{layer}|{lang}", f"speech|{layer}|{lang}"))
            if lang != pivot:
                pairs.append((f"text|{layer}|{pivot}", f"text|{layer}|{lang}"))
                pairs.append((f"speech|{layer}|{pivot}", f"speech|{layer}|{lang}"))
    return Workload(f"synthetic {n_langs} langs x {n_layers} layers", sides, lengths, pairs)


def store_workload(path: Path, max_langs: int | None, match: str | None = None) -> Workload | None:
    """The bundled store's first complete run at equal layers: same-language text-speech pairs and
    every text-text and speech-speech language pair (precompute also pairs text and speech across
    languages); with ``match``, only pairs with a side key ("modality|component|layer|lang")
    containing it."""
    if not path.exists():
        print(f"[store] skipped: {path.relative_to(ROOT)} does not exist "
              f"(build it with `python -m precompute build`)")
        return None
    with Store.open(path) as store:
        runs = store.runs()
        complete = runs[runs["status"] == "complete"] if "status" in runs else runs
        if complete.empty:
            print(f"[store] skipped: {path.name} has no complete run")
            return None
        run_id = complete["run_id"].iloc[0]
        components = store.components(run_id)
        sides, lengths, layers_of = {}, {}, {}
        for component in components.itertuples():
            for layer in range(int(component.n_layers)):
                items, vectors = store.activations(run_id, component.component, layer)
                for lang, rows in items.groupby("lang"):
                    rows = rows.sort_values("sentence_id")
                    key = f"{component.modality}|{component.component}|{layer}|{lang}"
                    sides[key] = vectors[rows.index].astype(np.float64)
                    length = rows["duration_s"] if component.modality == "speech" else rows["n_tokens"]
                    lengths[key] = length.to_numpy(dtype=np.float64)
            layers_of[component.component] = (component.modality, int(component.n_layers))
    langs = sorted({key.split("|")[3] for key in sides})[:max_langs]
    text = [c for c, (m, _) in layers_of.items() if m == "text"]
    speech = [c for c, (m, _) in layers_of.items() if m == "speech"]
    pairs = []
    for t in text:
        for s in speech:
            for layer in range(min(layers_of[t][1], layers_of[s][1])):
                for lang in langs:
                    pairs.append((f"text|{t}|{layer}|{lang}", f"speech|{s}|{layer}|{lang}"))
    for modality, names in (("text", text), ("speech", speech)):
        for name in names:
            for layer in range(layers_of[name][1]):
                for a, b in combinations(langs, 2):
                    pairs.append((f"{modality}|{name}|{layer}|{a}", f"{modality}|{name}|{layer}|{b}"))
    pairs = [(a, b) for a, b in pairs if len(sides[a]) == len(sides[b])
             and (match is None or match in a or match in b)]
    return Workload(f"store {path.name} ({run_id})", sides, lengths, pairs)


def reference_rows(workload: Workload, pairs: list, specs: list, n_permutations: int,
                   n_bootstrap: int, seed: int) -> pd.DataFrame:
    """The grid's rows for ``pairs``, recomputed with the reference functions one pair at a time."""
    rows = []
    for key_a, key_b in pairs:
        x, y = workload.sides[key_a], workload.sides[key_b]
        n = len(x)
        permutations = nulls.permutation_indices(n, n_permutations, seed)
        resamples = nulls.bootstrap_indices(n, n_bootstrap, seed)
        for spec in specs:
            params = grid.resolve_params(spec, n, x.shape[1], y.shape[1])
            metric = sim.metric_function(spec.name, **params)
            row = {"key_a": key_a, "key_b": key_b, "metric": spec.name}
            try:
                row["value"] = metric(x, y)
            except ValueError:  # e.g. paired_cosine across different dims: the grid gives NaN
                rows.append({**row, **{column: np.nan for column in COMPARED},
                             "resamples": np.full(len(resamples), np.nan)})
                continue
            null = nulls.shuffled_baseline(metric, x, y, permutations=permutations)
            ci = nulls.bootstrap_ci(metric, x, y, resamples=resamples)
            row.update(baseline_mean=null.mean, baseline_std=null.std, ci_low=ci.low, ci_high=ci.high,
                       resamples=ci.values,
                       length_baseline=nulls.length_baseline(metric, workload.lengths[key_a],
                                                             workload.lengths[key_b]),
                       value_residualised=nulls.length_residualised(
                           metric, x, y, workload.lengths[key_a], workload.lengths[key_b]))
            rows.append(row)
    return pd.DataFrame(rows)


def check_resamples_equal(grid_rows: pd.DataFrame, reference: pd.DataFrame) -> float:
    """Largest difference between the metric's values on each bootstrap resample; raises, naming the
    pair, metric and resample, where one exceeds 1e-6 or is NaN in one implementation only.

    The interval is value +/- z SD of these values, so a single resample that one side drops (NaN)
    moves ci_low and ci_high while every other number agrees; comparing the resamples says which.
    """
    worst = 0.0
    for got_row, expected_row in zip(grid_rows.itertuples(), reference.itertuples()):
        got = np.asarray(got_row.resamples, dtype=np.float64)
        expected = np.asarray(expected_row.resamples, dtype=np.float64)
        where = f"{expected_row.metric} of ({expected_row.key_a}, {expected_row.key_b})"
        one_nan = np.flatnonzero(np.isnan(got) != np.isnan(expected))
        if len(one_nan):
            side = "reference" if np.isnan(expected[one_nan[0]]) else "grid"
            raise AssertionError(f"{where}: bootstrap resample(s) {one_nan.tolist()} NaN in the "
                                 f"{side} only")
        finite = ~np.isnan(got)
        difference = np.abs(got[finite] - expected[finite])
        if difference.size and difference.max() > 1e-6:
            index = np.flatnonzero(finite)[difference.argmax()]
            raise AssertionError(f"{where}: bootstrap resample {index} differs by {difference.max():.3g}")
        worst = max(worst, float(difference.max(initial=0.0)))
    return worst


def check_equal(grid_rows: pd.DataFrame, reference: pd.DataFrame) -> float:
    """Largest absolute difference; raises if any exceeds 1e-6 or NaNs disagree, in the summary
    columns or in the values on each bootstrap resample."""
    merged = grid_rows.reset_index(drop=True)
    worst = check_resamples_equal(merged, reference)
    for column in COMPARED:
        got, expected = merged[column].to_numpy(float), reference[column].to_numpy(float)
        if not np.array_equal(np.isnan(got), np.isnan(expected)):
            raise AssertionError(f"{column}: NaN in one implementation only")
        finite = ~np.isnan(got)
        difference = float(np.max(np.abs(got[finite] - expected[finite]), initial=0.0))
        if difference > 1e-6:
            raise AssertionError(f"{column}: grid and reference differ by {difference:.3g}")
        worst = max(worst, difference)
    return worst


def run(workload: Workload, specs: list, n_reference: int, n_permutations: int, n_bootstrap: int,
        seed: int, device: str | None) -> Timing:
    n = len(next(iter(workload.sides.values())))
    dims = sorted({v.shape[1] for v in workload.sides.values()})
    print(f"[{workload.name}] {len(workload.pairs)} pairs, {len(workload.sides)} sides, n={n}, "
          f"dims={dims}, {len(specs)} metrics, {n_permutations} permutations, {n_bootstrap} resamples")
    step = max(1, len(workload.pairs) // n_reference)
    sample = workload.pairs[::step][:n_reference]
    before, after = sample[: len(sample) // 2], sample[len(sample) // 2:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Half the reference pairs run before the grid and half after, so a change in machine load
        # during the run weighs on both sides of the ratio.
        start = time.perf_counter()
        reference = [reference_rows(workload, before, specs, n_permutations, n_bootstrap, seed)]
        reference_s = time.perf_counter() - start
        start = time.perf_counter()
        table = grid.compute_grid(workload.sides, workload.pairs, specs, lengths=workload.lengths,
                                  n_permutations=n_permutations, n_bootstrap=n_bootstrap, seed=seed,
                                  device=device)
        grid_s = time.perf_counter() - start
        start = time.perf_counter()
        reference.append(reference_rows(workload, after, specs, n_permutations, n_bootstrap, seed))
        reference_s += time.perf_counter() - start
    reference = pd.concat(reference, ignore_index=True)
    chosen = pd.MultiIndex.from_frame(reference[["key_a", "key_b", "metric"]])
    grid_rows = table.set_index(["key_a", "key_b", "metric"]).loc[chosen].reset_index()
    worst = check_equal(grid_rows, reference)
    print(f"  grid {grid_s:.1f} s; reference {reference_s:.1f} s for {len(sample)} pairs; "
          f"max |difference| {worst:.2g} over the summary columns and every bootstrap resample "
          f"(<= 1e-6: ok)")
    return Timing(workload.name, len(workload.pairs), n, "/".join(map(str, dims)), grid_s, len(sample),
                  reference_s)


def machine() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    return (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), "
            f"torch {torch.__version__}, numpy {np.__version__}, {device}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small synthetic grid, few pairs")
    parser.add_argument("--langs", type=int, help="synthetic languages (default 30; quick 6)")
    parser.add_argument("--layers", type=int, help="synthetic layers (default 25; quick 4)")
    parser.add_argument("--sentences", type=int, help="synthetic n_sentences (default 100; quick 60)")
    parser.add_argument("--dim", type=int, help="synthetic dimension (default 512; quick 128)")
    parser.add_argument("--reference-pairs", type=int, help="pairs run through the reference loop "
                                                            "(default 6; quick 3)")
    parser.add_argument("--permutations", type=int, default=20)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--store", type=Path, default=STORE)
    parser.add_argument("--store-langs", type=int, default=None, help="limit the store's languages")
    parser.add_argument("--store-match", default=None,
                        help='only store pairs with a side key containing this, e.g. "speech|speech_encoder|0|"')
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    quick = args.quick
    langs = args.langs or (6 if quick else 30)
    layers = args.layers or (4 if quick else 25)
    sentences = args.sentences or (60 if quick else 100)
    dim = args.dim or (128 if quick else 512)
    n_reference = args.reference_pairs or (3 if quick else 6)
    specs = list(grid.DEFAULT_METRICS)
    print(f"machine: {machine()}")
    timings = []
    stored = store_workload(args.store, args.store_langs or (3 if quick else None), args.store_match)
    if stored is not None and stored.pairs:
        timings.append(run(stored, specs, n_reference, args.permutations, args.bootstrap, args.seed,
                           args.device))
    synthetic = synthetic_workload(langs, layers, sentences, dim, args.seed)
    timings.append(run(synthetic, specs, n_reference, args.permutations, args.bootstrap, args.seed,
                       args.device))
    print()
    print(f"{'workload':44} {'pairs':>6} {'n':>5} {'dims':>8} {'grid s':>8} "
          f"{'ref s/pair':>10} {'ref s (extrap.)':>15} {'speed-up':>9}")
    for t in timings:
        print(f"{t.workload:44} {t.n_pairs:>6} {t.n_sentences:>5} {t.dims:>8} {t.grid_s:>8.1f} "
              f"{t.reference_per_pair_s:>10.2f} {t.reference_per_pair_s * t.n_pairs:>15.0f} "
              f"{t.speedup:>8.1f}x")
    print("\nref s (extrap.) = reference seconds per pair, measured on the pairs listed above, times the "
          "number of pairs. Speed-up = that / grid s.")


if __name__ == "__main__":
    main()
