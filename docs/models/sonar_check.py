"""Compare this project's SONAR port with Meta's official runtime, sentence by sentence.

Two environments, three steps (see docs/models/sonar.md, "Checking the port"):

1. In an environment with ``sonar-space`` (fairseq2) installed, from anywhere::

       python sonar_check.py official --texts texts.tsv --audio audio.tsv --out official/

2. In this project's environment, from the repository root::

       .venv/bin/python docs/models/sonar_check.py port --model /path/to/sonar_folder \\
           --texts texts.tsv --audio audio.tsv --out port/

   (add ``--trust-checkpoint`` only if the port refuses a file for holding objects other than
   tensors and plain values, and only for files you downloaded yourself: see its help)

3. In either::

       python sonar_check.py compare official/ port/ [--min-cosine 0.999]

``texts.tsv``: one ``<FLORES-200 code>\\t<sentence>`` per line. ``audio.tsv``: one
``<FLORES-200 code>\\t<path to a 16 kHz mono wav>`` per line (optional). Each step writes
``text.npy`` (sentences x 1024) and ``speech.npy`` (clips x 1024) in input order; ``compare``
prints the cosine of every row pair and exits with status 1 if any is below ``--min-cosine``.
The official step only imports ``sonar``/``fairseq2``/``torch``/``numpy``; the port step only
this project.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _read_tsv(path: str | None) -> list[tuple[str, str]]:
    if not path:
        return []
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        lang, sep, value = line.partition("\t")
        if not sep:
            raise SystemExit(f"{path}:{n}: expected '<lang>\\t<value>'")
        rows.append((lang.strip(), value.strip()))
    return rows


def _official(args) -> None:
    import torch
    from sonar.inference_pipelines.speech import SpeechToEmbeddingModelPipeline
    from sonar.inference_pipelines.text import TextToEmbeddingModelPipeline

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    texts, audio = _read_tsv(args.texts), _read_tsv(args.audio)
    if texts:
        model = TextToEmbeddingModelPipeline(encoder="text_sonar_basic_encoder",
                                             tokenizer="text_sonar_basic_encoder",
                                             device=torch.device("cpu"))
        rows = [model.predict([text], source_lang=lang).float().numpy()[0] for lang, text in texts]
        np.save(out / "text.npy", np.stack(rows))
    if audio:
        rows, models = [], {}
        for lang, path in audio:
            iso = lang.split("_", 1)[0] if not lang.startswith(("zho", "cmn")) else "cmn"
            if iso not in models:
                models[iso] = SpeechToEmbeddingModelPipeline(encoder=f"sonar_speech_encoder_{iso}",
                                                             device=torch.device("cpu"))
            rows.append(models[iso].predict([path]).float().numpy()[0])
        np.save(out / "speech.npy", np.stack(rows))
    print(f"wrote {out}")


def _port(args) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    import soundfile

    from core.models.sonar import SPEECH_ENCODER, TEXT_ENCODER, load_sonar

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    texts, audio = _read_tsv(args.texts), _read_tsv(args.audio)
    adapter = load_sonar(name="sonar", source=args.model, device=args.device,
                         langs=sorted({lang for lang, _ in audio}) or None,
                         trust_checkpoint=args.trust_checkpoint)
    print(f"checkpoints read with {adapter.info()['checkpoint_reading']}")
    if texts:
        pooled = adapter.pooled_states(TEXT_ENCODER, [t for _, t in texts], [lang for lang, _ in texts],
                                       batch_size=1)
        np.save(out / "text.npy", pooled[:, -1])  # the last point is the sentence embedding
    if audio:
        waves, langs = [], []
        for lang, path in audio:
            wave, rate = soundfile.read(path, dtype="float32", always_2d=True)
            if rate != 16_000:
                raise SystemExit(f"{path}: {rate} Hz; give 16 kHz audio (as the official step needs)")
            waves.append(wave.mean(axis=1))
            langs.append(lang)
        pooled = adapter.pooled_states(SPEECH_ENCODER, waves, langs, batch_size=1)
        np.save(out / "speech.npy", pooled[:, -1])
    print(f"wrote {out}")


def _compare(args) -> None:
    worst = 1.0
    for name in ("text.npy", "speech.npy"):
        a_path, b_path = Path(args.a) / name, Path(args.b) / name
        if not (a_path.exists() and b_path.exists()):
            continue
        a, b = np.load(a_path).astype(np.float64), np.load(b_path).astype(np.float64)
        if a.shape != b.shape:
            raise SystemExit(f"{name}: shapes differ: {a.shape} vs {b.shape}")
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        rel = np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1)
        for i, (c, r) in enumerate(zip(cos, rel, strict=True)):
            print(f"{name} row {i}: cosine {c:.6f}  relative L2 difference {r:.2e}")
        print(f"{name}: min cosine {cos.min():.6f}, mean {cos.mean():.6f}")
        worst = min(worst, float(cos.min()))
    if worst < args.min_cosine:
        print(f"FAIL: a cosine below {args.min_cosine}")
        raise SystemExit(1)
    print("OK")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("official", "port"):
        p = sub.add_parser(command)
        p.add_argument("--texts", help="TSV of <lang>\\t<sentence>")
        p.add_argument("--audio", help="TSV of <lang>\\t<16 kHz wav path>")
        p.add_argument("--out", required=True)
        if command == "port":
            p.add_argument("--model", required=True, help="folder of the SONAR checkpoints")
            p.add_argument("--device", default="cpu")
            p.add_argument("--trust-checkpoint", action="store_true",
                           help="read the .pt files as full pickles when they hold objects the "
                                "safe loader refuses (the error names them). RISK: unpickling "
                                "can run arbitrary code; only for files you downloaded yourself "
                                "from dl.fbaipublicfiles.com/SONAR")
    p = sub.add_parser("compare")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--min-cosine", type=float, default=0.999)
    args = parser.parse_args(argv)
    {"official": _official, "port": _port, "compare": _compare}[args.command](args)


if __name__ == "__main__":
    main()
