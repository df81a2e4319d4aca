"""What the chart tests share: the synthetic store's tables as module fixtures, a metric row to
vary, and trace filters. Test files import the fixtures by name (pytest finds them there)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

from synthetic_store import synthetic_tables

#: the synthetic languages in resource-level order (then hours)
LEVEL_ORDER = ["eng_Latn", "deu_Latn", "spa_Latn", "hin_Deva", "swh_Latn", "yor_Latn"]


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return synthetic_tables()


@pytest.fixture(scope="module")
def languages(tables) -> pd.DataFrame:
    # Shuffled and alphabetically sorted like the store returns it, so ordering must come from levels.
    return tables["languages"].sort_values("lang").reset_index(drop=True)


def metric_rows(tables, *, metric="svcca", pairing=None, layer=None) -> pd.DataFrame:
    """The synthetic metric rows of one metric, optionally of one pairing and one layer."""
    rows = tables["metrics"]
    rows = rows[rows["metric"] == metric]
    if pairing is not None:
        rows = rows[rows["pairing"] == pairing]
    if layer is not None:
        rows = rows[rows["layer_a"] == layer]
    return rows.reset_index(drop=True)


def metric_row(**overrides) -> dict:
    """One complete metric row (text-speech, English, layer 0), with ``overrides`` applied."""
    base = {"run_id": "r", "pairing": "text-speech", "component_a": "text_decoder",
            "component_b": "speech_encoder", "layer_a": 0, "layer_b": 0, "depth": 0.0,
            "lang_a": "eng_Latn", "lang_b": "eng_Latn", "modality_a": "text", "modality_b": "speech",
            "metric": "svcca", "params": "{}", "n_samples": 10, "value": 0.5, "baseline_mean": 0.1,
            "baseline_std": 0.02, "ci_low": 0.45, "ci_high": 0.55, "length_baseline": 0.05,
            "value_residualised": 0.4}
    return {**base, **overrides}


def traces_of(fig: go.Figure, kind: str = "scatter") -> list:
    """The traces of one type."""
    return [t for t in fig.data if t.type == kind]


def data_lines(fig: go.Figure) -> list:
    """Data lines (not CI bands, not legend-only symbol keys)."""
    return [t for t in traces_of(fig) if t.fill != "toself" and t.x is not None and len(t.x) > 0
            and t.x[0] is not None]
