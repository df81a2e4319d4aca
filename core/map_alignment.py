"""Rigid alignment of stored 2-D maps, so that the maps of consecutive layers do not jump.

Why: each layer's UMAP map is fitted on its own, and UMAP's output is defined only up to rotation,
reflection and translation (its loss depends on distances alone). Two layers whose neighbourhoods
barely differ can therefore come out turned or mirrored against each other, and a layer slider
shows every point jump although little changed. Aligning each layer's map onto the previous one
with an orthogonal Procrustes fit (rotation or reflection plus translation, least squares over the
items both maps hold) takes out exactly that freedom and nothing else: every map keeps all its
pairwise distances (it is the stored UMAP result, moved rigidly), so what still moves between
layers is what the layers put in different places. No scaling: UMAP maps of one run have
comparable sizes, and a scale would change distances.

Pure float64 numpy, no store and no streamlit: the dashboard aligns stored maps when it reads them
(a 2 x 2 SVD per layer; nothing is recomputed or stored).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: fewest items two maps must share to fix a rotation (two points leave a reflection free, which
#: Procrustes resolves, but one point fixes nothing)
MIN_SHARED = 2


@dataclass(frozen=True)
class RigidMotion:
    """``xy -> (xy - source_centre) @ rotation + target_centre``: a rotation or reflection
    (``rotation`` is 2 x 2 orthogonal) about the source's centre, then a translation."""
    rotation: np.ndarray
    source_centre: np.ndarray
    target_centre: np.ndarray

    def apply(self, xy: np.ndarray) -> np.ndarray:
        """The points ``xy`` (n x 2) moved; NaN rows stay NaN."""
        xy = _as_points(xy, "xy")
        return (xy - self.source_centre) @ self.rotation + self.target_centre

    @property
    def is_reflection(self) -> bool:
        return bool(np.linalg.det(self.rotation) < 0)


def _as_points(xy: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(xy, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{name} must be an (n, 2) array of map coordinates, got shape "
                         f"{array.shape}")
    return array


def procrustes(source: np.ndarray, target: np.ndarray) -> RigidMotion:
    """The rigid motion (rotation or reflection, then translation) that brings ``source`` closest
    to ``target`` in least squares; row i of each is the same item. Rows with a non-finite
    coordinate on either side are left out of the fit.

    The orthogonal Procrustes solution: with both sides centred, ``R = U V^T`` from the SVD
    ``U S V^T`` of ``source^T target``. Reflections are allowed on purpose: a mirrored UMAP map
    is the same map.
    """
    source, target = _as_points(source, "source"), _as_points(target, "target")
    if source.shape != target.shape:
        raise ValueError(f"source and target must hold the same items, got {len(source)} and "
                         f"{len(target)} rows")
    usable = np.isfinite(source).all(axis=1) & np.isfinite(target).all(axis=1)
    if usable.sum() < MIN_SHARED:
        raise ValueError(f"aligning two maps needs at least {MIN_SHARED} items placed in both, "
                         f"got {int(usable.sum())}")
    s, t = source[usable], target[usable]
    s_centre, t_centre = s.mean(axis=0), t.mean(axis=0)
    u, _, vt = np.linalg.svd((s - s_centre).T @ (t - t_centre))
    return RigidMotion(u @ vt, s_centre, t_centre)


def align_to(source_ids: np.ndarray, source_xy: np.ndarray, target_ids: np.ndarray,
             target_xy: np.ndarray) -> np.ndarray:
    """``source_xy`` (the map of the items ``source_ids``) moved rigidly onto ``target_xy``
    (the map of ``target_ids``), fitted on the items both maps hold. Items only in the source
    are moved along; an id repeated within a map counts with its first row."""
    source_ids, target_ids = np.asarray(source_ids), np.asarray(target_ids)
    source_xy, target_xy = _as_points(source_xy, "source_xy"), _as_points(target_xy, "target_xy")
    if len(source_ids) != len(source_xy) or len(target_ids) != len(target_xy):
        raise ValueError("each map needs one id per point")
    shared, in_source, in_target = np.intersect1d(source_ids, target_ids, return_indices=True)
    if len(shared) < MIN_SHARED:
        raise ValueError(f"aligning two maps needs at least {MIN_SHARED} shared items, got "
                         f"{len(shared)}")
    motion = procrustes(source_xy[in_source], target_xy[in_target])
    return motion.apply(source_xy)


def align_chain(maps: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """Maps given in layer order as ``(ids, xy)``; returns each map's coordinates with the first
    left as stored and every later one moved rigidly onto the (already moved) one before it.

    Chained, not all onto the first: consecutive layers share most neighbourhoods, so each fit
    is well determined, while a deep layer may have little left in common with the first. A map
    sharing fewer than ``MIN_SHARED`` items with its predecessor is left as stored, and the chain
    goes on from it.
    """
    aligned: list[np.ndarray] = []
    for i, (ids, xy) in enumerate(maps):
        xy = _as_points(xy, f"map {i}")
        if i == 0:
            aligned.append(xy.copy())
            continue
        previous_ids = maps[i - 1][0]
        if len(np.intersect1d(ids, previous_ids)) < MIN_SHARED:
            aligned.append(xy.copy())
            continue
        aligned.append(align_to(ids, xy, previous_ids, aligned[i - 1]))
    return aligned


def mean_displacement(ids_a: np.ndarray, xy_a: np.ndarray, ids_b: np.ndarray,
                      xy_b: np.ndarray) -> float:
    """Mean distance an item moves from map a to map b (items in both), in map units: how much a
    layer change makes points travel (what alignment reduces)."""
    _, in_a, in_b = np.intersect1d(np.asarray(ids_a), np.asarray(ids_b), return_indices=True)
    if len(in_a) == 0:
        raise ValueError("the two maps share no items")
    delta = _as_points(xy_a, "xy_a")[in_a] - _as_points(xy_b, "xy_b")[in_b]
    return float(np.nanmean(np.sqrt((delta ** 2).sum(axis=1))))
