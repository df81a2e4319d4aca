"""The clip's place in the stored 2-D maps, and which maps the page shows.

No refit, no stored point moves: the clip's point in the map of a (component, layer) is the mean
of the 2-D positions of its ``k`` nearest stored items of that point (cosine in the full space),
weighted by their cosine clipped at 0 (equal weights when all are <= 0). Deterministic; ties go
to the lower item id. It says "near these items", not where UMAP would have put it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from core.recording.clip import ClipStates
from core.recording.neighbours import DEFAULT_K
from core.recording.reference import Reference, ReferencePoint, query_name, unit_rows


def place_in_maps(reference: Reference, states: ClipStates, *, k: int = DEFAULT_K) -> pd.DataFrame:
    """The clip's (and transcript's) position in every stored map, without refitting: the
    cosine-weighted mean position of the ``k`` nearest stored items of the same point.

    Columns: component, layer, layer_name, method, params, query, x, y, neighbour_ids.
    """
    proj = reference.projections
    out = []
    if proj.empty:
        return pd.DataFrame(columns=["component", "layer", "layer_name", "method", "params",
                                     "query", "x", "y", "neighbour_ids"])
    for (comp, layer, method), rows in proj.groupby(["component", "layer", "method"], sort=True):
        comp, layer = str(comp), int(layer)
        point = reference.points.get((comp, layer))
        if point is None or comp not in states.pooled or layer >= states.pooled[comp].shape[0]:
            continue
        x, y, ids = weighted_position(point, rows, states.pooled[comp][layer], k=k)
        out.append({"component": comp, "layer": layer, "layer_name": point.name,
                    "method": method, "params": rows["params"].iloc[0],
                    "query": query_name(reference, comp), "x": x, "y": y, "neighbour_ids": ids})
    return pd.DataFrame(out)


def map_methods(reference: Reference) -> dict[str, str]:
    """The one map method each component's maps are shown in: its first by name among those
    ``map_panels_of`` gives panels for. One rule for the stored maps the page shows while it
    waits and for the clip's placements afterwards (a component whose layers lack another
    component's method still gets its own maps)."""
    methods: dict[str, str] = {}
    for component, method in map_panels_of(reference):
        methods[component] = min(method, methods.get(component, method))
    return methods


def map_panels_of(reference: Reference) -> dict[tuple[str, str], tuple[tuple, tuple]]:
    """Per (component, method) of the run's stored maps, its panels as ``place_in_maps`` places
    a clip into them: ``((layer, params), ...)`` and ``((layer, layer_name), ...)`` in layer
    order, the two tuples ``dashboard.charts.recording.map_panels`` reads off a clip's
    placements. Depends on the run only, so the page can build the stored part of its maps
    before any clip arrives."""
    proj = reference.projections
    out: dict[tuple[str, str], list[tuple[int, str, str]]] = {}
    if proj.empty:
        return {}
    for (comp, layer, method), rows in proj.groupby(["component", "layer", "method"], sort=True):
        point = reference.points.get((str(comp), int(layer)))
        if point is not None:
            out.setdefault((str(comp), str(method)), []).append(
                (int(layer), str(rows["params"].iloc[0]), point.name))
    return {key: (tuple((layer, params) for layer, params, _ in panels),
                  tuple((layer, name) for layer, _, name in panels))
            for key, panels in out.items()}


def weighted_position(point: ReferencePoint, map_rows: pd.DataFrame, query: np.ndarray, *,
                      k: int = DEFAULT_K) -> tuple[float, float, tuple[int, ...]]:
    """(x, y, neighbour item ids): weighted mean of the map positions of the ``k`` nearest items."""
    map_ids, first = np.unique(map_rows["item_id"].to_numpy(dtype=np.int64), return_index=True)
    map_xy = map_rows[["x", "y"]].to_numpy(dtype=np.float64)[first]
    item_ids = point.items["item_id"].to_numpy(dtype=np.int64)
    on_map = np.isin(item_ids, map_ids)
    if not on_map.any():
        return math.nan, math.nan, ()
    scores = point.unit[on_map] @ unit_rows(query)
    order = np.lexsort((item_ids[on_map], -scores))[:k]
    weights = np.clip(scores[order].astype(np.float64), 0.0, None)
    if weights.sum() <= 0:
        weights = np.ones_like(weights)
    ids = item_ids[on_map][order]
    xy = map_xy[np.searchsorted(map_ids, ids)]
    x, y = (weights[:, None] * xy).sum(axis=0) / weights.sum()
    return float(x), float(y), tuple(int(i) for i in ids)
