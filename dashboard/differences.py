"""Differences of two language x language grids, A minus B (pure: frames in, frames out).

A and B differ in one thing: the layer, the run, the pairing, or, for speech, what changes
between the two sides (another language vs the same language in a second voice). Each cell is
A's value minus B's in the chosen view (raw, minus shuffled baseline, length-residualised).

The interval. Every row of a run carries its bootstrap values, and the grid draws one set of
sentence resamples per number of sentences (``core.metrics.grid``: ``bootstrap_indices(n, B,
seed)`` depends only on n, B and the seed), so resample b of two rows of one run holds the same
sentences and ``boot_a[b] - boot_b[b]`` is a draw of the difference: the interval is the
difference +/- 1.96 SDs of those (``core.metrics.joint.difference_intervals``). Two runs share
their resamples only when they drew them alike (same seed and number of resamples over the same
corpus sentences: ``shared_resamples``); otherwise no interval is drawn and the page says why.
The length-residualised view has no stored bootstrap values, so no interval either.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from core.metrics.joint import difference_intervals
from core.store.vectors import resample_matrix
from dashboard.charts.transforms import apply_view, dedupe_cells

#: what B differs from A in -> how the page names it
KINDS: dict[str, str] = {
    "layer": "another layer",
    "run": "another run (model)",
    "pairing": "another pairing",
    "voice": "language change vs voice change",
}

#: run config fields that decide which sentence resamples a run drew (with the cells' n_samples)
RESAMPLING_FIELDS = ("seed", "n_bootstrap", "corpus", "corpus_name", "split", "suffix",
                     "n_sentences", "n_sentence_ids")

DIFFERENCE_COLUMNS = ["lang_a", "lang_b", "shown_a", "shown_b", "difference", "low", "high",
                      "baseline_a", "baseline_b", "n_a", "n_b", "interval"]


def shared_resamples(config_a: Mapping, config_b: Mapping) -> str:
    """Why two runs' bootstrap values cannot be subtracted resample by resample ("" when they can).

    Within a store, items are shared and a sentence id is the same sentence in every run, so two
    runs that drew their resamples with the same seed and count over the same corpus sentences
    drew the same resamples (rows of equal ``n_samples``). A field missing from either config
    cannot be checked, and then the answer is no.
    """
    missing = [f for f in ("seed", "n_bootstrap") if f not in config_a or f not in config_b]
    if missing:
        return (f"the runs do not record their {' and '.join(missing)}, so it cannot be checked "
                "that they drew the same sentence resamples")
    differ = [f for f in RESAMPLING_FIELDS if config_a.get(f) != config_b.get(f)]
    if differ:
        return ("the two runs drew their sentence resamples differently (they differ in "
                + ", ".join(f"{f}: {config_a.get(f)!r} vs {config_b.get(f)!r}" for f in differ)
                + "), so resample b is not the same sentences in both")
    return ""


def voice_reference_cells(rows: pd.DataFrame, langs_a: Sequence[str],
                          langs_b: Sequence[str]) -> pd.DataFrame:
    """B of the voice difference: for each (lang_a, lang_b), lang_a's voice-change row (speech-
    speech, lang_a = lang_b: the same sentences in lang_a's first and second voice)."""
    same = dedupe_cells(rows[rows["lang_a"] == rows["lang_b"]], ["lang_a"])
    grid = pd.MultiIndex.from_product([list(langs_a), list(langs_b)], names=["lang_a", "lang_b"])
    if same.empty:
        return pd.DataFrame(index=grid).reset_index()
    by_lang = same.drop(columns=["lang_b"]).set_index("lang_a")
    frame = by_lang.reindex(grid.get_level_values("lang_a"))
    frame.index = grid
    return frame.reset_index()


def voice_languages(rows: pd.DataFrame) -> list[str]:
    """Languages with a voice-change row among speech-speech ``rows`` (a second voice)."""
    if rows.empty or not {"lang_a", "lang_b"} <= set(rows.columns):
        return []
    same = rows[(rows["lang_a"] == rows["lang_b"]) & pd.to_numeric(rows["value"],
                                                                   errors="coerce").notna()]
    return list(dict.fromkeys(same["lang_a"].astype(str)))


def difference_cells(cells_a: pd.DataFrame, cells_b: pd.DataFrame, *, view: str,
                     no_interval: str = "", n_permutations: int | None = None) -> pd.DataFrame:
    """A minus B per cell (``dashboard.charts.transforms.grid_cells`` frames of the same grid, in
    the same order).

    ``interval`` says per cell what its interval is or why it has none: ``no_interval`` (e.g. two
    runs without shared resamples) applies to every cell; otherwise cells with a different number
    of sentences on the two sides, without bootstrap values, or in the residualised view have
    none. In the minus-baseline view the baselines' permutation noise (sd / sqrt(permutations))
    is added to the interval, as in ``core.metrics.joint``.
    """
    if len(cells_a) != len(cells_b):
        raise ValueError(f"A has {len(cells_a)} cells and B {len(cells_b)}: not the same grid")
    a, b = apply_view(cells_a, view), apply_view(cells_b, view)
    keys_a = list(zip(a["lang_a"], a["lang_b"], strict=True))
    if keys_a != list(zip(b["lang_a"], b["lang_b"], strict=True)):
        raise ValueError("A and B cells are not in the same (lang_a, lang_b) order")
    n_a, n_b = _column(a, "n_samples"), _column(b, "n_samples")
    reason = no_interval or ("the length-residualised view has no stored bootstrap values"
                             if view == "residualised" else "")
    boot_a = boot_b = None
    if not reason:
        boot_a, boot_b = _bootstrap(a), _bootstrap(b)
        if boot_a is None or boot_b is None or boot_a.shape != boot_b.shape:
            reason = "the rows carry no bootstrap values of the same resamples"
            boot_a = boot_b = None
    extra = None
    if view == "minus_baseline" and n_permutations and n_permutations > 1:
        extra = np.sqrt((np.nan_to_num(a["baseline_std"].to_numpy(float)) ** 2
                         + np.nan_to_num(b["baseline_std"].to_numpy(float)) ** 2) / n_permutations)
    difference, low, high = difference_intervals(a["shown"].to_numpy(float),
                                                 b["shown"].to_numpy(float), boot_a, boot_b,
                                                 extra_se=extra)
    same_n = n_a == n_b
    low, high = np.where(same_n, low, np.nan), np.where(same_n, high, np.nan)
    fallback = np.full(len(a), reason) if reason else np.where(
        same_n, "no usable bootstrap values", "the two sides have different numbers of sentences")
    fallback = np.where(np.isfinite(difference), fallback, "no value on one side")
    interval = np.where(np.isfinite(low), "joint bootstrap (shared resamples)", fallback)
    return pd.DataFrame({
        "lang_a": a["lang_a"].to_numpy(), "lang_b": a["lang_b"].to_numpy(),
        "shown_a": a["shown"].to_numpy(float), "shown_b": b["shown"].to_numpy(float),
        "difference": difference, "low": low, "high": high,
        "baseline_a": a["baseline_mean"].to_numpy(float),
        "baseline_b": b["baseline_mean"].to_numpy(float),
        "n_a": n_a, "n_b": n_b, "interval": interval,
    })[DIFFERENCE_COLUMNS]


def _column(cells: pd.DataFrame, name: str) -> np.ndarray:
    """A numeric column as float64 (NaN where absent)."""
    if name not in cells:
        return np.full(len(cells), np.nan)
    return pd.to_numeric(cells[name], errors="coerce").to_numpy(dtype=np.float64)


def _bootstrap(cells: pd.DataFrame) -> np.ndarray | None:
    """(cells, B) bootstrap values; absent cells are NaN rows; None when no cell has any."""
    if "resamples" not in cells:
        return None
    matrix = resample_matrix(list(cells["resamples"].map(_blob)))
    return matrix if matrix.shape[1] > 1 else None


def _blob(value: object) -> bytes | None:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return None


def difference_summary(cells: pd.DataFrame) -> dict[str, float | int]:
    """Counts for the caption under a difference: cells drawn, with an interval, whose interval
    lies above 0 (A higher) or below 0 (B higher), and the mean difference."""
    finite = cells[np.isfinite(cells["difference"])]
    with_interval = finite[np.isfinite(finite["low"]) & np.isfinite(finite["high"])]
    return {"cells": int(len(finite)), "with_interval": int(len(with_interval)),
            "above": int((with_interval["low"] > 0).sum()),
            "below": int((with_interval["high"] < 0).sum()),
            "mean": float(finite["difference"].mean()) if len(finite) else math.nan,
            "mean_baseline_difference": float((finite["baseline_a"] - finite["baseline_b"]).mean())
            if len(finite) else math.nan}


def nearest_layer(layers: pd.DataFrame, depth: float) -> int | None:
    """The ``layer_a`` of ``layers`` (columns layer_a, depth) whose depth is nearest ``depth``;
    ties go to the lower layer. None when there are no layers."""
    if layers.empty:
        return None
    distance = (pd.to_numeric(layers["depth"], errors="coerce") - depth).abs().round(9)
    frame = layers.assign(distance=distance).sort_values(["distance", "layer_a"])
    return int(frame["layer_a"].iloc[0])


def value_range(rows: pd.DataFrame, view: str) -> tuple[float, float] | None:
    """(min, max) of the shown values of ``rows`` (every layer of a pairing, say) in ``view``: a
    colour scale fixed across layers, so two layers' heatmaps compare by eye. None if none."""
    if rows.empty:
        return None
    shown = apply_view(rows, view)["shown"].to_numpy(float)
    shown = shown[np.isfinite(shown)]
    if not shown.size:
        return None
    return float(shown.min()), float(shown.max())
