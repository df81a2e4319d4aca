"""Overview page builders: language summary, CER bars by level, corpus counts, components table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard.charts.overview import cer_figure, components_table, corpus_counts, language_summary
from chart_fixtures import LEVEL_ORDER, languages, tables
from synthetic_store import SHARED_RUN_ID


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
