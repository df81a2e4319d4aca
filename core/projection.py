"""2-D UMAP maps of pooled states, so the dashboard can show which items a layer puts together.

umap-learn is imported lazily: it pulls in numba, which is slow to import and not needed to read a
store.
"""

from __future__ import annotations

import warnings

import numpy as np

MIN_POINTS = 4


def umap_2d(x: np.ndarray, *, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0,
            metric: str = "cosine") -> np.ndarray:
    """Embed rows of ``x`` (n, dim) in 2-D; the same input and seed give the same map (repeated
    rows are mapped once and share a place).

    ``n_neighbors`` is lowered to ``n - 1`` for small inputs (UMAP needs more points than
    neighbours). A fixed seed makes umap-learn run single-threaded, which is what makes it
    reproducible.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"umap_2d needs a 2-D array (n_items, dim), got shape {x.shape}")
    n = x.shape[0]
    if n < MIN_POINTS:
        raise ValueError(f"umap_2d needs at least {MIN_POINTS} items to build a map, got {n}; "
                         "use more sentences or languages")
    if not np.isfinite(x).all():
        raise ValueError("umap_2d got NaN or infinite values; check the pooled states")
    if n_neighbors < 2:
        raise ValueError(f"n_neighbors must be at least 2, got {n_neighbors}")

    # umap-learn is not reproducible on exactly repeated rows even with a seed (ties among
    # neighbours): map each distinct row once and give its copies the same place.
    unique, inverse = np.unique(x, axis=0, return_inverse=True)
    if MIN_POINTS <= len(unique) < n:
        return umap_2d(unique, n_neighbors=n_neighbors, min_dist=min_dist, seed=seed,
                       metric=metric)[inverse.reshape(-1)]

    import umap  # noqa: PLC0415 (slow import, see module docstring)

    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, n - 1), min_dist=min_dist,
                        metric=metric, random_state=seed, n_jobs=1)
    with warnings.catch_warnings():
        # "n_jobs value 1 overridden to 1 by setting random_state": expected, we want determinism.
        warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*spectral initialisation.*")
        embedding = reducer.fit_transform(x)
    return np.asarray(embedding, dtype=np.float64)


def umap_params(*, n_neighbors: int = 15, min_dist: float = 0.1, seed: int = 0,
                metric: str = "cosine") -> dict:
    """The parameters recorded next to stored projections."""
    import importlib.metadata

    return {"n_neighbors": n_neighbors, "min_dist": min_dist, "seed": seed, "metric": metric,
            "umap_learn": importlib.metadata.version("umap-learn")}
