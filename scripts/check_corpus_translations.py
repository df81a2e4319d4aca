"""Check the bundled corpus's alignment with a real multilingual sentence encoder.

For every language, each line is embedded with multilingual-e5-small (the offline 4-bit weights the
project ships an adapter for) and matched against the English lines: line i should retrieve English
line i. Prints, per language, P@1 (how often the nearest English line is the right one) and the
lines that retrieve another English line, so a human can look at exactly those.

    PYTHONPATH=. .venv/bin/python scripts/check_corpus_translations.py [--show 5]
"""

from __future__ import annotations

import argparse

import numpy as np

from core.corpus import load_bundled
from core.models.registry import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", type=int, default=5, help="mismatched lines to print per language")
    args = parser.parse_args()
    corpus = load_bundled()
    model = load_model("multilingual-e5-small", device="cpu")
    component = model.components()[0].name
    last = model.components()[0].n_layers - 1

    def embed(lang: str) -> np.ndarray:
        texts = corpus.texts[lang]
        pooled = model.extract(component, texts, [lang] * len(texts), batch_size=32).pooled
        vectors = np.asarray(pooled[:, last, :], dtype=np.float64)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    english = embed("eng_Latn")
    print(f"{len(corpus)} lines x {len(corpus.langs)} languages; P@1 of retrieving English line i")
    for lang in corpus.langs:
        if lang == "eng_Latn":
            continue
        similarity = embed(lang) @ english.T
        nearest = similarity.argmax(axis=1)
        wrong = np.flatnonzero(nearest != np.arange(len(corpus)))
        print(f"{lang}: P@1 {1 - len(wrong) / len(corpus):.3f} ({len(wrong)} lines retrieve another)")
        for i in wrong[: args.show]:
            print(f"    line {i + 1}: {corpus.texts[lang][i]!r} -> English line {nearest[i] + 1}: "
                  f"{corpus.texts['eng_Latn'][nearest[i]]!r}")


if __name__ == "__main__":
    main()
