"""Throughput and peak memory of each model family at its real size, on this machine.

Each model runs in its own subprocess (so peak RSS is that model's alone): it is loaded, then every
component extracts pooled states (all layers) for the same bundled sentences (text) and their
espeak-ng speech, batch by batch, as ``precompute build`` does. Reported per component: items per
second and the load time; per model: peak resident memory (``ru_maxrss``) and, on CUDA, peak
allocated GPU memory.

Real weights where the machine has them (``whisper-base``, ``multilingual-e5-small``); random
weights of the real architecture otherwise (SeamlessM4T v2 large, Qwen2-Audio 7B), which costs the
same compute. A model that cannot fit is reported with the memory it needs (the adapters refuse
before loading).

    .venv/bin/python -m bench.bench_models                 # every model, 16 items per modality
    .venv/bin/python -m bench.bench_models --models whisper-base --n-items 32 --batch-size 8
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

#: name -> how to build it: a registry short name, or (family, factory keyword arguments)
MODELS: dict[str, tuple[str, dict] | str] = {
    "whisper-base": "whisper-base",
    "multilingual-e5-small": "multilingual-e5-small",
    "seamless-m4t-v2-large (random weights)": ("seamless_m4t", {"random": True, "real_size": True}),
    "qwen2-audio-7b (random weights)": ("qwen2_audio", {"random": True, "real_size": True}),
}


def _load(label: str, device: str | None):
    from core.models import registry

    spec = MODELS[label]
    if isinstance(spec, str):
        return registry.load_model(spec, device=device)
    family, kwargs = spec
    kwargs = dict(kwargs)
    if family == "qwen2_audio" and kwargs.pop("real_size", False):
        from core.models.qwen2_audio import real_size_random_config

        kwargs["random_config"] = real_size_random_config()
    return registry.family(family).load_factory()(name=label, device=device, **kwargs)


def _inputs(n_items: int):
    from core import corpus as corpus_module

    bundled = corpus_module.load_bundled(langs=["eng_Latn", "deu_Latn"])
    per_lang = max(1, n_items // 2)
    texts, langs, waves = [], [], []
    for lang in ("eng_Latn", "deu_Latn"):
        sub = bundled.subset(langs=[lang], n_sentences=per_lang)
        texts += sub.texts[lang]
        langs += [lang] * len(sub.texts[lang])
        waves += corpus_module.speech_waveforms(sub, lang, progress=False)
    return texts[:n_items], waves[:n_items], langs[:n_items]


def run_one(label: str, n_items: int, batch_size: int, device: str | None) -> dict:
    """Measure one model in this process."""
    import torch

    from core.models.base import ModelTooLargeError

    texts, waves, langs = _inputs(n_items)
    start = time.perf_counter()
    try:
        adapter = _load(label, device)
    except ModelTooLargeError as exc:
        return {"model": label, "refused": str(exc)}
    load_s = time.perf_counter() - start
    result: dict = {"model": label, "device": adapter.device, "load_s": round(load_s, 1),
                    "n_items": n_items, "batch_size": batch_size, "components": {}}
    seconds_audio = sum(len(w) for w in waves) / 16_000
    for comp in adapter.components():
        inputs = texts if comp.modality == "text" else waves
        extra = {"targets": texts} if adapter.reads_reference_text(comp.name) else {}
        adapter.extract(comp.name, inputs[:1], langs[:1], batch_size=1,
                        **({"targets": texts[:1]} if extra else {}))  # warm-up
        if adapter.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(0, len(inputs), batch_size):
            part = slice(i, i + batch_size)
            adapter.extract(comp.name, inputs[part], langs[part], batch_size=batch_size,
                            **({"targets": texts[part]} if extra else {}))
        if adapter.device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        result["components"][comp.name] = {
            "modality": comp.modality, "layers": comp.n_layers, "seconds": round(elapsed, 2),
            "items_per_s": round(len(inputs) / elapsed, 2),
            **({"audio_s_per_s": round(seconds_audio / elapsed, 2)}
               if comp.modality == "speech" else {})}
    result["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    if adapter.device.startswith("cuda"):
        result["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated labels (default: all): " + ", ".join(MODELS))
    parser.add_argument("--n-items", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", choices=["cpu", "cuda"])
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # child process
    parser.add_argument("--out", type=Path, help="also write the results as JSON lines here")
    args = parser.parse_args(argv)
    labels = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in labels if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    if args.one:
        print(json.dumps(run_one(labels[0], args.n_items, args.batch_size, args.device)))
        return 0
    results = []
    for label in labels:
        command = [sys.executable, "-m", "bench.bench_models", "--one", "--models", label,
                   "--n-items", str(args.n_items), "--batch-size", str(args.batch_size)]
        if args.device:
            command += ["--device", args.device]
        done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        result = json.loads(lines[-1]) if lines else {
            "model": label, "failed": (done.stderr.strip().splitlines() or ["no output"])[-1]}
        results.append(result)
        print(json.dumps(result), flush=True)
    if args.out:
        args.out.write_text("".join(json.dumps(r) + "\n" for r in results), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
