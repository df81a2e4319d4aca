"""``precompute halves``: a run's sentences in disjoint parts, each measured as a derived run from the
activations the run stored (no model is loaded).

A verdict's interval covers resampling of sentences within one corpus; whether other sentences give
the same answer is a separate question (``core.replication``). Disjoint parts of a run's sentences
are the cheapest second look: the same languages, speech synthesis and model, independent
sentences. Each part becomes a run ``<parent>-part<i>of<n>-seed<s>`` whose config records the
parent, the part, the seed and its sentence ids (``core.replication.DERIVED_KEY``), and whose rows
are computed by stage 2 (``precompute.measure``) on the parent's stored vectors of those sentences
only, exactly as ``precompute metrics`` computes a run's rows from a store.

A derived run stores only what the verdicts read (``core.verdicts``): the verdict metrics (SVCCA,
linear and debiased CKA, mutual kNN) on the pairs the findings compare (same-language text-speech,
cross-lingual text-text and speech-speech, the voice pairs; ``precompute.variants.variant_pairs``)
with their bootstrap values, and the length-matched variant. Not kept: cross-lingual text-speech
rows, paired cosine and retrieval, SVCCA at other k, activations and UMAP maps. So the parts cost
a fraction of their parent in the store, and pages that need more leave them out.

Crash safety and idempotence are ``precompute metrics``': the work happens on a copy published
atomically; parts already in the store are left as they are (a rerun adds only what is missing).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.replication import DERIVED_KEY, derivation
from core.store import Store, copy_store_file
from core.verdicts import VERDICT_METRICS
from precompute import measure
from precompute.config import BuildError
from precompute.measure_inputs import MeasureInputs, PreparedCorpus, layers_in_memory, \
    modality_lengths
from precompute.processes import in_processes
from precompute.provenance import collect_versions
from precompute.publish import staged_store
from precompute.recompute import RecomputeOptions, inputs_from_store, runs_to_recompute, \
    stored_components, stored_states
from precompute.staging import store_lock
from precompute.variants import variant_pairs

log = logging.getLogger("precompute")

#: The metric variants a derived run keeps: the one the verdicts read.
PART_VARIANTS = ("length_matched",)


@dataclass(frozen=True)
class PartRun:
    run_id: str
    part: int
    n_sentences: int
    n_metrics: int | None     # None: the part was already in the store, left as it was
    n_variants: int | None


def sentence_parts(sentence_ids: Sequence[int], n_parts: int, seed: int) -> list[list[int]]:
    """``n_parts`` disjoint parts covering ``sentence_ids``: a permutation drawn with ``seed`` cut
    into near-equal blocks, each sorted. Refuses fewer sentences than parts."""
    ids = list(sentence_ids)
    if n_parts < 2:
        raise ValueError(f"--parts must be at least 2, got {n_parts}")
    if len(set(ids)) != len(ids):
        raise ValueError("sentence ids repeat: the parts would not be disjoint")
    if len(ids) < n_parts:
        raise ValueError(f"{len(ids)} sentences cannot be cut into {n_parts} parts")
    order = np.random.default_rng(seed).permutation(len(ids))
    return [sorted(ids[i] for i in block) for block in np.array_split(order, n_parts)]


def part_run_id(parent: str, part: int, n_parts: int, seed: int) -> str:
    """The derived run id of part ``part`` (1-based) of ``n_parts``."""
    return f"{parent}-part{part}of{n_parts}-seed{seed}"


def part_inputs(inputs: MeasureInputs, sentence_ids: Sequence[int]) -> MeasureInputs:
    """``inputs`` restricted to ``sentence_ids``: the items, lengths and layer rows of those
    sentences, in the same order (the parent's rows, selected, not recomputed)."""
    keep = set(int(s) for s in sentence_ids)
    parent = inputs.prepared
    items = parent.items[parent.items.sentence_id.isin(keep)].reset_index(drop=True)
    prepared = PreparedCorpus(parent.name, parent.source, list(parent.langs),
                              [s for s in parent.sentence_ids if s in keep], items)
    masks = {(m, v): parent.modality_items(m, voice_rank=v).sentence_id.isin(keep).to_numpy()
             for m in ("text", "speech") for v in (0, 1)}
    modality_of = {c.name: c.modality for c in inputs.components}
    text_lengths = np.asarray(inputs.lengths["text"])[masks[("text", 0)]]
    full_layer = inputs.layer

    def layer(component: str, layer_index: int, voice_rank: int = 0) -> np.ndarray:
        return full_layer(component, layer_index, voice_rank)[
            masks[(modality_of[component], voice_rank)]]

    return MeasureInputs(inputs.config, inputs.components, prepared,
                         modality_lengths(prepared, text_lengths), inputs.text_length_unit,
                         inputs.modality_pairs, layer)


def part_metrics(store: Store, parent: str) -> tuple[str, ...]:
    """The verdict metrics the parent run has (``core.verdicts.VERDICT_METRICS`` order)."""
    present = set(store.metric_names(parent))
    chosen = tuple(m for m in VERDICT_METRICS if m in present)
    if not chosen:
        raise BuildError(f"run {parent!r} has none of the verdict metrics "
                         f"({', '.join(VERDICT_METRICS)}): nothing to split")
    return chosen


def part_config(recorded: dict[str, Any], inputs: MeasureInputs, *, parent: str, part: int,
                n_parts: int, seed: int, sentence_ids: Sequence[int],
                command_line: Sequence[str] | None) -> dict[str, Any]:
    """A derived run's config: the parent's, with what the part changes (sentences, metrics kept,
    no maps or activations) and ``DERIVED_KEY`` saying where it comes from."""
    config = inputs.config
    dropped = {"run_key", "rekeyed", "recomputed", "shard"}  # the parent's, not the part's
    return {
        **{k: v for k, v in recorded.items() if k not in dropped},
        "metrics": list(config.metrics or ()), "n_permutations": config.n_permutations,
        "n_bootstrap": config.n_bootstrap, "seed": config.seed, "umap": False,
        "store_activations": False, "n_sentence_ids": len(sentence_ids),
        "n_sentences": len(sentence_ids), "text_length_unit": inputs.text_length_unit,
        "command_line": list(command_line) if command_line is not None else None,
        DERIVED_KEY: {
            "run_id": parent, "parent_run_key": recorded.get("run_key"),
            "method": "disjoint parts of the parent's sentences (seeded permutation, cut into "
                      "near-equal blocks), measured from its stored activations",
            "part": part, "n_parts": n_parts, "seed": seed, "sentence_ids": list(sentence_ids),
            "metrics": list(config.metrics or ()), "variants": list(PART_VARIANTS),
            "left_out": ["cross-lingual text-speech rows", "paired_cosine", "retrieval",
                         "svcca_k variants", "activations", "projections"],
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    }


def split_run(store_path: str | Path, run_id: str, n_parts: int = 2, seed: int = 0, *,
              workers: int = 1, command_line: Sequence[str] | None = None) -> list[PartRun]:
    """Add the ``n_parts`` derived runs of ``run_id`` (seeded by ``seed``) to the store; parts
    already there are kept (nothing is copied when all are). Checks before any copy: the run exists,
    is complete, is not itself derived and stored its activations. ``workers`` > 1 measures the
    parts in that many processes (``precompute.processes``), each reading the parent's activations
    from the store itself; the rows are the same."""
    store_path = Path(store_path)
    with Store.open(store_path) as original:
        recorded = original.run(run_id)  # KeyError listing the known runs
        if derivation(recorded["config"]):
            raise BuildError(f"run {run_id!r} is itself a part of "
                             f"{derivation(recorded['config'])['run_id']!r}; split that run")
        runs_to_recompute(original, [run_id])  # complete, activations stored
        metrics = part_metrics(original, run_id)
        inputs = parent_inputs(original, run_id, metrics, in_memory=False)
        parts = sentence_parts(inputs.prepared.sentence_ids, n_parts, seed)
        ids = [part_run_id(run_id, i + 1, n_parts, seed) for i in range(n_parts)]
        existing = set(original.runs().run_id)
    todo = [i for i, rid in enumerate(ids) if rid not in existing]
    done = [PartRun(rid, i + 1, len(parts[i]), None, None) for i, rid in enumerate(ids)
            if rid in existing]
    if not todo:
        return done
    measured: dict[int, tuple[pd.DataFrame, pd.DataFrame]] = {}
    if workers > 1 and len(todo) > 1:  # read from the published store, before the copy is made
        results = in_processes(measure_part_from_store,
                               [(str(store_path), run_id, metrics, parts[i], ids[i])
                                for i in todo],
                               min(workers, len(todo)), desc=f"parts of {run_id}")
        measured = dict(zip(todo, results, strict=True))
    with store_lock(store_path), staged_store(store_path, compact=True) as tmp:
        with Store.open(store_path):  # held open while copying: no writer can start
            copy_store_file(store_path, tmp)
        with Store.open(tmp, read_only=False) as store:
            existing = set(store.runs().run_id)  # another writer may have added parts meanwhile
            # activations loaded only when the parts are measured here, one after the other
            inputs = parent_inputs(store, run_id, metrics, in_memory=len(measured) < len(todo))
            versions = collect_versions()
            for i in todo:
                if ids[i] in existing:
                    continue
                own = part_inputs(inputs, parts[i])
                rows = measured[i] if i in measured else measure_part(own, ids[i])
                done.append(_add_part(store, recorded, own, rows, ids[i], i + 1, n_parts, seed,
                                      parts[i], versions, command_line))
    log.info("published %s (parts of %s: %s)", store_path, run_id,
             ", ".join(p.run_id for p in done if p.n_metrics is not None))
    return sorted(done, key=lambda p: p.part)


def parent_inputs(store: Store, run_id: str, metrics: tuple[str, ...], *,
                  in_memory: bool) -> MeasureInputs:
    """The parent run's stage-2 inputs from ``store``; with ``in_memory`` its activations read
    whole at once (every part reads them), else read only if a layer is asked for."""
    inputs = inputs_from_store(store, run_id, RecomputeOptions(metrics=metrics, umap=False))
    if not in_memory:
        return inputs
    states = stored_states(store, run_id, inputs.components, inputs.prepared)
    return dataclasses.replace(inputs, layer=layers_in_memory(states))


def measure_part(own: MeasureInputs, label: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One part's metric rows and length-matched rows (``part_inputs``' inputs)."""
    pairs = variant_pairs(own.pairs)
    log.info("%s: %d sentences, %d pairs", label, len(own.prepared.sentence_ids), len(pairs))
    return (measure.compute_metrics(own, pairs),
            measure.compute_metric_variants(own, pairs, kinds=PART_VARIANTS))


def measure_part_from_store(store_path: str, run_id: str, metrics: tuple[str, ...],
                            sentence_ids: list[int], label: str
                            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``measure_part`` in a worker process: the parent's inputs and activations read from the
    store (read-only), as ``split_run`` reads them."""
    with Store.open(store_path) as store:
        inputs = parent_inputs(store, run_id, metrics, in_memory=True)
    return measure_part(part_inputs(inputs, sentence_ids), label)


def _add_part(store: Store, recorded: dict[str, Any], own: MeasureInputs,
              rows: tuple[pd.DataFrame, pd.DataFrame], part_id: str, part: int, n_parts: int,
              seed: int, sentence_ids: list[int], versions: dict[str, Any],
              command_line: Sequence[str] | None) -> PartRun:
    """Write one measured part as a complete run in one transaction."""
    parent = str(recorded["run_id"])
    metrics, variants = rows
    config = part_config(recorded["config"], own, parent=parent, part=part, n_parts=n_parts,
                         seed=seed, sentence_ids=sentence_ids, command_line=command_line)
    with store.transaction():
        store.add_run(part_id, str(recorded["model"]), config, versions)
        store.add_components(part_id, stored_components(store, parent))
        levels = store.run_languages(parent)
        if not levels.empty:
            store.set_run_languages(part_id, levels)
        if not metrics.empty:
            store.add_metrics(part_id, metrics)
        if not variants.empty:
            store.add_metric_variants(part_id, variants)
        store.finish_run(part_id)
    return PartRun(part_id, part, len(sentence_ids), len(metrics), len(variants))
