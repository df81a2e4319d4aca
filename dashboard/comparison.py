"""Aggregation behind the "Compare models" page (pure: frames in, frames out; no figures).

Runs of different models are overlaid on the relative depth along each model's whole path
(``path_depth`` from the layers table), so a 6-layer Whisper and a 12-layer encoder share one axis.

Families:
- ``text-text``: cross-lingual text-text (lang_a != lang_b), x = side a's path depth;
- ``speech-speech``: cross-lingual speech-speech, x = side a's path depth;
- ``text-speech``: same-language text-speech (lang_a == lang_b), x = the **speech side's** (side b)
  path depth: the question is where along the speech path the speech meets the text, and the speech
  path is the one that runs through front end, encoder, adaptor or projector.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from core.metrics.joint import Z_95
from dashboard.charts.transforms import apply_view, component_pairs

FAMILIES: dict[str, str] = {
    "text-text": "cross-lingual text-text",
    "speech-speech": "cross-lingual speech-speech",
    "text-speech": "same-language text-speech",
}
#: which side's path depth is the x axis, per family
DEPTH_SIDE: dict[str, str] = {"text-text": "a", "speech-speech": "a", "text-speech": "b"}

CURVE_COLUMNS = ["depth", "component", "layer", "mean", "ci_low", "ci_high", "baseline",
                 "baseline_sd", "length_baseline", "pairs"]


def family_rows(metrics: pd.DataFrame, family: str) -> pd.DataFrame:
    """The metric rows of one family (pairing, and cross-lingual or same-language)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    if metrics.empty or not {"pairing", "lang_a", "lang_b"} <= set(metrics.columns):
        return metrics.iloc[0:0]
    same = metrics["lang_a"] == metrics["lang_b"]
    keep = (metrics["pairing"] == family) & (same if family == "text-speech" else ~same)
    return metrics[keep].reset_index(drop=True)


def depth_component(family: str, pair: tuple[str, str]) -> str:
    """The component whose path gives the x axis."""
    return pair[1] if DEPTH_SIDE[family] == "b" else pair[0]


def family_curve(metrics: pd.DataFrame, family: str, *, view: str = "raw",
                 components: tuple[str, str] | None = None) -> pd.DataFrame:
    """Mean over language pairs per path depth for one component pair, with a 95% CI.

    The CI is mean ± 1.96·sd/√pairs over language pairs (as the layer curves' families); with a
    single language pair it is that pair's stored bootstrap CI. ``baseline`` is the mean shuffled-pairs
    baseline, ``length_baseline`` the mean length-only baseline. The length-residualised view has
    no interval (no bootstrap of residualised values is stored, as on the layer curves). Rows without a path depth (stores without a layers table) use the aligned ``depth``.
    """
    rows = family_rows(metrics, family)
    if components is None:
        pairs = component_pairs(rows)
        components = pairs[0] if pairs else None
    if components is None or rows.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    rows = rows[(rows["component_a"] == components[0]) & (rows["component_b"] == components[1])]
    sort = [c for c in ("params",) if c in rows.columns]
    rows = (rows.sort_values(sort, kind="stable") if sort else rows).drop_duplicates(
        ["component_a", "component_b", "layer_a", "layer_b", "lang_a", "lang_b"])
    rows = apply_view(rows, view)
    side = DEPTH_SIDE[family]
    path = f"path_depth_{side}"
    x = pd.to_numeric(rows[path], errors="coerce") if path in rows else pd.Series(np.nan,
                                                                                  index=rows.index)
    if x.isna().all() and "depth" in rows:
        x = pd.to_numeric(rows["depth"], errors="coerce")
    rows = rows.assign(x=x.round(6), layer=rows[f"layer_{side}"])
    rows = rows[rows["x"].notna() & rows["shown"].notna()]
    if rows.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    stats = rows.groupby("x", sort=True).agg(
        layer=("layer", "first"), mean=("shown", "mean"), sd=("shown", "std"),
        pairs=("shown", "size"), low=("shown_low", "mean"), high=("shown_high", "mean"),
        baseline=("shown_baseline", "mean"), baseline_sd=("shown_baseline_sd", "mean"),
        length_baseline=("shown_length_baseline", "mean"),
    ).reset_index().rename(columns={"x": "depth"})
    half = Z_95 * stats["sd"] / np.sqrt(stats["pairs"])
    several = (stats["pairs"] > 1) & (view != "residualised")
    stats["ci_low"] = np.where(several, stats["mean"] - half, stats["low"])
    stats["ci_high"] = np.where(several, stats["mean"] + half, stats["high"])
    stats["component"] = depth_component(family, components)
    return stats[CURVE_COLUMNS]


def not_comparable(label: str, reason: str) -> dict[str, str]:
    return {"run": label, "reason": reason}


def run_label(model: str, run_id: str, others: Sequence[str] = ()) -> str:
    """The model's name, with the run id when another chosen run has the same model."""
    return f"{model} · {run_id}" if list(others).count(model) > 1 else model
