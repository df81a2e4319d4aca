"""Pure data transforms shared by the pages' charts: the value views (raw, length-residualised,
minus the shuffled baseline), one row per cell, and the component pairs of metric rows.

Frames in, frames out; no figures here, so the comparison page's aggregation uses them too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: view key -> label shown in the sidebar toggle
VIEWS: dict[str, str] = {
    "raw": "raw",
    "residualised": "length-residualised",
    "minus_baseline": "minus shuffled baseline",
}


def apply_view(metrics: pd.DataFrame, view: str) -> pd.DataFrame:
    """Add the columns every chart plots: ``shown`` (+ ``shown_low``/``shown_high`` CI bounds) and
    ``shown_baseline`` (+ ``shown_baseline_sd``) and ``shown_length_baseline`` (what sentence
    length alone predicts) in the units of the chosen view.

    - raw: the metric value, its bootstrap CI, the shuffled-pairs and the length-only baseline.
    - residualised: the metric after regressing sentence length out of each side. The store has no
      CI and no baseline of either kind for it, so those are NaN (charts then draw none of them).
    - minus_baseline: value minus the shuffled-pairs baseline mean (0 = chance level); the CI and
      the length-only baseline move with it (so the value stays as far above or below them as in
      raw) and the shuffled baseline becomes 0 with its spread kept.
    """
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; expected one of {', '.join(VIEWS)}")
    out = metrics.copy()
    for column in ("value", "ci_low", "ci_high", "baseline_mean", "baseline_std", "length_baseline",
                   "value_residualised"):
        out[column] = pd.to_numeric(out[column], errors="coerce") if column in out else np.nan
    if view == "raw":
        out["shown"], out["shown_low"], out["shown_high"] = out["value"], out["ci_low"], out["ci_high"]
        out["shown_baseline"], out["shown_baseline_sd"] = out["baseline_mean"], out["baseline_std"]
        out["shown_length_baseline"] = out["length_baseline"]
    elif view == "residualised":
        out["shown"] = out["value_residualised"]
        for column in ("shown_low", "shown_high", "shown_baseline", "shown_baseline_sd",
                       "shown_length_baseline"):
            out[column] = np.nan
    else:
        out["shown"] = out["value"] - out["baseline_mean"]
        out["shown_low"] = out["ci_low"] - out["baseline_mean"]
        out["shown_high"] = out["ci_high"] - out["baseline_mean"]
        out["shown_baseline"] = out["baseline_mean"] * 0.0
        out["shown_baseline_sd"] = out["baseline_std"]
        out["shown_length_baseline"] = out["length_baseline"] - out["baseline_mean"]
    return out


#: what tells two rows of one pairing apart besides the cell keys: never merged by a dedupe
_IDENTITY_COLUMNS = ("run_id", "metric", "component_a", "component_b", "pooling")


def dedupe_cells(metrics: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per cell: a metric stored with several ``params`` keeps the first params string.

    Rows of different component pairs (Seamless' text_encoder vs speech_encoder and
    text_decoder_text vs text_decoder_speech are both text-speech), runs, metrics or poolings are
    different cells, whatever ``keys`` says.
    """
    if metrics.empty:
        return metrics
    keys = [*[c for c in _IDENTITY_COLUMNS if c in metrics.columns and c not in keys], *keys]
    sort_cols = [c for c in ("params",) if c in metrics.columns]
    frame = metrics.sort_values(sort_cols, kind="stable") if sort_cols else metrics
    return frame.drop_duplicates(keys, keep="first")


def grid_cells(rows: pd.DataFrame, langs_a: Sequence[str], langs_b: Sequence[str], *,
               symmetric: bool) -> pd.DataFrame:
    """One row per (lang_a, lang_b) of ``langs_a`` x ``langs_b``, with its metrics row (NaN where
    absent). Same-modality pairings are stored once per language pair: ``symmetric`` mirrors it."""
    cells = dedupe_cells(rows, ["lang_a", "lang_b"])
    if symmetric and not cells.empty:
        mirrored = cells.rename(columns={"lang_a": "lang_b", "lang_b": "lang_a"})
        cells = pd.concat([cells, mirrored], ignore_index=True).drop_duplicates(
            ["lang_a", "lang_b"], keep="first")
    grid = pd.MultiIndex.from_product([list(langs_a), list(langs_b)], names=["lang_a", "lang_b"])
    if cells.empty:
        return pd.DataFrame(index=grid).reset_index()
    return cells.set_index(["lang_a", "lang_b"]).reindex(grid).reset_index()


def component_pairs(metrics: pd.DataFrame) -> list[tuple[str, str]]:
    """Distinct (component_a, component_b) of metric rows, in stored order."""
    if metrics.empty or not {"component_a", "component_b"} <= set(metrics.columns):
        return []
    return list(dict.fromkeys(zip(metrics["component_a"].astype(str),
                                  metrics["component_b"].astype(str), strict=True)))


def pair_label(pair: tuple[str, str]) -> str:
    """"a vs b": how legends and titles name a component pair."""
    return f"{pair[0]} vs {pair[1]}"
