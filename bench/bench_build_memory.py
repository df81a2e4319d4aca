"""Peak memory of `precompute build` at two corpus sizes (issue 10: memory bounded).

Writes a FLEURS-shaped corpus of recorded clips (noise, 16 kHz, ``--seconds`` long each) for 2
languages at two sizes, builds each with tiny random Whisper in its own process, and reports the
process's peak RSS next to what holding every waveform in memory would take. Extraction streams
length-bucketed batches, so the peak should not grow with the corpus (the pooled states of one
language and the metric sides of one layer do grow, but they are tiny next to the audio).

    .venv/bin/python bench/bench_build_memory.py [--sizes 8,64] [--seconds 20]
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


def write_corpus(root: Path, n: int, seconds: float) -> float:
    """A FLEURS tree of ``n`` clips per locale; returns the corpus's audio size in MB (float32)."""
    import soundfile

    rng = np.random.default_rng(0)
    samples = int(seconds * 16_000)
    for locale in LOCALES:
        folder = root / locale / "audio" / "test"
        folder.mkdir(parents=True)
        rows = []
        for i in range(n):
            length = samples - int(rng.integers(0, samples // 4))
            soundfile.write(folder / f"{i}.wav", 0.1 * rng.standard_normal(length), 16_000,
                            subtype="PCM_16")
            rows.append(f"{i}\t{i}.wav\tSentence number {i}.\tsentence number {i}\tx\t{length}\tF")
        (root / locale / "test.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return len(LOCALES) * n * samples * 4 / 1e6


def one(n: int, seconds: float) -> dict:
    """In this process: write the corpus, build it, report peak RSS."""
    sys.path.insert(0, str(REPO_ROOT))
    from precompute.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        audio_mb = write_corpus(root / "fleurs", n, seconds)
        started = time.perf_counter()
        code = main(["build", "--corpus", str(root / "fleurs"), "--corpus-format", "fleurs",
                     "--model", "whisper-tiny-random", "--out", str(root / "s.duckdb"),
                     "--device", "cpu", "--batch-size", "4", "--no-umap", "--no-transcribe",
                     "--metrics", "svcca", "--n-permutations", "0", "--n-bootstrap", "0"])
        wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"build failed with exit status {code}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"clips": len(LOCALES) * n, "clip_seconds": seconds, "audio_mb_if_held": audio_mb,
            "peak_rss_mb": peak_mb, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8,64", help="clips per language, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="longest clip, seconds")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.seconds)))
        return
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        done = subprocess.run([sys.executable, __file__, "--one", str(n), "--seconds",
                               str(args.seconds)], capture_output=True, text=True, check=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{'clips':>6} {'audio MB if held':>17} {'peak RSS MB':>12} {'wall s':>7}")
    for r in results:
        print(f"{r['clips']:>6} {r['audio_mb_if_held']:>17.1f} {r['peak_rss_mb']:>12.1f} "
              f"{r['wall_s']:>7.1f}")
    growth = results[-1]["peak_rss_mb"] - results[0]["peak_rss_mb"]
    held = results[-1]["audio_mb_if_held"] - results[0]["audio_mb_if_held"]
    print(f"peak RSS grew {growth:+.1f} MB while the corpus audio grew {held:+.1f} MB")


if __name__ == "__main__":
    main()
