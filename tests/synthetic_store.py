"""A small, deterministic store with plausible synthetic numbers, written through core.store's API.

The dashboard tests use it instead of a model run: six languages over three resource levels, two
Whisper-like components, two metrics over every pairing and layer, projections and CERs. Values
follow the reference study's qualitative shape (text-speech similarity rising with depth, speech less
similar across languages than text, lower values for low-resource languages) so charts look like real
ones. One cell is NaN on purpose. Nothing here is real data.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from core.models.base import Component, path_points
from core.store import Store

RUN_ID = "synthetic-run"
MODEL = "synthetic-whisper"
METRICS = ("svcca", "linear_cka")
N_SENTENCES = 8
LAYER_NAMES = ("embed", "block 1", "block 2", "block 3", "block 4")
#: lang, name, resource level, training hours (made up), espeak voice
LANGUAGES = (
    ("eng_Latn", "English", "high", 40000.0, "en"),
    ("deu_Latn", "German", "high", 12000.0, "de"),
    ("spa_Latn", "Spanish", "high", 10000.0, "es"),
    ("hin_Deva", "Hindi", "medium", 1200.0, "hi"),
    ("swh_Latn", "Swahili", "low", 50.0, "sw"),
    ("yor_Latn", "Yoruba", "low", 0.5, "yo"),
)
LANGS = tuple(row[0] for row in LANGUAGES)
LEVEL_PENALTY = {"high": 0.0, "medium": 0.5, "low": 1.0}
#: the cell left NaN: speech-speech, first metric, layer 0, Swahili vs Yoruba
NAN_CELL = ("speech-speech", METRICS[0], 0, "swh_Latn", "yor_Latn")
#: both components write into one space (like an LLM fed text or speech), so joint maps are valid
SPACE = "synthetic/shared"
COMPONENTS = (
    Component("speech_encoder", "speech", 16, SPACE,
              path_points([("frontend", LAYER_NAMES[:1]), ("encoder", LAYER_NAMES[1:])]),
              "synthetic speech encoder"),
    Component("text_decoder", "text", 16, SPACE,
              path_points([("frontend", LAYER_NAMES[:1]), ("decoder", LAYER_NAMES[1:])]),
              "synthetic text decoder"),
)
COMPONENT_OF = {"speech": "speech_encoder", "text": "text_decoder"}
WORDS = ("river", "market", "winter", "teacher", "bridge", "garden", "letter", "morning", "train",
         "mountain", "village", "music")


def languages_frame() -> pd.DataFrame:
    return pd.DataFrame(LANGUAGES, columns=["lang", "name", "resource_level", "whisper_hours",
                                            "espeak_voice"]).assign(level_source="synthetic")


def items_frame(rng: np.random.Generator) -> pd.DataFrame:
    """One text and one speech item per (language, sentence)."""
    levels = {lang: level for lang, _, level, _, _ in LANGUAGES}
    voices = {lang: voice for lang, _, _, _, voice in LANGUAGES}
    rows = []
    for lang, sentence in itertools.product(LANGS, range(N_SENTENCES)):
        a, b = WORDS[sentence % len(WORDS)], WORDS[(3 * sentence + 1) % len(WORDS)]
        text = f"[{lang} #{sentence}] The {a} near the {b} was quiet this morning."
        rows.append({"sentence_id": sentence, "lang": lang, "modality": "text", "text": text,
                     "n_tokens": 10 + sentence % 4})
        cer = float(np.clip(0.04 + 0.35 * LEVEL_PENALTY[levels[lang]] + rng.normal(0, 0.03), 0, 1))
        rows.append({"sentence_id": sentence, "lang": lang, "modality": "speech", "text": text,
                     "duration_s": round(2.5 + 0.3 * (sentence % 5), 2), "cer": cer,
                     "transcript": text.lower(), "voice": voices[lang]})
    return pd.DataFrame(rows)


def _similarity(pairing: str, depth: float, lang_a: str, lang_b: str, metric: str) -> float:
    """Noise-free shape of the study's findings, in [0, 1]."""
    levels = {lang: level for lang, _, level, _, _ in LANGUAGES}
    low = (LEVEL_PENALTY[levels[lang_a]] + LEVEL_PENALTY[levels[lang_b]]) / 2
    scale = 1.0 if metric == "svcca" else 0.85
    if pairing == "text-text":
        value = 0.62 + 0.2 * depth - 0.15 * low
    elif pairing == "speech-speech":
        value = 0.38 + 0.15 * depth - 0.15 * low
    elif lang_a == lang_b:
        value = 0.18 + 0.55 * depth * (1 - 0.45 * low)
    else:
        value = 0.12 + 0.35 * depth * (1 - 0.45 * low)
    return scale * value


def metrics_frame(rng: np.random.Generator) -> pd.DataFrame:
    """Every pairing x layer x metric; same-modality pairings stored once per unordered pair
    (a before b), text-speech for every ordered pair including the diagonal."""
    rows = []
    last = len(LAYER_NAMES) - 1
    for metric, layer, pairing in itertools.product(METRICS, range(len(LAYER_NAMES)),
                                                    ("text-text", "speech-speech", "text-speech")):
        modality_a, modality_b = pairing.split("-")
        if modality_a == modality_b:
            pairs = list(itertools.combinations(LANGS, 2))
        else:
            pairs = list(itertools.product(LANGS, LANGS))
        for lang_a, lang_b in pairs:
            depth = layer / last
            value = _similarity(pairing, depth, lang_a, lang_b, metric) + rng.normal(0, 0.015)
            baseline = 0.08 + rng.normal(0, 0.005)
            length = 0.06 + 0.04 * (pairing == "text-speech") + rng.normal(0, 0.005)
            if (pairing, metric, layer, lang_a, lang_b) == NAN_CELL:
                value = np.nan
            rows.append({
                "pairing": pairing, "component_a": COMPONENT_OF[modality_a],
                "component_b": COMPONENT_OF[modality_b], "layer_a": layer, "layer_b": layer,
                "depth": depth, "lang_a": lang_a, "lang_b": lang_b, "modality_a": modality_a,
                "modality_b": modality_b, "metric": metric,
                "params": {"k": 4} if metric == "svcca" else {}, "n_samples": N_SENTENCES,
                "value": value, "baseline_mean": baseline, "baseline_std": 0.02,
                "ci_low": value - 0.04, "ci_high": value + 0.04, "length_baseline": length,
                "value_residualised": value - length, "pooling": "mean", "shared_space": True,
            })
    return pd.DataFrame(rows)


def projections_frame(items: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """One joint text+speech map per layer, recorded like precompute does (``params["joint"]``):
    modalities and languages apart at layer 0, the same sentence together at the last layer."""
    rows = []
    last = len(LAYER_NAMES) - 1
    lang_pos = {lang: (np.cos(2 * np.pi * i / len(LANGS)), np.sin(2 * np.pi * i / len(LANGS)))
                for i, lang in enumerate(LANGS)}
    for layer in range(len(LAYER_NAMES)):
        mix = layer / last
        joint = [f"{COMPONENT_OF[m]}:{layer}" for m in ("text", "speech")]
        for item in items.itertuples():
            angle = 2 * np.pi * item.sentence_id / N_SENTENCES
            lx, ly = lang_pos[item.lang]
            shift = (1 - mix) * (4.0 if item.modality == "speech" else -4.0)
            x = 6 * ((1 - mix) * lx + mix * np.cos(angle)) + shift + rng.normal(0, 0.3)
            y = 6 * ((1 - mix) * ly + mix * np.sin(angle)) + rng.normal(0, 0.3)
            rows.append({"component": COMPONENT_OF[item.modality], "layer": layer,
                         "item_id": item.item_id, "method": "umap", "x": x, "y": y,
                         "params": {"n_neighbors": 5, "seed": 0, "joint": joint}})
    return pd.DataFrame(rows)


def write_synthetic_store(path: str | Path, *, seed: int = 0) -> Path:
    """Create the synthetic store at ``path`` (must not exist) and return the path."""
    rng = np.random.default_rng(seed)
    path = Path(path)
    store = Store.create(path)
    try:
        with store.transaction():
            store.add_languages(languages_frame())
            items = items_frame(rng)
            items["item_id"] = store.add_items(items)
            store.add_run(RUN_ID, MODEL, {"corpus": "synthetic", "n_sentences": N_SENTENCES},
                          {"synthetic_store": "1"})
            store.add_components(RUN_ID, COMPONENTS)
            store.set_run_items(RUN_ID, items[["item_id", "n_tokens", "cer", "transcript"]])
            for component in COMPONENTS:
                own = items[items["modality"] == component.modality]
                for layer in range(component.n_layers):
                    vectors = rng.normal(size=(len(own), component.dim)).astype(np.float32)
                    store.add_activations(RUN_ID, component.name, layer, own["item_id"].tolist(),
                                          vectors)
            store.add_metrics(RUN_ID, metrics_frame(rng))
            store.add_projections(RUN_ID, projections_frame(items, rng))
            store.finish_run(RUN_ID)
    finally:
        store.close()
    return path


def synthetic_tables(seed: int = 0) -> dict[str, pd.DataFrame]:
    """The same tables as plain frames (no store), shaped like the Store read API's results."""
    rng = np.random.default_rng(seed)
    items = items_frame(rng)
    items.insert(0, "item_id", range(len(items)))
    metrics = metrics_frame(rng)
    metrics["params"] = metrics["params"].map(json.dumps)
    metrics.insert(0, "run_id", RUN_ID)
    projections = projections_frame(items, rng)
    projections["params"] = projections["params"].map(json.dumps)
    projections = projections.merge(items[["item_id", "lang", "sentence_id", "modality", "text"]],
                                    on="item_id")
    return {"languages": languages_frame(), "items": items, "metrics": metrics,
            "projections": projections}
