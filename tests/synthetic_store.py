"""A small, deterministic store with plausible synthetic numbers, written through core.store's API.

The dashboard tests use it instead of model runs: six languages over three resource levels and three
runs, each one kind of model the dashboard must handle:

- ``RUN_ID`` (synthetic-whisper): a speech encoder and a text decoder in two different spaces, as in
  Whisper. Basis-invariant metrics (``METRICS``) for every pair; the coordinate-wise
  ``paired_cosine`` only within a component (text-text, speech-speech), never text-speech; one map
  per component (no joint text+speech maps across spaces).
- ``TEXT_RUN_ID`` (synthetic-e5): a text-only encoder (like multilingual E5) of another depth, its
  own space, text-text rows only, 4-bit quantised weights in ``model_info``, no transcripts.
- ``SHARED_RUN_ID`` (synthetic-speech-llm): an LLM fed text (``llm_text``) or speech
  (``llm_speech``: audio front end and encoder in the audio space, projector and LLM layers in the
  LLM's space), so ``paired_cosine`` exists for text-speech at the aligned points that share the
  LLM space, and joint maps there.

Values follow the reference study's qualitative shape (text-speech similarity rising with depth,
speech less similar across languages than text, lower values for low-resource languages) so charts
look like real ones. One cell of the Whisper-like run is NaN on purpose. Nothing here is real data.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from core.models.base import Component, path_points
from core.store import Store
from precompute.pairs import align_layers

RUN_ID = "synthetic-run"
MODEL = "synthetic-whisper"
TEXT_RUN_ID = "synthetic-e5"
TEXT_MODEL = "synthetic-e5"
SHARED_RUN_ID = "synthetic-speech-llm"
SHARED_MODEL = "synthetic-speech-llm"
#: every run, oldest first (the sidebar's default is the last: the Whisper-like run)
RUN_IDS = (TEXT_RUN_ID, SHARED_RUN_ID, RUN_ID)
MODELS = {RUN_ID: MODEL, TEXT_RUN_ID: TEXT_MODEL, SHARED_RUN_ID: SHARED_MODEL}
#: basis-invariant metrics, stored for every pair
METRICS = ("svcca", "linear_cka")
#: coordinate-wise metric, stored only between points of one representation space
COORDINATE_METRIC = "paired_cosine"
ALL_METRICS = (*METRICS, COORDINATE_METRIC)
N_SENTENCES = 8
#: the metric rows stand for a study of this many sentences (enough for the findings to decide);
#: the items are a small sample for the item-level pages
METRIC_SENTENCES = 200
N_RESAMPLES = 200
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
#: the espeak-ng version the synthetic speech claims to come from (items.voice)
ESPEAK_VERSION = "1.51"
LEVEL_PENALTY = {"high": 0.0, "medium": 0.5, "low": 1.0}
#: per-run shift of the synthetic values, so the runs' curves differ
OFFSETS = {RUN_ID: 0.0, TEXT_RUN_ID: 0.08, SHARED_RUN_ID: -0.06}
#: the cell left NaN: speech-speech, first metric, layer 0, Swahili vs Yoruba (Whisper-like run)
NAN_CELL = ("speech-speech", METRICS[0], 0, "swh_Latn", "yor_Latn")
SPEECH_SPACE, TEXT_SPACE = "synthetic-whisper/encoder", "synthetic-whisper/decoder"
COMPONENTS = (
    Component("speech_encoder", "speech", 16, SPEECH_SPACE,
              path_points([("frontend", LAYER_NAMES[:1]), ("encoder", LAYER_NAMES[1:])]),
              "synthetic speech encoder"),
    Component("text_decoder", "text", 16, TEXT_SPACE,
              path_points([("frontend", LAYER_NAMES[:1]), ("decoder", LAYER_NAMES[1:])]),
              "synthetic text decoder",
              conditioning={"prompt": "<|sot|><|{lang}|><|transcribe|>"}),
)
COMPONENT_OF = {"speech": "speech_encoder", "text": "text_decoder"}
E5_SPACE = "synthetic-e5/encoder"
E5_LAYER_NAMES = ("embed", *(f"layer {i}" for i in range(1, 7)))
E5_COMPONENTS = (
    Component("text_encoder", "text", 12, E5_SPACE,
              path_points([("frontend", E5_LAYER_NAMES[:1]), ("encoder", E5_LAYER_NAMES[1:])]),
              "synthetic text-only encoder", conditioning={"prompt": "query: {text}"}),
)
E5_QUANTISATION = "Q4_0 (4-bit, synthetic)"
LLM_SPACE, AUDIO_SPACE = "synthetic-llm/llm", "synthetic-llm/audio"
LLM_COMPONENTS = (
    Component("llm_text", "text", 16, LLM_SPACE,
              path_points([("llm", ("embed", "llm 1", "llm 2", "llm 3", "llm 4"))]),
              "synthetic LLM fed text", conditioning={"prompt": "Repeat: {text}"}),
    Component("llm_speech", "speech", 16, LLM_SPACE,
              path_points([("frontend", ("mel+conv",)), ("encoder", ("audio 1", "audio 2")),
                           ("projector", ("projector",)),
                           ("llm", ("llm 1", "llm 2", "llm 3", "llm 4"))],
                          [AUDIO_SPACE, AUDIO_SPACE, None, None]),
              "synthetic LLM fed speech through an audio encoder and projector",
              conditioning={"prompt": "<audio> Repeat:"}),
)
WORDS = ("river", "market", "winter", "teacher", "bridge", "garden", "letter", "morning", "train",
         "mountain", "village", "music")


def languages_frame() -> pd.DataFrame:
    return pd.DataFrame(LANGUAGES, columns=["lang", "name", "resource_level", "whisper_hours",
                                            "espeak_voice"]).assign(level_source="synthetic")


def items_frame(rng: np.random.Generator, recorded: tuple[str, ...] = ()) -> pd.DataFrame:
    """One text and one speech item per (language, sentence); speech voiced as a build records
    it (``core.corpus.speech_voice``): espeak-ng, or a recording in the ``recorded`` languages."""
    levels = {lang: level for lang, _, level, _, _ in LANGUAGES}
    voices = {lang: "recording" if lang in recorded else f"espeak-ng {ESPEAK_VERSION} {voice}"
              for lang, _, _, _, voice in LANGUAGES}
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
    scale = {"svcca": 1.0, "linear_cka": 0.85}.get(metric, 0.7)
    if pairing == "text-text":
        value = 0.62 + 0.2 * depth - 0.15 * low
    elif pairing == "speech-speech":
        value = 0.38 + 0.15 * depth - 0.15 * low
    elif lang_a == lang_b:
        value = 0.18 + 0.55 * depth * (1 - 0.45 * low)
    else:
        value = 0.12 + 0.35 * depth * (1 - 0.45 * low)
    return scale * value


def _layer_pairs(components: tuple[Component, ...], modality_pairs: list[tuple[str, str]]):
    """(pairing, component a, component b, layer a, layer b, depth) as precompute.pairs makes them:
    same-modality within each component, text-speech over each modality pair at aligned depth."""
    by_name = {c.name: c for c in components}
    for comp in components:
        pairing = f"{comp.modality}-{comp.modality}"
        for layer in range(comp.n_layers):
            yield pairing, comp, comp, layer, layer, layer / max(comp.n_layers - 1, 1)
    for text, speech in modality_pairs:
        a, b = by_name[text], by_name[speech]
        for layer_a, layer_b, depth in align_layers(a.n_layers, b.n_layers):
            yield "text-speech", a, b, layer_a, layer_b, depth


def metrics_frame(rng: np.random.Generator, components: tuple[Component, ...] = COMPONENTS,
                  modality_pairs: list[tuple[str, str]] | None = None,
                  nan_cell: tuple | None = NAN_CELL, offset: float = 0.0) -> pd.DataFrame:
    """Every pairing x layer x metric; same-modality pairings stored once per unordered pair
    (a before b), text-speech for every ordered pair including the diagonal. ``paired_cosine``
    only where both points share a representation space (the store refuses the others).
    ``offset`` shifts every value (tells runs apart on the compare page)."""
    if modality_pairs is None:
        modality_pairs = [(t.name, s.name) for t in components if t.modality == "text"
                          for s in components if s.modality == "speech"]
    from core.store.vectors import encode_resamples

    shared = rng.standard_normal(N_RESAMPLES)  # resample b moves every row together (same sentences)
    rows = []
    for metric in ALL_METRICS:
        for pairing, a, b, layer_a, layer_b, depth in _layer_pairs(components, modality_pairs):
            same_space = a.layer_space(layer_a) == b.layer_space(layer_b)
            if metric == COORDINATE_METRIC and not same_space:
                continue
            if a.modality == b.modality:
                pairs = list(itertools.combinations(LANGS, 2))
            else:
                pairs = list(itertools.product(LANGS, LANGS))
            for lang_a, lang_b in pairs:
                value = (_similarity(pairing, depth, lang_a, lang_b, metric) + offset
                         + rng.normal(0, 0.015))
                baseline = (0.08 if metric != COORDINATE_METRIC else 0.3) + rng.normal(0, 0.005)
                length = 0.06 + 0.04 * (pairing == "text-speech") + rng.normal(0, 0.005)
                if (pairing, metric, layer_a, lang_a, lang_b) == nan_cell:
                    value = np.nan
                rows.append({
                    "pairing": pairing, "component_a": a.name, "component_b": b.name,
                    "layer_a": layer_a, "layer_b": layer_b, "depth": depth, "lang_a": lang_a,
                    "lang_b": lang_b, "modality_a": a.modality, "modality_b": b.modality,
                    "metric": metric, "params": {"k": 4} if metric == "svcca" else {},
                    "n_samples": METRIC_SENTENCES, "value": value, "baseline_mean": baseline,
                    "baseline_std": 0.02, "ci_low": value - 0.04, "ci_high": value + 0.04,
                    "ci_method": "bootstrap_se",
                    "resamples": encode_resamples(value + 0.02 * (0.8 * shared + 0.6 * rng.standard_normal(
                        N_RESAMPLES))),
                    "length_baseline": length, "value_residualised": value - length,
                    "pooling": "mean", "shared_space": same_space,
                })
    return pd.DataFrame(rows)


def projections_frame(items: pd.DataFrame, rng: np.random.Generator,
                      components: tuple[Component, ...] = COMPONENTS) -> pd.DataFrame:
    """2-D maps recorded like precompute does: a joint text+speech map (``params["joint"]``) at
    aligned points that share a space, every other point a map of its own component's items.
    Modalities and languages apart at the first point, the same sentence together at the last."""
    text = next((c for c in components if c.modality == "text"), None)
    speech = next((c for c in components if c.modality == "speech"), None)
    joint: dict[tuple[str, int], list[str]] = {}
    if text is not None and speech is not None:
        for layer_t, layer_s, _ in align_layers(text.n_layers, speech.n_layers):
            if text.layer_space(layer_t) == speech.layer_space(layer_s):
                members = [f"{text.name}:{layer_t}", f"{speech.name}:{layer_s}"]
                joint[(text.name, layer_t)] = joint[(speech.name, layer_s)] = members
    lang_pos = {lang: (np.cos(2 * np.pi * i / len(LANGS)), np.sin(2 * np.pi * i / len(LANGS)))
                for i, lang in enumerate(LANGS)}
    rows = []
    for comp in components:
        own = items[items["modality"] == comp.modality]
        for layer in range(comp.n_layers):
            mix = layer / max(comp.n_layers - 1, 1)
            params = {"n_neighbors": 5, "seed": 0}
            if (comp.name, layer) in joint:
                params["joint"] = joint[(comp.name, layer)]
            for item in own.itertuples():
                angle = 2 * np.pi * item.sentence_id / N_SENTENCES
                lx, ly = lang_pos[item.lang]
                shift = (1 - mix) * (4.0 if item.modality == "speech" else -4.0)
                x = 6 * ((1 - mix) * lx + mix * np.cos(angle)) + shift + rng.normal(0, 0.3)
                y = 6 * ((1 - mix) * ly + mix * np.sin(angle)) + rng.normal(0, 0.3)
                rows.append({"component": comp.name, "layer": layer, "item_id": item.item_id,
                             "method": "umap", "x": x, "y": y, "params": dict(params)})
    return pd.DataFrame(rows)


def _run_config(model: str, components: tuple[Component, ...], *, transcribed: bool,
                quantisation: str | None = None) -> dict:
    return {"corpus": "synthetic", "n_sentences": N_SENTENCES, "model": model,
            "model_info": {"name": model, "quantisation": quantisation},
            "transcribe": True, "transcribed": transcribed,
            "modality_pairs": [[t.name, s.name] for t in components if t.modality == "text"
                               for s in components if s.modality == "speech"]}


def _add_run(store: Store, run_id: str, model: str, components: tuple[Component, ...],
             items: pd.DataFrame, run_items: pd.DataFrame, config: dict,
             rng: np.random.Generator, nan_cell: tuple | None = None) -> None:
    store.add_run(run_id, model, config, {"synthetic_store": "1"})
    store.add_components(run_id, components)
    store.set_run_items(run_id, run_items)
    for component in components:
        own = items[items["modality"] == component.modality]
        for layer in range(component.n_layers):
            vectors = rng.normal(size=(len(own), component.dim)).astype(np.float32)
            store.add_activations(run_id, component.name, layer, own["item_id"].tolist(), vectors)
    store.add_metrics(run_id, metrics_frame(rng, components, nan_cell=nan_cell,
                                            offset=OFFSETS[run_id]))
    store.add_projections(run_id, projections_frame(items, rng, components))
    store.finish_run(run_id)


def write_synthetic_store(path: str | Path, *, seed: int = 0,
                          recorded: tuple[str, ...] = ()) -> Path:
    """Create the synthetic store at ``path`` (must not exist) and return the path; the speech
    of the ``recorded`` languages is marked as recordings, the rest as espeak-ng synthesis."""
    rng = np.random.default_rng(seed)
    path = Path(path)
    store = Store.create(path)
    try:
        with store.transaction():
            store.add_languages(languages_frame())
            items = items_frame(rng, recorded)
            items["item_id"] = store.add_items(items)
            text_items = items[items["modality"] == "text"]
            # oldest first: the sidebar defaults to the last complete run, the Whisper-like one
            _add_run(store, TEXT_RUN_ID, TEXT_MODEL, E5_COMPONENTS, items,
                     text_items[["item_id", "n_tokens"]].assign(n_tokens=lambda f: f.n_tokens + 2),
                     _run_config(TEXT_MODEL, E5_COMPONENTS, transcribed=False,
                                 quantisation=E5_QUANTISATION), np.random.default_rng(seed + 1))
            llm_items = items[["item_id", "n_tokens", "cer", "transcript"]].assign(
                cer=lambda f: (f.cer * 1.5).clip(upper=1.0))
            _add_run(store, SHARED_RUN_ID, SHARED_MODEL, LLM_COMPONENTS, items, llm_items,
                     _run_config(SHARED_MODEL, LLM_COMPONENTS, transcribed=True),
                     np.random.default_rng(seed + 2))
            _add_run(store, RUN_ID, MODEL, COMPONENTS, items,
                     items[["item_id", "n_tokens", "cer", "transcript"]],
                     _run_config(MODEL, COMPONENTS, transcribed=True), rng, nan_cell=NAN_CELL)
    finally:
        store.close()
    return path


def synthetic_tables(seed: int = 0) -> dict[str, pd.DataFrame]:
    """The Whisper-like run's tables as plain frames (no store), shaped like the Store read API's
    results (``metrics`` with the layers table's stage and path depth joined in); ``layers`` and
    ``components`` of every run, keyed by run id in ``runs``."""
    rng = np.random.default_rng(seed)
    items = items_frame(rng)
    items.insert(0, "item_id", range(len(items)))
    metrics = _as_read(metrics_frame(rng), RUN_ID, COMPONENTS)
    item_columns = items[["item_id", "lang", "sentence_id", "modality", "text"]]

    def read_projections(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(params=frame["params"].map(json.dumps)).merge(item_columns,
                                                                          on="item_id")

    projections = read_projections(projections_frame(items, rng))
    runs = {run_id: {"components": components_frame(comps), "layers": layers_frame(run_id, comps)}
            for run_id, comps in ((RUN_ID, COMPONENTS), (TEXT_RUN_ID, E5_COMPONENTS),
                                  (SHARED_RUN_ID, LLM_COMPONENTS))}
    runs[TEXT_RUN_ID]["metrics"] = _as_read(
        metrics_frame(np.random.default_rng(seed + 1), E5_COMPONENTS,
                      offset=OFFSETS[TEXT_RUN_ID]), TEXT_RUN_ID, E5_COMPONENTS)
    runs[SHARED_RUN_ID]["metrics"] = _as_read(
        metrics_frame(np.random.default_rng(seed + 2), LLM_COMPONENTS,
                      offset=OFFSETS[SHARED_RUN_ID]), SHARED_RUN_ID, LLM_COMPONENTS)
    runs[SHARED_RUN_ID]["projections"] = read_projections(
        projections_frame(items, np.random.default_rng(seed + 3), LLM_COMPONENTS))
    runs[RUN_ID]["metrics"] = metrics
    runs[RUN_ID]["projections"] = projections
    return {"languages": languages_frame(), "items": items, "metrics": metrics,
            "projections": projections, "components": runs[RUN_ID]["components"],
            "layers": runs[RUN_ID]["layers"], "runs": runs}


def components_frame(components: tuple[Component, ...]) -> pd.DataFrame:
    """Like ``Store.components``."""
    return pd.DataFrame({
        "component": [c.name for c in components], "modality": [c.modality for c in components],
        "n_layers": [c.n_layers for c in components], "dim": [c.dim for c in components],
        "description": [c.description for c in components],
        "layer_names": [list(c.layer_names) for c in components],
        "space": [c.space for c in components],
        "conditioning": [dict(c.conditioning) for c in components]})


def layers_frame(run_id: str, components: tuple[Component, ...]) -> pd.DataFrame:
    """Like ``Store.layers``."""
    return pd.DataFrame([{"run_id": run_id, "component": c.name, "layer": i, "name": p.name,
                          "stage": p.stage, "depth": float(p.depth), "space": c.layer_space(i)}
                         for c in components for i, p in enumerate(c.layers)])


def _as_read(metrics: pd.DataFrame, run_id: str, components: tuple[Component, ...]) -> pd.DataFrame:
    """Metric rows as ``Store.metrics`` returns them: JSON params, run id, stages, path depths."""
    out = metrics.copy()
    out["params"] = out["params"].map(json.dumps)
    out.insert(0, "run_id", run_id)
    points = layers_frame(run_id, components)[["component", "layer", "stage", "depth"]]
    for side in ("a", "b"):
        renamed = points.rename(columns={"component": f"component_{side}", "layer": f"layer_{side}",
                                         "stage": f"stage_{side}", "depth": f"path_depth_{side}"})
        out = out.merge(renamed, on=[f"component_{side}", f"layer_{side}"], how="left")
    return out
