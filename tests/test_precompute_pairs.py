"""precompute.pairs: which layer points are compared (layer alignment by relative depth, the study's
pairings, shared spaces, length adaptation) and which layers share a projection."""

from __future__ import annotations

import pytest

from core.models.base import Component, path_points
from precompute.pairs import align_layers, metric_pairs, projection_groups
from precompute_helpers import SPEECH, TEXT, stack_component


def test_align_equal_depths_is_identity():
    assert align_layers(4, 4) == [(0, 0, 0.0), (1, 1, 1 / 3), (2, 2, 2 / 3), (3, 3, 1.0)]


def test_align_different_depths_by_relative_depth():
    # 3 layers against 7: depths 0, 0.5, 1 -> layers 0, 3, 6 of the deeper stack
    assert align_layers(3, 7) == [(0, 0, 0.0), (1, 3, 0.5), (2, 6, 1.0)]
    assert align_layers(7, 3) == [(0, 0, 0.0), (3, 1, 0.5), (6, 2, 1.0)]
    # 4 against 13: depth 1/3 -> layer 4, 2/3 -> layer 8
    assert [b for _, b, _ in align_layers(4, 13)] == [0, 4, 8, 12]
    assert align_layers(1, 5) == [(0, 0, 0.0)]
    with pytest.raises(ValueError):
        align_layers(0, 3)


def test_metric_pairs_cover_the_study_pairings():
    langs = ["eng_Latn", "deu_Latn", "yor_Latn"]
    pairs = metric_pairs([SPEECH, TEXT], langs)
    by_pairing: dict[str, list] = {}
    for p in pairs:
        by_pairing.setdefault(p.pairing, []).append(p)
    # same modality: 3 unordered language pairs x 3 layers, lang_a < lang_b
    for pairing, comp in (("text-text", "text_decoder"), ("speech-speech", "speech_encoder")):
        rows = by_pairing[pairing]
        assert len(rows) == 9
        assert all(p.a.lang < p.b.lang and p.a.component == p.b.component == comp for p in rows)
        assert all(p.a.layer == p.b.layer for p in rows)
    # text-speech: all ordered language pairs including same-language, text on side a
    rows = by_pairing["text-speech"]
    assert len(rows) == 9 * 3
    assert {(p.a.lang, p.b.lang) for p in rows} == {(a, b) for a in langs for b in langs}
    assert all(p.a.component == "text_decoder" and p.b.component == "speech_encoder" for p in rows)
    assert all(p.modality_a == "text" and p.modality_b == "speech" for p in rows)
    keys = [(p.a.key, p.b.key) for p in pairs]
    assert len(set(keys)) == len(keys)


def test_metric_pairs_text_only_model():
    pairs = metric_pairs([TEXT], ["eng_Latn", "deu_Latn"])
    assert {p.pairing for p in pairs} == {"text-text"} and len(pairs) == 3


def test_metric_pairs_record_whether_the_two_points_share_a_space():
    assert all(p.shared_space for p in metric_pairs([SPEECH, TEXT], ["eng_Latn", "deu_Latn"]))
    other = stack_component("text_decoder", "text", 3, 8, "m/decoder")
    pairs = metric_pairs([SPEECH, other], ["eng_Latn", "deu_Latn"])
    assert {p.shared_space for p in pairs if p.pairing == "text-speech"} == {False}
    assert {p.shared_space for p in pairs if p.pairing != "text-speech"} == {True}


def test_metric_pairs_follow_the_adapters_modality_pairs():
    second = stack_component("text_encoder", "text", 2, 8, "m/text_encoder")
    pairs = metric_pairs([SPEECH, TEXT, second], ["eng_Latn"],
                         modality_pairs=[("text_decoder", "speech_encoder")])
    assert {(p.a.component, p.b.component) for p in pairs if p.pairing == "text-speech"} == \
        {("text_decoder", "speech_encoder")}
    with pytest.raises(ValueError, match="must be \\(text, speech\\)"):
        metric_pairs([SPEECH, TEXT], ["eng_Latn"], modality_pairs=[("speech_encoder", "text_decoder")])


def test_length_adaptor_before_and_after_meet_the_same_text_layer():
    from core.models.base import LayerPoint

    speech = Component("speech_encoder", "speech", 8, "m/speech",
                       (*path_points([("frontend", ["in"]), ("encoder", [f"b{i}" for i in range(8)])]),
                        LayerPoint("adapted", "length_adaptor", 1.0)), "s")
    text = stack_component("text_encoder", "text", 3, 8, "m/text")
    assert speech.length_adaptation() == [(8, 9)]
    pairs = metric_pairs([speech, text], ["eng_Latn"])
    text_speech = {(p.a.layer, p.b.layer) for p in pairs if p.pairing == "text-speech"}
    assert {(2, 8), (2, 9)} <= text_speech  # plain align_layers(3, 10) skips layer 8
    assert (2, 8) not in {(a, b) for a, b, _ in align_layers(3, 10)}


def test_projection_groups_joint_when_spaces_match():
    assert projection_groups([SPEECH, TEXT]) == [[("text_decoder", i), ("speech_encoder", i)]
                                                  for i in range(3)]


def test_projection_groups_separate_across_spaces_or_where_depths_leave_layers():
    for other in (stack_component("text_decoder", "text", 3, 16, "m/shared"),
                  stack_component("text_decoder", "text", 3, 8, "m/decoder")):
        groups = projection_groups([SPEECH, other])
        assert sorted(groups) == sorted([[("speech_encoder", i)] for i in range(3)]
                                        + [[("text_decoder", i)] for i in range(3)])
    deep_speech = stack_component("speech_encoder", "speech", 5, 8, "m/shared")
    groups = projection_groups([deep_speech, TEXT])
    assert [g for g in groups if len(g) == 2] == [[("text_decoder", 0), ("speech_encoder", 0)],
                                                  [("text_decoder", 1), ("speech_encoder", 2)],
                                                  [("text_decoder", 2), ("speech_encoder", 4)]]
    assert sorted(g[0] for g in groups if len(g) == 1) == [("speech_encoder", 1), ("speech_encoder", 3)]
