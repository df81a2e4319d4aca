"""Metric variants a reviewer asks for, beside the main grid: SVCCA at other k, length-matched values.

Both are computed for the pairs the findings read (same-language text-speech, cross-lingual
text-text and speech-speech, and the voice-change pairs), with the shuffled-pairs baseline of each
and no bootstrap (they qualify the main rows, whose intervals the verdicts use):

- ``svcca_k``: SVCCA at each k of ``SVCCA_KS`` that the sentences allow (k < n / 2). SVCCA of
  unrelated data rises towards 1 as k approaches n, so a value is only meaningful beside its
  baseline at the same k; the curve shows where the two separate and where they meet. The build
  chooses these k, not the user: ``k_grid_notes`` says once per run which k were left out and
  which lie above n / 4 (the grid's own per-call warning is silenced here, where it would repeat
  for every metric group and not say who chose the k).
- ``length_matched``: the main metric on the sentences whose length lies within
  ``LENGTH_TOLERANCE`` of its median on *both* sides (seconds for speech, the run's text unit for
  text), so length varies little within the subset and cannot carry the similarity. The subset and
  its baseline are the pair's own (n_samples says how many sentences were kept).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from core.metrics.similarity import SVCCA_WARN_FRACTION
from core.store.tables import VARIANT_COLUMNS
from precompute.pairs import PairSpec

SVCCA_KS = (2, 4, 8, 16, 32, 64)
#: The variants, in the order they are computed.
VARIANTS = ("svcca_k", "length_matched")
LENGTH_TOLERANCE = 0.25
#: fewer sentences than this in a length-matched subset: no value (SVCCA needs a few per direction)
MIN_MATCHED = 20


def svcca_ks(n_samples: int) -> tuple[list[int], list[int]]:
    """The k of ``SVCCA_KS`` computed for ``n_samples`` sentences (k < n / 2) and those left out."""
    kept = [k for k in SVCCA_KS if k < n_samples / 2]
    return kept, [k for k in SVCCA_KS if k not in kept]


def k_grid_notes(n_samples: int) -> list[tuple[int, str]]:
    """(logging level, message) about the k-sensitivity grid at ``n_samples`` sentences: the k left
    out, and the k above n / 4 where SVCCA of unrelated data is already high (said once per run
    by the build and by ``precompute metrics``)."""
    kept, dropped = svcca_ks(n_samples)
    chooser = (f"the SVCCA k-sensitivity grid (metric variants, stage 2: k = "
               f"{', '.join(map(str, SVCCA_KS))}, chosen by the build, not by --metrics)")
    notes = []
    if dropped:
        notes.append((logging.INFO,
                      f"{chooser}: k = {', '.join(map(str, dropped))} left out (the grid takes k < "
                      f"n_samples/2 = {n_samples / 2:g}; {n_samples} sentences)"))
    saturated = [k for k in kept if k > SVCCA_WARN_FRACTION * n_samples]
    if saturated:
        notes.append((logging.WARNING,
                      f"{chooser}: k = {', '.join(map(str, saturated))} above n_samples/4 = "
                      f"{n_samples / 4:g}: SVCCA saturates as k nears n, so read those svcca_k "
                      "rows only against their own shuffled baseline at the same k and n"))
    return notes


def variant_pairs(pairs: list[PairSpec]) -> list[PairSpec]:
    """The pairs findings read: same-language text-speech, and every same-modality pair."""
    return [p for p in pairs if p.pairing != "text-speech" or p.a.lang == p.b.lang]


def length_matched_rows(lengths_a: np.ndarray, lengths_b: np.ndarray,
                        tolerance: float = LENGTH_TOLERANCE) -> np.ndarray:
    """Indices of sentences within ``tolerance`` (relative) of the median length on both sides."""
    lengths_a, lengths_b = np.asarray(lengths_a, float), np.asarray(lengths_b, float)
    near_a = np.abs(lengths_a / np.median(lengths_a) - 1) <= tolerance
    near_b = np.abs(lengths_b / np.median(lengths_b) - 1) <= tolerance
    return np.flatnonzero(near_a & near_b)


def compute_variants(sides: dict[str, np.ndarray], side_lengths: dict[str, np.ndarray],
                     pairs: list[PairSpec], *, n_permutations: int, seed: int,
                     device: str | None = None,
                     kinds: tuple[str, ...] = VARIANTS) -> pd.DataFrame:
    """``svcca_k`` and ``length_matched`` rows (SVCCA) for ``pairs``; ``sides``/``side_lengths``
    keyed by ``Side.key`` as ``compute_metrics`` builds them. ``kinds``: which of ``VARIANTS``
    (derived runs keep only what the verdicts read, ``length_matched``)."""
    from core.metrics.grid import MetricSpec, compute_grid

    unknown = sorted(set(kinds) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown metric variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    pairs = variant_pairs(pairs)
    if not pairs:
        return pd.DataFrame(columns=VARIANT_COLUMNS)
    ks, _ = svcca_ks(len(next(iter(sides.values())))) if "svcca_k" in kinds else ([], [])
    frames = []
    if ks:  # saturation is said once per run by the caller (k_grid_notes), not per group here
        grid = compute_grid(sides, [(p.a.key, p.b.key) for p in pairs],
                            [MetricSpec("svcca", {"k": k}) for k in ks],
                            n_permutations=n_permutations, n_bootstrap=0, seed=seed, device=device,
                            warn_saturated=False)
        frames.append(_described(grid, pairs, "svcca_k"))
    matched_sides: dict[str, np.ndarray] = {}
    matched_pairs, matched_specs = [], []
    for spec in pairs if "length_matched" in kinds else []:
        rows = length_matched_rows(side_lengths[spec.a.key], side_lengths[spec.b.key])
        if len(rows) < MIN_MATCHED:
            continue
        key_a, key_b = f"{spec.a.key}@{spec.b.key}", f"{spec.b.key}@{spec.a.key}"
        matched_sides[key_a], matched_sides[key_b] = sides[spec.a.key][rows], sides[spec.b.key][rows]
        matched_pairs.append((key_a, key_b))
        matched_specs.append(spec)
    if matched_pairs:
        grid = compute_grid(matched_sides, matched_pairs, [MetricSpec("svcca", {"k": "auto"})],
                            n_permutations=n_permutations, n_bootstrap=0, seed=seed, device=device)
        by_keys = {keys: spec for keys, spec in zip(matched_pairs, matched_specs)}
        grid["key_a"], grid["key_b"] = zip(*[(by_keys[(a, b)].a.key, by_keys[(a, b)].b.key)
                                             for a, b in zip(grid.key_a, grid.key_b)])
        frames.append(_described(grid, matched_specs, "length_matched"))
    if not frames:
        return pd.DataFrame(columns=VARIANT_COLUMNS)
    return pd.concat(frames, ignore_index=True)[VARIANT_COLUMNS]


def _described(grid: pd.DataFrame, pairs: list[PairSpec], variant: str) -> pd.DataFrame:
    by_keys = {(p.a.key, p.b.key): p for p in pairs}
    specs = [by_keys[(a, b)] for a, b in zip(grid.key_a, grid.key_b)]
    return pd.DataFrame({
        "variant": variant, "pairing": [s.pairing for s in specs],
        "component_a": [s.a.component for s in specs], "component_b": [s.b.component for s in specs],
        "layer_a": [s.a.layer for s in specs], "layer_b": [s.b.layer for s in specs],
        "depth": [s.depth for s in specs], "lang_a": [s.a.lang for s in specs],
        "lang_b": [s.b.lang for s in specs], "metric": grid["metric"].to_numpy(),
        "params": grid["params"].to_numpy(), "n_samples": grid["n_samples"].to_numpy(),
        "value": grid["value"].to_numpy(), "baseline_mean": grid["baseline_mean"].to_numpy(),
        "baseline_std": grid["baseline_std"].to_numpy(),
    })
