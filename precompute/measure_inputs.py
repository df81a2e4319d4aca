"""What stage 2 (metrics, metric variants, maps) reads of a run: ``MeasureInputs``, one shape
whether it comes from the run's parts during a build (``inputs_from_parts`` here) or from a
published store (``precompute.recompute.inputs_from_store``), so both measure the same way.

Layers are read through a getter ``(component, layer, voice_rank) -> (n_items, dim)`` float32 whose
rows follow ``prepared.modality_items``: a stage holds the layers it asks for, not the run's every
activation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from core.models.base import Component
from precompute.config import BuildConfig, BuildError, component_from_json, config_from_json
from precompute.pairs import PairSpec, metric_groups, metric_pairs
from precompute.staging import Workspace

#: ``(component, layer, voice_rank) -> (n_items, dim)`` float32, rows in ``modality_items`` order
LayerGetter = Callable[..., np.ndarray]


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
        keep = (self.items.modality == modality) & (voice_ranks(self.items) == voice_rank)
        if langs is not None:
            keep &= self.items.lang.isin(list(langs))
        return self.items[keep].reset_index(drop=True)

    def second_voice_langs(self) -> list[str]:
        """Languages (in run order) whose speech is also in a second voice."""
        ranks = voice_ranks(self.items)
        present = set(self.items.lang[(self.items.modality == "speech") & (ranks == 1)])
        return [lang for lang in self.langs if lang in present]


def voice_ranks(items: pd.DataFrame) -> pd.Series:
    """Each item's voice rank (0 where a frame has none: text, or parts from before voices)."""
    if "voice_rank" not in items:
        return pd.Series(0, index=items.index)
    return items.voice_rank.fillna(0).astype(int)


@dataclass
class MeasureInputs:
    """A run as stage 2 reads it: settings, components, items, lengths and a layer getter."""

    config: BuildConfig
    components: list[Component]
    prepared: PreparedCorpus
    lengths: dict                                  # see ``modality_lengths``
    text_length_unit: str                          # "tokens" or "characters"
    modality_pairs: list[tuple[str, str]] | None   # None: every pairing the components allow
    layer: LayerGetter

    @property
    def langs(self) -> list[str]:
        return list(self.prepared.langs)

    @cached_property
    def pairs(self) -> list[PairSpec]:
        """Every pair the run's metrics compare (``precompute.pairs.metric_pairs``)."""
        return metric_pairs(self.components, self.langs, self.modality_pairs,
                            second_voice_langs=self.prepared.second_voice_langs())

    @cached_property
    def groups(self) -> list[list[PairSpec]]:
        """``pairs`` in metric groups, each computed (and stored as a part) on its own."""
        return metric_groups(self.pairs)


def modality_lengths(prepared: PreparedCorpus, text_lengths: np.ndarray) -> dict:
    """The lengths a length baseline reads, in ``prepared.modality_items`` order: ``text`` (as
    given), ``speech`` durations and ``("speech", 1)`` those of the second voice."""
    return {"text": text_lengths,
            "speech": prepared.modality_items("speech").duration_s.to_numpy(dtype=np.float64),
            ("speech", 1): prepared.modality_items("speech", voice_rank=1)
            .duration_s.to_numpy(dtype=np.float64)}


def layers_in_memory(states: dict[Any, np.ndarray]) -> LayerGetter:
    """A layer getter over states held whole: per component (n_items, n_layers, dim), a second
    voice's speech under the key ``(component, 1)``."""
    def layer_of(component: str, layer: int, voice_rank: int = 0) -> np.ndarray:
        key = (component, voice_rank) if voice_rank else component
        return states[key][:, layer, :]
    return layer_of


# ---------------------------------------------------------------------- from a run's parts
def inputs_from_parts(workspace: Workspace, plan: dict[str, Any]) -> MeasureInputs:
    """A run's stage-2 inputs from its plan and stage-1 parts (the same in ``finish_job`` and in
    each ``--workers`` process)."""
    components = [component_from_json(c) for c in plan["components"]]
    prepared = prepared_from_parts(workspace, plan)
    return MeasureInputs(config_from_json(plan["run_config"]), components, prepared,
                         part_lengths(workspace, plan, prepared),
                         "tokens" if plan["count_tokens"] else "characters",
                         [tuple(p) for p in plan["modality_pairs"]],
                         PartLayers(workspace, plan["run_id"], prepared, components))


def part_items(workspace: Workspace, plan: dict[str, Any]) -> pd.DataFrame:
    """The run's items from its parts: text then speech, languages in run order, voices, sentences
    in corpus order."""
    langs = list(plan["run_langs"])
    frames = [workspace.read_part(plan["run_id"], "items", lang) for lang in langs]
    items = pd.concat(frames, ignore_index=True)
    items["_m"] = items.modality.map({"text": 0, "speech": 1})
    items["_l"] = items.lang.map(langs.index)
    items["voice_rank"] = voice_ranks(items)
    return items.sort_values(["_m", "_l", "voice_rank", "position"]).drop(columns=["_m", "_l"]) \
        .reset_index(drop=True)


def prepared_from_parts(workspace: Workspace, plan: dict[str, Any]) -> PreparedCorpus:
    """The run's items (``part_items``), no waveforms: what the metric and map stages index
    states by."""
    return PreparedCorpus(plan["run_config"]["corpus_name"], plan["run_config"]["corpus_source"],
                          list(plan["run_langs"]), list(plan["sentence_ids"]),
                          part_items(workspace, plan))


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
    return modality_lengths(prepared, text_lengths)


class PartLayers:
    """A layer getter reading the run's activation parts: only the layers a stage asks for are in
    memory."""

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
                                            filters={"layer": int(layer),
                                                     "voice_rank": int(voice_rank)})
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
