"""The columns of each table the store writes, and how Python values become rows of them.

Column lists are the only names the store puts into SQL text besides its constant statements, so a
caller's column names are always checked against them first.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.store.errors import StoreError

#: the pairings of metric rows (side a's modality - side b's; text before speech)
PAIRINGS: tuple[str, ...] = ("text-text", "speech-speech", "text-speech")
#: layer x layer matrices pair any two components, so speech can come first too
MATRIX_PAIRINGS: tuple[str, ...] = (*PAIRINGS, "speech-text")

LANGUAGE_COLUMNS = ["lang", "name", "resource_level", "whisper_hours", "level_source", "espeak_voice"]
ITEM_COLUMNS = ["sentence_id", "lang", "modality", "text", "duration_s", "voice", "voice_rank"]
ITEM_UPDATABLE = ["duration_s", "voice"]
#: measurements that depend on the run's model (tokenizer, ASR): stored per run in run_items
RUN_ITEM_COLUMNS = ["n_tokens", "transcript", "cer"]
METRIC_COLUMNS = ["pairing", "component_a", "component_b", "layer_a", "layer_b", "depth", "lang_a",
                  "lang_b", "modality_a", "modality_b", "metric", "params", "n_samples", "value",
                  "baseline_mean", "baseline_std", "ci_low", "ci_high", "length_baseline",
                  "value_residualised", "pooling", "shared_space", "ci_method", "resamples"]
METRIC_REQUIRED = ["pairing", "component_a", "component_b", "layer_a", "layer_b", "depth", "lang_a",
                   "lang_b", "modality_a", "modality_b", "metric", "n_samples", "pooling",
                   "shared_space"]
PROJECTION_COLUMNS = ["component", "layer", "item_id", "method", "x", "y", "params"]
TABLES = ["runs", "languages", "items", "run_items", "run_languages", "components", "layers",
          "activations", "metrics", "metric_variants", "projections", "item_sources",
          "layer_matrices"]
#: where a speech item's audio came from (core.item_audio checks a replay against it)
ITEM_SOURCE_COLUMNS = ["path", "file_sha256", "waveform_sha256"]
LAYER_MATRIX_KEY = ["run_a", "run_b", "component_a", "component_b", "pairing", "lang_a", "lang_b"]
LAYER_MATRIX_COLUMNS = LAYER_MATRIX_KEY + [
    "n_langs", "layer_a", "layer_b", "metric", "params", "n_samples", "value", "baseline_mean",
    "baseline_std", "ci_low", "ci_high", "ci_method", "row_best", "row_p", "row_threshold",
    "col_best", "col_p", "col_threshold", "alpha", "n_permutations", "n_bootstrap", "seed",
    "resamples"]
LAYER_MATRIX_REQUIRED = LAYER_MATRIX_KEY + ["n_langs", "layer_a", "layer_b", "metric", "n_samples",
                                            "row_best", "col_best", "alpha", "n_permutations",
                                            "n_bootstrap", "seed"]
RUN_LANGUAGE_COLUMNS = ["lang", "resource_level", "level_source"]
VARIANT_COLUMNS = ["variant", "pairing", "component_a", "component_b", "layer_a", "layer_b", "depth",
                   "lang_a", "lang_b", "metric", "params", "n_samples", "value", "baseline_mean",
                   "baseline_std"]


def table_frame(df: pd.DataFrame, columns: list[str], *, required: list[str]) -> pd.DataFrame:
    """The known columns of ``df`` in table order, missing optional ones as NULL."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise StoreError(f"missing required columns {missing}; got {list(df.columns)}")
    frame = pd.DataFrame(index=range(len(df)))
    for column in columns:
        frame[column] = df[column].to_numpy() if column in df.columns else None
    return frame


def per_item_columns(df: pd.DataFrame, allowed: list[str], *, writer: str, kind: str) -> list[str]:
    """The columns ``df`` sets beside its ``item_id`` key, each checked to be ``allowed``."""
    if "item_id" not in df.columns:
        raise StoreError(f"{writer} needs an item_id column")
    columns = [c for c in df.columns if c != "item_id"]
    unknown = sorted(set(columns) - set(allowed))
    if unknown:
        raise StoreError(f"{writer} cannot set {unknown}; {kind}: {allowed}")
    return columns


def params_as_json(frame: pd.DataFrame) -> None:
    """Encode the ``params`` column in place: dicts become JSON text; strings and NULL stay."""
    frame["params"] = [to_json(p) if not isinstance(p, str) and p is not None else p
                       for p in frame["params"]]


def check_modality(modality: str) -> None:
    if modality not in ("text", "speech"):
        raise StoreError(f"modality must be 'text' or 'speech', got {modality!r}")


def to_json(value: Any) -> str:
    """JSON text of a config, params or conditioning value (keys sorted, numpy scalars as numbers)."""
    return json.dumps(value, sort_keys=True, default=json_default)


def utc_now() -> datetime:
    """The store's timestamps: UTC, without a time zone (DuckDB TIMESTAMP)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def json_default(value: Any) -> Any:
    """``json.dumps`` default for what configs hold besides JSON types (numpy scalars, paths, sets)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, datetime)):
        return str(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON: {value!r}")
