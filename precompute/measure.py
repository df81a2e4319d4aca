"""Stage 2's measuring: a run's metrics, metric variants and UMAP maps from its ``MeasureInputs``.

The build (from parts, one metric group and one map at a time) and ``precompute metrics`` (from a
published store) both call these, so the same inputs give the same rows. Coordinate-wise metrics
(``NEEDS_SHARED_SPACE``: paired cosine, retrieval) are computed only between points of one
representation space.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from precompute.measure_inputs import MeasureInputs
from precompute.pairs import PairSpec, projection_groups

log = logging.getLogger("precompute")


def compute_metrics(inputs: MeasureInputs, pairs: list[PairSpec] | None = None, *,
                    progress: bool = True) -> pd.DataFrame:
    """The run's metrics grid as store rows (one per pair, layer and metric).

    ``pairs`` (default: all of ``inputs.pairs``) restricts the grid to some pairs (the build
    computes one ``metric_groups`` group at a time). Coordinate-wise metrics are computed only
    for pairs whose points share a representation space; the other metrics for every pair.
    """
    from core.metrics.grid import compute_grid
    from core.metrics.similarity import NEEDS_SHARED_SPACE

    config = inputs.config
    if pairs is None:
        pairs = inputs.pairs
    if not pairs:
        return pd.DataFrame()
    sides, side_lengths = pair_sides(inputs, pairs)
    specs = metric_specs(config.metrics)
    across = [m for m in specs if m.name not in NEEDS_SHARED_SPACE]
    chosen = [(p, specs if p.shared_space else across) for p in pairs]
    chosen = [(p, m) for p, m in chosen if m]
    if not chosen:
        return pd.DataFrame()
    with tqdm(total=None, desc="metrics", unit="step", disable=not progress) as bar:
        def report(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        # one grid for every pair: each side's SVD, Gram matrix and bootstrap directions once
        grid = compute_grid(sides, [(p.a.key, p.b.key) for p, _ in chosen], specs,
                            lengths=side_lengths, n_permutations=config.n_permutations,
                            n_bootstrap=config.n_bootstrap, seed=config.seed,
                            device=config.device, progress=report,
                            pair_metrics=[m for _, m in chosen])
    return metric_rows(grid, [p for p, _ in chosen], pooling=config.pooling)


def compute_metric_variants(inputs: MeasureInputs, pairs: list[PairSpec],
                            kinds: tuple[str, ...] | None = None) -> pd.DataFrame:
    """SVCCA at other k and length-matched SVCCA for the pairs findings read
    (``precompute.variants``); ``kinds``: some of ``variants.VARIANTS`` (default: all)."""
    from precompute.variants import VARIANTS, compute_variants, variant_pairs

    chosen = variant_pairs(pairs)
    if not chosen:
        return pd.DataFrame()
    config = inputs.config
    sides, side_lengths = pair_sides(inputs, chosen)
    return compute_variants(sides, side_lengths, chosen, n_permutations=config.n_permutations,
                            seed=config.seed, device=config.device, kinds=kinds or VARIANTS)


def log_variant_notes(inputs: MeasureInputs, run_id: str) -> None:
    """Say once per run (not once per metric group) which k the SVCCA k-sensitivity grid leaves
    out and which it computes above n / 4 (``precompute.variants.k_grid_notes``)."""
    from precompute.variants import k_grid_notes, variant_pairs

    if not any(variant_pairs(group) for group in inputs.groups):
        return
    for level, message in k_grid_notes(len(inputs.prepared.sentence_ids)):
        log.log(level, "%s: %s", run_id, message)


def pair_sides(inputs: MeasureInputs, pairs: list[PairSpec]
               ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Each side of ``pairs`` as (n_sentences, dim) rows in sentence order, and its lengths, keyed
    by ``Side.key`` (what ``compute_grid`` takes)."""
    prepared, lengths, langs = inputs.prepared, inputs.lengths, inputs.langs
    modality_of = {c.name: c.modality for c in inputs.components}
    rows = {(m, v): _rows_by_lang(prepared.modality_items(m, langs, voice_rank=v))
            for m in ("text", "speech") for v in (0, 1)}
    layers: dict[tuple[str, int, int], np.ndarray] = {}
    sides: dict[str, np.ndarray] = {}
    side_lengths: dict[str, np.ndarray] = {}
    for spec in pairs:
        for side in (spec.a, spec.b):
            if side.key not in sides:
                modality = modality_of[side.component]
                index = rows[(modality, side.voice_rank)][side.lang]
                point = (side.component, side.layer, side.voice_rank)
                if point not in layers:
                    layers[point] = inputs.layer(*point)
                sides[side.key] = layers[point][index]
                side_lengths[side.key] = lengths[(modality, side.voice_rank)][index] \
                    if side.voice_rank else lengths[modality][index]
    return sides, side_lengths


def _rows_by_lang(items: pd.DataFrame) -> dict[str, np.ndarray]:
    """lang -> row indices into ``items`` in sentence order."""
    return {lang: group.sort_values("position").index.to_numpy()
            for lang, group in items.groupby("lang", sort=False)}


def metric_rows(grid: pd.DataFrame, pairs: list[PairSpec], *, pooling: str = "mean") -> pd.DataFrame:
    """Attach pairing, components, layers, depth, languages, space sharing and pooling to
    compute_grid's rows."""
    by_keys = {(p.a.key, p.b.key): p for p in pairs}
    specs = [by_keys[(a, b)] for a, b in zip(grid.key_a, grid.key_b)]
    described = pd.DataFrame({
        "pairing": [s.pairing for s in specs],
        "component_a": [s.a.component for s in specs], "component_b": [s.b.component for s in specs],
        "layer_a": [s.a.layer for s in specs], "layer_b": [s.b.layer for s in specs],
        "depth": [s.depth for s in specs],
        "lang_a": [s.a.lang for s in specs], "lang_b": [s.b.lang for s in specs],
        "modality_a": [s.modality_a for s in specs], "modality_b": [s.modality_b for s in specs],
        "shared_space": [s.shared_space for s in specs],
    })
    from core.store.vectors import encode_resamples

    values = grid.drop(columns=["key_a", "key_b"]).reset_index(drop=True)
    if "resamples" in values:  # bootstrap values as the store's blob (aggregates need them)
        values["resamples"] = [encode_resamples(v) if v is not None else None
                               for v in values["resamples"]]
    out = pd.concat([described, values], axis=1)
    out["pooling"] = pooling
    return out


def metric_specs(names: Sequence[str] | None) -> list:
    """``--metrics`` names -> MetricSpecs from the grid's defaults (with their default params)."""
    from core.metrics.grid import DEFAULT_METRICS

    if not names:
        return list(DEFAULT_METRICS)
    known = {spec.name: spec for spec in DEFAULT_METRICS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(known)}")
    return [known[n] for n in names]


def compute_projections(inputs: MeasureInputs, groups: list[list[tuple[str, int]]] | None = None,
                        *, progress: bool = True) -> pd.DataFrame:
    """UMAP maps per layer point; text and speech items together only where they share a space.

    ``groups`` (default: all of ``projection_groups``) restricts which maps are made. Rows name
    their item by ``item_id`` where the items have one, and always by lang, modality, sentence_id.
    """
    from core.projection import MIN_POINTS, umap_2d, umap_params

    config, prepared, langs = inputs.config, inputs.prepared, inputs.langs
    by_name = {c.name: c for c in inputs.components}
    if groups is None:
        groups = projection_groups(inputs.components, inputs.modality_pairs)
    frames = []
    for group in tqdm(groups, desc="umap", unit="layer", disable=not progress):
        blocks, members = [], []
        for name, layer in group:
            items = prepared.modality_items(by_name[name].modality, langs)
            blocks.append(inputs.layer(name, layer))
            keys = [c for c in ("item_id", "lang", "modality", "sentence_id") if c in items]
            members.append(items[keys].assign(component=name, layer=layer))
        x = np.concatenate(blocks)
        if x.shape[0] < MIN_POINTS:
            log.warning("no UMAP for %s: %d items, at least %d needed", group, x.shape[0], MIN_POINTS)
            continue
        n_neighbors = min(config.umap_n_neighbors, x.shape[0] - 1)
        params = {**umap_params(n_neighbors=n_neighbors, min_dist=config.umap_min_dist,
                                seed=config.seed), "joint": [f"{n}:{layer}" for n, layer in group]}
        xy = umap_2d(x, n_neighbors=n_neighbors, min_dist=config.umap_min_dist, seed=config.seed)
        frame = pd.concat(members, ignore_index=True)
        frame["method"] = "umap"
        frame["x"], frame["y"] = xy[:, 0], xy[:, 1]
        frame["params"] = [params] * len(frame)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
