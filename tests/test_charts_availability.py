"""What a run can show, and why not: cross-space cosine explained, text-only runs, shared
spaces, partly blocked pairs, CER and quantisation notes."""

from __future__ import annotations

import pandas as pd

from dashboard import availability
from dashboard.charts.overview import cer_figure
from chart_fixtures import tables
from synthetic_store import RUN_ID, SHARED_RUN_ID, TEXT_RUN_ID


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
