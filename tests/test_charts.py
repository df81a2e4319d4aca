"""Chart builders on small frames: traces, axis titles, resource-level ordering, baselines, NaN."""

from __future__ import annotations

import colorsys
import itertools
import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from core.metrics.joint import Z_95
from dashboard import availability, comparison
from dashboard.charts.compare import compare_figure, run_colours
from dashboard.charts.findings import finding_figure, verdict_colour
from dashboard.charts.heatmap import baseline_summary, heatmap_figure
from dashboard.charts.languages import (
    language_colours,
    language_names,
    language_order,
    language_palette,
    level_rank,
    short_name,
)
from dashboard.charts.layer_curves import layer_curves_figure, pairing_curves_figure, pairing_series
from dashboard.charts.overview import cer_figure, components_table, corpus_counts, language_summary
from dashboard.charts.projection import (
    projection_figure,
    projection_maps,
    projection_points,
    sentence_previews,
)
from dashboard.charts.theme import (
    FAMILY_COLOURS,
    LANGUAGE_PALETTE,
    LEVEL_COLOURS,
    TEMPLATE,
    TRACE_TYPES,
)
from dashboard.charts.transforms import PAIRINGS, apply_view, dedupe_cells
from dashboard.stages import boundaries, stage_spans, stage_summary
from synthetic_store import (
    LANGS, LAYER_NAMES, METRICS, NAN_CELL, RUN_ID, SHARED_RUN_ID, TEXT_RUN_ID, synthetic_tables,
)

LEVEL_ORDER = ["eng_Latn", "deu_Latn", "spa_Latn", "hin_Deva", "swh_Latn", "yor_Latn"]


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return synthetic_tables()


@pytest.fixture(scope="module")
def languages(tables) -> pd.DataFrame:
    # Shuffled and alphabetically sorted like the store returns it, so ordering must come from levels.
    return tables["languages"].sort_values("lang").reset_index(drop=True)


def _metric_rows(tables, *, metric="svcca", pairing=None, layer=None) -> pd.DataFrame:
    rows = tables["metrics"]
    rows = rows[rows["metric"] == metric]
    if pairing is not None:
        rows = rows[rows["pairing"] == pairing]
    if layer is not None:
        rows = rows[rows["layer_a"] == layer]
    return rows.reset_index(drop=True)


def _row(**overrides) -> dict:
    base = {"run_id": "r", "pairing": "text-speech", "component_a": "text_decoder",
            "component_b": "speech_encoder", "layer_a": 0, "layer_b": 0, "depth": 0.0,
            "lang_a": "eng_Latn", "lang_b": "eng_Latn", "modality_a": "text", "modality_b": "speech",
            "metric": "svcca", "params": "{}", "n_samples": 10, "value": 0.5, "baseline_mean": 0.1,
            "baseline_std": 0.02, "ci_low": 0.45, "ci_high": 0.55, "length_baseline": 0.05,
            "value_residualised": 0.4}
    return {**base, **overrides}


def _hue(colour: str) -> float:
    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hsv(r, g, b)[0]


def _traces(fig: go.Figure, kind: str = "scatter") -> list:
    return [t for t in fig.data if t.type == kind]


def _lines(fig: go.Figure) -> list:
    """Data lines (not CI bands, not legend-only symbol keys)."""
    return [t for t in _traces(fig) if t.fill != "toself" and t.x is not None and len(t.x) > 0
            and t.x[0] is not None]


# ------------------------------------------------------------------------------------ languages

def test_language_order_follows_resource_level_then_hours(languages):
    assert language_order(languages) == LEVEL_ORDER


def test_language_order_puts_unknown_languages_last_and_keeps_subset(languages):
    order = language_order(languages, ["yor_Latn", "xxx_Latn", "deu_Latn"])
    assert order == ["deu_Latn", "yor_Latn", "xxx_Latn"]


def test_level_rank_handles_missing_and_unknown_levels():
    assert level_rank("High") < level_rank("medium") < level_rank("low")
    assert level_rank(None) == level_rank("unknown")
    assert level_rank("low") < level_rank("exotic")


def test_short_names_drop_the_qualifier():
    assert short_name("Chinese (Mandarin, Simplified)") == "Chinese"
    assert short_name("German") == "German"
    names = language_names(pd.DataFrame({"lang": ["zho_Hans"], "name": ["Chinese (Mandarin)"]}))
    assert names == {"zho_Hans": "Chinese"}


def test_language_colours_share_one_hue_family_per_level(languages):
    colours = language_colours(languages)
    assert set(colours) == set(LANGS)
    high = [colours[lang] for lang in ("eng_Latn", "deu_Latn", "spa_Latn")]
    assert len(set(high)) == 3  # distinguishable shades
    for colour in high:
        assert _hue(colour) == pytest.approx(_hue(LEVEL_COLOURS["high"]), abs=0.02)
    for colour in (colours["swh_Latn"], colours["yor_Latn"]):
        assert _hue(colour) == pytest.approx(_hue(LEVEL_COLOURS["low"]), abs=0.02)
    assert _hue(colours["hin_Deva"]) != pytest.approx(_hue(colours["eng_Latn"]), abs=0.05)


def test_language_palette_keeps_a_languages_colour_whatever_a_chart_shows(languages):
    whole = language_palette(languages)
    assert list(whole) == LEVEL_ORDER  # dealt in the table's order
    assert len(set(whole.values())) == len(LEVEL_ORDER)
    shown = language_palette(languages, ["yor_Latn", "xxx_Latn", "deu_Latn"])
    assert shown["yor_Latn"] == whole["yor_Latn"] and shown["deu_Latn"] == whole["deu_Latn"]
    # a language the table lacks comes after the table's, not in place of one of them
    assert shown["xxx_Latn"] == LANGUAGE_PALETTE[len(LEVEL_ORDER)]


def test_language_palette_has_twenty_colours_then_repeats():
    codes = [f"l{i:02d}_Latn" for i in range(len(LANGUAGE_PALETTE) + 1)]
    table = pd.DataFrame({"lang": codes, "name": codes, "resource_level": "high",
                          "whisper_hours": np.arange(len(codes), 0, -1, dtype=float)})
    palette = language_palette(table)
    assert len(LANGUAGE_PALETTE) >= 20  # the bundled store's languages
    assert len(set(palette.values())) == len(LANGUAGE_PALETTE)
    assert palette[codes[-1]] == palette[codes[0]]


# --------------------------------------------------------------------------------------- values

def test_apply_view_raw_minus_baseline_and_residualised():
    frame = pd.DataFrame([_row()])
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
        apply_view(pd.DataFrame([_row()]), "log")


# -------------------------------------------------------------------------------------- heatmap

def test_heatmap_text_speech_orders_languages_and_labels_axes(tables, languages):
    rows = _metric_rows(tables, pairing="text-speech", layer=2)
    fig = heatmap_figure(rows, languages, pairing="text-speech", metric="svcca",
                         layer_label="block 2")
    (heat,) = _traces(fig, "heatmap")
    z = np.asarray(heat.z, dtype=float)
    assert z.shape == (6, 6)
    # Rows = text language, columns = speech language, both in resource order.
    expected = rows.set_index(["lang_a", "lang_b"])["value"]
    assert z[0, 3] == pytest.approx(expected[("eng_Latn", "hin_Deva")])
    assert z[3, 0] == pytest.approx(expected[("hin_Deva", "eng_Latn")])
    names = [t.split(">")[1].split("<")[0] for t in fig.layout.xaxis.ticktext]
    assert names == ["English", "German", "Spanish", "Hindi", "Swahili", "Yoruba"]
    assert "speech language" in fig.layout.xaxis.title.text
    assert "text language" in fig.layout.yaxis.title.text
    assert fig.layout.yaxis.autorange == "reversed"
    assert "block 2" in fig.layout.title.text and "text-speech" in fig.layout.title.text
    # Tick labels coloured by level; white separators between the three level groups on both axes.
    assert LEVEL_COLOURS["low"] in fig.layout.xaxis.ticktext[-1]
    assert len(fig.layout.shapes) == 4
    # Hover carries value, CI, baseline and n.
    hover = heat.hovertext[0][3]
    for part in ("value:", "95% CI", "shuffled baseline", "n = 200"):
        assert part in hover


def test_heatmap_same_modality_is_mirrored_and_nan_stays_a_gap(tables, languages):
    pairing, metric, layer, lang_a, lang_b = NAN_CELL
    rows = _metric_rows(tables, metric=metric, pairing=pairing, layer=layer)
    assert rows[["lang_a", "lang_b"]].apply(tuple, axis=1).nunique() == 15  # one triangle stored
    fig = heatmap_figure(rows, languages, pairing=pairing, metric=metric)
    z = np.asarray(fig.data[0].z, dtype=float)
    finite = np.isfinite(z)
    np.testing.assert_array_equal(z[finite], z.T[finite])
    assert not finite.diagonal().any()  # a language with itself is not stored for same-modality
    i, j = LEVEL_ORDER.index(lang_a), LEVEL_ORDER.index(lang_b)
    assert np.isnan(z[i, j]) and np.isnan(z[j, i])
    assert "value: <b>n/a</b>" in fig.data[0].hovertext[i][j]
    json.loads(fig.to_json())  # NaN serialises


def test_heatmap_minus_baseline_is_diverging_around_zero(tables, languages):
    rows = _metric_rows(tables, pairing="text-speech", layer=0)
    fig = heatmap_figure(rows, languages, pairing="text-speech", metric="svcca",
                         view="minus_baseline")
    heat = fig.data[0]
    assert heat.zmid == 0.0
    first = rows[(rows.lang_a == "eng_Latn") & (rows.lang_b == "eng_Latn")].iloc[0]
    assert heat.z[0][0] == pytest.approx(first.value - first.baseline_mean)


def test_heatmap_respects_language_subset(tables, languages):
    rows = _metric_rows(tables, pairing="text-speech", layer=1)
    fig = heatmap_figure(rows, languages, pairing="text-speech", metric="svcca",
                         langs=["yor_Latn", "eng_Latn"])
    assert np.asarray(fig.data[0].z).shape == (2, 2)
    assert "English" in fig.layout.yaxis.ticktext[0]


def test_heatmap_without_rows_explains_instead_of_raising(languages):
    empty = pd.DataFrame([_row()]).iloc[0:0]
    fig = heatmap_figure(empty, languages, pairing="text-text", metric="svcca")
    assert len(fig.data) == 0
    assert "No metric values" in fig.layout.annotations[0].text


def test_baseline_summary_matches_the_rows(tables):
    rows = _metric_rows(tables, pairing="text-text", layer=3)
    summary = baseline_summary(rows)
    assert list(summary["pairing"]) == ["text-text"]
    assert summary.loc[0, "cells"] == len(rows)
    assert summary.loc[0, "baseline mean"] == pytest.approx(rows["baseline_mean"].mean(), abs=1e-4)
    assert summary.loc[0, "baseline max"] == pytest.approx(rows["baseline_mean"].max(), abs=1e-4)
    assert baseline_summary(rows.iloc[0:0]).empty


# --------------------------------------------------------------------------------- layer curves

def test_layer_curves_one_line_per_language_with_baseline(tables, languages):
    rows = _metric_rows(tables)
    fig = layer_curves_figure(rows, languages, metric="svcca", layer_names=LAYER_NAMES)
    lines = _lines(fig)
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
    assert [t for t in _traces(fig) if t.fill == "toself"] == [_traces(fig)[0]]  # baseline band
    english_rows = english.reset_index(drop=True)
    np.testing.assert_allclose(language_lines[0].error_y.array,
                               english_rows["ci_high"] - english_rows["value"])
    np.testing.assert_allclose(language_lines[0].error_y.arrayminus,
                               english_rows["value"] - english_rows["ci_low"])


def test_layer_curves_without_ci_and_on_relative_depth(tables, languages):
    rows = _metric_rows(tables)
    fig = layer_curves_figure(rows, languages, metric="svcca", show_ci=False, x_axis="depth")
    assert all(t.error_y.array is None for t in _lines(fig))
    assert "relative depth" in fig.layout.xaxis.title.text
    xs = np.concatenate([np.asarray(t.x, dtype=float) for t in _lines(fig)])
    assert xs.min() == 0.0 and xs.max() == 1.0


def test_layer_curves_survive_nan_values(languages):
    rows = pd.DataFrame([_row(layer_a=layer, layer_b=layer, depth=layer / 2, value=value,
                              ci_low=np.nan, ci_high=np.nan)
                         for layer, value in enumerate([0.2, np.nan, 0.6])])
    fig = layer_curves_figure(rows, languages, metric="svcca", view="raw")
    english = [t for t in _lines(fig) if t.name == "English"][0]
    assert np.isnan(english.y[1]) and english.connectgaps is False
    json.loads(fig.to_json())


def test_layer_curves_residualised_has_no_shuffled_baseline(tables, languages):
    fig = layer_curves_figure(_metric_rows(tables), languages, metric="svcca",
                              view="residualised")
    assert not [t for t in fig.data if t.legendgroup == "baseline"]
    assert "length-residualised" in fig.layout.yaxis.title.text


def test_pairing_series_means_and_confidence(tables):
    rows = _metric_rows(tables).drop(columns="resamples")  # no bootstrap values: independent rows
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

    rows = _metric_rows(tables)
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
    fig = pairing_curves_figure(_metric_rows(tables), metric="svcca",
                                layer_names=LAYER_NAMES)
    solid = [t for t in _lines(fig) if t.line.dash is None]
    dashed = [t for t in _lines(fig) if t.line.dash == "dash"]
    assert [t.name for t in solid] == list(FAMILY_COLOURS)[:4]
    assert len(dashed) == 4
    assert len([t for t in fig.data if t.fill == "toself"]) == 4
    no_ci = pairing_curves_figure(_metric_rows(tables), metric="svcca", show_ci=False)
    assert not [t for t in no_ci.data if t.fill == "toself"]
    assert list(fig.layout.xaxis.ticktext) == list(LAYER_NAMES)


def test_pairing_curves_empty(languages):
    fig = pairing_curves_figure(pd.DataFrame([_row()]).iloc[0:0], metric="svcca")
    assert len(fig.data) == 0 and fig.layout.annotations


# ----------------------------------------------------------------------------------- projection

def test_projection_maps_group_joint_members(tables):
    # the speech-LLM run: text and speech meet in the LLM's space, mapped jointly there only
    run = tables["runs"][SHARED_RUN_ID]
    rows = run["projections"]
    maps = projection_maps(rows[["component", "layer", "method", "params"]],
                           run["components"])
    joint = maps[maps["components"] == "llm_text + llm_speech"].reset_index(drop=True)
    assert list(joint["members"]) == [(("llm_text", 2), ("llm_speech", 4)),
                                      (("llm_text", 3), ("llm_speech", 5)),
                                      (("llm_text", 4), ("llm_speech", 7))]
    assert joint.loc[2, "label"] == "llm_text llm 4 · llm_speech llm 4"
    assert joint.loc[0, "label"] == "llm_text llm 2 · llm_speech llm 1"
    # points of the audio space are never mapped together with text
    alone = maps[maps["components"] == "llm_speech"]
    assert {m[0][1] for m in alone["members"]} == {0, 1, 2, 3, 6}


def test_projection_maps_of_different_spaces_are_separate(tables):
    rows = tables["projections"]  # Whisper-like: encoder and decoder spaces differ
    maps = projection_maps(rows[["component", "layer", "method", "params"]],
                           tables["components"])
    assert sorted(set(maps["components"])) == ["speech_encoder", "text_decoder"]
    assert len(maps) == 2 * len(LAYER_NAMES)
    assert list(maps[maps["components"] == "text_decoder"]["label"]) == list(LAYER_NAMES)


def test_projection_maps_without_joint_params_are_single_layers():
    rows = pd.DataFrame({"component": ["a", "a"], "layer": [0, 1], "method": "umap",
                         "params": ['{"seed": 0}', None]})
    maps = projection_maps(rows)
    assert list(maps["members"]) == [(("a", 0),), (("a", 1),)]
    assert list(maps["label"]) == ["layer 0", "layer 1"]


def _layer_points(tables, languages, layer=0):
    rows = tables["projections"]
    return projection_points(rows[rows["layer"] == layer], languages)


def test_projection_by_language_uses_symbols_for_modality(tables, languages):
    points = _layer_points(tables, languages)
    fig = projection_figure(points, languages, colour_by="language")
    colour_traces = [t for t in fig.data if t.legendgroup == "colour"]
    assert [t.name for t in colour_traces] == ["English", "German", "Spanish", "Hindi", "Swahili",
                                               "Yoruba"]
    assert sum(len(t.x) for t in colour_traces) == len(points)
    assert set(colour_traces[0].marker.symbol) == {"circle", "diamond"}
    assert {t.name for t in fig.data if t.legendgroup == "symbols"} == {"text", "speech"}
    assert "UMAP 1" in fig.layout.xaxis.title.text and "UMAP 2" in fig.layout.yaxis.title.text
    assert "[eng_Latn #0]" in " ".join(colour_traces[0].hovertext)


def test_projection_of_some_languages_keeps_each_languages_colour(tables, languages):
    """A projection showing only some languages (the sidebar's choice) colours them as the
    whole table does, like the recording page's charts."""
    points = _layer_points(tables, languages)
    some = points[points["lang"].isin(["hin_Deva", "yor_Latn"])]
    fig = projection_figure(some, languages, colour_by="language")
    colours = {t.name: t.marker.color for t in fig.data if t.legendgroup == "colour"}
    whole = language_palette(languages)
    assert colours == {"Hindi": whole["hin_Deva"], "Yoruba": whole["yor_Latn"]}


@pytest.mark.parametrize("colour_by, groups", [("modality", ["text", "speech"]),
                                                ("resource level", ["high resource",
                                                                    "medium resource",
                                                                    "low resource"])])
def test_projection_other_colourings(tables, languages, colour_by, groups):
    fig = projection_figure(_layer_points(tables, languages), languages, colour_by=colour_by)
    assert [t.name for t in fig.data if t.legendgroup == "colour"] == groups


def test_projection_connects_a_sentence(tables, languages):
    points = _layer_points(tables, languages, layer=2)
    fig = projection_figure(points, languages, sentence_id=3)
    links = [t for t in fig.data if t.name and t.name.startswith("sentence 3")]
    assert len(links) == 3  # text path, speech path, text<->speech segments
    text_path = [t for t in links if "text across" in t.name][0]
    assert len(text_path.x) == 6
    segments = [t for t in links if "↔" in t.name][0]
    assert len(segments.x) == 6 * 3  # (text, speech, gap) per language


def test_projection_rejects_unknown_colouring_and_explains_empty(tables, languages):
    with pytest.raises(ValueError, match="colour_by"):
        projection_figure(_layer_points(tables, languages), languages, colour_by="size")
    empty = projection_figure(_layer_points(tables, languages).iloc[0:0], languages)
    assert len(empty.data) == 0 and empty.layout.annotations


def test_sentence_previews_prefer_english(tables, languages):
    previews = sentence_previews(_layer_points(tables, languages))
    assert len(previews) == 8 and previews[2].startswith("[eng_Latn #2]")


# ------------------------------------------------------------------------------------- overview

def test_language_summary_counts_and_cer(tables, languages):
    items = tables["items"]
    summary = language_summary(items, languages)
    assert list(summary["lang"]) == LEVEL_ORDER
    yoruba = summary.set_index("lang").loc["yor_Latn"]
    cer = items[(items.lang == "yor_Latn") & (items.modality == "speech")]["cer"]
    assert yoruba["mean CER (speech)"] == pytest.approx(cer.mean())
    assert yoruba["median CER (speech)"] == pytest.approx(cer.median())
    assert yoruba["text items"] == 8 and yoruba["speech items"] == 8
    assert yoruba["resource level"] == "low"


def test_cer_figure_bars_by_level_in_resource_order(tables, languages):
    fig = cer_figure(language_summary(tables["items"], languages))
    assert [t.name for t in fig.data] == ["high resource", "medium resource", "low resource"]
    assert list(fig.layout.xaxis.categoryarray) == ["English", "German", "Spanish", "Hindi",
                                                    "Swahili", "Yoruba"]
    assert "CER" in fig.layout.yaxis.title.text


def test_corpus_counts_and_components_table(tables):
    counts = corpus_counts(tables["items"])
    assert counts == {"Languages": 6, "Sentences": 8, "Text items": 48, "Speech items": 48}
    assert set(corpus_counts(tables["items"].iloc[0:0]).values()) == {0}
    # second-voice clips count in the headline when their number is given
    assert corpus_counts(tables["items"], 60)["Speech items"] == 60
    table = components_table(pd.DataFrame({"component": ["c"], "layer_names": [["embed",
                                                                              "block 1"]]}))
    assert table.loc[0, "layer_names"] == "embed, block 1"


def test_components_table_shows_space_stages_and_conditioning(tables):
    table = components_table(tables["components"], tables["layers"]).set_index("component")
    assert table.loc["speech_encoder", "stages"] == "frontend 1 · encoder 4"
    assert table.loc["text_decoder", "stages"] == "frontend 1 · decoder 4"
    assert table.loc["speech_encoder", "space"] == "synthetic-whisper/encoder"
    assert table.loc["text_decoder", "space"] == "synthetic-whisper/decoder"
    assert table.loc["text_decoder", "conditioning"] == "prompt: <|sot|><|{lang}|><|transcribe|>"
    assert table.loc["speech_encoder", "conditioning"] == "none (the input alone)"
    assert list(table.columns[:4]) == ["modality", "space", "stages", "conditioning"]
    llm = tables["runs"][SHARED_RUN_ID]
    speech = components_table(llm["components"], llm["layers"]).set_index("component")
    assert speech.loc["llm_speech", "stages"] == "frontend 1 · encoder 2 · projector 1 · llm 4"
    assert speech.loc["llm_speech", "space"] == "synthetic-llm/audio, synthetic-llm/llm"


def test_cer_figure_without_cer(languages):
    items = pd.DataFrame({"item_id": [0], "sentence_id": [0], "lang": ["eng_Latn"],
                          "modality": ["speech"], "text": ["x"], "cer": [np.nan]})
    fig = cer_figure(language_summary(items, languages))
    assert len(fig.data) == 0 and "No character error rates" in fig.layout.annotations[0].text


# ------------------------------------------------------------------------------------- findings

@pytest.mark.parametrize("verdict, colour", [("holds", "green"), ("does not hold", "red"),
                                             ("Not enough data", "gray"), ("partially holds", "orange"),
                                             ("banana", "gray")])
def test_verdict_colour(verdict, colour):
    assert verdict_colour(verdict) == colour


def test_finding_figure_lines_over_depth_with_bands():
    details = pd.DataFrame({"depth": [0.0, 1.0, 0.0, 1.0], "series": ["a", "a", "b", "b"],
                            "value": [0.1, 0.5, 0.2, 0.3], "ci_low": [0.0, 0.4, 0.1, 0.2],
                            "ci_high": [0.2, 0.6, 0.3, 0.4], "n_langs": [3, 3, 3, 3]})
    fig = finding_figure(details, metric="svcca")
    lines = [t for t in fig.data if t.fill != "toself"]
    assert [t.name for t in lines] == ["a", "b"]
    np.testing.assert_allclose(lines[0].y, [0.1, 0.5])
    assert len([t for t in fig.data if t.fill == "toself"]) == 2
    assert fig.layout.xaxis.title.text.startswith("relative depth")
    assert fig.layout.yaxis.title.text == "svcca"


def test_finding_figure_bars_per_level_coloured_by_component():
    details = pd.DataFrame({"resource_level": ["high", "high", "low", "low"],
                            "component": ["plain", "adapted", "plain", "adapted"],
                            "gap": [0.5, 0.3, 0.6, 0.55], "ci_low": [0.4, 0.2, 0.5, 0.45],
                            "ci_high": [0.6, 0.4, 0.7, 0.65]})
    fig = finding_figure(details, metric="svcca")
    assert [t.type for t in fig.data] == ["bar", "bar"]
    assert [t.name for t in fig.data] == ["plain", "adapted"]
    assert list(fig.data[0].x) == ["high", "low"]
    assert fig.layout.yaxis.title.text == "gap = 1 − svcca"


def test_finding_figure_is_none_when_not_chartable():
    assert finding_figure(pd.DataFrame({"note": ["no numbers here"]})) is None
    assert finding_figure(pd.DataFrame({"value": [1.0, 2.0]})) is None
    assert finding_figure(pd.DataFrame()) is None


def test_findings_of_the_synthetic_tables_are_chartable(tables, languages):
    from core.findings import compute_findings

    components = pd.DataFrame({"component": ["speech_encoder", "text_decoder"],
                               "modality": ["speech", "text"], "description": ["", ""]})
    findings = compute_findings(_metric_rows(tables), languages, components, metric="svcca")
    assert len(findings) == 4
    charted = [finding_figure(f.details, metric="svcca") for f in findings]
    # 1, 3 and 4 carry per-depth details; 2 needs a length-adapted component the tables lack.
    assert [fig is not None for fig in charted] == [True, False, True, True]
    assert verdict_colour(findings[1].verdict) == "gray"


def test_every_metric_in_the_synthetic_tables_is_chartable(tables, languages):
    for metric in METRICS:
        rows = _metric_rows(tables, metric=metric)
        for pairing in PAIRINGS:
            fig = heatmap_figure(rows[rows.layer_a == 1], languages, pairing=pairing,
                                 metric=metric)
            assert _traces(fig, "heatmap")


# ------------------------------------------------------------- what a run can show, and why not

def _stored_pairs(metrics: pd.DataFrame, metric: str, pairing: str) -> list[tuple[str, str]]:
    rows = metrics[(metrics.metric == metric) & (metrics.pairing == pairing)]
    return list(dict.fromkeys(zip(rows.component_a, rows.component_b, strict=True)))


def _availability(run: dict, metric: str, pairing: str, model: str = "m"):
    metrics = run["metrics"]
    return availability.pairing_availability(
        pairing, metric, run["components"], run["layers"],
        stored_pairs=_stored_pairs(metrics, metric, pairing),
        metric_names=sorted(set(metrics.metric)), model=model)


def test_cosine_across_spaces_is_explained_not_drawn(tables):
    whisper = tables["runs"][RUN_ID]
    answer = _availability(whisper, "paired_cosine", "text-speech", model="synthetic-whisper")
    assert not answer.drawable and answer.reason == availability.CROSS_SPACE
    assert answer.blocked == (("text_decoder", "speech_encoder"),)
    for part in ("`text_decoder`", "`speech_encoder`", "`synthetic-whisper/decoder`",
                 "`synthetic-whisper/encoder`", "compares coordinates", "undefined",
                 "different representation spaces", "**svcca**", "**linear_cka**"):
        assert part in answer.message, part
    assert "**paired_cosine**" not in answer.message  # never suggested as its own alternative
    # the same run draws basis-invariant metrics across spaces, and cosine within a component
    assert _availability(whisper, "svcca", "text-speech").drawable
    assert _availability(whisper, "paired_cosine", "text-text") == availability.Availability(True)


def test_text_only_run_says_it_reads_only_text(tables):
    e5 = tables["runs"][TEXT_RUN_ID]
    for pairing in ("text-speech", "speech-speech"):
        answer = _availability(e5, "svcca", pairing, model="synthetic-e5")
        assert not answer.drawable and answer.reason == availability.TEXT_ONLY
        assert "reads only text" in answer.message and "`text_encoder`" in answer.message
        assert pairing in answer.message
    assert _availability(e5, "paired_cosine", "text-text").drawable
    assert availability.projection_note(e5["components"], "synthetic-e5").endswith(
        "Its maps hold text items only.")
    assert availability.projection_note(tables["components"], "w") == ""
    separate = availability.projection_note(tables["components"], "w", joint_maps=False)
    assert "mapped separately" in separate and "`synthetic-whisper/encoder`" in separate


def test_shared_space_run_draws_cosine_between_text_and_speech(tables):
    llm = tables["runs"][SHARED_RUN_ID]
    answer = _availability(llm, "paired_cosine", "text-speech")
    assert answer.drawable and not answer.message
    stored = llm["metrics"]
    cosine = stored[(stored.metric == "paired_cosine") & (stored.pairing == "text-speech")]
    assert set(cosine["stage_b"]) == {"llm"}  # never the audio encoder's points
    svcca = stored[(stored.metric == "svcca") & (stored.pairing == "text-speech")]
    assert {"frontend", "encoder"} <= set(svcca["stage_b"])  # basis-invariant: every point


def test_partly_blocked_pairs_are_drawn_with_a_note():
    # Seamless-like: encoders in two spaces; the text decoder fed text or speech shares one
    components = pd.DataFrame({
        "component": ["text_encoder", "speech_encoder", "decoder_text", "decoder_speech"],
        "modality": ["text", "speech", "text", "speech"],
        "space": ["s/text_enc", "s/speech_enc", "s/decoder", "s/decoder"]})
    answer = availability.pairing_availability(
        "text-speech", "retrieval", components, None,
        stored_pairs=[("decoder_text", "decoder_speech")], metric_names=["retrieval", "svcca"],
        modality_pairs=[["text_encoder", "speech_encoder"], ["decoder_text", "decoder_speech"]])
    assert answer.drawable and answer.reason == availability.CROSS_SPACE
    assert answer.blocked == (("text_encoder", "speech_encoder"),)
    assert "`s/text_enc`" in answer.message and "decoder_text" not in answer.message
    nothing = availability.pairing_availability(
        "text-speech", "svcca", components, None, stored_pairs=[], metric_names=["svcca"])
    assert not nothing.drawable and nothing.reason == availability.NOT_STORED
    missing = availability.pairing_availability(
        "text-text", "mutual_knn", components, None, stored_pairs=[], metric_names=["svcca"])
    assert not missing.drawable and missing.reason == availability.NOT_COMPUTED


def test_cer_and_quantisation_notes(tables):
    e5 = tables["runs"][TEXT_RUN_ID]["components"]
    assert "reads only text" in availability.cer_unavailable_reason(e5, {}, "e5")
    whisper = tables["components"]
    assert availability.cer_unavailable_reason(whisper, {"transcribed": True}, "w") is None
    assert "cannot transcribe" in availability.cer_unavailable_reason(
        whisper, {"transcribe": True, "transcribed": False}, "w")
    assert "--no-transcribe" in availability.cer_unavailable_reason(
        whisper, {"transcribe": False, "transcribed": False}, "w")
    note = availability.quantisation_note({"model_info": {"quantisation": "Q4_0 (4-bit)"}}, "e5")
    assert "4-bit weights (dequantised)" in note and "Q4_0" in note
    assert availability.quantisation_note({"model_info": {"quantisation": None}}, "w") is None
    assert availability.quantisation_note({}, "w") is None
    fig = cer_figure(pd.DataFrame(), unavailable="e5 reads only text")
    assert len(fig.data) == 0 and "reads only text" in fig.layout.annotations[0].text


# ------------------------------------------------------- two component pairs of one pairing

def _two_pair_rows() -> pd.DataFrame:
    """Seamless-like: the same languages and layers for two text-speech component pairs."""
    rows = []
    for (a, b), value in ((("text_encoder", "speech_encoder"), 0.2),
                          (("decoder_text", "decoder_speech"), 0.8)):
        for layer in range(3):
            for lang_a, lang_b in itertools.product(["eng_Latn", "deu_Latn"], repeat=2):
                rows.append(_row(component_a=a, component_b=b, layer_a=layer, layer_b=layer,
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
    english = [t for t in _lines(curves) if t.name.startswith("English")]
    assert len(english) == 2
    assert sorted(np.round(t.y[0], 2) for t in english) == [0.2, 0.8]
    assert all(len(t.x) == 3 for t in english)  # one point per layer, no zigzag between pairs

    heat = heatmap_figure(rows[rows.layer_a == 0], languages, pairing="text-speech",
                          metric="svcca")
    z = np.asarray(heat.data[0].z, dtype=float)
    assert np.unique(np.round(z, 6)).size == 1  # one pair's cells, never a mix of both
    assert "text_encoder vs speech_encoder" in heat.layout.title.text


# --------------------------------------------------------------------------- compare models

def test_family_rows_and_curve_use_path_depth(tables):
    llm = tables["runs"][SHARED_RUN_ID]["metrics"]
    svcca = llm[llm.metric == "svcca"]
    same = comparison.family_rows(svcca, "text-speech")
    assert (same.lang_a == same.lang_b).all() and set(same.pairing) == {"text-speech"}
    cross = comparison.family_rows(svcca, "text-text")
    assert (cross.lang_a != cross.lang_b).all()
    with pytest.raises(ValueError, match="unknown family"):
        comparison.family_rows(svcca, "speech-text")

    curve = comparison.family_curve(svcca, "text-speech")
    # text-speech: x is the speech side's path depth (llm_speech: 8 points)
    assert list(curve["depth"]) == pytest.approx(sorted(set(same["path_depth_b"])))
    assert set(curve["component"]) == {"llm_speech"}
    last = same[same.path_depth_b == 1.0]["value"]
    got = curve[curve.depth == 1.0].iloc[0]
    assert got["mean"] == pytest.approx(last.mean()) and got["pairs"] == 6
    half = Z_95 * last.std() / np.sqrt(6)
    assert got["ci_high"] - got["mean"] == pytest.approx(half)
    assert got["baseline"] == pytest.approx(same[same.path_depth_b == 1.0]["baseline_mean"].mean())
    text = comparison.family_curve(svcca, "text-text")
    assert list(text["depth"]) == [0.0, 0.25, 0.5, 0.75, 1.0] and text["pairs"].eq(15).all()


def test_stage_spans_and_boundaries(tables):
    layers = tables["runs"][SHARED_RUN_ID]["layers"]
    spans = stage_spans(layers, "llm_speech")
    assert list(spans["stage"]) == ["frontend", "encoder", "projector", "llm"]
    assert spans.iloc[1][["start", "end"]].tolist() == pytest.approx([1 / 7, 2 / 7])
    assert boundaries(spans) == pytest.approx([0.5 / 7, 2.5 / 7, 3.5 / 7])
    assert stage_summary(layers, "llm_speech") == "frontend 1 · encoder 2 · projector 1 · llm 4"
    assert stage_spans(layers, "nothing").empty and boundaries(stage_spans(layers, "x")) == []


def test_compare_figure_one_line_per_run_with_baselines_and_stages(tables):
    curves, spans = [], []
    for run_id, family_component in ((RUN_ID, "text_decoder"), (TEXT_RUN_ID, "text_encoder"),
                                     (SHARED_RUN_ID, "llm_text")):
        run = tables["runs"][run_id]
        rows = run["metrics"][run["metrics"].metric == "svcca"]
        curves.append(comparison.family_curve(rows, "text-text").assign(run=run_id))
        spans.append(stage_spans(run["layers"], family_component).assign(run=run_id))
    curves, spans = pd.concat(curves), pd.concat(spans)
    colours = run_colours([RUN_ID, TEXT_RUN_ID, SHARED_RUN_ID])
    fig = compare_figure(curves, spans, metric="svcca", family="text-text",
                         colours=colours)
    solid = [t for t in _lines(fig) if t.line.dash is None]
    dashed = [t for t in _lines(fig) if t.line.dash == "dash"]
    assert [t.name for t in solid] == [RUN_ID, TEXT_RUN_ID, SHARED_RUN_ID]
    assert [t.line.color for t in solid] == list(colours.values())
    assert [t.name for t in dashed] == [f"{r}: shuffled baseline" for r in colours]
    assert len([t for t in fig.data if t.fill == "toself"]) == 3
    e5 = [t for t in solid if t.name == TEXT_RUN_ID][0]
    assert len(e5.x) == 7 and e5.x[-1] == 1.0  # 7 points of its own path on the shared axis
    # stage boundaries: Whisper-like and e5 one each (frontend | stack), the LLM's text path none
    lines = [s for s in fig.layout.shapes if s.line.dash == "dot"]
    assert sorted(s.line.color for s in lines) == sorted([colours[RUN_ID], colours[TEXT_RUN_ID]])
    labels = {(a.text, a.font.color) for a in fig.layout.annotations}
    assert ("decoder", colours[RUN_ID]) in labels and ("encoder", colours[TEXT_RUN_ID]) in labels
    assert ("llm", colours[SHARED_RUN_ID]) in labels
    assert "relative depth" in fig.layout.xaxis.title.text
    empty = compare_figure(curves.iloc[0:0], spans, metric="svcca",
                           family="text-text")
    assert len(empty.data) == 0 and empty.layout.annotations


def test_the_slim_template_draws_every_trace_type_as_plotly_white():
    """TEMPLATE keeps plotly_white's layout and the defaults of the trace types drawn:
    a figure of each type under it gives the JSON plotly_white gives, template aside."""
    import plotly.graph_objects as go
    import plotly.io as pio

    white = pio.templates["plotly_white"]
    kept = set(TEMPLATE.data.to_plotly_json())
    assert kept == set(white.data.to_plotly_json()) & set(TRACE_TYPES)  # box: none
    for kind in TRACE_TYPES:
        trace = {"type": kind, "x": [0, 1], "y": [1, 2]} if kind != "heatmap" else \
            {"type": kind, "z": [[0, 1], [1, 0]]}
        slim = go.Figure(data=[trace], layout={"template": TEMPLATE}).to_dict()
        full = go.Figure(data=[trace], layout={"template": white}).to_dict()
        assert slim["data"] == full["data"]
        assert slim["layout"]["template"]["layout"] == full["layout"]["template"]["layout"]
        assert slim["layout"]["template"]["data"].get(kind) == \
            full["layout"]["template"]["data"].get(kind)
