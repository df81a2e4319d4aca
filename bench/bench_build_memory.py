"""Peak memory of `precompute build` at two corpus sizes (issue 10: memory bounded; issue 23: the
same for FLEURS as the hub stores it and for Parquet corpora).

Writes a corpus of recorded clips (noise, 16 kHz, ``--seconds`` long each) for 2 languages at two
sizes in the ``--layout`` asked for (FLEURS extracted, FLEURS hub snapshot with tar.gz audio, or a
Parquet file with audio bytes in row groups of 32), builds each with tiny random Whisper in its own
process, and reports the process's peak RSS next to what holding every waveform in memory would
take. Extraction streams length-bucketed batches and clips are read one at a time out of their
archive or table, so the peak should not grow with the corpus (the pooled states of one language
and the metric sides of one layer do grow, but they are tiny next to the audio).

    .venv/bin/python bench/bench_build_memory.py [--sizes 8,64] [--seconds 20] [--layout parquet]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCALES = ("en_us", "de_de")


def write_corpus(root: Path, n: int, seconds: float, layout: str = "fleurs") -> tuple[float, list]:
    """``n`` clips per locale in ``layout``; returns the audio size in MB (float32) and the corpus
    arguments of ``precompute build``."""
    import io
    import tarfile

    import soundfile

    rng = np.random.default_rng(0)
    samples = int(seconds * 16_000)
    table_rows = []
    for locale in LOCALES:
        rows, clips = [], {}
        for i in range(n):
            length = samples - int(rng.integers(0, samples // 4))
            buffer = io.BytesIO()
            soundfile.write(buffer, 0.1 * rng.standard_normal(length), 16_000, format="WAV",
                            subtype="PCM_16")
            clips[f"{i}.wav"] = buffer.getvalue()
            rows.append(f"{i}\t{i}.wav\tSentence number {i}.\tsentence number {i}\tx\t{length}\tF")
            table_rows.append({"id": i, "lang": locale, "text": f"Sentence number {i}.",
                               "audio": {"bytes": clips[f"{i}.wav"], "path": f"{i}.wav"}})
        folder = root / ("data" if layout == "hub" else "") / locale
        if layout == "fleurs":
            (folder / "audio" / "test").mkdir(parents=True)
            for name, data in clips.items():
                (folder / "audio" / "test" / name).write_bytes(data)
        elif layout == "hub":
            (folder / "audio").mkdir(parents=True)
            with tarfile.open(folder / "audio" / "test.tar.gz", "w:gz") as tar:
                for name, data in clips.items():
                    info = tarfile.TarInfo(f"test/{name}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        if layout in ("fleurs", "hub"):
            (folder / "test.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
        del clips
    audio_mb = len(LOCALES) * n * samples * 4 / 1e6
    if layout == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        root.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(table_rows), root / "corpus.parquet", row_group_size=32)
        return audio_mb, ["--corpus", str(root / "corpus.parquet"), "--corpus-format", "table"]
    return audio_mb, ["--corpus", str(root), "--corpus-format", "fleurs"]


def one(corpus_args: list[str], out: Path) -> dict:
    """In this process: build the corpus the parent wrote, report peak RSS (the writing, which may
    hold a table's audio, happens in the parent so it does not count)."""
    sys.path.insert(0, str(REPO_ROOT))
    from precompute.cli import main

    started = time.perf_counter()
    code = main(["build", *corpus_args, "--model", "whisper-tiny-random", "--out", str(out),
                 "--device", "cpu", "--batch-size", "4", "--no-umap", "--no-transcribe",
                 "--metrics", "svcca", "--n-permutations", "0", "--n-bootstrap", "0"])
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"build failed with exit status {code}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_rss_mb": peak_mb, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8,64", help="clips per language, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="longest clip, seconds")
    parser.add_argument("--layout", choices=("fleurs", "hub", "parquet"), default="fleurs",
                        help="FLEURS extracted, FLEURS as the hub stores it, or Parquet")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        corpus_args, out = json.loads(args.one)
        print(json.dumps(one(corpus_args, Path(out))))
        return
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            audio_mb, corpus_args = write_corpus(root / "corpus", n, args.seconds, args.layout)
            done = subprocess.run([sys.executable, __file__, "--one",
                                   json.dumps([corpus_args, str(root / "s.duckdb")])],
                                  capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        results.append({"clips": len(LOCALES) * n, "audio_mb_if_held": audio_mb, **result})
    print(f"layout {args.layout}, clips up to {args.seconds:g} s")
    print(f"{'clips':>6} {'audio MB if held':>17} {'peak RSS MB':>12} {'wall s':>7}")
    for r in results:
        print(f"{r['clips']:>6} {r['audio_mb_if_held']:>17.1f} {r['peak_rss_mb']:>12.1f} "
              f"{r['wall_s']:>7.1f}")
    growth = results[-1]["peak_rss_mb"] - results[0]["peak_rss_mb"]
    held = results[-1]["audio_mb_if_held"] - results[0]["audio_mb_if_held"]
    print(f"peak RSS grew {growth:+.1f} MB while the corpus audio grew {held:+.1f} MB")


if __name__ == "__main__":
    main()
