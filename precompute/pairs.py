"""Which side pairs a run compares, and at which layers: pure bookkeeping, no models or SQL.

A *side* is one component's pooled states at one layer for one language (rows aligned by sentence).
Pairings follow the study: the same modality across languages (lang_a < lang_b), and text against
speech for every language pair including a language with itself. Two layer stacks of different depth
are compared at matching relative depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

from core.models.base import Component


@dataclass(frozen=True)
class Side:
    component: str
    layer: int
    lang: str

    @property
    def key(self) -> str:
        """A stable string key for compute_grid (keys travel through DataFrames)."""
        return f"{self.component}|{self.layer}|{self.lang}"


@dataclass(frozen=True)
class PairSpec:
    pairing: str                # "text-text", "speech-speech" or "text-speech"
    a: Side
    b: Side
    modality_a: str
    modality_b: str
    depth: float                # relative depth in [0, 1] both layers sit at


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


def metric_pairs(components: list[Component], langs: list[str]) -> list[PairSpec]:
    """Every side pair a run measures, in a stable order."""
    text = [c for c in components if c.modality == "text"]
    speech = [c for c in components if c.modality == "speech"]
    pairs: list[PairSpec] = []
    for group, pairing in ((text, "text-text"), (speech, "speech-speech")):
        for comp in group:
            for layer, _, depth in align_layers(comp.n_layers, comp.n_layers):
                for lang_a, lang_b in combinations(sorted(langs), 2):
                    pairs.append(PairSpec(pairing, Side(comp.name, layer, lang_a),
                                          Side(comp.name, layer, lang_b), comp.modality,
                                          comp.modality, depth))
    for t in text:
        for s in speech:
            for layer_t, layer_s, depth in align_layers(t.n_layers, s.n_layers):
                for lang_a in langs:
                    for lang_b in langs:
                        pairs.append(PairSpec("text-speech", Side(t.name, layer_t, lang_a),
                                              Side(s.name, layer_s, lang_b), "text", "speech", depth))
    return pairs


def projection_groups(components: list[Component]) -> list[list[tuple[str, int]]]:
    """Sets of (component, layer) mapped together in one 2-D projection.

    A model with one text and one speech component of the same width gets joint maps (text and
    speech items in one space) at matching depths; every other layer is mapped on its own.
    """
    groups: list[list[tuple[str, int]]] = []
    covered: set[tuple[str, int]] = set()
    text = [c for c in components if c.modality == "text"]
    speech = [c for c in components if c.modality == "speech"]
    if len(text) == 1 and len(speech) == 1 and text[0].dim == speech[0].dim:
        t, s = text[0], speech[0]
        for layer_t, layer_s, _ in align_layers(t.n_layers, s.n_layers):
            group = [(t.name, layer_t), (s.name, layer_s)]
            groups.append(group)
            covered.update(group)
    for comp in components:
        for layer in range(comp.n_layers):
            if (comp.name, layer) not in covered:
                groups.append([(comp.name, layer)])
    return groups


def _nearest(x: float) -> int:
    return int(math.floor(x + 0.5))
