"""Data transforms under every chart: the shown view (raw, minus baseline, residualised) and
de-duplication that never merges two component pairs."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from dashboard.charts.heatmap import heatmap_figure
from dashboard.charts.layer_curves import layer_curves_figure, pairing_series
from dashboard.charts.transforms import apply_view, dedupe_cells
from chart_fixtures import data_lines, languages, metric_row, tables  # noqa: F401 (for languages)


def test_apply_view_raw_minus_baseline_and_residualised():
    frame = pd.DataFrame([metric_row()])
    raw = apply_view(frame, "raw").iloc[0]
    assert (raw.shown, raw.shown_low, raw.shown_high, raw.shown_baseline) == (0.5, 0.45, 0.55, 0.1)
    above = apply_view(frame, "minus_baseline").iloc[0]
    assert above.shown == pytest.approx(0.4)
    assert (above.shown_low, above.shown_high) == (pytest.approx(0.35), pytest.approx(0.45))
    assert above.shown_baseline == 0.0 and above.shown_baseline_sd == 0.02
    residual = apply_view(frame, "residualised").iloc[0]
    assert residual.shown == 0.4
    assert np.isnan(residual.shown_low) and np.isnan(residual.shown_baseline)


def test_apply_view_rejects_unknown_view():
    with pytest.raises(ValueError, match="unknown view"):
        apply_view(pd.DataFrame([metric_row()]), "log")


def _two_pair_rows() -> pd.DataFrame:
    """Seamless-like: the same languages and layers for two text-speech component pairs."""
    rows = []
    for (a, b), value in ((("text_encoder", "speech_encoder"), 0.2),
                          (("decoder_text", "decoder_speech"), 0.8)):
        for layer in range(3):
            for lang_a, lang_b in itertools.product(["eng_Latn", "deu_Latn"], repeat=2):
                rows.append(metric_row(component_a=a, component_b=b, layer_a=layer, layer_b=layer,
                                 depth=layer / 2, lang_a=lang_a, lang_b=lang_b,
                                 value=value + 0.01 * layer, ci_low=value - 0.05,
                                 ci_high=value + 0.05))
    return pd.DataFrame(rows)


def test_dedupes_never_merge_two_component_pairs(languages):
    rows = _two_pair_rows()
    assert len(dedupe_cells(rows, ["lang_a", "lang_b", "layer_a", "layer_b"])) == len(rows)
    series = pairing_series(rows)
    same = series[series["family"] == "text-speech (same language)"]
    assert sorted(set(same["components"])) == ["decoder_text vs decoder_speech",
                                               "text_encoder vs speech_encoder"]
    by_pair = same.groupby("components")["mean"].mean()
    assert by_pair["text_encoder vs speech_encoder"] == pytest.approx(0.21)
    assert by_pair["decoder_text vs decoder_speech"] == pytest.approx(0.81)

    curves = layer_curves_figure(rows, languages, metric="svcca")
    english = [t for t in data_lines(curves) if t.name.startswith("English")]
    assert len(english) == 2
    assert sorted(np.round(t.y[0], 2) for t in english) == [0.2, 0.8]
    assert all(len(t.x) == 3 for t in english)  # one point per layer, no zigzag between pairs

    heat = heatmap_figure(rows[rows.layer_a == 0], languages, pairing="text-speech",
                          metric="svcca")
    z = np.asarray(heat.data[0].z, dtype=float)
    assert np.unique(np.round(z, 6)).size == 1  # one pair's cells, never a mix of both
    assert "text_encoder vs speech_encoder" in heat.layout.title.text
