"""Replication on a second corpus: whisper-base on real FLORES-200 text beside the bundled store's run.

Builds whisper-base over a few FLORES-200 dev languages (from ``../shared``; never bundled) with the
bundled run's settings (int8 activations, 100 bootstrap resamples, the transcripts skipped) into a
store of its own under ``--work`` (a corpus whose English differs from the bundled one cannot share
its store: items are keyed by language and sentence id), then prints ``precompute report``'s
replication tables for the bundled store with ``--replicate-with`` that store, on the languages both
hold, and the wall time of each step.

    .venv/bin/python -m bench.bench_replication --langs eng_Latn,deu_Latn,spa_Latn --sentences 60

A verdict needs at least 50 sentences (``core.metrics.joint.MIN_SENTENCES``), so fewer decide
nothing. The build resumes from its parts when interrupted (run the same command again).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "data" / "crossmodal_lens.duckdb"
FLORES = ROOT.parent / "shared" / "data" / "flores200" / "dev"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--langs", default="eng_Latn,deu_Latn,spa_Latn",
                        help="FLORES-200 codes the bundled store also holds (default: 3)")
    parser.add_argument("--sentences", type=int, default=60, help="first N FLORES dev sentences")
    parser.add_argument("--store", type=Path, default=STORE, help="the store to replicate")
    parser.add_argument("--flores", type=Path, default=FLORES, help="FLORES-200 dev folder")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_replication"),
                        help="where the FLORES store and its speech cache go")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None)
    parser.add_argument("--workers", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from precompute.cli import main as precompute

    args = parse_args(argv)
    if not args.flores.is_dir():
        print(f"no FLORES-200 dev folder at {args.flores} (../shared is optional): nothing to do")
        return 0
    if not args.store.is_file():
        print(f"no store at {args.store}: build it first")
        return 1
    args.work.mkdir(parents=True, exist_ok=True)
    out = args.work / "flores.duckdb"
    build = ["build", "--corpus", str(args.flores), "--suffix", ".dev", "--langs", args.langs,
             "--n-sentences", str(args.sentences), "--model", "whisper-base", "--out", str(out),
             "--activation-dtype", "int8", "--n-bootstrap", "100", "--no-umap", "--no-transcribe",
             "--voices", "1", "--speech-cache", str(args.work / "speech"),
             "--workers", str(args.workers)]
    if args.device:
        build += ["--device", args.device]
    start = time.perf_counter()
    code = precompute(build)
    built = time.perf_counter() - start
    if code != 0:
        return code
    start = time.perf_counter()
    code = precompute(["report", "--store", str(args.store), "--replicate-with", str(out),
                       "--run", _whisper_run(args.store)])
    reported = time.perf_counter() - start
    print(f"\nFLORES build ({args.langs}, {args.sentences} sentences): {built:.0f} s; "
          f"report with replication tables: {reported:.0f} s")
    return code


def _whisper_run(path: Path) -> str:
    """The store's whisper-base run built from a corpus (not a derived part)."""
    from core.replication import is_derived
    from core.store import Store

    with Store.open(path) as store:
        runs = store.runs()
    own = [r.run_id for r in runs.itertuples() if r.model == "whisper-base"
           and r.status == "complete" and not is_derived(r.config)]
    if not own:
        raise SystemExit(f"{path} has no complete whisper-base run")
    return own[-1]


if __name__ == "__main__":
    sys.exit(main())
