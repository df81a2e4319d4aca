"""Extraction of every layer (pooled) against a bare forward pass of the same model on the same
batches (issue 10: extraction throughput).

For each component, the same items go through the model in the same length-bucketed batches as
``precompute build`` makes them (``precompute.extract.length_batches``), two ways:

- **bare**: the model's own forward on the batch (input preparation included), final output only:
  no hooks, no per-layer states kept, nothing pooled or copied back;
- **extract**: ``adapter.extract`` as the build calls it: every layer recorded by hooks, pooled
  over real positions and copied to a numpy array.

Reported per mode: utterances per second, seconds per batch, the time spent preparing inputs
(waveform checks, resampling, log-mel features; tokenisation for text: the "data loading" of a
build whose audio is already decoded) against the model's own time, and the padding fraction (the
share of computed positions that hold no input: for Whisper's encoder the 30-s window, for a text
stack the padding to each batch's longest item). Peak memory: each mode once more in a fresh
subprocess, the growth of resident memory above the loaded model during the pass (sampled every
2 ms from /proc/self/statm) and, on CUDA, ``torch.cuda.max_memory_allocated`` above the loaded model.
The two modes alternate over ``--repeats`` rounds (medians reported), so changing machine load
weighs on both.

Inputs: sentences of the bundled corpus and their espeak-ng speech (synthesised once, before any
timing), ``--sentences`` per language.

    .venv/bin/python -m bench.bench_extraction                            # whisper-base, CPU
    .venv/bin/python -m bench.bench_extraction --model multilingual-e5-small --components text_encoder
    .venv/bin/python -m bench.bench_extraction --device cuda --sentences 64 --batch-size 32
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

MODES = ("bare", "extract")


# ------------------------------------------------------------------------------ inputs

def make_inputs(langs: list[str], n_sentences: int) -> dict:
    """Texts, langs and espeak-ng waveforms of the first ``n_sentences`` of each language."""
    from core import corpus as corpus_module

    bundled = corpus_module.load_bundled(langs=langs, n_sentences=n_sentences)
    texts, item_langs, waves = [], [], []
    for lang in langs:
        for position in range(len(bundled)):
            texts.append(bundled.texts[lang][position])
            item_langs.append(lang)
            waves.append(corpus_module.speech_waveform(bundled, lang, position))
    return {"texts": texts, "langs": item_langs, "waves": waves}


def batches_of(inputs: dict, modality: str, batch_size: int) -> list[np.ndarray]:
    """Row indices of each length-bucketed batch, as the build makes them."""
    import pandas as pd

    from precompute.extract import length_batches

    lengths = (np.array([len(t) for t in inputs["texts"]]) if modality == "text"
               else np.array([len(w) for w in inputs["waves"]]))
    items = pd.DataFrame({"row": np.arange(len(lengths))})
    return [batch["row"].to_numpy() for batch in length_batches(items, lengths, batch_size)]


# ------------------------------------------------------------------------------ the two modes

class Runner:
    """``prepare(rows)`` (inputs ready for the model), ``bare(prepared)`` and ``extract(rows)`` of
    one component, plus ``positions(rows, extraction)``: (computed, real) positions."""

    def __init__(self, adapter, component: str, inputs: dict, batch_size: int):
        self.adapter, self.component, self.inputs = adapter, component, inputs
        self.comp = adapter.component(component)
        self.batch_size = batch_size
        self.family = type(adapter).__name__

    def items(self, rows: np.ndarray) -> list:
        source = self.inputs["texts"] if self.comp.modality == "text" else self.inputs["waves"]
        return [source[i] for i in rows]

    def langs(self, rows: np.ndarray) -> list[str]:
        return [self.inputs["langs"][i] for i in rows]

    def prepare(self, rows: np.ndarray):
        a = self.adapter
        if self.family == "WhisperAdapter":
            if self.comp.modality == "speech":
                return a._features(a._prepare_waveforms(self.items(rows), 16_000))
            ids, real, _sentence = a._text_ids(self.items(rows), self.langs(rows))
            return ids.to(a.device), real.to(a.device)
        if self.family == "E5Adapter":
            return a._batch(self.items(rows))
        raise SystemExit(f"no bare forward written for {self.family}; add one to bench_extraction")

    def bare(self, prepared) -> None:
        import torch

        a = self.adapter
        with torch.inference_mode():
            if self.family == "WhisperAdapter" and self.comp.modality == "speech":
                a.model.model.encoder(prepared)
            elif self.family == "WhisperAdapter":
                ids, real = prepared
                context = a.silence_context().expand(ids.shape[0], -1, -1)
                a.model.model.decoder(input_ids=ids, attention_mask=real.long(),
                                      encoder_hidden_states=context, use_cache=False)
            else:
                ids = prepared.ids.to(a.device)
                a.model(input_ids=ids, attention_mask=prepared.attention.to(a.device).long(),
                        token_type_ids=torch.zeros_like(ids))

    def extract(self, rows: np.ndarray):
        return self.adapter.extract(self.component, self.items(rows), self.langs(rows),
                                    batch_size=self.batch_size)

    def positions(self, rows: np.ndarray, extraction) -> tuple[int, int]:
        """(computed, real) positions of a batch: real ones hold input (audio frames; prompt,
        special and sentence tokens), the rest is padding."""
        if self.family == "WhisperAdapter" and self.comp.modality == "speech":
            real = np.asarray(extraction.n_positions)[:, -1]
            return len(rows) * self.adapter._n_frames, int(real.sum())  # always the 30 s window
        if self.family == "WhisperAdapter":
            mask = self.prepare(rows)[1]
        else:
            mask = self.prepare(rows).attention
        return int(mask.numel()), int(mask.sum())


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def time_pass(runner: Runner, batches: list[np.ndarray], mode: str, device: str) -> dict:
    """One pass over every batch: total, input-preparation and model seconds."""
    total = prep = 0.0
    for rows in batches:
        _sync(device)
        start = time.perf_counter()
        if mode == "bare":
            prepared = runner.prepare(rows)
            _sync(device)
            prep += time.perf_counter() - start
            runner.bare(prepared)
        else:
            runner.extract(rows)
        _sync(device)
        total += time.perf_counter() - start
    if mode == "extract":  # its own input preparation, timed apart on the same batches
        for rows in batches:
            start = time.perf_counter()
            runner.prepare(rows)
            _sync(device)
            prep += time.perf_counter() - start
    return {"total_s": total, "prep_s": prep, "model_s": total - prep}


# ------------------------------------------------------------------------------ memory

def _rss_bytes() -> int:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_growth(work: Callable[[], None], device: str) -> dict:
    """Peak resident-memory growth (and CUDA allocation growth) while ``work`` runs."""
    import torch

    baseline, peak, stop = _rss_bytes(), [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.002)

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        cuda_base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    work()
    _sync(device)
    stop.set()
    thread.join()
    peak[0] = max(peak[0], _rss_bytes())
    out = {"rss_growth_mb": (peak[0] - baseline) / 2**20, "rss_baseline_mb": baseline / 2**20}
    if cuda:
        out["cuda_growth_mb"] = (torch.cuda.max_memory_allocated() - cuda_base) / 2**20
    return out


# ------------------------------------------------------------------------------ driver

def _setup(args):
    import torch

    from core.models.registry import load_model

    torch.manual_seed(0)
    adapter = load_model(args.model, device=args.device, progress=False)
    inputs = make_inputs(args.langs.split(","), args.sentences)
    return adapter, inputs


def child(args) -> int:
    """One mode's memory, in a fresh process (``--memory-mode``)."""
    adapter, inputs = _setup(args)
    out = {}
    for component in args.components.split(","):
        runner = Runner(adapter, component, inputs, args.batch_size)
        batches = batches_of(inputs, runner.comp.modality, args.batch_size)
        time_pass(runner, batches[:1], args.memory_mode, args.device)  # warm-up: lazy buffers
        out[component] = peak_growth(lambda r=runner, b=batches: time_pass(
            r, b, args.memory_mode, args.device), args.device)
    print("RESULT " + json.dumps(out))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", default="whisper-base")
    parser.add_argument("--components", default=None,
                        help="comma-separated (default: every component of the model)")
    parser.add_argument("--langs", default="eng_Latn,deu_Latn")
    parser.add_argument("--sentences", type=int, default=16, help="per language")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--memory-mode", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_mode:
        return child(args)

    import torch

    adapter, inputs = _setup(args)
    if args.components is None:
        args.components = ",".join(c.name for c in adapter.components())
    print(f"{args.model} on {args.device}, torch threads {torch.get_num_threads()}; "
          f"{len(inputs['texts'])} items ({args.sentences} sentences x {args.langs}), "
          f"batch {args.batch_size}, medians of {args.repeats} alternating rounds")
    results = {}
    for component in args.components.split(","):
        runner = Runner(adapter, component, inputs, args.batch_size)
        batches = batches_of(inputs, runner.comp.modality, args.batch_size)
        for mode in MODES:  # warm-up
            time_pass(runner, batches[:1], mode, args.device)
        rounds: dict[str, list[dict]] = {m: [] for m in MODES}
        for _ in range(args.repeats):
            for mode in MODES:
                rounds[mode].append(time_pass(runner, batches, mode, args.device))
        computed = real = 0
        for rows in batches:
            c, r = runner.positions(rows, runner.extract(rows))
            computed, real = computed + c, real + r
        results[component] = {
            mode: {key: statistics.median(r[key] for r in rounds[mode])
                   for key in ("total_s", "prep_s", "model_s")} for mode in MODES}
        results[component]["padding"] = 1 - real / computed
        results[component]["n_items"] = len(inputs["texts"])
        results[component]["n_batches"] = len(batches)
    del adapter
    for mode in MODES:
        command = [sys.executable, "-m", "bench.bench_extraction", "--model", args.model,
                   "--components", args.components, "--langs", args.langs, "--sentences",
                   str(args.sentences), "--batch-size", str(args.batch_size), "--device",
                   args.device, "--memory-mode", mode]
        done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
        if done.returncode or not line:
            print(done.stderr[-2000:], file=sys.stderr)
            return 1
        for component, memory in json.loads(line[0][7:]).items():
            results[component][mode]["memory"] = memory

    header = (f"{'component':<16} {'mode':<8} {'utt/s':>7} {'s/batch':>8} {'prep s':>7} "
              f"{'model s':>8} {'x bare':>7} {'peak RSS +MB':>13}")
    cuda = args.device.startswith("cuda")
    print(header + (f" {'CUDA +MB':>9}" if cuda else ""))
    for component, r in results.items():
        for mode in MODES:
            m = r[mode]
            line = (f"{component:<16} {mode:<8} {r['n_items'] / m['total_s']:>7.2f} "
                    f"{m['total_s'] / r['n_batches']:>8.3f} {m['prep_s']:>7.2f} "
                    f"{m['model_s']:>8.2f} {m['total_s'] / r['bare']['total_s']:>7.3f} "
                    f"{m['memory']['rss_growth_mb']:>13.1f}")
            if cuda:
                line += f" {m['memory']['cuda_growth_mb']:>9.1f}"
            print(line)
        print(f"{'':<16} padding: {100 * r['padding']:.1f}% of computed positions hold no input; "
              f"model-only ratio extract/bare {r['extract']['model_s'] / r['bare']['model_s']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
