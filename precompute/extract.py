"""Stage 1 of a build: each run's parts, per shard of its languages (``run_shard``).

Per run and language: the items (speech synthesised or decoded one clip at a time, durations kept,
audio dropped), the run's token counts and transcripts, and each component's pooled states
(length-bucketed batches, one batch of audio in memory), each written atomically as a Parquet part
under ``<out>.parts/<run_id>/`` (``precompute.staging``) and skipped when already there (resume).
``--shard I/N`` computes only the languages at positions I, I + N, ...
"""

from __future__ import annotations

import gc
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from core.models.base import Component, Extraction, ModelAdapter
from precompute.checks import supported_langs
from core.store.tables import json_default
from precompute.config import BuildConfig, BuildError, Job, component_to_json
from precompute.provenance import collect_versions
from precompute.stagelog import counted
from precompute.staging import Workspace
from precompute.transcripts import BatchTranscriber

#: where a speech item's audio came from, in its items part (the store's item_sources)
SOURCE_COLUMNS = ["source_path", "file_sha256", "waveform_sha256"]

log = logging.getLogger("precompute")


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


def extracted(workspace: Workspace, run_ids: Sequence[str], langs: Sequence[str]) -> str:
    """What stage 1 holds for ``run_ids`` in ``langs`` (every run's items parts there), for the
    stage's log line; per run e.g. ``whisper-base: 2 languages, 80 texts, 80 clips, 2 components
    (12 layers)``."""
    summaries = []
    for run_id in run_ids:
        plan = workspace.read_job(run_id)
        if plan is None:
            continue
        own = [lang for lang in plan["run_langs"] if lang in langs
               and workspace.has(run_id, "items", lang)]
        items = [workspace.read_part(run_id, "items", lang) for lang in own]
        texts = sum(int((frame.modality == "text").sum()) for frame in items)
        speech = [frame[frame.modality == "speech"] for frame in items]
        clips = sum(len(frame) for frame in speech)
        voices = max((int(frame.voice_rank.max()) + 1 for frame in speech if len(frame)), default=0)
        layers = sum(len(c["layers"]) for c in plan["components"])
        parts = [counted(len(own), "language"), counted(texts, "text")]
        if clips:
            parts.append(counted(clips, "clip") + (f" ({voices} voices)" if voices > 1 else ""))
        parts.append(f"{counted(len(plan['components']), 'component')} "
                     f"({counted(layers, 'layer')})")
        summaries.append(f"{plan['model']}: {', '.join(parts)}")
    return "; ".join(summaries)


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
        "corpus_files": [f.to_json() for f in corpus.files],
        "corpus_dropped": {reason: list(ids) for reason, ids in corpus.dropped.items()},
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
    }, default=json_default))


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
        return load_waveform(corpus, lang, int(row.position), config.speech_cache,
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
    from core import audio, audio_refs, item_audio
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
        for position, sentence_id in enumerate(tqdm(corpus.sentence_ids,
                                                    desc=speech_work(corpus, lang, voice_rank))):
            wave = load_waveform(corpus, lang, position, speech_cache, voice_rank)
            recording = corpus.audio_paths[lang][position] if voice_rank == 0 else None
            rows.append({"sentence_id": sentence_id, "lang": lang, "modality": "speech",
                         "text": corpus.texts[lang][position], "position": position,
                         "duration_s": audio.duration_s(wave),
                         "voice": corpus_module.speech_voice(corpus, lang, position, voice_rank),
                         "voice_rank": voice_rank,
                         "source_path": audio_refs.resolved(recording) if recording else None,
                         "file_sha256": item_audio.file_sha256(recording) if recording else None,
                         "waveform_sha256": item_audio.waveform_sha256(wave)})
            del wave
    items = pd.DataFrame(rows, columns=["sentence_id", "lang", "modality", "text", "position",
                                        "duration_s", "voice", "voice_rank", *SOURCE_COLUMNS])
    items["duration_s"] = items.duration_s.astype("float64")
    items["voice_rank"] = items.voice_rank.fillna(0).astype("int64")
    workspace.write_part(items, run_id, "items", lang)
    return items


def speech_work(corpus, lang: str, voice_rank: int) -> str:
    """What making a language's speech items does, as its progress bar says it: decoding the
    corpus's recordings, or synthesising with espeak-ng (a bar that said "voice 1" over
    recordings suggested synthesis that never happens)."""
    paths = corpus.audio_paths[lang]
    recorded = sum(path is not None for path in paths)
    if recorded == len(paths):
        return f"read {lang} recordings"
    synthesis = f"synthesise {lang} speech, espeak-ng voice {voice_rank + 1}"
    return synthesis if not recorded else f"{synthesis} ({recorded} recordings read)"


def load_waveform(corpus, lang: str, position: int, speech_cache: Path | None,
                  voice_rank: int = 0) -> np.ndarray:
    """One clip's 16 kHz waveform (synthesised, cached or decoded); BuildError when it cannot be
    made."""
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


def can_transcribe(adapter: ModelAdapter) -> bool:
    return type(adapter).transcribe is not ModelAdapter.transcribe


def can_count_tokens(adapter: ModelAdapter) -> bool:
    return callable(getattr(adapter, "token_counts", None))


def run_resource_levels(adapter: ModelAdapter, langs: Sequence[str]) -> dict[str, list]:
    """The run's resource level per language with its source (the family's own, else Whisper's
    training hours as a labelled proxy), as JSON-ready columns."""
    own = adapter.resource_levels(langs)
    if own is None:
        from core import languages

        frame = languages.proxy_levels(langs, adapter.name)
    else:
        frame = pd.DataFrame({"lang": list(langs),
                              "resource_level": [own.levels[lang] for lang in langs],
                              "level_source": own.source})
    return {column: frame[column].tolist() for column in frame.columns}
