"""A build's configuration and plan: the options (``BuildConfig``), the corpus they select, and the
runs they make (``Job``: a model under one configuration, named by a hash of what can change its rows).

A run's id is ``<model>-<hash>`` of its configuration (``run_key``: every option that can change
its rows, and a digest of the corpus), so rerunning a command finds the parts it had finished or
the run already complete in the store, and a changed configuration is a new run beside the old
ones. Also here: the JSON a run's plan records its config and components in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.models.base import Component
from core.store import ACTIVATION_DTYPES

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path("data/crossmodal_lens.duckdb")
CORPUS_FORMATS = ("line", "fleurs", "table")
BAD_AUDIO = ("refuse", "skip")

log = logging.getLogger("precompute")


class BuildError(RuntimeError):
    """A build cannot go on for a reason the user can fix (the message says how)."""


@dataclass(frozen=True)
class BuildConfig:
    """Everything a build depends on; recorded verbatim in each run's config."""

    models: tuple[str, ...]
    out: Path = DEFAULT_OUT
    corpus: str = "bundled"               # "bundled", a directory (or table file), hf:<repo>
    corpus_format: str = "line"           # "line" (FLORES-style), "fleurs", "table" (Parquet/Arrow)
    split: str = "test"                   # FLEURS split (or a table corpus's)
    suffix: str = ".dev"                  # line-aligned files are <lang><suffix>
    columns: str | None = None            # table corpus: "id=...,lang=...,text=...,audio=..."
    corpus_config: Path | None = None     # table corpus: JSON/TOML with columns and langs tables
    bad_audio: str = "refuse"             # a recording that is absent or does not read: or "skip"
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
    transcribe_sample: int | None = None  # transcribe the first N sentences per language and voice
    voices: int = 2                       # espeak-ng voices per language (a 2nd where the table has one)
    store_activations: bool = True        # False: metrics and maps only (a smaller store; no recompute)
    workers: int = 1                      # processes for the metric groups (changes no row)
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
        if (self.columns or self.corpus_config) and self.corpus_format != "table":
            raise ValueError("--columns and --corpus-config describe a Parquet/Arrow corpus: "
                             "give --corpus-format table too")
        if self.bad_audio not in BAD_AUDIO:
            raise ValueError(f"--bad-audio must be one of {BAD_AUDIO}, got {self.bad_audio!r}")
        if self.activation_dtype not in ACTIVATION_DTYPES:
            raise ValueError(f"activation dtype must be one of {ACTIVATION_DTYPES}")
        if self.batch_size < 1 or self.n_permutations < 0 or self.n_bootstrap < 0:
            raise ValueError("--batch-size must be >= 1 and --n-permutations/--n-bootstrap >= 0")
        if self.n_sentences is not None and self.n_sentences < 1:
            raise ValueError(f"--n-sentences must be >= 1, got {self.n_sentences}")
        if self.pooling not in ("mean", "last"):
            raise ValueError(f"--pooling must be 'mean' or 'last', got {self.pooling!r}")
        if self.transcribe_sample is not None and self.transcribe_sample < 1:
            raise ValueError(f"--transcribe-sample must be >= 1, got {self.transcribe_sample}")
        if self.voices not in (1, 2):
            raise ValueError(f"--voices must be 1 or 2, got {self.voices}")
        if self.unsupported_langs not in ("refuse", "skip"):
            raise ValueError("--unsupported-langs must be 'refuse' or 'skip', got "
                             f"{self.unsupported_langs!r}")

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}


def config_from_json(data: dict[str, Any]) -> BuildConfig:
    """The BuildConfig a run config (or ``BuildConfig.to_json``) records."""
    names = {f.name: f for f in dataclasses.fields(BuildConfig)}
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name not in names:
            continue
        if isinstance(value, list):
            value = tuple(value)
        if name in ("out", "speech_cache", "corpus_config") and value is not None:
            value = Path(value)
        kwargs[name] = value
    return BuildConfig(**kwargs)


# ---------------------------------------------------------------------- jobs (one per run)
#: options that change no row of a run: left out of its identity (``run_key``). The corpus options
#: are replaced by a digest of the corpus they select.
_KEY_NEUTRAL = ("models", "out", "speech_cache", "corpus", "corpus_format", "split", "suffix",
                "langs", "n_sentences", "workers", "columns", "corpus_config", "bad_audio")


@dataclass(frozen=True)
class Job:
    """One run to build: a model under one configuration, over one corpus."""

    model: str
    run_id: str
    key: str


def corpus_digest(corpus) -> str:
    """sha256 of what a corpus feeds a run: languages, ids, texts and recordings (path + size of a
    file; reference + the sha256 of its archive or table for a clip inside one)."""
    from core import audio_refs

    checksums = {f.path: f.sha256 for f in corpus.files}

    def identity(path: str | None):
        if path is None:
            return None
        if audio_refs.is_reference(path):
            return (path, checksums.get(str(audio_refs.container(path))))
        return (path, _size(path))

    digest = hashlib.sha256()
    digest.update(json.dumps([corpus.name, corpus.langs, corpus.sentence_ids]).encode())
    for lang in corpus.langs:
        digest.update(json.dumps(corpus.texts[lang], ensure_ascii=False).encode())
        digest.update(json.dumps([identity(p) for p in corpus.audio_paths[lang]]).encode())
    return digest.hexdigest()


def run_key(config: BuildConfig, model: str, digest: str) -> str:
    """A run's identity: its model, every option that can change its rows, and its corpus."""
    options = {k: v for k, v in config.to_json().items() if k not in _KEY_NEUTRAL}
    payload = json.dumps({"model": model, "options": options, "corpus": digest}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def run_id_for(model: str, key: str) -> str:
    """``<model>-<first 12 hex digits of the run key>`` (characters other than letters, digits,
    '.', '_' and '-' as '_'): the same configuration always names the same run."""
    return f"{re.sub(r'[^A-Za-z0-9._-]', '_', model)}-{key[:12]}"


def plan_jobs(config: BuildConfig, corpus) -> list[Job]:
    digest = corpus_digest(corpus)
    jobs = []
    for model in config.models:
        key = run_key(config, model, digest)
        jobs.append(Job(model, run_id_for(model, key), key))
    return jobs


# ---------------------------------------------------------------------- corpus
def load_corpus(config: BuildConfig):
    """The parallel corpus named by ``--corpus``, cut to ``--langs`` / ``--n-sentences``, every
    recording checked to read (``--bad-audio``: refuse the build, or leave those sentences out)."""
    return readable_corpus(read_corpus(config), config.bad_audio)


def read_corpus(config: BuildConfig):
    """The corpus ``--corpus`` / ``--corpus-format`` name (see docs/corpora.md)."""
    from core import corpus as corpus_module
    from core.corpus_fleurs import load_fleurs, split_file_name
    from core.corpus_hub import fetch_fleurs, fetch_table, is_hub_corpus

    langs = list(config.langs) if config.langs else None
    if config.corpus == "bundled":
        corpus = corpus_module.load_bundled()
        return corpus.subset(langs=langs, n_sentences=config.n_sentences)
    hub = is_hub_corpus(config.corpus)
    if hub and config.corpus_format != "table":
        root = fetch_fleurs(config.corpus, langs, split_file_name(config.split))
        return load_fleurs(root, split=config.split, langs=langs, n_sentences=config.n_sentences,
                           missing_audio=config.bad_audio)
    if config.corpus_format == "table":
        from core.corpus_table import (LANG_FROM_PATH, TableSpec, load_table_corpus, parse_columns,
                                       read_spec)
        from core.languages import corpus_labels

        spec = (read_spec(config.corpus_config, config.columns) if config.corpus_config
                else TableSpec(parse_columns(config.columns or "")))
        path = Path(config.corpus)
        if hub:  # a language read from the path: fetch only the chosen languages' folders
            folders = sorted({label for lang in langs or () for label in
                              corpus_labels(lang, spec.lang_map)}) \
                if spec.columns.lang == LANG_FROM_PATH else []
            path = fetch_table(config.corpus, config.split, folders=folders)
        return load_table_corpus(path, spec, split=config.split, langs=langs,
                                 n_sentences=config.n_sentences)
    path = Path(config.corpus)
    if not path.is_dir():
        raise FileNotFoundError(f"--corpus {config.corpus!r} is neither 'bundled' nor a directory "
                                "nor hf:<repo> (a Parquet/Arrow file needs --corpus-format table)")
    if config.corpus_format == "fleurs":
        return load_fleurs(path, split=config.split, langs=langs, n_sentences=config.n_sentences,
                           missing_audio=config.bad_audio)
    return corpus_module.load_line_aligned(path, suffix=config.suffix, langs=langs,
                                           n_sentences=config.n_sentences)


UNREADABLE_REASON = "audio does not read"


def readable_corpus(corpus, bad_audio: str = "refuse"):
    """``corpus`` once every recording opens: a BuildError naming the first bad clip (its file
    and member or row, language and sentence id), or with ``bad_audio="skip"`` the corpus less
    those sentences (in every language, logged and recorded in ``dropped``)."""
    from core.corpus_files import unreadable_clips

    problems = unreadable_clips(corpus)
    if not problems:
        return corpus
    ids = sorted({corpus.sentence_ids[position] for _, position, _ in problems})
    if bad_audio != "skip":
        lang, position, why = problems[0]
        raise BuildError(f"{why} ({lang}, sentence {corpus.sentence_ids[position]}); "
                         f"{len(problems)} clips of {len(ids)} sentences do not read. Replace the "
                         f"file, drop {lang} with --langs, or pass --bad-audio skip to leave those "
                         "sentences out")
    kept = corpus.without_sentences(ids, UNREADABLE_REASON)
    if not kept.sentence_ids:
        raise BuildError(f"no sentence of corpus {corpus.name!r} has readable audio in every "
                         f"language (first problem: {problems[0][2]})")
    log.warning("leaving out %d of %d sentences whose audio does not read (--bad-audio skip), "
                "e.g. %s", len(ids), len(corpus.sentence_ids), problems[0][2])
    return kept


# ---------------------------------------------------------------------- JSON
def component_to_json(comp: Component) -> dict[str, Any]:
    return {"name": comp.name, "modality": comp.modality, "dim": comp.dim, "space": comp.space,
            "description": comp.description, "conditioning": comp.conditioning,
            "layers": [{"name": p.name, "stage": p.stage, "depth": p.depth, "space": p.space}
                       for p in comp.layers]}


def component_from_json(data: dict[str, Any]) -> Component:
    from core.models.base import LayerPoint

    layers = tuple(LayerPoint(p["name"], p["stage"], float(p["depth"]), p["space"])
                   for p in data["layers"])
    return Component(data["name"], data["modality"], int(data["dim"]), data["space"], layers,
                     data["description"], dict(data["conditioning"] or {}))


def _size(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None
