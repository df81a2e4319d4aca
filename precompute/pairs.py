"""Which side pairs a run compares, and at which layers: pure bookkeeping, no models or SQL.

A *side* is one component's pooled states at one layer for one language (rows aligned by sentence).
Pairings follow the study: the same modality across languages (lang_a < lang_b), and text against
speech for every language pair including a language with itself, for the (text, speech) component
pairs the adapter names (``ModelAdapter.modality_pairs``). Where a language's speech is also in a
second voice, speech-speech pairs that language's first voice (side a) with its second (side b):
the same sentence, language and model, another voice, so ``lang_a == lang_b`` in speech-speech
rows means a voice change alone (the reference cross-lingual speech similarity is read against). Two layer stacks of different depth are
compared at matching relative depth. Each pair records whether its two points share a
representation space: only then are coordinate-wise metrics (paired cosine, retrieval) and joint
2-D maps defined.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

from core.models.base import Component, shares_space


@dataclass(frozen=True)
class Side:
    component: str
    layer: int
    lang: str
    voice_rank: int = 0  # speech: 0 the language's voice, 1 its second voice

    @property
    def key(self) -> str:
        """A stable string key for compute_grid (keys travel through DataFrames)."""
        voice = f"|voice{self.voice_rank}" if self.voice_rank else ""
        return f"{self.component}|{self.layer}|{self.lang}{voice}"


@dataclass(frozen=True)
class PairSpec:
    pairing: str                # "text-text", "speech-speech" or "text-speech"
    a: Side
    b: Side
    modality_a: str
    modality_b: str
    depth: float                # relative depth in [0, 1] both layers sit at
    shared_space: bool = True   # both points write into one representation space


def align_layers(n_a: int, n_b: int) -> list[tuple[int, int, float]]:
    """(layer_a, layer_b, depth) for each layer of the shallower stack, nearest layer on the other.

    Equal depths give the identity; layer 0 (the embedding) always meets layer 0 and the last layer
    the last layer.
    """
    if n_a < 1 or n_b < 1:
        raise ValueError(f"layer stacks need at least one layer, got {n_a} and {n_b}")
    n = min(n_a, n_b)
    if n == 1:
        return [(0, 0, 0.0)]
    aligned = []
    for i in range(n):
        depth = i / (n - 1)
        aligned.append((_nearest(depth * (n_a - 1)), _nearest(depth * (n_b - 1)), depth))
    return aligned


def metric_pairs(components: list[Component], langs: list[str],
                 modality_pairs: list[tuple[str, str]] | None = None, *,
                 second_voice_langs: list[str] | tuple[str, ...] = ()) -> list[PairSpec]:
    """Every side pair a run measures, in a stable order.

    ``modality_pairs`` are the (text component, speech component) pairs to compare; None: every
    text component with every speech component. ``second_voice_langs``: languages whose speech is
    also in a second voice (each gets a voice-change pair per speech layer).
    """
    by_name = {c.name: c for c in components}
    text = [c for c in components if c.modality == "text"]
    speech = [c for c in components if c.modality == "speech"]
    if modality_pairs is None:
        modality_pairs = [(t.name, s.name) for t in text for s in speech]
    pairs: list[PairSpec] = []
    for group, pairing in ((text, "text-text"), (speech, "speech-speech")):
        for comp in group:
            for layer, _, depth in align_layers(comp.n_layers, comp.n_layers):
                for lang_a, lang_b in combinations(sorted(langs), 2):
                    pairs.append(PairSpec(pairing, Side(comp.name, layer, lang_a),
                                          Side(comp.name, layer, lang_b), comp.modality,
                                          comp.modality, depth, True))
                if pairing == "speech-speech":
                    for lang in sorted(set(second_voice_langs) & set(langs)):
                        pairs.append(PairSpec(pairing, Side(comp.name, layer, lang),
                                              Side(comp.name, layer, lang, 1), "speech", "speech",
                                              depth, True))
    for t_name, s_name in modality_pairs:
        if t_name not in by_name or s_name not in by_name:
            continue  # a component the run did not measure (e.g. no speech items)
        t, s = by_name[t_name], by_name[s_name]
        if t.modality != "text" or s.modality != "speech":
            raise ValueError(f"modality pair ({t_name}, {s_name}) must be (text, speech) components")
        for layer_t, layer_s, depth in with_length_adaptation(t, s):
            shared = shares_space(t, layer_t, s, layer_s)
            for lang_a in langs:
                for lang_b in langs:
                    pairs.append(PairSpec("text-speech", Side(t.name, layer_t, lang_a),
                                          Side(s.name, layer_s, lang_b), "text", "speech", depth,
                                          shared))
    return pairs


def with_length_adaptation(text: Component, speech: Component) -> list[tuple[int, int, float]]:
    """``align_layers`` of the two paths, plus, around each length-reducing stage of the speech
    path, its before and after points both paired with one text layer (the one aligned with the
    after point), so the effect of length adaptation is measured against the same text side."""
    aligned = align_layers(text.n_layers, speech.n_layers)
    present = {(lt, ls) for lt, ls, _ in aligned}
    for before, after in speech.length_adaptation():
        layer_t, depth = min(((lt, d) for lt, ls, d in aligned),
                             key=lambda item: abs(item[1] - after / max(speech.n_layers - 1, 1)))
        for layer_s in (before, after):
            if (layer_t, layer_s) not in present:
                aligned.append((layer_t, layer_s, depth))
                present.add((layer_t, layer_s))
    return aligned


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


def projection_groups(components: list[Component],
                      modality_pairs: list[tuple[str, str]] | None = None
                      ) -> list[list[tuple[str, int]]]:
    """Sets of (component, layer) mapped together in one 2-D projection.

    Text and speech points of a modality pair that share a representation space (e.g. an LLM's
    layers given text vs given audio) get joint maps at matching depths; every other point is
    mapped on its own (a joint map of unrelated spaces would place items by accident of basis).
    """
    by_name = {c.name: c for c in components}
    if modality_pairs is None:
        modality_pairs = [(t.name, s.name) for t in components if t.modality == "text"
                          for s in components if s.modality == "speech"]
    groups: list[list[tuple[str, int]]] = []
    covered: set[tuple[str, int]] = set()
    for t_name, s_name in modality_pairs:
        if t_name not in by_name or s_name not in by_name:
            continue
        t, s = by_name[t_name], by_name[s_name]
        for layer_t, layer_s, _ in align_layers(t.n_layers, s.n_layers):
            group = [(t.name, layer_t), (s.name, layer_s)]
            if not shares_space(t, layer_t, s, layer_s) or covered & set(group):
                continue
            groups.append(group)
            covered.update(group)
    for comp in components:
        for layer in range(comp.n_layers):
            if (comp.name, layer) not in covered:
                groups.append([(comp.name, layer)])
    return groups


def _nearest(x: float) -> int:
    return int(math.floor(x + 0.5))
