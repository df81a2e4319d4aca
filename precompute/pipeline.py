"""The build: corpus -> speech -> transcripts -> pooled activations -> metrics -> projections -> store.

One store holds many runs (one per model x configuration), built in pieces:

1. **Parts** (``run_shard``): per run and language, the items (speech synthesised or decoded one
   clip at a time, durations kept, audio dropped), the run's token counts and transcripts, and each
   component's pooled states (length-bucketed batches, one batch of audio in memory) are written
   as Parquet parts under ``<out>.parts/<run_id>/`` (``precompute.staging``), each atomically.
   ``--shard I/N`` computes only the languages at positions I, I + N, ... (any scheduler; all
   shards name the same ``--out``); ``--executor ray`` runs the N shards as Ray tasks.
2. **Metrics and maps** (``finish_job``): one part per metric group (pairing, components, side a's
   layer; only those layers are read back) and per UMAP map.
3. **Publish** (``publish_job``): under ``<out>.lock``, the store is copied to ``<out>.tmp-<pid>``
   (or created), the run is added from its parts in one transaction, and the copy replaces
   ``<out>`` atomically (readers keep the old file until they reopen; the dashboard notices the new
   mtime). The run's parts are then removed.

A run's id is ``<model>-<hash>`` of its configuration (``run_key``: every option that can change
its rows, and a digest of the corpus), so rerunning a command finds the parts it had finished
(resume, after an exception, Ctrl-C or SIGKILL) or the run already complete in the store (a no-op
that says so), and a changed configuration is a new run beside the old ones. Items are shared by
all runs of a store; a run whose corpus holds other sentences under the same ids is refused.
Stores are never half-written: ``<out>`` changes only by an atomic rename, and bad input (unknown
model or language, empty or misaligned corpus, unreadable audio, unreadable or other-schema store)
is refused before anything is written.

What depends on the model is stored per run (``run_items``): the transcript and CER of each clip by
every model that can transcribe, the token count of each text by the run's own tokenizer. Each
run's config says which text length its length baseline used (``text_length_unit``: tokens or
characters), which pooling it used (``pooling``, also a column of every metric row) and what each
component is fed (``components``: conditioning, spaces). Coordinate-wise metrics (paired cosine,
retrieval) are computed only between points of one representation space.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import importlib.metadata
import inspect
import json
import logging
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from core.models.base import Component, Extraction, ModelAdapter
from core.store import ACTIVATION_DTYPES, Store, compact_copy, publish_atomically
from precompute.pairs import PairSpec, metric_pairs, projection_groups
from precompute.staging import Workspace, remove_stale_temp_files, store_lock

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


@dataclass
class PreparedCorpus:
    """The corpus as store items, plus the waveforms of its speech items (kept in memory)."""

    name: str
    source: str
    langs: list[str]
    sentence_ids: list[int]
    items: pd.DataFrame                     # one row per item, with item_id once stored
    waveforms: dict[int, np.ndarray] = field(default_factory=dict)  # item_id -> 16 kHz mono

    def modality_items(self, modality: str, langs: Sequence[str] | None = None, *,
                       voice_rank: int = 0) -> pd.DataFrame:
        """Items of one modality in the order pooled states are computed: lang order, then sentence
        (only ``langs`` when given); speech of voice ``voice_rank`` (0: each language's voice, 1:
        its second voice, where it has one)."""
        keep = (self.items.modality == modality) & (_voice_ranks(self.items) == voice_rank)
        if langs is not None:
            keep &= self.items.lang.isin(list(langs))
        return self.items[keep].reset_index(drop=True)

    def second_voice_langs(self) -> list[str]:
        """Languages (in run order) whose speech is also in a second voice."""
        ranks = _voice_ranks(self.items)
        present = set(self.items.lang[(self.items.modality == "speech") & (ranks == 1)])
        return [lang for lang in self.langs if lang in present]


def _voice_ranks(items: pd.DataFrame) -> pd.Series:
    if "voice_rank" not in items:
        return pd.Series(0, index=items.index)
    return items.voice_rank.fillna(0).astype(int)


# ---------------------------------------------------------------------- jobs (one per run)
#: options that change no row of a run: left out of its identity (``run_key``). The corpus options
#: are replaced by a digest of the corpus they select.
_KEY_NEUTRAL = ("models", "out", "speech_cache", "corpus", "corpus_format", "split", "suffix",
                "langs", "n_sentences", "workers")


@dataclass(frozen=True)
class Job:
    """One run to build: a model under one configuration, over one corpus."""

    model: str
    run_id: str
    key: str


@dataclass
class BuildResult:
    added: list[str] = field(default_factory=list)      # runs published into the store now
    complete: list[str] = field(default_factory=list)   # runs the store already held: no-op
    pending: list[str] = field(default_factory=list)    # runs left for `merge` (with --shard)
    shard: tuple[int, int] | None = None                # set when only one shard ran
    units_done: int = 0                                 # parts computed by this process
    units_skipped: int = 0                              # parts found done (resumed)

    @property
    def run_ids(self) -> list[str]:
        return [*self.complete, *self.added]


def corpus_digest(corpus) -> str:
    """sha256 of what a corpus feeds a run: languages, ids, texts and recordings (path + size)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([corpus.name, corpus.langs, corpus.sentence_ids]).encode())
    for lang in corpus.langs:
        digest.update(json.dumps(corpus.texts[lang], ensure_ascii=False).encode())
        audio = [(p, _size(p)) if p is not None else None for p in corpus.audio_paths[lang]]
        digest.update(json.dumps(audio).encode())
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


# ---------------------------------------------------------------------- the build
def build(config: BuildConfig, *, load_model: Callable[..., ModelAdapter] | None = None,
          command_line: Sequence[str] | None = None, shard: tuple[int, int] | None = None,
          executor: str = "local", n_shards: int | None = None) -> BuildResult:
    """Add one run per model to the store at ``config.out`` (created when absent).

    Runs the store already holds complete are left alone (a no-op, reported in ``complete``).
    Finished parts persist in ``<out>.parts/`` (see ``precompute.staging``), so rerunning the same
    command after a crash or kill resumes. ``shard=(i, n)`` computes only shard i's languages and
    publishes nothing (``merge`` does, once every shard is done); ``executor="ray"`` runs
    ``n_shards`` shards as Ray tasks and then publishes.
    """
    out = Path(config.out)
    check_out_store(out)
    corpus = load_corpus(config)
    check_corpus(corpus, config)
    if load_model is None:
        check_models(config.models)
    jobs = plan_jobs(config, corpus)
    result = BuildResult(shard=shard)
    complete = complete_runs(out)
    if any(job.run_id not in complete for job in jobs):
        check_items_fit(out, corpus)
    pending = []
    for job in jobs:
        if job.run_id in complete:
            log.info("run %s (%s) is already complete in %s: nothing to do", job.run_id,
                     job.model, out)
            result.complete.append(job.run_id)
            Workspace(out).remove_job(job.run_id)  # a publish killed before cleaning up
        else:
            pending.append(job)
    if not pending:
        return result
    log.info("corpus %s: %d languages x %d sentences (%s)", corpus.name, len(corpus.langs),
             len(corpus.sentence_ids), corpus.source)
    if executor == "ray":
        from precompute.executors import run_ray_shards

        done, skipped = run_ray_shards(config, pending, n_shards, command_line=command_line)
    else:
        done, skipped = run_shard(config, corpus, pending, shard or (0, 1),
                                  load_model=load_model, command_line=command_line)
    result.units_done, result.units_skipped = done, skipped
    if shard is not None:
        result.pending = [job.run_id for job in pending]
        return result
    for job in pending:
        if finish_job(out, job.run_id, workers=config.workers) == "added":
            result.added.append(job.run_id)
        else:
            result.complete.append(job.run_id)
    return result


def merge(out: Path, workers: int = 1) -> BuildResult:
    """Publish every run whose parts all shards have finished (``python -m precompute merge``)."""
    out = Path(out)
    check_out_store(out)
    workspace = Workspace(out)
    run_ids = workspace.job_ids()
    if not run_ids:
        raise BuildError(f"nothing to merge: no {workspace.root} with shard outputs; run "
                         "`python -m precompute build ... --out {out} --shard I/N` for every "
                         "shard first".replace("{out}", str(out)))
    missing = {run_id: missing_parts(workspace, workspace.read_job(run_id)) for run_id in run_ids}
    unfinished = {run_id: parts for run_id, parts in missing.items() if parts}
    if unfinished:
        run_id, parts = next(iter(unfinished.items()))
        raise BuildError(f"cannot merge {out}: run {run_id} lacks {len(parts)} parts (e.g. "
                         f"{parts[0]}); finish every `--shard I/N` of its build, then merge again")
    result = BuildResult()
    for run_id in run_ids:
        (result.added if finish_job(out, run_id, workers=workers) == "added"
         else result.complete).append(run_id)
    return result


def check_out_store(out: Path) -> None:
    """``--out`` must be absent or a current-schema store (checked before anything is written)."""
    if out.is_dir():
        raise BuildError(f"--out {out} is a directory; name a store file, e.g. {out / 'lens.duckdb'}")
    if out.exists():
        with Store.open(out):  # StoreError / SchemaMismatchError: unreadable, newer or older
            pass


def check_items_fit(out: Path, corpus) -> None:
    """A store holds one corpus: refuse (before any work) a corpus whose sentences differ from the
    store's items under the same (lang, sentence_id)."""
    from core import corpus as corpus_module

    if not out.exists():
        return
    with Store.open(out) as store:
        stored = store.items()
    stored = stored[stored.lang.isin(corpus.langs)]
    if stored.empty:
        return
    position = {sid: i for i, sid in enumerate(corpus.sentence_ids)}
    voices: dict[tuple[str, int], str] = {}
    for row in stored.itertuples():
        i = position.get(int(row.sentence_id))
        if i is None:
            continue
        expected_voice = None
        if row.modality == "speech":
            key = (row.lang, i)
            if key not in voices:
                voices[key] = corpus_module.speech_voice(corpus, row.lang, i)
            expected_voice = voices[key]
        if row.text != corpus.texts[row.lang][i] or (row.modality == "speech"
                                                      and row.voice != expected_voice):
            what = "text" if row.text != corpus.texts[row.lang][i] else "speech"
            raise BuildError(
                f"{out} already holds other {what} for {row.lang} sentence {row.sentence_id} "
                f"({row.text!r}) than this corpus ({corpus.texts[row.lang][i]!r}); a store holds one "
                "corpus: build this one into another --out")


def complete_runs(out: Path) -> set[str]:
    if not out.exists():
        return set()
    with Store.open(out) as store:
        runs = store.runs()
    return set(runs[runs.status == "complete"].run_id)


def check_models(models: Sequence[str]) -> None:
    """Every ``--model`` names a known model (no weights are loaded)."""
    from core.models import registry

    for name in models:
        registry.resolve(name)


def check_corpus(corpus, config: BuildConfig) -> None:
    """Refuse, before anything is written, a corpus the build could not finish."""
    from core import audio, languages

    if not corpus.sentence_ids or not corpus.langs:
        raise BuildError(f"corpus {corpus.name!r} ({corpus.source}) has no sentences; give a "
                         "corpus with at least one line per language")
    for lang in corpus.langs:
        try:
            languages.language(lang)
        except KeyError:
            raise BuildError(f"unknown language code {lang!r}: not in the language table "
                             "(data/corpus/languages.tsv); use FLORES-200 codes such as "
                             "eng_Latn or deu_Latn") from None
    synthesised = [lang for lang in corpus.langs if any(p is None for p in corpus.audio_paths[lang])]
    for lang in synthesised:
        try:
            languages.espeak_voice(lang)
        except ValueError as exc:
            raise BuildError(f"cannot make speech for {lang}: {exc}. Drop it with --langs, or use "
                             "a corpus with recordings") from exc
    if synthesised:
        try:
            audio.espeak_version()
        except audio.EspeakError as exc:
            raise BuildError(f"cannot make speech for {', '.join(synthesised)}: {exc}. Install "
                             "espeak-ng, or use a corpus with recordings") from exc
    import soundfile

    for lang in corpus.langs:
        for path in corpus.audio_paths[lang]:
            if path is None:
                continue
            try:
                soundfile.info(path)
            except Exception as exc:  # noqa: BLE001 - libsndfile's errors have no common base
                raise BuildError(f"cannot read audio {path} ({lang}): "
                                 f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                                 f"; replace the file or drop {lang} with --langs") from None


# ---------------------------------------------------------------------- stage 1: parts, per shard
def run_shard(config: BuildConfig, corpus, jobs: Sequence[Job], shard: tuple[int, int] = (0, 1), *,
              load_model: Callable[..., ModelAdapter] | None = None,
              command_line: Sequence[str] | None = None) -> tuple[int, int]:
    """Compute shard ``i`` of ``n``'s parts of every job: its languages are the corpus languages at
    positions i, i + n, ...; parts already there are skipped. Returns (computed, skipped)."""
    if load_model is None:
        from core.models.registry import load_model
    index, count = shard
    if not 0 <= index < count:
        raise BuildError(f"--shard {index}/{count}: I must be in 0..{count - 1}")
    shard_langs = [lang for i, lang in enumerate(corpus.langs) if i % count == index]
    if not shard_langs:
        log.warning("shard %d/%d has no languages (the corpus has %d)", index, count,
                    len(corpus.langs))
    workspace = Workspace(config.out)
    workspace.remove_stale_temp_parts()
    done = skipped = 0
    versions: dict[str, Any] | None = None
    for job in jobs:
        plan = workspace.read_job(job.run_id)
        if plan is not None:
            own = [lang for lang in plan["run_langs"] if lang in shard_langs]
            if not missing_parts(workspace, plan, own):
                log.info("%s: shard %d/%d already done", job.run_id, index, count)
                skipped += len(own)
                continue
        adapter = load_model(job.model, device=config.device)
        versions = versions or collect_versions()
        plan = workspace.write_job(job.run_id, make_plan(job, adapter, corpus, config, versions,
                                                         command_line))
        for lang in (lang for lang in plan["run_langs"] if lang in shard_langs):
            d, s = run_language(workspace, plan, adapter, corpus, lang, config)
            done, skipped = done + d, skipped + s
        del adapter
        gc.collect()  # free the model (and its GPU memory) before loading the next
    return done, skipped


def make_plan(job: Job, adapter: ModelAdapter, corpus, config: BuildConfig,
              versions: dict[str, Any], command_line: Sequence[str] | None) -> dict[str, Any]:
    """What a run computes (written once to its job.json): its config, components, languages."""
    adapter.check_pooling(config.pooling)
    run_langs = supported_langs(adapter, corpus.langs, config.unsupported_langs)
    components = adapter.components()
    speech_components = [c for c in components if c.modality == "speech"]
    transcribe = bool(config.transcribe and can_transcribe(adapter))
    run_config = {
        **config.to_json(),
        "command_line": list(command_line) if command_line is not None else None,
        "model": job.model, "model_info": adapter.info(),
        "corpus_name": corpus.name, "corpus_source": corpus.source,
        "corpus_langs": list(corpus.langs), "n_sentence_ids": len(corpus.sentence_ids),
        "run_langs": run_langs,
        "skipped_langs": [lang for lang in corpus.langs if lang not in run_langs],
        "transcribed": transcribe,
        "text_length_unit": "tokens" if can_count_tokens(adapter) else "characters",
        "components": {c.name: {"modality": c.modality, "space": c.space,
                                "conditioning": c.conditioning} for c in components},
        "modality_pairs": [list(p) for p in adapter.modality_pairs()],
        "run_key": job.key,
    }
    return json.loads(json.dumps({
        "run_id": job.run_id, "key": job.key, "model": job.model, "run_config": run_config,
        "versions": versions, "run_langs": run_langs, "sentence_ids": list(corpus.sentence_ids),
        "components": [component_to_json(c) for c in components],
        "modality_pairs": [list(p) for p in adapter.modality_pairs()],
        "count_tokens": can_count_tokens(adapter),
        "resource_levels": run_resource_levels(adapter, run_langs),
        "transcribe_with": (None if not transcribe else
                            speech_components[0].name if speech_components else "separate"),
    }, default=_json_default))


def missing_parts(workspace: Workspace, plan: dict[str, Any],
                  langs: Sequence[str] | None = None) -> list[str]:
    """The stage-1 parts of ``plan`` not yet written, for ``langs`` (default: the run's)."""
    run_id = plan["run_id"]
    missing = []
    for lang in plan["run_langs"] if langs is None else langs:
        names = [("items", lang)]
        if plan["count_tokens"]:
            names.append(("tokens", lang))
        if plan["transcribe_with"]:
            names.append(("transcripts", lang))
        names += [("activations", c["name"], lang) for c in plan["components"]]
        missing += ["/".join(n) for n in names if not workspace.has(run_id, *n)]
    return missing


def run_language(workspace: Workspace, plan: dict[str, Any], adapter: ModelAdapter, corpus,
                 lang: str, config: BuildConfig) -> tuple[int, int]:
    """One language's parts of one run: items, token counts, transcripts, each component's pooled
    states. Each part is skipped when present and written atomically when computed."""
    run_id = plan["run_id"]
    done = skipped = 0
    # a model without a speech component reads no speech: none is synthesised or decoded for it
    hears = any(c["modality"] == "speech" for c in plan["components"])
    items = language_items(workspace, run_id, corpus, lang, config.speech_cache,
                           config.voices if hears else 0)
    text = items[items.modality == "text"].reset_index(drop=True)
    speech = items[items.modality == "speech"].reset_index(drop=True)

    def waveform(row) -> np.ndarray:
        return _waveform(corpus, lang, int(row.position), config.speech_cache,
                         int(getattr(row, "voice_rank", 0) or 0))

    if plan["count_tokens"]:
        if workspace.has(run_id, "tokens", lang):
            skipped += 1
        else:
            counts = adapter.token_counts(text.text.tolist(), text.lang.tolist())
            workspace.write_part(pd.DataFrame({
                "lang": text.lang, "modality": "text", "sentence_id": text.sentence_id,
                "n_tokens": np.asarray(counts, dtype=np.int64)}), run_id, "tokens", lang)
            done += 1
    if plan["transcribe_with"] == "separate":
        if workspace.has(run_id, "transcripts", lang):
            skipped += 1
        else:
            transcriber = BatchTranscriber(adapter, config.max_transcript_tokens,
                                           config.transcribe_sample)
            for batch in length_batches(speech, speech.duration_s.to_numpy(), config.batch_size):
                transcriber(batch, [waveform(row) for row in batch.itertuples()])
            workspace.write_part(transcriber.frame(), run_id, "transcripts", lang)
            done += 1
    for comp in adapter.components():
        if workspace.has(run_id, "activations", comp.name, lang):
            skipped += 1
            continue
        rows = text if comp.modality == "text" else speech
        # Transcribe right after the first speech component's batches: the adapter can reuse the
        # encoder pass it just made (Whisper caches its last encoder outputs).
        transcriber = (BatchTranscriber(adapter, config.max_transcript_tokens,
                                        config.transcribe_sample)
                       if plan["transcribe_with"] == comp.name else None)
        extraction = component_states(adapter, comp, rows, waveform, config.batch_size,
                                      after_batch=transcriber, pooling=config.pooling,
                                      desc=f"{adapter.name} {comp.name} {lang}")
        if transcriber is not None:  # before the activations part, which marks both done
            workspace.write_part(transcriber.frame(), run_id, "transcripts", lang)
        workspace.write_part(activation_frame(comp.name, rows, extraction,
                                              config.activation_dtype),
                             run_id, "activations", comp.name, lang)
        done += 1
    return done, skipped


def language_items(workspace: Workspace, run_id: str, corpus, lang: str,
                   speech_cache: Path | None, voices: int = 1) -> pd.DataFrame:
    """The items of one language (text, then speech with duration and voice, in up to ``voices``
    voices; none for ``voices=0``), from its part or made now; speech is synthesised or decoded
    one clip at a time and not kept."""
    from core import audio
    from core import corpus as corpus_module

    if workspace.has(run_id, "items", lang):
        return workspace.read_part(run_id, "items", lang)
    rows: list[dict[str, Any]] = []
    for position, sentence_id in enumerate(corpus.sentence_ids):
        rows.append({"sentence_id": sentence_id, "lang": lang, "modality": "text",
                     "text": corpus.texts[lang][position], "position": position,
                     "duration_s": None, "voice": None})
    n_voices = corpus_module.voice_count(corpus, lang, voices) if voices > 0 else 0
    for voice_rank in range(n_voices):
        for position, sentence_id in enumerate(tqdm(corpus.sentence_ids, leave=False,
                                                    desc=f"speech {lang} voice {voice_rank + 1}")):
            wave = _waveform(corpus, lang, position, speech_cache, voice_rank)
            rows.append({"sentence_id": sentence_id, "lang": lang, "modality": "speech",
                         "text": corpus.texts[lang][position], "position": position,
                         "duration_s": audio.duration_s(wave),
                         "voice": corpus_module.speech_voice(corpus, lang, position, voice_rank),
                         "voice_rank": voice_rank})
            del wave
    items = pd.DataFrame(rows, columns=["sentence_id", "lang", "modality", "text", "position",
                                        "duration_s", "voice", "voice_rank"])
    items["duration_s"] = items.duration_s.astype("float64")
    items["voice_rank"] = items.voice_rank.fillna(0).astype("int64")
    workspace.write_part(items, run_id, "items", lang)
    return items


def _waveform(corpus, lang: str, position: int, speech_cache: Path | None,
              voice_rank: int = 0) -> np.ndarray:
    from core import corpus as corpus_module
    from core.audio import EspeakError

    try:
        wave = corpus_module.speech_waveform(corpus, lang, position, cache_dir=speech_cache,
                                             voice_rank=voice_rank)
    except (ValueError, EspeakError) as exc:  # no espeak-ng, no voice, or undecodable audio
        raise BuildError(f"cannot make speech for {lang}: {exc}. Drop it with --langs, or use a "
                         "corpus with recordings") from exc
    return np.asarray(wave, dtype=np.float32)


def activation_frame(component: str, items: pd.DataFrame, extraction: Extraction,
                     dtype: str) -> pd.DataFrame:
    """A component's pooled states as part rows: one per (layer, item), vectors in the store's
    ``dtype`` encoding (``core.store.vectors``), ordered by layer."""
    from core.store.vectors import encode_vectors

    states = np.asarray(extraction.pooled, dtype=np.float32)
    n_items, n_layers, dim = states.shape
    by_layer = states.transpose(1, 0, 2).reshape(n_layers * n_items, dim)
    voice_rank = (items.voice_rank.fillna(0).to_numpy(dtype=np.int64) if "voice_rank" in items
                  else np.zeros(n_items, dtype=np.int64))
    return pd.DataFrame({
        "component": component,
        "layer": np.repeat(np.arange(n_layers, dtype=np.int64), n_items),
        "lang": np.tile(items.lang.to_numpy(), n_layers),
        "modality": np.tile(items.modality.to_numpy(), n_layers),
        "sentence_id": np.tile(items.sentence_id.to_numpy(dtype=np.int64), n_layers),
        "voice_rank": np.tile(voice_rank, n_layers),
        "dtype": dtype, "dim": dim,
        "vector": encode_vectors(by_layer, dtype),
        "n_positions": extraction.n_positions.T.reshape(-1).astype(np.int64),
    })


def length_batches(items: pd.DataFrame, lengths: np.ndarray,
                   batch_size: int) -> Iterator[pd.DataFrame]:
    """``items`` in batches of similar length (shortest first, ties in item order), so little of
    each batch is padding."""
    order = np.argsort(np.asarray(lengths, dtype=np.float64), kind="stable")
    for start in range(0, len(order), batch_size):
        yield items.iloc[order[start:start + batch_size]]


class BatchTranscriber:
    """Transcribes speech batch by batch; ``frame`` gives transcript and CER per item seen.

    How well the model hears the (often synthetic) speech. ``max_new_tokens`` caps decoding (a model
    that hallucinates otherwise runs to its length limit); it is passed only to adapters whose
    ``transcribe`` takes it.
    """

    def __init__(self, adapter: ModelAdapter, max_new_tokens: int | None = None,
                 sample: int | None = None) -> None:
        self.adapter = adapter
        self.sample = sample  # only sentences at positions < sample (per language and voice)
        self.extra: dict[str, Any] = {}
        self.transcripts: list[str] = []
        self.batches: list[pd.DataFrame] = []
        if max_new_tokens is not None:
            if "max_new_tokens" in inspect.signature(adapter.transcribe).parameters:
                self.extra["max_new_tokens"] = max_new_tokens
            else:
                log.warning("%s: transcribe takes no max_new_tokens; --max-transcript-tokens "
                            "ignored", adapter.name)

    def __call__(self, batch: pd.DataFrame, waveforms: list[np.ndarray]) -> None:
        if self.sample is not None:
            chosen = (batch.position < self.sample).to_numpy()
            if not chosen.any():
                return
            batch = batch[chosen]
            waveforms = [w for w, keep in zip(waveforms, chosen, strict=True) if keep]
        self.transcripts += self.adapter.transcribe(waveforms, batch.lang.tolist(),
                                                    batch_size=len(batch), **self.extra)
        if "voice_rank" not in batch:
            batch = batch.assign(voice_rank=0)
        self.batches.append(batch[["lang", "modality", "sentence_id", "voice_rank", "text"]])

    def frame(self) -> pd.DataFrame:
        """lang, modality, sentence_id, voice_rank, transcript, cer of every item transcribed, in
        item order."""
        from core.asr_quality import character_error_rate

        seen = pd.concat(self.batches, ignore_index=True) if self.batches else \
            pd.DataFrame(columns=["lang", "modality", "sentence_id", "voice_rank", "text"])
        cer = [_cer(character_error_rate, ref, hyp, lang)
               for ref, hyp, lang in zip(seen.text, self.transcripts, seen.lang, strict=True)]
        out = seen.drop(columns=["text"]).assign(transcript=self.transcripts,
                                                 cer=np.asarray(cer, dtype=np.float64))
        out["voice_rank"] = out.voice_rank.astype("int64")
        return out.sort_values(["lang", "voice_rank", "sentence_id"],
                               kind="stable").reset_index(drop=True)


def component_states(adapter: ModelAdapter, comp: Component, items: pd.DataFrame,
                     waveform: Callable[[Any], np.ndarray], batch_size: int, *,
                     after_batch: Callable[[pd.DataFrame, list], None] | None = None,
                     pooling: str = "mean", desc: str | None = None) -> Extraction:
    """Pooled states (n_items, n_layers, dim) and pooled position counts, rows in ``items`` order.

    Items go through the model in length-bucketed batches; speech is loaded one batch at a time
    (``waveform(row)``) and dropped after it, so memory holds one batch of audio. ``after_batch(batch,
    inputs)`` runs after each batch (precompute transcribes there).
    """
    expected = (len(items), comp.n_layers, comp.dim)
    states = np.zeros(expected, dtype=np.float32)
    n_positions = np.zeros(expected[:2], dtype=np.int64)
    lengths = (items.text.str.len().to_numpy() if comp.modality == "text"
               else items.duration_s.to_numpy(dtype=np.float64))
    row_of = pd.Series(np.arange(len(items)), index=items.index)
    desc = (desc or f"{adapter.name} {comp.name}") + (" + transcribe" if after_batch else "")
    n_batches = -(-len(items) // batch_size)
    for batch in tqdm(length_batches(items, lengths, batch_size), total=n_batches, desc=desc,
                      unit="batch", leave=False):
        if comp.modality == "text":
            inputs: list = batch.text.tolist()
        else:
            inputs = [waveform(row) for row in batch.itertuples()]
        extra = {"targets": batch.text.tolist()} if adapter.reads_reference_text(comp.name) else {}
        extraction = adapter.extract(comp.name, inputs, batch.lang.tolist(),
                                     batch_size=batch_size, pooling=pooling, **extra)
        pooled = np.asarray(extraction.pooled, dtype=np.float32)
        counts = np.asarray(extraction.n_positions)
        if pooled.shape != (len(batch), *expected[1:]):
            raise RuntimeError(f"{adapter.name} {comp.name}: extract gave shape {pooled.shape}, "
                               f"expected {(len(batch), *expected[1:])} (items, layers, dim)")
        if counts.shape != (len(batch), expected[1]):
            raise RuntimeError(f"{adapter.name} {comp.name}: extract gave n_positions of shape "
                               f"{counts.shape}, expected {(len(batch), expected[1])}")
        rows = row_of.loc[batch.index].to_numpy()
        states[rows] = pooled
        n_positions[rows] = counts
        if after_batch is not None:
            after_batch(batch, inputs)
        del inputs
    return Extraction(states, n_positions)


# ---------------------------------------------------------------------- stage 2: metrics, maps, publish
def finish_job(out: Path, run_id: str, *, workers: int = 1) -> str:
    """Metrics and maps of a run whose stage-1 parts are all there (each group a part, resumable),
    then publish it into the store. Returns "added", or "complete" when the store had it.

    ``workers`` > 1 computes the metric groups in that many processes (each with its share of the
    CPU threads): most of a group's time is many small tensor operations per pair, which one
    process does not spread over the cores. The parts are the same whoever computes them.
    """
    workspace = Workspace(out)
    plan = workspace.read_job(run_id)
    if plan is None:
        raise BuildError(f"no parts of run {run_id} in {workspace.root}; build it first")
    missing = missing_parts(workspace, plan)
    if missing:
        raise BuildError(f"run {run_id}: {len(missing)} parts are missing (e.g. {missing[0]}); "
                         "run every shard of the build, then `python -m precompute merge`")
    run = _RunParts.read(workspace, plan)
    config, langs, components = run.config, run.langs, run.components
    modality_pairs, prepared, states = run.modality_pairs, run.prepared, run.states
    groups = run.groups
    todo = [gid for gid in range(len(groups))
            if not (workspace.has(run_id, "metrics", f"{gid:06d}")
                    and workspace.has(run_id, "variants", f"{gid:06d}"))]
    if workers > 1 and len(todo) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_limit_threads, initargs=(threads,)) as pool:
            futures = [pool.submit(metric_group_parts, str(out), run_id, gid) for gid in todo]
            for future in tqdm(as_completed(futures), total=len(futures),
                               desc=f"metrics {run_id} ({workers} workers)", unit="group"):
                future.result()
    else:
        for gid in tqdm(todo, desc=f"metrics {run_id}", unit="group"):
            _group_parts(workspace, run, gid)
    if config.umap:
        maps = projection_groups(components, modality_pairs)
        todo = [(gid, g) for gid, g in enumerate(maps)
                if not workspace.has(run_id, "projections", f"{gid:06d}")]
        for gid, group in tqdm(todo, desc=f"umap {run_id}", unit="map"):
            frame = compute_projections(components, states, prepared, config, langs=langs,
                                        modality_pairs=modality_pairs, groups=[group],
                                        progress=False)
            if not frame.empty:
                frame["params"] = [_json(p) for p in frame["params"]]
            workspace.write_part(_with_columns(frame, PROJECTION_PART_COLUMNS), run_id,
                                 "projections", f"{gid:06d}")
    return publish_job(out, workspace, plan)


@dataclass
class _RunParts:
    """What the metric and map stages of a run read from its plan and stage-1 parts (the same in
    ``finish_job`` and in each ``--workers`` process)."""

    run_id: str
    config: BuildConfig
    langs: list[str]
    components: list[Component]
    modality_pairs: list[tuple[str, str]]
    prepared: PreparedCorpus
    states: PartStates
    lengths: dict
    groups: list[list[PairSpec]]

    @classmethod
    def read(cls, workspace: Workspace, plan: dict[str, Any]) -> _RunParts:
        run_id = plan["run_id"]
        langs = list(plan["run_langs"])
        components = [component_from_json(c) for c in plan["components"]]
        modality_pairs = [tuple(p) for p in plan["modality_pairs"]]
        prepared = prepared_from_parts(workspace, plan)
        groups = metric_groups(metric_pairs(components, langs, modality_pairs,
                                            second_voice_langs=prepared.second_voice_langs()))
        return cls(run_id, config_from_json(plan["run_config"]), langs, components,
                   modality_pairs, prepared, PartStates(workspace, run_id, prepared, components),
                   part_lengths(workspace, plan, prepared), groups)


def _group_parts(workspace: Workspace, run: _RunParts, gid: int) -> None:
    """One metric group's metrics part and variants part (each skipped when present)."""
    name, group = f"{gid:06d}", run.groups[gid]
    if not workspace.has(run.run_id, "metrics", name):
        frame = compute_metrics(run.components, run.states, run.prepared, run.lengths, run.config,
                                langs=run.langs, modality_pairs=run.modality_pairs, pairs=group,
                                progress=False)
        workspace.write_part(_with_columns(frame, METRIC_PART_COLUMNS), run.run_id, "metrics",
                             name)
    if not workspace.has(run.run_id, "variants", name):
        frame = compute_metric_variants(run.components, run.states, run.prepared, run.lengths,
                                        run.config, group, langs=run.langs)
        workspace.write_part(_with_columns(frame, VARIANT_PART_COLUMNS), run.run_id, "variants",
                             name)


def metric_group_parts(out: str, run_id: str, gid: int) -> None:
    """A worker process's share of ``finish_job``: group ``gid`` of a run, from its parts."""
    workspace = Workspace(Path(out))
    _group_parts(workspace, _RunParts.read(workspace, workspace.read_job(run_id)), gid)


def _limit_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


METRIC_PART_COLUMNS = {
    "pairing": object, "component_a": object, "component_b": object, "layer_a": "int64",
    "layer_b": "int64", "depth": "float64", "lang_a": object, "lang_b": object,
    "modality_a": object, "modality_b": object, "shared_space": bool, "metric": object,
    "params": object, "n_samples": "int64", "value": "float64", "baseline_mean": "float64",
    "baseline_std": "float64", "ci_low": "float64", "ci_high": "float64",
    "length_baseline": "float64", "value_residualised": "float64", "pooling": object,
    "ci_method": object, "resamples": object}
VARIANT_PART_COLUMNS = {
    "variant": object, "pairing": object, "component_a": object, "component_b": object,
    "layer_a": "int64", "layer_b": "int64", "depth": "float64", "lang_a": object, "lang_b": object,
    "metric": object, "params": object, "n_samples": "int64", "value": "float64",
    "baseline_mean": "float64", "baseline_std": "float64"}
PROJECTION_PART_COLUMNS = {
    "component": object, "layer": "int64", "lang": object, "modality": object,
    "sentence_id": "int64", "method": object, "x": "float64", "y": "float64", "params": object}


def publish_job(out: Path, workspace: Workspace, plan: dict[str, Any]) -> str:
    """Copy the store (or start one), add the run from its parts in one transaction, and publish
    the copy atomically, all under the store's lock; then drop the run's parts."""
    run_id = plan["run_id"]
    with store_lock(out):
        remove_stale_temp_files(out)
        if run_id in complete_runs(out):
            log.info("run %s is already complete in %s: nothing to do", run_id, out)
            workspace.remove_job(run_id)
            return "complete"
        with staged_store(out) as tmp:
            if out.exists():
                _copy_store_file(out, tmp)
                store = Store.open(tmp, read_only=False)
            else:
                store = Store.create(tmp)
            with store, store.transaction():
                add_run_from_parts(store, workspace, plan)
        workspace.remove_job(run_id)
    log.info("published %s (run %s added)", out, run_id)
    return "added"


def add_run_from_parts(store: Store, workspace: Workspace, plan: dict[str, Any]) -> None:
    run_id = plan["run_id"]
    langs = list(plan["run_langs"])
    components = [component_from_json(c) for c in plan["components"]]
    items = pd.concat([workspace.read_part(run_id, "items", lang) for lang in langs],
                      ignore_index=True)
    items["_m"] = items.modality.map({"text": 0, "speech": 1})
    items["_l"] = items.lang.map(langs.index)
    items["voice_rank"] = _voice_ranks(items)
    items = items.sort_values(["_m", "_l", "voice_rank", "position"]).drop(columns=["_m", "_l"])

    known = set(store.languages().lang)
    new_langs = [lang for lang in langs if lang not in known]
    if new_langs:
        store.add_languages(language_frame(new_langs))
    existing = store.items(all_voices=True)
    key = ["lang", "modality", "sentence_id", "voice_rank"]
    both = items.merge(existing[[*key, "item_id", "text", "voice"]], on=key, how="left",
                       suffixes=("", "_stored"))
    clash = both[both.item_id.notna() & ((both.text != both.text_stored)
                                         | ((both.modality == "speech")
                                            & (both.voice != both.voice_stored)))]
    if not clash.empty:
        first = clash.iloc[0]
        raise BuildError(
            f"{store.path.name}: the store already holds other {first.modality} for "
            f"{first.lang} sentence {first.sentence_id} ({first.text_stored!r} by "
            f"{first.voice_stored or 'text'}) than this run's ({first.text!r}); a store holds one "
            "corpus: build this one into another --out")
    fresh = both[both.item_id.isna()]
    if not fresh.empty:
        store.add_items(fresh[["sentence_id", "lang", "modality", "text", "duration_s", "voice",
                               "voice_rank"]])
    ids = store.items(all_voices=True)[[*key, "item_id"]]

    store.add_run(run_id, plan["model"], plan["run_config"], plan["versions"])
    store.add_components(run_id, components)
    levels = plan.get("resource_levels")
    store.set_run_languages(run_id, pd.DataFrame(levels) if levels else
                            _proxy_levels(langs, plan["model"]))
    for kind, columns in (("tokens", ["n_tokens"]), ("transcripts", ["transcript", "cer"])):
        parts = [workspace.read_part(run_id, kind, lang) for lang in langs
                 if workspace.has(run_id, kind, lang)]
        if parts:
            frame = pd.concat(parts, ignore_index=True)
            frame["voice_rank"] = _voice_ranks(frame)
            frame = frame.merge(ids, on=key, validate="one_to_one")
            store.set_run_items(run_id, frame[["item_id", *columns]])
    if plan["run_config"].get("store_activations", True):
        store.add_activation_parts(run_id, [workspace.part(run_id, "activations", c.name, lang)
                                            for c in components for lang in langs])
    for path in sorted((workspace.job_dir(run_id) / "metrics").glob("*.parquet")):
        frame = workspace.read_part(run_id, "metrics", path.stem)
        if not frame.empty:
            store.add_metrics(run_id, frame)
    variant_dir = workspace.job_dir(run_id) / "variants"
    for path in sorted(variant_dir.glob("*.parquet")) if variant_dir.is_dir() else []:
        frame = workspace.read_part(run_id, "variants", path.stem)
        if not frame.empty:
            store.add_metric_variants(run_id, frame)
    projection_dir = workspace.job_dir(run_id) / "projections"
    for path in sorted(projection_dir.glob("*.parquet")) if projection_dir.is_dir() else []:
        frame = workspace.read_part(run_id, "projections", path.stem)
        if not frame.empty:
            frame["voice_rank"] = _voice_ranks(frame)
            store.add_projections(run_id, frame.merge(ids, on=key, validate="many_to_one"))
    store.finish_run(run_id)


def metric_groups(pairs: list[PairSpec]) -> list[list[PairSpec]]:
    """Pairs grouped by the relative depth of side a, in first-appearance order: one group holds
    every pairing at one depth (text-text, speech-speech and text-speech of one layer, or two
    around a length adaptor), so each side is computed once for all its pairings (its bootstrap
    directions dominate the cost), a group's memory is bounded by a layer of the corpus per
    component, and each group is one resumable part."""
    groups: dict[float, list[PairSpec]] = {}
    for pair in pairs:
        groups.setdefault(round(float(pair.depth), 6), []).append(pair)
    return list(groups.values())


def prepared_from_parts(workspace: Workspace, plan: dict[str, Any]) -> PreparedCorpus:
    """The run's items (text then speech, languages in run order, sentences in corpus order), no
    waveforms: what the metric and map stages index states by."""
    langs = list(plan["run_langs"])
    frames = [workspace.read_part(plan["run_id"], "items", lang) for lang in langs]
    items = pd.concat(frames, ignore_index=True)
    items["_m"] = items.modality.map({"text": 0, "speech": 1})
    items["_l"] = items.lang.map(langs.index)
    items["voice_rank"] = _voice_ranks(items)
    items = items.sort_values(["_m", "_l", "voice_rank", "position"]).drop(columns=["_m", "_l"]) \
        .reset_index(drop=True)
    return PreparedCorpus(plan["run_config"]["corpus_name"], plan["run_config"]["corpus_source"],
                          langs, list(plan["sentence_ids"]), items)


def part_lengths(workspace: Workspace, plan: dict[str, Any],
                 prepared: PreparedCorpus) -> dict[str, np.ndarray]:
    """Text lengths (the run's token counts, else characters) and speech durations, in
    ``prepared.modality_items`` order."""
    text = prepared.modality_items("text")
    if plan["count_tokens"]:
        counts = pd.concat([workspace.read_part(plan["run_id"], "tokens", lang)
                            for lang in plan["run_langs"]], ignore_index=True)
        merged = text.merge(counts, on=["lang", "modality", "sentence_id"], how="left")
        text_lengths = merged.n_tokens.to_numpy(dtype=np.float64)
    else:
        text_lengths = text.text.str.len().to_numpy(dtype=np.float64)
    return {"text": text_lengths,
            "speech": prepared.modality_items("speech").duration_s.to_numpy(dtype=np.float64),
            ("speech", 1): prepared.modality_items("speech", voice_rank=1)
            .duration_s.to_numpy(dtype=np.float64)}


class PartStates:
    """``(component, layer) -> (n_items, dim)`` float32 read from the activation parts, rows in
    ``prepared.modality_items`` order: only the layers a stage asks for are in memory."""

    def __init__(self, workspace: Workspace, run_id: str, prepared: PreparedCorpus,
                 components: list[Component]):
        self.workspace, self.run_id, self.prepared = workspace, run_id, prepared
        self.by_name = {c.name: c for c in components}

    def __call__(self, component: str, layer: int, voice_rank: int = 0) -> np.ndarray:
        from core.store.vectors import decode_vectors

        comp = self.by_name[component]
        items = self.prepared.modality_items(comp.modality, voice_rank=voice_rank)
        blocks = []
        for lang, group in items.groupby("lang", sort=False):
            part = self.workspace.read_part(self.run_id, "activations", component, lang,
                                            where="layer = ? AND voice_rank = ?",
                                            params=[int(layer), int(voice_rank)])
            row_of = pd.Series(np.arange(len(part)), index=part.sentence_id.to_numpy())
            if len(part) != len(group) or not group.sentence_id.isin(row_of.index).all():
                raise BuildError(f"{self.workspace.job_dir(self.run_id)}: activation part "
                                 f"{component}/{lang} layer {layer} voice {voice_rank + 1} has "
                                 f"{len(part)} rows for {len(group)} items; delete it and rerun "
                                 "the build")
            vectors = decode_vectors(list(part.vector), str(part.dtype.iloc[0]),
                                     int(part.dim.iloc[0]))
            blocks.append(vectors[row_of.loc[group.sentence_id.to_numpy()].to_numpy()])
        return np.concatenate(blocks) if blocks else np.zeros((0, comp.dim), np.float32)


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


def config_from_json(data: dict[str, Any]) -> BuildConfig:
    """The BuildConfig a run config (or ``BuildConfig.to_json``) records."""
    names = {f.name: f for f in dataclasses.fields(BuildConfig)}
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name not in names:
            continue
        if isinstance(value, list):
            value = tuple(value)
        if name in ("out", "speech_cache") and value is not None:
            value = Path(value)
        kwargs[name] = value
    return BuildConfig(**kwargs)


def _with_columns(frame: pd.DataFrame, columns: dict[str, Any]) -> pd.DataFrame:
    """``frame`` with exactly ``columns`` (an empty frame gets them typed, for its Parquet part)."""
    if frame.empty:
        return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in columns.items()})
    return frame[list(columns)]


def _copy_store_file(source: Path, target: Path) -> None:
    shutil.copyfile(source, target)
    wal = source.with_name(source.name + ".wal")
    if wal.exists():  # committed changes not yet folded into the file travel with it
        shutil.copyfile(wal, target.with_name(target.name + ".wal"))


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True,
                                                           default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, datetime)):
        return str(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"cannot record {type(value).__name__} as JSON: {value!r}")


def _size(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


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


def stored_precision(states: np.ndarray, dtype: str) -> np.ndarray:
    """``states`` rounded to the store's activation dtype, as float32 (what reading them back gives)."""
    return np.asarray(states).astype(dtype).astype(np.float32, copy=False)


def text_length_values(adapter: ModelAdapter, text_items: pd.DataFrame) -> np.ndarray:
    """Token counts when the adapter can count them, otherwise characters."""
    if can_count_tokens(adapter):
        counts = adapter.token_counts(text_items.text.tolist(), text_items.lang.tolist())
        return np.asarray(counts, dtype=np.float64)
    return text_items.text.str.len().to_numpy(dtype=np.float64)


def compute_metrics(components: list[Component],
                    states: dict[str, np.ndarray] | Callable[[str, int], np.ndarray],
                    prepared: PreparedCorpus, lengths: dict[str, np.ndarray],
                    config: BuildConfig, *, langs: Sequence[str] | None = None,
                    modality_pairs: list[tuple[str, str]] | None = None,
                    pairs: list[PairSpec] | None = None, progress: bool = True) -> pd.DataFrame:
    """The run's metrics grid as store rows (one per pair, layer and metric).

    ``states``: per component (n_items, n_layers, dim), or a function ``(component, layer) ->
    (n_items, dim)`` (rows in ``prepared.modality_items`` order) that loads only what is asked.
    ``pairs`` (default: all of ``metric_pairs``) restricts the grid to some pairs (the build
    computes one ``metric_groups`` group at a time). Coordinate-wise metrics
    (``NEEDS_SHARED_SPACE``: paired cosine, retrieval) are computed only for pairs whose points
    share a representation space; the other metrics for every pair.
    """
    from core.metrics.grid import compute_grid
    from core.metrics.similarity import NEEDS_SHARED_SPACE

    langs = list(langs) if langs is not None else list(prepared.langs)
    if pairs is None:
        pairs = metric_pairs(components, langs, modality_pairs,
                             second_voice_langs=prepared.second_voice_langs())
    if not pairs:
        return pd.DataFrame()
    sides, side_lengths = pair_sides(components, states, prepared, lengths, langs, pairs)
    specs = metric_specs(config.metrics)
    across = [m for m in specs if m.name not in NEEDS_SHARED_SPACE]
    chosen = [(p, specs if p.shared_space else across) for p in pairs]
    chosen = [(p, m) for p, m in chosen if m]
    if not chosen:
        return pd.DataFrame()
    with tqdm(total=None, desc="metrics", unit="step", disable=not progress) as bar:
        def report(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        # one grid for every pair: each side's SVD, Gram matrix and bootstrap directions once
        grid = compute_grid(sides, [(p.a.key, p.b.key) for p, _ in chosen], specs,
                            lengths=side_lengths, n_permutations=config.n_permutations,
                            n_bootstrap=config.n_bootstrap, seed=config.seed,
                            device=config.device, progress=report,
                            pair_metrics=[m for _, m in chosen])
    return metric_rows(grid, [p for p, _ in chosen], pooling=config.pooling)


def pair_sides(components: list[Component], states, prepared: PreparedCorpus,
               lengths: dict, langs: Sequence[str], pairs: list[PairSpec]
               ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each side of ``pairs`` as (n_sentences, dim) rows in sentence order, and its lengths, keyed
    by ``Side.key`` (what ``compute_grid`` takes)."""
    modality_of = {c.name: c.modality for c in components}
    layer_of = _layer_getter(states)
    rows = {(m, v): _rows_by_lang(prepared.modality_items(m, langs, voice_rank=v))
            for m in ("text", "speech") for v in (0, 1)}
    layers: dict[tuple[str, int, int], np.ndarray] = {}
    sides: dict[str, np.ndarray] = {}
    side_lengths: dict[str, np.ndarray] = {}
    for spec in pairs:
        for side in (spec.a, spec.b):
            if side.key not in sides:
                modality = modality_of[side.component]
                index = rows[(modality, side.voice_rank)][side.lang]
                point = (side.component, side.layer, side.voice_rank)
                if point not in layers:
                    layers[point] = layer_of(*point)
                sides[side.key] = layers[point][index]
                side_lengths[side.key] = lengths[(modality, side.voice_rank)][index] \
                    if side.voice_rank else lengths[modality][index]
    return sides, side_lengths


def compute_metric_variants(components: list[Component], states, prepared: PreparedCorpus,
                            lengths: dict, config: BuildConfig, pairs: list[PairSpec], *,
                            langs: Sequence[str] | None = None) -> pd.DataFrame:
    """SVCCA at other k and length-matched SVCCA for the pairs findings read
    (``precompute.variants``)."""
    from precompute.variants import compute_variants, variant_pairs

    chosen = variant_pairs(pairs)
    if not chosen:
        return pd.DataFrame()
    langs = list(langs) if langs is not None else list(prepared.langs)
    sides, side_lengths = pair_sides(components, states, prepared, lengths, langs, chosen)
    return compute_variants(sides, side_lengths, chosen, n_permutations=config.n_permutations,
                            seed=config.seed, device=config.device)


def _layer_getter(states) -> Callable[[str, int, int], np.ndarray]:
    """``(component, layer, voice_rank) -> (n_items, dim)``; dict states hold a second voice's
    speech under the key ``(component, 1)``."""
    if callable(states):
        return states

    def layer_of(component: str, layer: int, voice_rank: int = 0) -> np.ndarray:
        key = (component, voice_rank) if voice_rank else component
        return states[key][:, layer, :]
    return layer_of


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
    from core.store.vectors import encode_resamples

    values = grid.drop(columns=["key_a", "key_b"]).reset_index(drop=True)
    if "resamples" in values:  # bootstrap values as the store's blob (aggregates need them)
        values["resamples"] = [encode_resamples(v) if v is not None else None
                               for v in values["resamples"]]
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


def compute_projections(components: list[Component],
                        states: dict[str, np.ndarray] | Callable[[str, int], np.ndarray],
                        prepared: PreparedCorpus, config: BuildConfig, *,
                        langs: Sequence[str] | None = None,
                        modality_pairs: list[tuple[str, str]] | None = None,
                        groups: list[list[tuple[str, int]]] | None = None,
                        progress: bool = True) -> pd.DataFrame:
    """UMAP maps per layer point; text and speech items together only where they share a space.

    ``groups`` (default: all of ``projection_groups``) restricts which maps are made. Rows name
    their item by ``item_id`` where the items have one, and always by lang, modality, sentence_id.
    """
    from core.projection import MIN_POINTS, umap_2d, umap_params

    by_name = {c.name: c for c in components}
    layer_of = _layer_getter(states)
    if groups is None:
        groups = projection_groups(components, modality_pairs)
    frames = []
    for group in tqdm(groups, desc="umap", unit="layer", disable=not progress):
        blocks, members = [], []
        for name, layer in group:
            items = prepared.modality_items(by_name[name].modality, langs)
            blocks.append(layer_of(name, layer))
            keys = [c for c in ("item_id", "lang", "modality", "sentence_id") if c in items]
            members.append(items[keys].assign(component=name, layer=layer))
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


def run_resource_levels(adapter: ModelAdapter, langs: Sequence[str]) -> dict[str, list]:
    """The run's resource level per language with its source (the family's own, else Whisper's
    training hours as a labelled proxy), as JSON-ready columns."""
    own = adapter.resource_levels(langs)
    if own is None:
        frame = _proxy_levels(langs, adapter.name)
    else:
        frame = pd.DataFrame({"lang": list(langs),
                              "resource_level": [own.levels[lang] for lang in langs],
                              "level_source": own.source})
    return {column: frame[column].tolist() for column in frame.columns}


def _proxy_levels(langs: Sequence[str], model: str) -> pd.DataFrame:
    from core import languages

    return languages.proxy_levels(langs, model)


def can_transcribe(adapter: ModelAdapter) -> bool:
    return type(adapter).transcribe is not ModelAdapter.transcribe


def can_count_tokens(adapter: ModelAdapter) -> bool:
    return callable(getattr(adapter, "token_counts", None))


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
