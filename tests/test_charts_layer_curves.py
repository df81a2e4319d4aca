"""Layer curves and pairing curves: one line per language, baselines, confidence bands,
NaN values, and the pairing series with jointly bootstrapped errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dashboard.charts.common import LENGTH_BASELINE_NAME
from dashboard.charts.layer_curves import layer_curves_figure, pairing_curves_figure, pairing_series
from dashboard.charts.level_curves import (
    level_means_figure, level_panels_figure, level_series, same_language_rows,
)
from dashboard.charts.theme import FAMILY_COLOURS
from chart_fixtures import data_lines, languages, metric_row, metric_rows, tables, traces_of
from synthetic_store import LAYER_NAMES, NAN_CELL


def test_layer_curves_one_line_per_language_with_baseline(tables, languages):
    rows = metric_rows(tables)
    fig = layer_curves_figure(rows, languages, metric="svcca", layer_names=LAYER_NAMES)
    lines = data_lines(fig)
    baseline = [t for t in lines if t.legendgroup == "baseline"]
    language_lines = [t for t in lines if t.legendgroup != "baseline"]
    assert len(baseline) == 1 and baseline[0].line.dash == "dash"
    assert [t.name for t in language_lines] == ["English", "German", "Spanish", "Hindi", "Swahili",
                                                "Yoruba"]
    assert [t.legendgroup for t in language_lines] == ["high"] * 3 + ["medium"] + ["low"] * 2
    english = rows[(rows.pairing == "text-speech") & (rows.lang_a == "eng_Latn")
                   & (rows.lang_b == "eng_Latn")].sort_values("layer_a")
    np.testing.assert_allclose(language_lines[0].y, english["value"])
    assert list(fig.layout.xaxis.ticktext) == list(LAYER_NAMES)
    assert fig.layout.xaxis.title.text == "layer"
    assert "svcca" in fig.layout.yaxis.title.text
    assert [t for t in traces_of(fig) if t.fill == "toself"] == [traces_of(fig)[0]]  # baseline band
    english_rows = english.reset_index(drop=True)
    np.testing.assert_allclose(language_lines[0].error_y.array,
                               english_rows["ci_high"] - english_rows["value"])
    np.testing.assert_allclose(language_lines[0].error_y.arrayminus,
                               english_rows["value"] - english_rows["ci_low"])


def test_layer_curves_without_ci_and_on_relative_depth(tables, languages):
    rows = metric_rows(tables)
    fig = layer_curves_figure(rows, languages, metric="svcca", show_ci=False, x_axis="depth")
    assert all(t.error_y.array is None for t in data_lines(fig))
    assert "relative depth" in fig.layout.xaxis.title.text
    xs = np.concatenate([np.asarray(t.x, dtype=float) for t in data_lines(fig)])
    assert xs.min() == 0.0 and xs.max() == 1.0


def test_layer_curves_survive_nan_values(languages):
    rows = pd.DataFrame([metric_row(layer_a=layer, layer_b=layer, depth=layer / 2, value=value,
                              ci_low=np.nan, ci_high=np.nan)
                         for layer, value in enumerate([0.2, np.nan, 0.6])])
    fig = layer_curves_figure(rows, languages, metric="svcca", view="raw")
    english = [t for t in data_lines(fig) if t.name == "English"][0]
    assert np.isnan(english.y[1]) and english.connectgaps is False
    json.loads(fig.to_json())


def test_layer_curves_residualised_has_no_shuffled_baseline(tables, languages):
    fig = layer_curves_figure(metric_rows(tables), languages, metric="svcca",
                              view="residualised")
    assert not [t for t in fig.data if t.legendgroup == "baseline"]
    assert "length-residualised" in fig.layout.yaxis.title.text


def test_pairing_series_means_and_confidence(tables):
    rows = metric_rows(tables).drop(columns="resamples")  # no bootstrap values: independent rows
    series = pairing_series(rows)
    # every family but the voice change (these rows have no second voice)
    assert set(series["series"]) == set(FAMILY_COLOURS) - {
        "speech-speech (same language, another voice)"}
    assert set(series["ci_method"]) == {"independent rows (no bootstrap values)"}
    layer = 2
    text_text = rows[(rows.pairing == "text-text") & (rows.layer_a == layer)]["value"].dropna()
    got = series[(series.series == "text-text (cross-lingual)") & (series.layer_a == layer)].iloc[0]
    assert got["mean"] == pytest.approx(text_text.mean())
    assert got["pairs"] == len(text_text)
    half = 1.959963984540054 * text_text.std() / np.sqrt(len(text_text))
    assert got["ci_high"] - got["mean"] == pytest.approx(half)
    same = rows[(rows.pairing == "text-speech") & (rows.lang_a == rows.lang_b) & (rows.layer_a == 0)]
    got_same = series[(series.series == "text-speech (same language)") & (series.layer_a == 0)]
    assert got_same.iloc[0]["pairs"] == len(same) == 6
    # the NaN cell is left out of its family's mean rather than poisoning it
    pairing, metric, nan_layer, _, _ = NAN_CELL
    speech = series[(series.series == "speech-speech (cross-lingual)") & (series.layer_a == nan_layer)]
    assert speech.iloc[0]["pairs"] == 14 and np.isfinite(speech.iloc[0]["mean"])


def test_pairing_series_bootstraps_shared_errors_jointly(tables):
    """Rows whose bootstrap values move together (the same sentences): the interval of their mean
    is as wide as one row's, not sqrt(pairs) times narrower as independence would claim."""
    from core.store.vectors import encode_resamples

    rows = metric_rows(tables)
    rows = rows[(rows.pairing == "text-text") & rows["value"].notna()].copy()
    shared = np.random.default_rng(0).standard_normal(200) * 0.05
    rows["resamples"] = [encode_resamples(v + shared) for v in rows["value"]]
    series = pairing_series(rows)
    got = series[series.layer_a == 2].iloc[0]
    assert got["ci_method"] == "joint bootstrap"
    assert got["ci_high"] - got["mean"] == pytest.approx(1.96 * shared.std(ddof=1), rel=0.02)
    minus = pairing_series(rows, view="minus_baseline")
    assert minus[minus.layer_a == 2].iloc[0]["ci_high"] - minus[minus.layer_a == 2].iloc[0]["mean"] \
        == pytest.approx(1.96 * shared.std(ddof=1), rel=0.02)


def test_pairing_curves_figure_has_four_families_and_their_baselines(tables):
    fig = pairing_curves_figure(metric_rows(tables), metric="svcca",
                                layer_names=LAYER_NAMES)
    solid = [t for t in data_lines(fig) if t.line.dash is None]
    dashed = [t for t in data_lines(fig) if t.line.dash == "dash"]
    assert [t.name for t in solid] == list(FAMILY_COLOURS)[:4]
    assert len(dashed) == 4
    assert len([t for t in fig.data if t.fill == "toself"]) == 4
    no_ci = pairing_curves_figure(metric_rows(tables), metric="svcca", show_ci=False)
    assert not [t for t in no_ci.data if t.fill == "toself"]
    assert list(fig.layout.xaxis.ticktext) == list(LAYER_NAMES)


def test_pairing_curves_empty(languages):
    fig = pairing_curves_figure(pd.DataFrame([metric_row()]).iloc[0:0], metric="svcca")
    assert len(fig.data) == 0 and fig.layout.annotations


def test_layer_curve_hovers_say_what_the_metric_means(tables, languages):
    line = "SVCCA (k = 4, n = 200 sentences): range 0 to 1, chance rises with k/n"
    rows = metric_rows(tables)
    per_language = [t for t in data_lines(layer_curves_figure(rows, languages, metric="svcca"))
                    if t.legendgroup != "baseline"]
    families = [t for t in data_lines(pairing_curves_figure(rows, metric="svcca"))
                if t.line.dash is None]
    assert per_language and families
    for trace in per_language + families:
        assert all(line in text for text in trace.hovertext), trace.name


def _same_language_text_speech(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[(rows.pairing == "text-speech") & (rows.lang_a == rows.lang_b)]


def test_layer_curves_draw_the_length_only_baseline_only_when_asked(tables, languages):
    rows = metric_rows(tables)
    expected = _same_language_text_speech(rows).groupby("layer_a")["length_baseline"].mean()
    fig = layer_curves_figure(rows, languages, metric="svcca", show_length=True)
    length = [t for t in fig.data if t.name == LENGTH_BASELINE_NAME]
    assert len(length) == 1 and length[0].line.dash == "dashdot"
    np.testing.assert_allclose(length[0].y, expected.to_numpy())
    assert not [t for t in layer_curves_figure(rows, languages, metric="svcca").data
                if t.legendgroup == "length_baseline"]
    # minus the shuffled baseline: the length-only baseline moves with the values
    minus = layer_curves_figure(rows, languages, metric="svcca", view="minus_baseline",
                                show_length=True)
    same = _same_language_text_speech(rows)
    shifted = (same["length_baseline"] - same["baseline_mean"]).groupby(same["layer_a"]).mean()
    np.testing.assert_allclose([t for t in minus.data if t.name == LENGTH_BASELINE_NAME][0].y,
                               shifted.to_numpy())


def test_residualised_views_draw_no_interval_and_no_baseline(tables, languages):
    rows = metric_rows(tables)
    per_language = layer_curves_figure(rows, languages, metric="svcca", view="residualised",
                                       show_ci=True, show_length=True)
    assert all(t.error_y.array is None for t in data_lines(per_language))
    assert not [t for t in per_language.data if t.legendgroup in ("baseline", "length_baseline")]
    families = pairing_curves_figure(rows, metric="svcca", view="residualised", show_ci=True,
                                     show_length=True)
    assert not [t for t in families.data if t.fill == "toself"]
    assert not [t for t in families.data if t.line.dash in ("dash", "dashdot")]


def test_pairing_curves_draw_each_family_length_only_baseline_only_when_asked(tables):
    rows = metric_rows(tables)
    fig = pairing_curves_figure(rows, metric="svcca", show_length=True)
    length = [t for t in data_lines(fig) if t.line.dash == "dashdot"]
    assert len(length) == 4 and {t.legendgroup for t in length} == {"length_baseline"}
    key = [t for t in fig.data if t.name == LENGTH_BASELINE_NAME]
    assert len(key) == 1 and key[0].showlegend is not False
    text_text = rows[(rows.pairing == "text-text") & (rows.lang_a != rows.lang_b)]
    expected = text_text.groupby("depth")["length_baseline"].mean()
    got = next(t for t in length if t.name.startswith("text-text (cross-lingual)"))
    np.testing.assert_allclose(got.y, expected.to_numpy())
    assert not [t for t in pairing_curves_figure(rows, metric="svcca").data
                if t.legendgroup == "length_baseline"]


# ------------------------------------------------------ grouped by resource level (level_curves)

def _mean_lines(fig) -> dict[str, object]:
    return {t.name: t for t in fig.data if t.name and t.name.endswith("-resource mean")}


def test_level_series_is_the_mean_over_a_levels_languages_with_a_joint_interval(tables,
                                                                                languages):
    rows = same_language_rows(metric_rows(tables), "raw", "layer")
    series = level_series(rows, languages, "raw")
    assert list(dict.fromkeys(series["level"])) == ["high", "medium", "low"]
    high = rows[rows["lang_a"].isin(["eng_Latn", "deu_Latn", "spa_Latn"])]
    for x, at in high.groupby("x"):
        row = series[(series["level"] == "high") & (series["x"] == x)].iloc[0]
        assert row["mean"] == pytest.approx(at["value"].mean())
        assert row["languages"] == 3 and row["ci_method"] == "joint bootstrap"
        assert row["ci_low"] < row["mean"] < row["ci_high"]
    residualised = level_series(same_language_rows(metric_rows(tables), "residualised", "layer"),
                                languages, "residualised")
    assert residualised["ci_low"].isna().all()
    assert residualised["ci_method"].str.contains("no bootstrap").all()


def test_level_panels_one_panel_per_level_sharing_the_value_axis(tables, languages):
    fig = level_panels_figure(metric_rows(tables), languages, metric="svcca",
                              layer_names=LAYER_NAMES, show_length=True)
    panels = {t.xaxis for t in fig.data}
    assert panels == {"x", "x2", "x3"}
    assert fig.layout.yaxis2.matches == "y" and fig.layout.yaxis3.matches == "y"
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].startswith("<b>high resource</b>") and "3 languages" in titles[0]
    assert "1 language" in titles[1] and "2 languages" in titles[2]
    by_panel = {axis: [t.name for t in fig.data if t.xaxis == axis and t.legendgroup in
                       ("high", "medium", "low")] for axis in ("x", "x2", "x3")}
    assert by_panel == {"x": ["English", "German", "Spanish"], "x2": ["Hindi"],
                        "x3": ["Swahili", "Yoruba"]}
    means = _mean_lines(fig)
    assert list(means) == ["high-resource mean", "medium-resource mean", "low-resource mean"]
    assert [t.xaxis for t in means.values()] == ["x", "x2", "x3"]
    # the level mean's band, and the baselines in every panel (one legend entry each)
    assert sum(t.fill == "toself" and "mean" in t.name for t in fig.data) == 3
    assert sum(t.name == LENGTH_BASELINE_NAME for t in fig.data) == 3
    assert sum(t.name == LENGTH_BASELINE_NAME and t.showlegend for t in fig.data) == 1
    assert fig.layout.legend.orientation == "h"  # under the plot: wraps, never scrolls
    json.loads(fig.to_json())


def test_level_means_draw_languages_only_on_demand(tables, languages):
    rows = metric_rows(tables)
    fig = level_means_figure(rows, languages, metric="svcca", layer_names=LAYER_NAMES)
    assert len(_mean_lines(fig)) == 3
    assert not [t for t in fig.data if t.legendgroup in ("high", "medium", "low")]
    fig = level_means_figure(rows, languages, metric="svcca", shown_langs=["yor_Latn"],
                             show_ci=False)
    (yoruba,) = [t for t in fig.data if t.legendgroup == "low"]
    assert yoruba.name == "Yoruba"
    assert not [t for t in fig.data if t.fill == "toself" and "mean" in (t.name or "")]
    empty = level_means_figure(rows.iloc[0:0], languages, metric="svcca")
    assert "No same-language" in empty.layout.annotations[0].text


def test_every_language_on_one_chart_has_a_legend_that_wraps(tables, languages):
    fig = layer_curves_figure(metric_rows(tables), languages, metric="svcca")
    assert fig.layout.legend.orientation == "h"
