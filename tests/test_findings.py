"""The four findings on synthetic metrics tables built so that each verdict is known in advance."""

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from core import findings
from core.findings import DOES_NOT_HOLD, HOLDS, NOT_ENOUGH_DATA
from core.store.vectors import encode_resamples

LANGS = {"eng_Latn": "high", "deu_Latn": "high", "hin_Deva": "medium", "swh_Latn": "low",
         "yor_Latn": "low"}
SE = 0.01  # per-row bootstrap SD; CIs are value +/- 1.96 SE
N_BOOT = 200
#: resample b moves every row together (the same sentences) plus a little on its own
_SHARED = np.random.default_rng(0).standard_normal(N_BOOT)
_OWN = np.random.default_rng(1)


def _stage(modality, layer):
    return "frontend" if layer == 0 else ("encoder" if modality == "speech" else "decoder")


def _row(pairing, component_a, component_b, layer_a, layer_b, depth, lang_a, lang_b, value, metric,
         stage_b=None, baseline=0.1):
    modality_a, modality_b = pairing.split("-")
    boot = value + SE * (0.8 * _SHARED + 0.6 * _OWN.standard_normal(N_BOOT))
    return {"stage_a": _stage(modality_a, layer_a),
            "stage_b": stage_b or _stage(modality_b, layer_b),"pairing": pairing, "component_a": component_a, "component_b": component_b,
            "layer_a": layer_a, "layer_b": layer_b, "depth": depth, "lang_a": lang_a, "lang_b": lang_b,
            "modality_a": modality_a, "modality_b": modality_b, "metric": metric,
            "params": json.dumps({"k": 4, "variance": None}), "n_samples": 60, "value": value,
            "baseline_mean": baseline, "baseline_std": 0.02, "ci_low": value - 1.96 * SE,
            "ci_high": value + 1.96 * SE, "length_baseline": 0.05, "value_residualised": value - 0.02,
            "resamples": encode_resamples(boot)}


def metrics_table(*, cross_modal=lambda depth: 0.2 + 0.5 * depth, text_text=lambda depth: 0.7,
                  speech_speech=lambda depth: 0.45, langs=tuple(LANGS), n_layers=5,
                  adapted_value=None, metric="svcca") -> pd.DataFrame:
    """Rows shaped like precompute's: same-modality pairs once (lang_a < lang_b), text-speech for
    every ordered language pair; ``adapted_value(level)`` adds a length-adaptor point after the
    speech encoder's last layer (stage label ``length_adaptor``), paired with the last text layer."""
    rows = []
    last = n_layers - 1
    for layer in range(n_layers):
        depth = layer / last if last else 0.0
        for lang_a, lang_b in itertools.combinations(sorted(langs), 2):
            rows.append(_row("text-text", "text_decoder", "text_decoder", layer, layer, depth, lang_a,
                             lang_b, text_text(depth), metric))
            rows.append(_row("speech-speech", "speech_encoder", "speech_encoder", layer, layer, depth,
                             lang_a, lang_b, speech_speech(depth), metric))
        for lang_a, lang_b in itertools.product(langs, langs):
            value = cross_modal(depth) * (1.0 if lang_a == lang_b else 0.5)
            rows.append(_row("text-speech", "text_decoder", "speech_encoder", layer, layer, depth, lang_a,
                             lang_b, value, metric))
    if adapted_value is not None:
        for lang in langs:
            rows.append(_row("text-speech", "text_decoder", "speech_encoder", last, last + 1, 1.0,
                             lang, lang, adapted_value(LANGS[lang]), metric,
                             stage_b="length_adaptor"))
    return pd.DataFrame(rows)


def languages_table() -> pd.DataFrame:
    return pd.DataFrame({"lang": list(LANGS), "name": list(LANGS), "resource_level": list(LANGS.values())})


def components_table(adapted: bool = False) -> pd.DataFrame:
    rows = [{"component": "speech_encoder", "modality": "speech", "n_layers": 5, "dim": 8,
             "description": "encoder blocks", "layer_names": json.dumps(["embed"] + ["block"] * 4)},
            {"component": "text_decoder", "modality": "text", "n_layers": 5, "dim": 8,
             "description": "decoder blocks", "layer_names": json.dumps(["embed"] + ["block"] * 4)}]
    if adapted:
        rows.append({"component": "length_adaptor", "modality": "speech", "n_layers": 1, "dim": 8,
                     "description": "speech encoder output after the length adaptor",
                     "layer_names": json.dumps(["output"])})
    return pd.DataFrame(rows)


def _verdicts(table, adapted=False, metric="svcca"):
    found = findings.compute_findings(table, languages_table(), components_table(adapted), metric=metric)
    assert [f.id for f in found] == [1, 2, 3, 4]
    return {f.id: f for f in found}


def test_study_shaped_table_confirms_findings_1_3_4_and_lacks_data_for_2():
    found = _verdicts(metrics_table())
    assert found[1].verdict == HOLDS
    assert found[2].verdict == NOT_ENOUGH_DATA and "length-reducing stage" in found[2].summary
    assert found[3].verdict == HOLDS
    assert found[4].verdict == HOLDS and "modality gap is larger" in found[4].summary
    # numbers the summaries promise: early third 0.2 + 0.5 * mean(0, 0.25) and late 0.2 + 0.5 * mean(0.75, 1)
    early, late = 0.2 + 0.5 * np.mean([0, 0.25]), 0.2 + 0.5 * np.mean([0.75, 1.0])
    assert f"raw {early:.3f}" in found[1].summary and f"raw {late:.3f}" in found[1].summary
    assert "baseline 0.100" in found[1].summary  # shuffled baseline
    assert found[1].effect.corrected == pytest.approx(late - early)  # equal baselines cancel
    assert found[1].raw_verdict == HOLDS


def test_flat_or_falling_similarity_does_not_hold():
    found = _verdicts(metrics_table(cross_modal=lambda depth: 0.6 - 0.3 * depth,
                                    speech_speech=lambda depth: 0.8, text_text=lambda depth: 0.2))
    assert found[1].verdict == DOES_NOT_HOLD
    assert found[3].verdict == DOES_NOT_HOLD  # speech more similar across languages than text
    assert found[4].verdict == DOES_NOT_HOLD and "language gap is larger" in found[4].summary


def test_a_rise_within_the_noise_cannot_be_decided():
    # shared sentence noise cancels in the joint difference: only a rise far below it is undecided
    found = _verdicts(metrics_table(cross_modal=lambda depth: 0.4 + 0.001 * depth))
    assert found[1].verdict == NOT_ENOUGH_DATA
    assert "includes 0" in found[1].summary


def test_finding_1_details_have_one_row_per_depth_with_cis():
    details = _verdicts(metrics_table())[1].details
    assert details["depth"].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    np.testing.assert_allclose(details["raw"], 0.2 + 0.5 * details["depth"], atol=1e-9)
    np.testing.assert_allclose(details["value"], details["raw"] - 0.1, atol=1e-9)  # corrected
    width = details["ci_high"] - details["ci_low"]
    # a mean over 5 languages whose errors are mostly shared: narrower than one row's, wider than
    # what independence (1 / sqrt(5)) would claim
    assert (width < 2 * 1.96 * SE * 1.1).all() and (width > 2 * 1.96 * SE / np.sqrt(5)).all()
    assert (details["n_langs"] == len(LANGS)).all()


def test_length_adaptation_narrowing_the_gap_mostly_for_high_resource_languages():
    narrowing = {"high": 0.9, "medium": 0.8, "low": 0.72}  # plain output: 0.7 similarity everywhere
    found = _verdicts(metrics_table(adapted_value=narrowing.get), adapted=True)
    assert found[2].verdict == HOLDS
    details = found[2].details.set_index(["resource_level", "adaptation"])
    assert details.loc[("high", "with"), "raw"] == pytest.approx(0.9)
    assert details.loc[("low", "without"), "raw"] == pytest.approx(0.7)
    assert details.loc[("high", "with"), "n_langs"] == 2
    assert details.loc[("high", "narrowing (with minus without)"), "value"] == pytest.approx(0.2)
    # its own effect: high- minus low-resource narrowing, 0.2 - 0.02
    assert details.loc[("high minus low", "narrowing difference"), "value"] == pytest.approx(0.18)
    assert "holds that it is larger for high-resource languages" in found[2].summary
    assert found[2].details["resource_level"].tolist()[:2] == ["high", "high"]
    assert {"speech_encoder layer 4", "speech_encoder layer 5"} <= set(found[2].details.component)
    assert found[1].verdict == HOLDS and "speech_encoder" in found[1].summary


def test_length_adaptation_is_found_by_stage_label_not_by_name():
    """A point named like an adaptor but labelled 'encoder' is no length adaptation."""
    table = metrics_table(adapted_value=lambda level: 0.9)
    table.loc[table.stage_b == "length_adaptor", "stage_b"] = "encoder"
    found = findings.compute_findings(table, languages_table(), components_table(True))
    assert found[1].verdict == NOT_ENOUGH_DATA


def test_cosine_findings_explain_that_spaces_differ():
    table = metrics_table(metric="paired_cosine")
    table = table[table.pairing != "text-speech"]  # never stored across spaces
    found = _verdicts(table, metric="paired_cosine")
    assert found[1].verdict == NOT_ENOUGH_DATA and "representation space" in found[1].summary


def test_length_adaptation_that_widens_the_gap_does_not_hold():
    found = _verdicts(metrics_table(adapted_value=lambda level: 0.5), adapted=True)
    assert found[2].verdict == DOES_NOT_HOLD


def test_a_length_adaptor_layer_is_compared_with_the_layer_before_it():
    table = metrics_table(cross_modal=lambda depth: 0.3 if depth < 1 else 0.8)
    table.loc[(table.component_b == "speech_encoder") & (table.layer_b == 4), "stage_b"] = \
        "length_adaptor"
    found = findings.compute_findings(table, languages_table(), components_table())
    assert found[1].verdict == HOLDS
    assert found[0].verdict in (HOLDS, DOES_NOT_HOLD)
    assert {"speech_encoder layer 3", "speech_encoder layer 4"} <= set(found[1].details["component"])


def test_single_language_and_too_few_layers_lack_data():
    found = _verdicts(metrics_table(langs=("eng_Latn",)))
    assert found[1].verdict == HOLDS
    assert found[3].verdict == NOT_ENOUGH_DATA and found[4].verdict == NOT_ENOUGH_DATA
    shallow = _verdicts(metrics_table(n_layers=2))
    assert shallow[1].verdict == NOT_ENOUGH_DATA and "at least 3" in shallow[1].summary


def test_missing_metric_explains_what_exists():
    found = _verdicts(metrics_table(metric="linear_cka"))
    assert all(f.verdict == NOT_ENOUGH_DATA for f in found.values())
    assert "linear_cka" in found[1].summary
    assert _verdicts(metrics_table(metric="linear_cka"), metric="linear_cka")[1].verdict == HOLDS


def test_nan_rows_are_ignored_and_the_most_common_configuration_is_used():
    table = metrics_table()
    table.loc[table.sample(frac=0.1, random_state=0).index, "value"] = np.nan
    other = metrics_table(cross_modal=lambda depth: 0.9 - 0.5 * depth).head(40)
    other["params"] = json.dumps({"k": 2, "variance": None})
    found = _verdicts(pd.concat([table, other], ignore_index=True))
    assert found[1].verdict == HOLDS


def test_format_findings_is_plain_text_with_every_verdict():
    text = findings.format_findings(findings.compute_findings(metrics_table(), languages_table(),
                                                              components_table()))
    for finding_id, verdict in ((1, "HOLDS"), (2, "NOT ENOUGH DATA"), (3, "HOLDS"), (4, "HOLDS")):
        assert f"{finding_id}. " in text and verdict in text
    assert "depth" in text and "modality gap" in text


def test_a_raw_difference_from_different_chance_levels_does_not_hold():
    """Text-text with a higher shuffled baseline than text-speech: the raw modality-vs-language gap
    difference (0.2) is all floor; after correction it is 0 and finding 4 must not hold, while the
    raw values would have said it does."""
    table = metrics_table(cross_modal=lambda depth: 0.5, text_text=lambda depth: 0.7)
    table.loc[table.pairing == "text-text", "baseline_mean"] = 0.3  # text-speech keeps 0.1
    found = _verdicts(table)
    assert found[4].effect.raw == pytest.approx(0.2) and found[4].effect.corrected == pytest.approx(0.0)
    assert found[4].verdict == NOT_ENOUGH_DATA and found[4].raw_verdict == HOLDS
    assert "Raw values (not corrected for chance) would say: holds" in found[4].summary
    text = findings.format_findings(list(found.values()))
    assert "(raw values: holds)" in text


def test_without_bootstrap_values_nothing_is_decided():
    table = metrics_table().drop(columns="resamples")
    found = _verdicts(table)
    assert all(f.verdict == NOT_ENOUGH_DATA for f in found.values())
    assert "no bootstrap values" in found[1].summary


def test_too_few_sentences_decide_nothing():
    found = _verdicts(metrics_table().assign(n_samples=20))
    assert found[1].verdict == NOT_ENOUGH_DATA and "only 20 sentences" in found[1].summary


def test_voice_reference_is_read_beside_cross_lingual_speech():
    table = metrics_table(speech_speech=lambda depth: 0.45)
    voice = [findings_row for findings_row in table.to_dict("records")
             if findings_row["pairing"] == "speech-speech" and findings_row["lang_a"] == "deu_Latn"
             and findings_row["lang_b"] == "eng_Latn"]
    extra = []
    for row in voice:  # deu and eng also spoken by a second voice: similarity 0.85
        for lang in ("deu_Latn", "eng_Latn"):
            extra.append({**row, "lang_a": lang, "lang_b": lang, "value": 0.85,
                          "resamples": encode_resamples(0.85 + SE * _SHARED)})
    found = _verdicts(pd.concat([table, pd.DataFrame(extra)], ignore_index=True))
    assert found[3].verdict == HOLDS
    assert "Voice reference (2 languages with a second voice)" in found[3].summary
    assert "0.850 raw" in found[3].summary
    series = set(found[3].details["series"])
    assert "speech, same language, another voice" in series


def _variants() -> pd.DataFrame:
    rows = []
    for k, value, baseline in ((2, 0.6, 0.2), (8, 0.7, 0.4), (32, 0.9, 0.8)):
        for lang_a, lang_b, pairing in (("deu_Latn", "eng_Latn", "text-text"),
                                        ("eng_Latn", "eng_Latn", "text-speech")):
            rows.append({"variant": "svcca_k", "pairing": pairing, "component_a": "text_decoder",
                         "component_b": "text_decoder", "layer_a": 1, "layer_b": 1, "depth": 0.25,
                         "lang_a": lang_a, "lang_b": lang_b, "metric": "svcca",
                         "params": json.dumps({"k": k, "variance": None}), "n_samples": 200,
                         "value": value, "baseline_mean": baseline, "baseline_std": 0.01})
    return pd.DataFrame(rows)


def test_k_sensitivity_warns_where_the_baseline_nears_the_value():
    table = findings.k_sensitivity(_variants())
    assert set(table.family) == {"text-text, cross-lingual", "text-speech, same language"}
    text = table[table.family == "text-text, cross-lingual"].set_index("k")
    assert text.loc[8, "above_baseline"] == pytest.approx(0.3)
    assert text["warn"].tolist() == [False, False, True]  # 0.8 >= 0.8 * 0.9
    assert findings.k_sensitivity(pd.DataFrame()).empty
    from dashboard.charts.findings import k_sensitivity_figure
    fig = k_sensitivity_figure(table)
    assert len(fig.data) == 4 and fig.layout.xaxis.type == "log"


def test_length_matched_summary_pairs_full_and_matched_rows():
    table = metrics_table()
    first = table[(table.pairing == "text-text") & (table.layer_a == 1)].iloc[[0]]
    matched = first.assign(variant="length_matched", value=first.value - 0.3, n_samples=80)
    summary = findings.length_matched_summary(table, matched)
    row = summary.set_index("family").loc["text-text, cross-lingual"]
    assert row.all_sentences == pytest.approx(0.7 - 0.1)
    assert row.length_matched == pytest.approx(0.4 - 0.1)
    assert row.n_matched == 80 and row.n_pairs == 1
    assert findings.length_matched_summary(table, pd.DataFrame()).empty
