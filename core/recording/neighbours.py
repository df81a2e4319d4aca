"""The stored items nearest to the clip's (and transcript's) states.

**Cosine**, within one representation space only, as the store's ``paired_cosine`` and maps do.
A query state at (component, layer) is compared with the stored states of the same point, and
with another component's point at the nearest path depth when that point lives in the same
space (a speech LLM's text and speech paths); never across spaces (Whisper's encoder and
decoder are two spaces, so the recording's neighbours are stored speech, the transcript's stored
text).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.recording.clip import ClipStates
from core.recording.reference import Reference, query_name, unit_rows

SIMILARITY = "cosine"
DEFAULT_K = 5


def candidate_points(reference: Reference, component: str, layer: int) -> list[tuple[str, int]]:
    """Stored points a query at (component, layer) is compared with: that point, plus each other
    component's point at the nearest path depth when it lives in the same space."""
    own = reference.points.get((component, layer))
    if own is None:
        return []
    out = [(component, layer)]
    for other in dict.fromkeys(c for c, _ in reference.points):
        if other == component:
            continue
        pts = [p for (c, _), p in reference.points.items() if c == other]
        nearest = min(pts, key=lambda p: (abs(p.depth - own.depth), p.layer))
        if nearest.space == own.space and nearest.unit.shape[1] == own.unit.shape[1]:
            out.append((other, nearest.layer))
    return out


@dataclass
class Ranking:
    """Every candidate stored item of one query, best first (score descending, ties by item id,
    then candidate order): ``point[i]``/``row[i]`` locate the i-th best item in
    ``reference.points``, ``score[i]`` is its cosine. Arrays only: a query ranks thousands of
    items, of which the page shows k."""

    points: list[tuple[str, int]]
    point: np.ndarray
    row: np.ndarray
    score: np.ndarray

    def frame(self, reference: Reference, n: int | None = None) -> pd.DataFrame:
        """The best ``n`` (default: all) as rows: the items' columns, score, stored_component,
        stored_layer."""
        chosen = slice(None) if n is None else slice(0, n)
        point, row, score = self.point[chosen], self.row[chosen], self.score[chosen]
        frames = []
        for i in dict.fromkeys(point.tolist()):
            comp, layer = self.points[i]
            mine = point == i
            rows = reference.points[(comp, layer)].items.iloc[row[mine]].reset_index(drop=True)
            rows["score"] = score[mine]
            rows["stored_component"] = comp
            rows["stored_layer"] = layer
            rows["_rank"] = np.flatnonzero(mine)
            frames.append(rows)
        if not frames:
            return pd.DataFrame(columns=["item_id", "sentence_id", "lang", "modality", "text",
                                         "score", "stored_component", "stored_layer"])
        return pd.concat(frames, ignore_index=True).sort_values("_rank", kind="stable") \
            .drop(columns="_rank").reset_index(drop=True)

    def column(self, reference: Reference, name: str) -> np.ndarray:
        """One items column (e.g. ``sentence_id``) of every candidate, best first."""
        values = np.concatenate([reference.points[p].items[name].to_numpy() for p in self.points])
        offsets = np.cumsum([0] + [len(reference.points[p].items) for p in self.points])[:-1]
        return values[offsets[self.point] + self.row]


def rank_candidates(reference: Reference, points: list[tuple[str, int]], query: np.ndarray
                    ) -> Ranking:
    """Every stored item of ``points`` ranked by cosine to ``query``, best first."""
    q = unit_rows(query)
    scores = [reference.points[p].unit @ q for p in points]
    score = np.concatenate(scores)
    item_id = np.concatenate([reference.points[p].items["item_id"].to_numpy() for p in points])
    point = np.repeat(np.arange(len(points)), [len(s) for s in scores])
    row = np.concatenate([np.arange(len(s)) for s in scores])
    order = np.lexsort((item_id, -score))  # stable: equal scores and ids keep candidate order
    return Ranking(points, point[order], row[order], score[order])


def nearest_neighbours(reference: Reference, states: ClipStates, *, k: int = DEFAULT_K
                       ) -> pd.DataFrame:
    """The ``k`` nearest stored items per (component, layer) of every query state, best first.

    Columns: component, layer, layer_name, depth, query ("recording" / "transcript"), rank (1 =
    nearest), item_id, sentence_id, lang, modality, text, score (cosine), stored_component.
    """
    frames = []
    for comp, pooled in states.pooled.items():
        for layer in range(pooled.shape[0]):
            points = candidate_points(reference, comp, layer)
            if not points:
                continue
            top = rank_candidates(reference, points, pooled[layer]).frame(reference, k)
            point = reference.points[(comp, layer)]
            top.insert(0, "rank", np.arange(1, len(top) + 1))
            top.insert(0, "query", query_name(reference, comp))
            top.insert(0, "depth", point.depth)
            top.insert(0, "layer_name", point.name)
            top.insert(0, "layer", layer)
            top.insert(0, "component", comp)
            frames.append(top)
    columns = ["component", "layer", "layer_name", "depth", "query", "rank", "item_id",
               "sentence_id", "lang", "modality", "text", "score", "stored_component"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def neighbour_table(neighbours: pd.DataFrame, component: str) -> pd.DataFrame:
    """Layer x rank table of one component's neighbours: "lang · text (score)" per cell."""
    rows = neighbours[neighbours["component"] == component]
    if rows.empty:
        return pd.DataFrame()
    cells = rows.assign(cell=[f"{r.lang} · {_short(r.text)} ({r.score:.3f})"
                              for r in rows.itertuples()])
    table = cells.pivot_table(index=["layer", "layer_name"], columns="rank", values="cell",
                              aggfunc="first")
    table.columns = [f"#{c}" for c in table.columns]
    table = table.reset_index().set_index("layer_name").drop(columns="layer")
    table.index.name = "layer"
    return table


def _short(text: object, limit: int = 48) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sentence_ranks(reference: Reference, states: ClipStates, sentence_id: int) -> pd.DataFrame:
    """Per query and layer, the rank (1 = nearest) among all candidates of the best stored item of
    ``sentence_id`` (any language), with its language and score."""
    out = []
    for comp, pooled in states.pooled.items():
        for layer in range(pooled.shape[0]):
            points = candidate_points(reference, comp, layer)
            if not points:
                continue
            ranking = rank_candidates(reference, points, pooled[layer])
            hits = np.flatnonzero(ranking.column(reference, "sentence_id") == sentence_id)
            if hits.size == 0:
                continue
            first = int(hits[0])
            point = reference.points[(comp, layer)]
            out.append({"component": comp, "layer": layer, "layer_name": point.name,
                        "depth": point.depth, "query": query_name(reference, comp),
                        "rank": first + 1, "n_candidates": len(ranking.score),
                        "lang": ranking.column(reference, "lang")[first],
                        "score": float(ranking.score[first])})
    return pd.DataFrame(out, columns=["component", "layer", "layer_name", "depth", "query", "rank",
                                      "n_candidates", "lang", "score"])
