"""Build the same small corpus at two commits and compare the stores row for row.

Why: a restructuring ("behaviour unchanged") is only believable when the same command on the same
corpus gives the same rows and values before and after. This script checks out each commit into a
temporary git worktree (sharing this checkout's ``.venv``), runs one ``precompute build`` command in
each, and compares every table of the two stores: same columns, same number of rows, and equal
values row for row after sorting on all columns that are not floats. Floats must agree to
``--atol`` (default 0: bit-identical); provenance that cannot match (creation times, git commit,
wall-clock durations) is left out and listed.

    .venv/bin/python scripts/compare_builds.py 90f460a HEAD
    .venv/bin/python scripts/compare_builds.py before.duckdb HEAD   # a store built earlier
    .venv/bin/python scripts/compare_builds.py 90f460a HEAD --model whisper-tiny-random \\
        --model e5-tiny-random --langs eng_Latn,deu_Latn,swh_Latn --n-sentences 12

Exit status 0 when every table agrees, 1 otherwise (each difference is printed).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = ("whisper-tiny-random", "e5-tiny-random", "seamless-m4t-v2-tiny-random",
                  "qwen2-audio-tiny-random", "sonar-tiny-random", "salmonn-tiny-random")
# Columns that record when or where a build ran, not what it computed.
PROVENANCE_COLUMNS = {"runs": ("created_at", "finished_at", "versions", "config")}
VOLATILE_CONFIG_KEYS = ("out", "speech_cache", "command_line", "git_commit", "git_dirty", "elapsed_s",
                        "timings")
TEMP_PATH = re.compile(r"/[^\s\"()]*compare-builds-[^\s\"()]*|/tmp/[^\s\"()]+")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", help="A commit, or a store built earlier by this script.")
    parser.add_argument("after", help="A commit, or a store built earlier by this script.")
    parser.add_argument("--model", action="append", dest="models")
    parser.add_argument("--langs", default="eng_Latn,deu_Latn,swh_Latn")
    parser.add_argument("--n-sentences", type=int, default=12)
    parser.add_argument("--atol", type=float, default=0.0)
    parser.add_argument("--keep", type=Path, help="Folder to keep the two stores in.")
    args = parser.parse_args(argv)
    models = tuple(args.models or DEFAULT_MODELS)
    with tempfile.TemporaryDirectory(prefix="compare-builds-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        stores = [Path(rev) if rev.endswith(".duckdb") else
                  build_at(rev, folder / f"{tag}.duckdb", folder, models, args)
                  for tag, rev in (("before", args.before), ("after", args.after))]
        problems = compare_stores(*stores, atol=args.atol)
    for line in problems:
        print(line)
    print("same rows and values" if not problems else f"{len(problems)} difference(s)")
    return 1 if problems else 0


def build_at(rev: str, out: Path, folder: Path, models: tuple[str, ...], args) -> Path:
    """Check ``rev`` out into a worktree beside ``out`` and build the small corpus there."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", rev], check=True,
                            capture_output=True, text=True).stdout.strip()
    tree = folder / f"tree-{commit[:10]}"
    if not tree.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit],
                       check=True, capture_output=True)
    try:
        if out.exists():
            out.unlink()
        command = [str(REPO / ".venv" / "bin" / "python"), "-m", "precompute", "build",
                   "--langs", args.langs, "--n-sentences", str(args.n_sentences),
                   "--device", "cpu", "--out", str(out), "--speech-cache", str(folder / "speech")]
        for model in models:
            command += ["--model", model]
        print(f"[{rev} = {commit[:10]}] {' '.join(command[1:])}", flush=True)
        subprocess.run(command, cwd=tree, check=True)
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                       capture_output=True)
    return out


def compare_stores(before: Path, after: Path, *, atol: float = 0.0) -> list[str]:
    """Every difference between two stores' tables, as lines; empty when they agree."""
    problems: list[str] = []
    with duckdb.connect(str(before), read_only=True) as a, duckdb.connect(str(after), read_only=True) as b:
        tables_a, tables_b = table_names(a), table_names(b)
        if tables_a != tables_b:
            problems.append(f"tables differ: {sorted(tables_a ^ tables_b)}")
        for table in sorted(tables_a & tables_b):
            frame_a, frame_b = read_table(a, table), read_table(b, table)
            problems += [f"{table}: {p}" for p in compare_frames(frame_a, frame_b, atol=atol)]
            print(f"{table}: {len(frame_a)} rows compared", flush=True)
    return problems


def table_names(connection: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in connection.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}


def read_table(connection: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    """A table as a frame, provenance columns dropped or reduced to what a build computes."""
    frame = connection.execute(f'SELECT * FROM "{table}"').df()
    if table == "runs" and "config" in frame:
        frame["config"] = frame["config"].map(stable_config)
    drop = [c for c in PROVENANCE_COLUMNS.get(table, ()) if c in frame and c != "config"]
    if table == "schema_migrations" or table.endswith("migrations"):
        drop += [c for c in frame.columns if "applied" in c]
    return frame.drop(columns=drop)


def stable_config(text: str) -> str:
    config = json.loads(text) if isinstance(text, str) else dict(text)
    for key in VOLATILE_CONFIG_KEYS:
        config.pop(key, None)
    # where each build ran (its worktree, its speech cache) is not what it computed
    return TEMP_PATH.sub("<path>", json.dumps(config, sort_keys=True, default=str))


def compare_frames(a: pd.DataFrame, b: pd.DataFrame, *, atol: float) -> list[str]:
    if list(a.columns) != list(b.columns):
        return [f"columns differ: {list(a.columns)} vs {list(b.columns)}"]
    if len(a) != len(b):
        return [f"{len(a)} vs {len(b)} rows"]
    keys = [c for c in a.columns if not pd.api.types.is_float_dtype(a[c])
            and a[c].map(lambda v: isinstance(v, (str, int, bool, np.integer)) or v is None).all()]
    a = a.sort_values(keys, kind="stable").reset_index(drop=True) if keys else a
    b = b.sort_values(keys, kind="stable").reset_index(drop=True) if keys else b
    problems = []
    for column in a.columns:
        left, right = a[column], b[column]
        if pd.api.types.is_float_dtype(left):
            same = np.isclose(left.to_numpy(float), right.to_numpy(float), rtol=0, atol=atol,
                              equal_nan=True)
        else:
            same = np.array([cell_equal(x, y) for x, y in zip(left, right)])
        if not same.all():
            first = int(np.flatnonzero(~same)[0])
            problems.append(f"column {column}: {int((~same).sum())} rows differ "
                            f"(first: {left.iloc[first]!r} vs {right.iloc[first]!r})")
    return problems


def cell_equal(x, y) -> bool:
    if isinstance(x, (bytes, bytearray, memoryview)) or isinstance(y, (bytes, bytearray, memoryview)):
        return bytes(x) == bytes(y)
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
    missing_x, missing_y = is_missing(x), is_missing(y)
    if missing_x or missing_y:
        return missing_x and missing_y
    return bool(x == y)


def is_missing(value) -> bool:
    """None, NaN, NaT or pd.NA (a scalar); lists and dicts are never missing."""
    return bool(np.ndim(value) == 0 and not isinstance(value, (dict, str, bytes)) and pd.isna(value))


if __name__ == "__main__":
    sys.exit(main())
