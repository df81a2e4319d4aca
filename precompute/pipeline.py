"""The build: corpus -> speech -> transcripts -> pooled activations -> metrics -> projections -> store.

Everything is written into a temporary file beside ``--out`` (``<out>.tmp-<pid>``) and moved over
``--out`` in one step only when the whole build succeeded, so a dashboard never sees a half-built
store. When the build fails (an exception, Ctrl-C, SIGTERM) the temporary file is deleted and
``--out`` is left as it was; only SIGKILL or a power cut can leave a ``*.duckdb.tmp-<pid>`` file
behind, which is safe to delete (git ignores it).

Items (the corpus's texts and clips) are shared by all runs of a build; what depends on the model is
stored per run (``run_items``): the transcript and CER of each clip by every model that can
transcribe, the token count of each text by the run's own tokenizer. Each run's config says which
text length its length baseline used (``text_length_unit``: tokens or characters), which pooling
it used (``pooling``, also a column of every metric row) and what each component is fed
(``components``: conditioning, spaces). Coordinate-wise metrics (paired cosine, retrieval) are
computed only between points of one representation space.
"""

from __future__ import annotations

import dataclasses
import gc
import importlib.metadata
import inspect
import logging
import os
import platform
import re
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from core.models.base import Component, Extraction, ModelAdapter
from core.store import ACTIVATION_DTYPES, Store, compact_copy, publish_atomically
from precompute.pairs import PairSpec, metric_pairs, projection_groups

log = logging.getLogger("precompute")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path("data/crossmodal_lens.duckdb")
CORPUS_FORMATS = ("line", "fleurs")


class BuildError(RuntimeError):
    """A build cannot go on for a reason the user can fix (the message says how)."""


@dataclass(frozen=True)
class BuildConfig:
    """Everything a build depends on; recorded verbatim in each run's config."""

    models: tuple[str, ...]
    out: Path = DEFAULT_OUT
    corpus: str = "bundled"               # "bundled" or a directory
    corpus_format: str = "line"           # for a directory: "line" (FLORES-style) or "fleurs"
    split: str = "test"                   # FLEURS split
    suffix: str = ".dev"                  # line-aligned files are <lang><suffix>
    langs: tuple[str, ...] | None = None
    n_sentences: int | None = None
    device: str | None = None
    batch_size: int = 8
    n_permutations: int = 20
    n_bootstrap: int = 200
    metrics: tuple[str, ...] | None = None  # names from core.metrics.grid.DEFAULT_METRICS; None: all
    umap: bool = True
    umap_n_neighbors: int = 15
    umap_min_dist: float = 0.1
    transcribe: bool = True
    max_transcript_tokens: int | None = None  # cap on generated tokens per clip; None: model's own
    speech_cache: Path | None = None
    activation_dtype: str = "float16"
    seed: int = 0
    pooling: str = "mean"                 # "mean" over real positions, or "last" (decoder-only LLMs)
    unsupported_langs: str = "refuse"     # a language a model lacks: "refuse" the build or "skip" it

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("give at least one --model (e.g. --model whisper-base)")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"each --model may be given once, got {list(self.models)}")
        if self.corpus_format not in CORPUS_FORMATS:
            raise ValueError(f"--corpus-format must be one of {CORPUS_FORMATS}, got {self.corpus_format!r}")
        if self.activation_dtype not in ACTIVATION_DTYPES:
            raise ValueError(f"activation dtype must be one of {ACTIVATION_DTYPES}")
        if self.batch_size < 1 or self.n_permutations < 0 or self.n_bootstrap < 0:
            raise ValueError("--batch-size must be >= 1 and --n-permutations/--n-bootstrap >= 0")
        if self.n_sentences is not None and self.n_sentences < 1:
            raise ValueError(f"--n-sentences must be >= 1, got {self.n_sentences}")
        if self.pooling not in ("mean", "last"):
            raise ValueError(f"--pooling must be 'mean' or 'last', got {self.pooling!r}")
        if self.unsupported_langs not in ("refuse", "skip"):
            raise ValueError("--unsupported-langs must be 'refuse' or 'skip', got "
                             f"{self.unsupported_langs!r}")

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}


@dataclass
class PreparedCorpus:
    """The corpus as store items, plus the waveforms of its speech items (kept in memory)."""

    name: str
    source: str
    langs: list[str]
    sentence_ids: list[int]
    items: pd.DataFrame                     # one row per item, with item_id once stored
    waveforms: dict[int, np.ndarray] = field(default_factory=dict)  # item_id -> 16 kHz mono

    def modality_items(self, modality: str, langs: Sequence[str] | None = None) -> pd.DataFrame:
        """Items of one modality in the order pooled states are computed: lang order, then sentence
        (only ``langs`` when given)."""
        keep = self.items.modality == modality
        if langs is not None:
            keep &= self.items.lang.isin(list(langs))
        return self.items[keep].reset_index(drop=True)


# ---------------------------------------------------------------------- the build
def build(config: BuildConfig, *, load_model: Callable[..., ModelAdapter] | None = None,
          command_line: Sequence[str] | None = None) -> list[str]:
    """Build a store at ``config.out`` and return the new run ids (one per model).

    ``command_line`` (the CLI arguments) is recorded in each run's config next to the parsed options.
    """
    if load_model is None:
        from core.models.registry import load_model
    out = Path(config.out)
    with staged_store(out) as tmp, Store.create(tmp) as store:
        corpus = load_corpus(config)
        log.info("corpus %s: %d languages x %d sentences (%s)", corpus.name, len(corpus.langs),
                 len(corpus.sentence_ids), corpus.source)
        prepared = prepare_corpus(corpus, speech_cache=config.speech_cache)
        store.add_languages(language_frame(prepared.langs))
        item_ids = store.add_items(prepared.items.drop(columns=["position"]))
        prepared.items.insert(0, "item_id", item_ids)
        prepared.waveforms = {item_ids[i]: w for i, w in prepared.waveforms.items()}

        versions = collect_versions()
        run_ids = []
        for name in config.models:
            adapter = load_model(name, device=config.device)
            adapter.check_pooling(config.pooling)
            run_langs = supported_langs(adapter, prepared.langs, config.unsupported_langs)
            run_id = run_id_for(name)
            run_config = {
                **config.to_json(),
                "command_line": list(command_line) if command_line is not None else None,
                "model": name, "model_info": adapter.info(),
                "corpus_name": prepared.name, "corpus_source": prepared.source,
                "corpus_langs": prepared.langs, "n_sentence_ids": len(prepared.sentence_ids),
                "run_langs": run_langs,
                "skipped_langs": [lang for lang in prepared.langs if lang not in run_langs],
                "transcribed": bool(config.transcribe and can_transcribe(adapter)),
                "text_length_unit": "tokens" if can_count_tokens(adapter) else "characters",
                "components": {c.name: {"modality": c.modality, "space": c.space,
                                        "conditioning": c.conditioning}
                               for c in adapter.components()},
                "modality_pairs": [list(p) for p in adapter.modality_pairs()],
            }
            store.add_run(run_id, name, run_config, versions)
            run_model(store, run_id, adapter, prepared, config, langs=run_langs,
                      transcribe=run_config["transcribed"])
            store.finish_run(run_id)
            run_ids.append(run_id)
            del adapter
            gc.collect()  # free the model (and its GPU memory) before loading the next
    log.info("published %s (runs: %s)", out, ", ".join(run_ids))
    return run_ids


def supported_langs(adapter: ModelAdapter, langs: Sequence[str], policy: str) -> list[str]:
    """The corpus languages the model knows; the others refused (BuildError) or skipped (logged)."""
    missing = [lang for lang in langs if not adapter.supports_language(lang)]
    if missing and policy == "refuse":
        raise BuildError(
            f"model {adapter.name!r} does not support {', '.join(missing)}: its states for them "
            "would be meaningless. Drop them with --langs, or pass --unsupported-langs skip to "
            "build this model's run without them")
    if missing:
        log.warning("%s: skipping unsupported languages %s", adapter.name, ", ".join(missing))
    kept = [lang for lang in langs if lang not in missing]
    if not kept:
        raise BuildError(f"model {adapter.name!r} supports none of the corpus languages")
    return kept


def run_model(store: Store, run_id: str, adapter: ModelAdapter, prepared: PreparedCorpus,
              config: BuildConfig, *, langs: Sequence[str] | None = None,
              transcribe: bool) -> None:
    """One model's stages over ``langs`` (default: all), all written under ``run_id``."""
    langs = list(langs) if langs is not None else list(prepared.langs)
    components = adapter.components()
    store.add_components(run_id, components)
    modality_pairs = adapter.modality_pairs()

    speech_components = [c for c in components if c.modality == "speech"]
    speech_items = prepared.modality_items("speech", langs)
    if transcribe and not speech_components and not speech_items.empty:
        store.set_run_items(run_id, transcribe_items(adapter, prepared, speech_items,
                                                     config.batch_size,
                                                     max_new_tokens=config.max_transcript_tokens))
    text_items = prepared.modality_items("text", langs)
    text_lengths = text_length_values(adapter, text_items)
    if can_count_tokens(adapter) and not text_items.empty:
        store.set_run_items(run_id, pd.DataFrame({"item_id": text_items.item_id,
                                                  "n_tokens": text_lengths.astype(np.int64)}))

    states: dict[str, np.ndarray] = {}
    for comp in components:
        items = prepared.modality_items(comp.modality, langs)
        if items.empty:
            continue
        # Transcribe right after the first speech component's batches: the adapter can reuse the
        # encoder pass it just made (Whisper caches its last encoder outputs).
        transcriber = None
        if transcribe and comp is (speech_components[0] if speech_components else None):
            transcriber = BatchTranscriber(adapter, config.max_transcript_tokens)
        extraction = component_states(adapter, comp, items, prepared, config.batch_size,
                                      after_batch=transcriber, pooling=config.pooling)
        # Metrics and maps are computed from exactly the stored vectors, so that
        # `precompute metrics` (which only has those) reproduces them.
        states[comp.name] = stored_precision(extraction.pooled, config.activation_dtype)
        if transcriber is not None:
            store.set_run_items(run_id, transcriber.frame(items))
        with store.transaction():
            for layer in range(comp.n_layers):
                store.add_activations(run_id, comp.name, layer, items.item_id.tolist(),
                                      states[comp.name][:, layer, :], dtype=config.activation_dtype,
                                      n_positions=extraction.n_positions[:, layer].tolist())

    measured = [c for c in components if c.name in states]
    lengths = {"text": text_lengths, "speech": speech_items.duration_s.to_numpy()}
    metrics = compute_metrics(measured, states, prepared, lengths, config, langs=langs,
                              modality_pairs=modality_pairs)
    store.add_metrics(run_id, metrics)

    if config.umap:
        store.add_projections(run_id, compute_projections(measured, states, prepared, config,
                                                          langs=langs,
                                                          modality_pairs=modality_pairs))


# ---------------------------------------------------------------------- stages
def load_corpus(config: BuildConfig):
    """The parallel corpus named by ``--corpus``, cut to ``--langs`` / ``--n-sentences``."""
    from core import corpus as corpus_module

    langs = list(config.langs) if config.langs else None
    if config.corpus == "bundled":
        corpus = corpus_module.load_bundled()
        return corpus.subset(langs=langs, n_sentences=config.n_sentences)
    directory = Path(config.corpus)
    if not directory.is_dir():
        raise FileNotFoundError(f"--corpus {config.corpus!r} is neither 'bundled' nor a directory")
    if config.corpus_format == "fleurs":
        return corpus_module.load_fleurs(directory, split=config.split, langs=langs,
                                         n_sentences=config.n_sentences)
    return corpus_module.load_line_aligned(directory, suffix=config.suffix, langs=langs,
                                           n_sentences=config.n_sentences)


def prepare_corpus(corpus, *, speech_cache: Path | None = None) -> PreparedCorpus:
    """Items for every (modality, lang, sentence); speech is recorded or synthesised (see core.corpus)."""
    from core import audio
    from core import corpus as corpus_module

    rows: list[dict[str, Any]] = []
    waveforms: dict[int, np.ndarray] = {}
    for lang in corpus.langs:
        for position, sentence_id in enumerate(corpus.sentence_ids):
            rows.append({"sentence_id": sentence_id, "lang": lang, "modality": "text",
                         "text": corpus.texts[lang][position], "position": position})
    for lang in tqdm(corpus.langs, desc="speech", unit="lang"):
        waves = _speech_for(corpus_module, corpus, lang, speech_cache)
        for position, (sentence_id, wave) in enumerate(zip(corpus.sentence_ids, waves, strict=True)):
            waveforms[len(rows)] = np.asarray(wave, dtype=np.float32)
            rows.append({"sentence_id": sentence_id, "lang": lang, "modality": "speech",
                         "text": corpus.texts[lang][position], "position": position,
                         "voice": corpus_module.speech_voice(corpus, lang, position),
                         "duration_s": audio.duration_s(wave)})
    items = pd.DataFrame(rows, columns=["sentence_id", "lang", "modality", "text", "position",
                                        "duration_s", "voice"])
    return PreparedCorpus(corpus.name, corpus.source, list(corpus.langs), list(corpus.sentence_ids),
                          items, waveforms)


def _speech_for(corpus_module, corpus, lang: str, speech_cache: Path | None) -> list[np.ndarray]:
    from core.audio import EspeakError

    try:
        return corpus_module.speech_waveforms(corpus, lang, cache_dir=speech_cache)
    except (ValueError, EspeakError) as exc:  # no espeak-ng, or no voice for this language
        raise BuildError(f"cannot make speech for {lang}: {exc}. Drop it with --langs, or use a "
                         "corpus with recordings") from exc


class BatchTranscriber:
    """Transcribes speech batch by batch; ``frame`` gives transcript and CER per item.

    How well the model hears the (often synthetic) speech. ``max_new_tokens`` caps decoding (a model
    that hallucinates otherwise runs to its length limit); it is passed only to adapters whose
    ``transcribe`` takes it.
    """

    def __init__(self, adapter: ModelAdapter, max_new_tokens: int | None = None) -> None:
        self.adapter = adapter
        self.extra: dict[str, Any] = {}
        self.transcripts: list[str] = []
        if max_new_tokens is not None:
            if "max_new_tokens" in inspect.signature(adapter.transcribe).parameters:
                self.extra["max_new_tokens"] = max_new_tokens
            else:
                log.warning("%s: transcribe takes no max_new_tokens; --max-transcript-tokens "
                            "ignored", adapter.name)

    def __call__(self, batch: pd.DataFrame, waveforms: list[np.ndarray]) -> None:
        self.transcripts += self.adapter.transcribe(waveforms, batch.lang.tolist(),
                                                    batch_size=len(batch), **self.extra)

    def frame(self, items: pd.DataFrame) -> pd.DataFrame:
        from core.asr_quality import character_error_rate

        cer = [_cer(character_error_rate, ref, hyp, lang)
               for ref, hyp, lang in zip(items.text, self.transcripts, items.lang, strict=True)]
        return pd.DataFrame({"item_id": items.item_id, "transcript": self.transcripts, "cer": cer})


def transcribe_items(adapter: ModelAdapter, prepared: PreparedCorpus, items: pd.DataFrame,
                     batch_size: int, *, max_new_tokens: int | None = None) -> pd.DataFrame:
    """Transcript and CER per speech item, for adapters that transcribe but expose no speech component."""
    transcriber = BatchTranscriber(adapter, max_new_tokens)
    for start in tqdm(range(0, len(items), batch_size), desc=f"transcribe {adapter.name}",
                      unit="batch"):
        batch = items.iloc[start:start + batch_size]
        transcriber(batch, [prepared.waveforms[i] for i in batch.item_id])
    return transcriber.frame(items)


def component_states(adapter: ModelAdapter, comp: Component, items: pd.DataFrame,
                     prepared: PreparedCorpus, batch_size: int, *,
                     after_batch: Callable[[pd.DataFrame, list], None] | None = None,
                     pooling: str = "mean") -> Extraction:
    """Pooled states (n_items, n_layers, dim) and pooled position counts, rows in ``items`` order.

    ``after_batch(batch, inputs)`` runs after each batch (precompute transcribes there).
    """
    pooled, counts = [], []
    desc = f"{adapter.name} {comp.name}" + (" + transcribe" if after_batch else "")
    for start in tqdm(range(0, len(items), batch_size), desc=desc, unit="batch"):
        batch = items.iloc[start:start + batch_size]
        if comp.modality == "text":
            inputs: Sequence = batch.text.tolist()
        else:
            inputs = [prepared.waveforms[i] for i in batch.item_id]
        extra = {"targets": batch.text.tolist()} if adapter.reads_reference_text(comp.name) else {}
        extraction = adapter.extract(comp.name, inputs, batch.lang.tolist(),
                                     batch_size=batch_size, pooling=pooling, **extra)
        pooled.append(extraction.pooled)
        counts.append(extraction.n_positions)
        if after_batch is not None:
            after_batch(batch, list(inputs))
    states = np.concatenate(pooled).astype(np.float32, copy=False)
    expected = (len(items), comp.n_layers, comp.dim)
    if states.shape != expected:
        raise RuntimeError(f"{adapter.name} {comp.name}: extract gave shape {states.shape}, "
                           f"expected {expected} (items, layers, dim)")
    n_positions = np.concatenate(counts).astype(np.int64)
    if n_positions.shape != expected[:2]:
        raise RuntimeError(f"{adapter.name} {comp.name}: extract gave n_positions of shape "
                           f"{n_positions.shape}, expected {expected[:2]}")
    return Extraction(states, n_positions)


def stored_precision(states: np.ndarray, dtype: str) -> np.ndarray:
    """``states`` rounded to the store's activation dtype, as float32 (what reading them back gives)."""
    return np.asarray(states).astype(dtype).astype(np.float32, copy=False)


def text_length_values(adapter: ModelAdapter, text_items: pd.DataFrame) -> np.ndarray:
    """Token counts when the adapter can count them, otherwise characters."""
    if can_count_tokens(adapter):
        counts = adapter.token_counts(text_items.text.tolist(), text_items.lang.tolist())
        return np.asarray(counts, dtype=np.float64)
    return text_items.text.str.len().to_numpy(dtype=np.float64)


def compute_metrics(components: list[Component], states: dict[str, np.ndarray],
                    prepared: PreparedCorpus, lengths: dict[str, np.ndarray],
                    config: BuildConfig, *, langs: Sequence[str] | None = None,
                    modality_pairs: list[tuple[str, str]] | None = None) -> pd.DataFrame:
    """The run's metrics grid as store rows (one per pair, layer and metric).

    Coordinate-wise metrics (``NEEDS_SHARED_SPACE``: paired cosine, retrieval) are computed only for
    pairs whose points share a representation space; the other metrics for every pair.
    """
    from core.metrics.grid import compute_grid
    from core.metrics.similarity import NEEDS_SHARED_SPACE

    langs = list(langs) if langs is not None else list(prepared.langs)
    modality_of = {c.name: c.modality for c in components}
    pairs = metric_pairs(components, langs, modality_pairs)
    if not pairs:
        return pd.DataFrame()
    rows = {m: _rows_by_lang(prepared.modality_items(m, langs)) for m in ("text", "speech")}
    sides: dict[str, np.ndarray] = {}
    side_lengths: dict[str, np.ndarray] = {}
    for spec in pairs:
        for side in (spec.a, spec.b):
            if side.key not in sides:
                modality = modality_of[side.component]
                index = rows[modality][side.lang]
                sides[side.key] = states[side.component][index, side.layer, :]
                side_lengths[side.key] = lengths[modality][index]
    specs = metric_specs(config.metrics)
    groups = [([p for p in pairs if p.shared_space], specs),
              ([p for p in pairs if not p.shared_space],
               [m for m in specs if m.name not in NEEDS_SHARED_SPACE])]
    frames = []
    with tqdm(total=None, desc="metrics", unit="step") as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        for group, group_specs in groups:
            if not group or not group_specs:
                continue
            grid = compute_grid(sides, [(p.a.key, p.b.key) for p in group], group_specs,
                                lengths=side_lengths, n_permutations=config.n_permutations,
                                n_bootstrap=config.n_bootstrap, seed=config.seed,
                                device=config.device, progress=progress)
            frames.append(metric_rows(grid, group, pooling=config.pooling))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def metric_rows(grid: pd.DataFrame, pairs: list[PairSpec], *, pooling: str = "mean") -> pd.DataFrame:
    """Attach pairing, components, layers, depth, languages, space sharing and pooling to
    compute_grid's rows."""
    by_keys = {(p.a.key, p.b.key): p for p in pairs}
    specs = [by_keys[(a, b)] for a, b in zip(grid.key_a, grid.key_b)]
    described = pd.DataFrame({
        "pairing": [s.pairing for s in specs],
        "component_a": [s.a.component for s in specs], "component_b": [s.b.component for s in specs],
        "layer_a": [s.a.layer for s in specs], "layer_b": [s.b.layer for s in specs],
        "depth": [s.depth for s in specs],
        "lang_a": [s.a.lang for s in specs], "lang_b": [s.b.lang for s in specs],
        "modality_a": [s.modality_a for s in specs], "modality_b": [s.modality_b for s in specs],
        "shared_space": [s.shared_space for s in specs],
    })
    values = grid.drop(columns=["key_a", "key_b"]).reset_index(drop=True)
    out = pd.concat([described, values], axis=1)
    out["pooling"] = pooling
    return out


def metric_specs(names: Sequence[str] | None) -> list:
    """``--metrics`` names -> MetricSpecs from the grid's defaults (with their default params)."""
    from core.metrics.grid import DEFAULT_METRICS

    if not names:
        return list(DEFAULT_METRICS)
    known = {spec.name: spec for spec in DEFAULT_METRICS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(known)}")
    return [known[n] for n in names]


def compute_projections(components: list[Component], states: dict[str, np.ndarray],
                        prepared: PreparedCorpus, config: BuildConfig, *,
                        langs: Sequence[str] | None = None,
                        modality_pairs: list[tuple[str, str]] | None = None) -> pd.DataFrame:
    """UMAP maps per layer point; text and speech items together only where they share a space."""
    from core.projection import MIN_POINTS, umap_2d, umap_params

    by_name = {c.name: c for c in components}
    groups = projection_groups(components, modality_pairs)
    frames = []
    for group in tqdm(groups, desc="umap", unit="layer"):
        blocks, members = [], []
        for name, layer in group:
            items = prepared.modality_items(by_name[name].modality, langs)
            blocks.append(states[name][:, layer, :])
            members.append(pd.DataFrame({"component": name, "layer": layer, "item_id": items.item_id}))
        x = np.concatenate(blocks)
        if x.shape[0] < MIN_POINTS:
            log.warning("no UMAP for %s: %d items, at least %d needed", group, x.shape[0], MIN_POINTS)
            continue
        n_neighbors = min(config.umap_n_neighbors, x.shape[0] - 1)
        params = {**umap_params(n_neighbors=n_neighbors, min_dist=config.umap_min_dist,
                                seed=config.seed), "joint": [f"{n}:{layer}" for n, layer in group]}
        xy = umap_2d(x, n_neighbors=n_neighbors, min_dist=config.umap_min_dist, seed=config.seed)
        frame = pd.concat(members, ignore_index=True)
        frame["method"] = "umap"
        frame["x"], frame["y"] = xy[:, 0], xy[:, 1]
        frame["params"] = [params] * len(frame)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# ---------------------------------------------------------------------- small helpers
def language_frame(langs: Sequence[str]) -> pd.DataFrame:
    """Rows for the store's languages table, from core.languages."""
    from core import languages

    return languages.languages_frame(langs)


def can_transcribe(adapter: ModelAdapter) -> bool:
    return type(adapter).transcribe is not ModelAdapter.transcribe


def can_count_tokens(adapter: ModelAdapter) -> bool:
    return callable(getattr(adapter, "token_counts", None))


def run_id_for(model: str, now: datetime | None = None) -> str:
    """``<model>-<UTC time>``, with characters other than letters, digits, '.', '_' and '-' as '_'."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{re.sub(r'[^A-Za-z0-9._-]', '_', model)}-{stamp}"


def temp_path_for(out: Path) -> Path:
    return out.with_name(f"{out.name}.tmp-{os.getpid()}")


def collect_versions() -> dict[str, str | None]:
    """Software a run depended on, for reproducing it."""
    import core

    versions: dict[str, str | None] = {"python": platform.python_version(),
                                       "crossmodal_lens": core.__version__}
    for package in ("torch", "transformers", "duckdb", "numpy", "pandas", "umap-learn",
                    "scikit-learn", "librosa"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    try:
        from core.audio import espeak_version

        versions["espeak-ng"] = espeak_version()
    except Exception as exc:  # noqa: BLE001 - a missing espeak must not stop a build of recordings
        versions["espeak-ng"] = f"unavailable ({exc})"
    versions["git_commit"] = _git(["rev-parse", "HEAD"])
    status = _git(["status", "--porcelain"])
    versions["git_dirty"] = None if status is None else str(bool(status))
    return versions


def _git(args: list[str]) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _cer(character_error_rate, reference: str, hypothesis: str, lang: str) -> float:
    try:
        return character_error_rate(reference, hypothesis, lang)
    except ValueError:  # nothing left of the reference after normalisation: CER undefined
        return float("nan")


def _rows_by_lang(items: pd.DataFrame) -> dict[str, np.ndarray]:
    """lang -> row indices into ``items`` in sentence order."""
    return {lang: group.sort_values("position").index.to_numpy()
            for lang, group in items.groupby("lang", sort=False)}


@contextmanager
def staged_store(out: Path, *, compact: bool = False) -> Iterator[Path]:
    """A temp path beside ``out`` to write a store at; published over ``out`` atomically when the
    block ends normally (every Store on it closed by then), removed when it raises (also on Ctrl-C
    or SIGTERM, which the CLI turns into exceptions), so ``out`` is never half-written.

    ``compact`` publishes a fresh copy instead (DuckDB does not reuse the space of deleted rows).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(out)
    compacted = tmp.with_name(tmp.name + ".compact")
    _remove_store_files(tmp)
    _remove_store_files(compacted)
    try:
        yield tmp
        if compact:
            compact_copy(tmp, compacted)
            publish_atomically(compacted, out)
        else:
            publish_atomically(tmp, out)
    finally:
        _remove_store_files(tmp)
        _remove_store_files(compacted)


def _remove_store_files(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)
