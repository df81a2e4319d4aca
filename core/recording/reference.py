"""The stored side of a recording's analysis: a run's pooled states per (component, layer),
unit-normalised for cosine, and its 2-D maps, read once through the Store's read API."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass
class ReferencePoint:
    """The stored pooled states of one (component, layer), unit-normalised for cosine."""

    component: str
    layer: int
    name: str
    depth: float
    space: str
    modality: str
    items: pd.DataFrame            # item_id, sentence_id, lang, modality, text
    unit: np.ndarray               # (n_items, dim) float32, rows of norm 1


@dataclass
class Reference:
    """What a run stored, as the recording analysis needs it."""

    run_id: str
    model: str
    components: pd.DataFrame       # component, modality, n_layers, dim, space, layer_names
    points: dict[tuple[str, int], ReferencePoint]
    projections: pd.DataFrame      # component, layer, item_id, method, x, y, params (+ item)
    modality_pairs: list[tuple[str, str]] = field(default_factory=list)

    def modality_of(self, component: str) -> str | None:
        """The component's modality ("text" / "speech"), None when the run has no such one."""
        if "_modalities" not in self.__dict__:
            self.__dict__["_modalities"] = dict(zip(self.components["component"].astype(str),
                                                    self.components["modality"].astype(str),
                                                    strict=True))
        return self.__dict__["_modalities"].get(component)

    def components_of(self, modality: str) -> list[str]:
        return [str(c) for c in self.components.loc[self.components["modality"] == modality,
                                                    "component"]]

    def n_layers(self, component: str) -> int:
        return sum(1 for comp, _ in self.points if comp == component)

    def langs(self) -> list[str]:
        return sorted({lang for p in self.points.values()
                       for lang in p.items["lang"].unique()})

    def texts(self) -> pd.DataFrame:
        """sentence_id, lang, text of the stored text items (any text point)."""
        for point in self.points.values():
            if point.modality == "text":
                return point.items[["sentence_id", "lang", "text"]].drop_duplicates()
        for point in self.points.values():
            return point.items[["sentence_id", "lang", "text"]].drop_duplicates()
        return pd.DataFrame(columns=["sentence_id", "lang", "text"])


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to norm 1 (float32; an all-zero row stays zero), so a dot product is a cosine."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def load_reference(store, run_id: str) -> Reference:
    """Read a run's pooled states, layer points and maps through the Store's read API."""
    run = store.run(run_id)
    components = store.components(run_id)
    layers = store.layers(run_id)
    points: dict[tuple[str, int], ReferencePoint] = {}
    for row in layers.itertuples():
        comp = components[components["component"] == row.component].iloc[0]
        items, vectors = store.activations(run_id, row.component, int(row.layer))
        if items.empty:
            continue
        points[(str(row.component), int(row.layer))] = ReferencePoint(
            component=str(row.component), layer=int(row.layer), name=str(row.name),
            depth=float(row.depth), space=str(row.space if pd.notna(row.space) else comp["space"]),
            modality=str(comp["modality"]),
            items=items[["item_id", "sentence_id", "lang", "modality", "text"]].reset_index(drop=True),
            unit=unit_rows(vectors))
    config = run.get("config") or {}
    pairs = [tuple(map(str, p)) for p in config.get("modality_pairs") or []]
    if not pairs:
        texts = [str(c) for c in components.loc[components["modality"] == "text", "component"]]
        speech = [str(c) for c in components.loc[components["modality"] == "speech", "component"]]
        pairs = [(t, s) for t in texts for s in speech]
    return Reference(run_id=run_id, model=str(run["model"]), components=components, points=points,
                     projections=store.projections(run_id), modality_pairs=pairs)


def query_name(reference: Reference, component: str) -> str:
    """What a query state of ``component`` is called in tables: "recording" or "transcript"."""
    modality = reference.modality_of(component)
    return "recording" if modality == "speech" else "transcript"
