"""``precompute metrics``: recompute a run's metrics (and UMAP maps) from the activations it stored.

Pooled activations are the expensive part of a build (the model's forward passes); metrics and maps
are cheap in comparison. So changing metric settings (which metrics, null draws, bootstrap
resamples, seed, UMAP parameters) needs no model: the stored vectors are read back into the shapes the
build's own stage 2 takes (``MeasureInputs``, measured by ``precompute.measure``), in the order
the build computed them, and the results replace the run's old rows.

Crash safety is the build's: the store is copied to ``<store>.tmp-<pid>``, changed there, and moved
over the original in one step only when every run succeeded; on any failure (an exception, Ctrl-C,
SIGTERM) the copy is deleted and the original is untouched. Settings not given default to those in the
run's config, so a recompute with no options reproduces the build's numbers. Each run's config records
the settings now in force and appends an entry to its ``recomputed`` list (when, what, settings, code
versions); the run's ``versions`` column keeps the build's.
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
from tqdm.auto import tqdm

from core.models.base import Component, LayerPoint
from core.replication import derivation, is_derived
from core.store import Store, copy_store_file
from precompute import measure
from precompute.config import BuildConfig, BuildError
from precompute.measure_inputs import MeasureInputs, PreparedCorpus, layers_in_memory, \
    modality_lengths
from precompute.processes import in_processes
from precompute.provenance import collect_versions
from precompute.publish import staged_store
from precompute.staging import store_lock

log = logging.getLogger("precompute")

MODALITIES = ("text", "speech")


@dataclass(frozen=True)
class RecomputeOptions:
    """What to change; ``None`` keeps the value recorded in the run's config."""

    metrics: tuple[str, ...] | None = None
    n_permutations: int | None = None
    n_bootstrap: int | None = None
    seed: int | None = None
    device: str | None = None
    umap: bool | None = None
    umap_n_neighbors: int | None = None
    umap_min_dist: float | None = None


@dataclass(frozen=True)
class RecomputedRun:
    run_id: str
    n_metrics: int
    n_projections: int | None  # None: projections were kept as they were


def recompute(store_path: str | Path, run_ids: Sequence[str] | None = None,
              options: RecomputeOptions = RecomputeOptions(), *,
              command_line: Sequence[str] | None = None, workers: int = 1) -> list[RecomputedRun]:
    """Recompute ``run_ids`` (default: every complete run) in the store at ``store_path``.

    Checks the runs before copying anything, so a wrong run id or metric name costs no copy.
    ``workers`` > 1 computes the metric groups in that many processes, as ``build --workers``
    does (the same rows; each process reads the layers it needs from the store, read-only).
    """
    store_path = Path(store_path)
    with Store.open(store_path) as original:  # checks first: a wrong run id or metric costs no copy
        run_ids = runs_to_recompute(original, run_ids)
        for run_id in run_ids:
            settings_for(original.run(run_id), options)  # unknown metric names fail here
    # the store's lock: a build publishing meanwhile would otherwise be overwritten by our copy
    with store_lock(store_path), staged_store(store_path, compact=True) as tmp:
        with Store.open(store_path):  # held open while copying: no writer can start
            copy_store_file(store_path, tmp)
        with Store.open(tmp, read_only=False) as store:
            versions = collect_versions()
            done = [recompute_run(store, run_id, options, versions=versions,
                                  command_line=command_line, workers=workers,
                                  source=store_path) for run_id in run_ids]
    log.info("published %s (recomputed: %s)", store_path, ", ".join(run_ids))
    return done


def runs_to_recompute(store: Store, run_ids: Sequence[str] | None) -> list[str]:
    """The runs asked for (checked to exist, be complete and hold activations), else every complete
    run built from a corpus (derived runs, ``precompute halves``, hold no activations of their own)."""
    runs = store.runs()
    if not run_ids:
        run_ids = [r for r, config in zip(runs.run_id, runs.config)
                   if not is_derived(config) and r in set(runs[runs.status == "complete"].run_id)]
        if not run_ids:
            raise BuildError(f"{store.path} has no complete run to recompute; build one with "
                             "`python -m precompute build`")
    run_ids = list(dict.fromkeys(run_ids))
    for run_id in run_ids:
        run = store.run(run_id)  # KeyError listing the known runs
        derived = derivation(run["config"])
        if derived:
            raise BuildError(f"run {run_id!r} is part {derived['part']} of {derived['n_parts']} of "
                             f"{derived['run_id']!r} (`python -m precompute halves`) and holds no "
                             "activations of its own: recompute the parent run instead")
        if run["status"] != "complete":
            raise BuildError(f"run {run_id!r} in {store.path} is {run['status']!r}, not complete; "
                             "rebuild it with `python -m precompute build`")
        components = store.components(run_id)
        empty = [c for c in components.component if store.activations(run_id, c, 0)[0].empty]
        if components.empty or empty:
            raise BuildError(f"run {run_id!r} in {store.path} has no stored activations"
                             f"{' for ' + ', '.join(empty) if empty else ''}, so its metrics cannot "
                             "be recomputed; rebuild it with `python -m precompute build`")
    return run_ids


def settings_for(run: dict[str, Any], options: RecomputeOptions) -> BuildConfig:
    """The settings a recompute uses: the options given, else the run's recorded ones."""
    recorded = run["config"]
    defaults = BuildConfig(models=(run["model"],))

    def pick(name: str):
        given = getattr(options, name)
        return given if given is not None else recorded.get(name, getattr(defaults, name))

    metrics = pick("metrics")
    config = BuildConfig(
        models=(run["model"],), metrics=tuple(metrics) if metrics else None,
        n_permutations=int(pick("n_permutations")), n_bootstrap=int(pick("n_bootstrap")),
        seed=int(pick("seed")), device=_device(options.device, recorded.get("device")),
        umap=bool(pick("umap")), umap_n_neighbors=int(pick("umap_n_neighbors")),
        umap_min_dist=float(pick("umap_min_dist")),
        pooling=str(recorded.get("pooling", defaults.pooling)))
    measure.metric_specs(config.metrics)  # ValueError naming unknown metrics
    return config


def inputs_from_store(store: Store, run_id: str, options: RecomputeOptions) -> MeasureInputs:
    """A run's stage-2 inputs rebuilt from the store, with the recompute's settings (the same in
    ``recompute_run`` and in each ``--workers`` process); layers are read when asked for."""
    run = store.run(run_id)
    recorded = run["config"]
    config = settings_for(run, options)
    components = stored_components(store, run_id)
    langs = recorded.get("run_langs") or recorded.get("corpus_langs")
    prepared = stored_corpus(store, langs, {c.modality for c in components}, run_id=run_id)
    text_lengths, text_unit = stored_text_lengths(prepared.modality_items("text"),
                                                  recorded.get("text_length_unit"))
    recorded_pairs = recorded.get("modality_pairs")
    modality_pairs = [tuple(p) for p in recorded_pairs] if recorded_pairs is not None else None
    return MeasureInputs(config, components, prepared, modality_lengths(prepared, text_lengths),
                         text_unit, modality_pairs,
                         StoredLayers(store, run_id, components, prepared))


class StoredLayers:
    """``(component, layer, voice_rank) -> (n_items, dim)`` float32 read from the store when asked
    for, rows in ``prepared.modality_items`` order (checked complete): a worker holds one layer at
    a time, not the run's every activation; ``stored_states`` reads every layer through it."""

    def __init__(self, store: Store, run_id: str, components: list[Component],
                 prepared: PreparedCorpus):
        self.store, self.run_id, self.prepared = store, run_id, prepared
        self.by_name = {c.name: c for c in components}

    def __call__(self, component: str, layer: int, voice_rank: int = 0) -> np.ndarray:
        comp = self.by_name[component]
        item_ids = self.prepared.modality_items(comp.modality, voice_rank=voice_rank) \
            .item_id.to_numpy()
        frame, vectors = self.store.activations(self.run_id, component, int(layer),
                                                voice_rank=voice_rank)
        row_of = pd.Series(np.arange(len(frame)), index=frame.item_id.to_numpy())
        if len(frame) != len(item_ids) or not row_of.index.isin(item_ids).all() \
                or vectors.shape[1] != comp.dim:
            raise BuildError(
                f"run {self.run_id!r}: {comp.name} layer {layer} has {len(frame)} stored vectors "
                f"(dim {vectors.shape[1] if vectors.size else 0}) for the "
                f"{len(item_ids)} {comp.modality} items of dim {comp.dim}; the store is "
                "incomplete, rebuild it with `python -m precompute build`")
        return vectors[row_of.loc[item_ids].to_numpy()]


def recompute_group(store_path: str, run_id: str, options: RecomputeOptions, gid: int
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A worker process's share of ``recompute_run``: metric group ``gid`` (the build's grouping,
    ``precompute.pairs.metric_groups``) of a run, its metrics and metric variants."""
    with Store.open(store_path) as store:
        inputs = inputs_from_store(store, run_id, options)
        group = inputs.groups[gid]
        metrics = measure.compute_metrics(inputs, group, progress=False)
        variants = measure.compute_metric_variants(inputs, group)
    return metrics, variants


def recompute_run(store: Store, run_id: str, options: RecomputeOptions, *,
                  versions: dict[str, Any], command_line: Sequence[str] | None = None,
                  workers: int = 1, source: Path | None = None) -> RecomputedRun:
    """Compute one run's metrics (and maps) from its activations, then swap them in one
    transaction. With ``workers`` > 1 the metric groups are computed in processes that read the
    activations from ``source`` (the store ``store`` is a copy of; opened read-only there)."""
    recorded = store.run(run_id)["config"]
    inputs = inputs_from_store(store, run_id, options)
    config = inputs.config

    log.info("%s: recomputing metrics%s", run_id, " and UMAP maps" if config.umap else "")
    measure.log_variant_notes(inputs, run_id)
    loaded = False
    if workers > 1 and len(inputs.groups) > 1:
        if source is None:
            raise ValueError("workers > 1 needs the source store's path")
        results = in_processes(recompute_group, [(str(source), run_id, options, gid)
                                                 for gid in range(len(inputs.groups))],
                               workers, desc=f"metrics {run_id} ({workers} workers)")
        metrics = _concat([m for m, _ in results])
        variants = _concat([v for _, v in results])
    else:
        inputs, loaded = _loaded(store, run_id, inputs), True
        metrics = measure.compute_metrics(inputs)
        variants = measure.compute_metric_variants(inputs, inputs.pairs)
    projections = None
    if config.umap:
        inputs = inputs if loaded else _loaded(store, run_id, inputs)
        projections = measure.compute_projections(inputs)

    with store.transaction():
        store.delete_metrics(run_id)  # and the run's metric variants
        if not metrics.empty:
            store.add_metrics(run_id, metrics)
        if not variants.empty:
            store.add_metric_variants(run_id, variants)
        if projections is not None:
            store.delete_projections(run_id)
            if not projections.empty:
                store.add_projections(run_id, projections)
        store.update_run_config(run_id, recorded_config(recorded, config, inputs.text_length_unit,
                                                        versions=versions, command_line=command_line))
    return RecomputedRun(run_id, len(metrics), None if projections is None else len(projections))


def _loaded(store: Store, run_id: str, inputs: MeasureInputs) -> MeasureInputs:
    """``inputs`` with every layer read into memory at once (one pass over the store)."""
    states = stored_states(store, run_id, inputs.components, inputs.prepared)
    return dataclasses.replace(inputs, layer=layers_in_memory(states))


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def recorded_config(recorded: dict[str, Any], config: BuildConfig, text_length_unit: str, *,
                    versions: dict[str, Any], command_line: Sequence[str] | None) -> dict[str, Any]:
    """The run's config with the settings now in force and a new ``recomputed`` entry."""
    settings: dict[str, Any] = {
        "metrics": list(config.metrics) if config.metrics else None,
        "n_permutations": config.n_permutations, "n_bootstrap": config.n_bootstrap,
        "seed": config.seed, "device": config.device, "text_length_unit": text_length_unit,
    }
    if config.umap:  # maps were remade: their settings now hold too
        settings.update(umap=True, umap_n_neighbors=config.umap_n_neighbors,
                        umap_min_dist=config.umap_min_dist)
    entry = {
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recomputed": ["metrics", "projections"] if config.umap else ["metrics"],
        "settings": settings,
        "command_line": list(command_line) if command_line is not None else None,
        "versions": versions,
    }
    return {**recorded, **settings, "recomputed": [*recorded.get("recomputed", []), entry]}


# ---------------------------------------------------------------------- reading the build back
def stored_components(store: Store, run_id: str) -> list[Component]:
    """The run's components with their layer points (stage, depth, space), as the build had them."""
    points = store.layers(run_id)
    components = []
    for row in store.components(run_id).itertuples():
        own = points[points.component == row.component].sort_values("layer")
        layers = tuple(LayerPoint(p.name, p.stage, float(p.depth),
                                  None if p.space == row.space else p.space)
                       for p in own.itertuples())
        if len(layers) != int(row.n_layers):
            raise BuildError(f"run {run_id!r}: {row.component} has {len(layers)} stored layer points "
                             f"for {row.n_layers} layers; rebuild the store")
        components.append(Component(row.component, row.modality, int(row.dim), row.space, layers,
                                    row.description or "", dict(row.conditioning or {})))
    return components


def stored_corpus(store: Store, corpus_langs: Sequence[str] | None,
                  modalities: set[str], *, run_id: str | None = None) -> PreparedCorpus:
    """Store items as the build's PreparedCorpus held them: text then speech, languages in corpus
    order, sentences in the order they were stored (item ids follow the build's order).

    ``position`` is the sentence's index in the corpus, what the build aligns languages by. Items
    carry ``run_id``'s own measurements (token counts).
    """
    items = store.items(run_id=run_id, all_voices=True)
    langs = list(corpus_langs) if corpus_langs else store.languages().lang.tolist()
    missing = sorted(set(langs) - set(items.lang))
    if missing:
        raise BuildError(f"{store.path} has no items for {missing}, which the run's corpus had; "
                         "rebuild it with `python -m precompute build`")
    items = items[items.lang.isin(langs)].copy()
    items["_modality_rank"] = items.modality.map(MODALITIES.index)
    items["_lang_rank"] = items.lang.map(langs.index)
    items = items.sort_values(["_modality_rank", "_lang_rank", "voice_rank", "item_id"]) \
        .drop(columns=["_modality_rank", "_lang_rank"]).reset_index(drop=True)

    sentence_ids: list[int] | None = None
    for (modality, lang, _), group in items.groupby(["modality", "lang", "voice_rank"], sort=False):
        if modality not in modalities:
            continue
        ids = group.sentence_id.tolist()
        if sentence_ids is None:
            sentence_ids = ids
        elif ids != sentence_ids:
            raise BuildError(f"{store.path}: {modality} items of {lang} hold other sentences than "
                             "the first language's, so languages cannot be aligned; rebuild the store")
    sentence_ids = sentence_ids or []
    position = {sid: i for i, sid in enumerate(sentence_ids)}
    items["position"] = items.sentence_id.map(position)
    return PreparedCorpus(name="stored", source=str(store.path), langs=langs,
                          sentence_ids=sentence_ids, items=items)


def stored_states(store: Store, run_id: str, components: list[Component],
                  prepared: PreparedCorpus) -> dict:
    """Per component (n_items, n_layers, dim) float32, rows in ``prepared.modality_items`` order;
    a speech component's second-voice items under ``(component, 1)``."""
    states: dict = {}
    second = bool(prepared.second_voice_langs())
    todo = [(comp, 0) for comp in components] + \
        [(comp, 1) for comp in components if second and comp.modality == "speech"]
    total = sum(c.n_layers for c, _ in todo)
    layers = StoredLayers(store, run_id, components, prepared)
    with tqdm(total=total, desc=f"load activations {run_id}", unit="layer") as bar:
        for comp, voice_rank in todo:
            n_items = len(prepared.modality_items(comp.modality, voice_rank=voice_rank))
            array = np.empty((n_items, comp.n_layers, comp.dim), dtype=np.float32)
            for layer in range(comp.n_layers):
                array[:, layer, :] = layers(comp.name, layer, voice_rank)
                bar.update(1)
            states[(comp.name, 1) if voice_rank else comp.name] = array
    return states


def stored_text_lengths(text_items: pd.DataFrame, unit: str | None) -> tuple[np.ndarray, str]:
    """Text lengths as the build measured them (``text_length_unit``): stored token counts, or
    characters. Returns the lengths and the unit used."""
    has_tokens = text_items.n_tokens.notna().all()
    if unit != "characters" and has_tokens:
        return text_items.n_tokens.to_numpy(dtype=np.float64), "tokens"
    if unit == "tokens":
        log.warning("the build measured text in tokens but the store lacks this run's n_tokens; "
                    "using characters")
    return text_items.text.str.len().to_numpy(dtype=np.float64), "characters"


def _device(given: str | None, recorded: str | None) -> str | None:
    """``--device``, else the build's (but not a CUDA device this machine lacks: then automatic)."""
    if given is not None or recorded is None:
        return given
    if recorded.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            log.info("the build ran on %s; no CUDA here, recomputing on the CPU", recorded)
            return None
    return recorded

