"""dashboard.corpus_items: the Items page's filters and tables, on the synthetic store's items."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard import corpus_items as ci
from synthetic_store import LANGS, N_SENTENCES, items_frame, languages_frame


@pytest.fixture(scope="module")
def items() -> pd.DataFrame:
    frame = items_frame(np.random.default_rng(0))
    frame["item_id"] = range(len(frame))
    frame["voice_rank"] = 0
    second = frame[(frame["modality"] == "speech") & (frame["lang"] == "deu_Latn")].copy()
    second["voice_rank"], second["item_id"] = 1, range(len(frame), len(frame) + len(second))
    return ci.with_context(pd.concat([frame, second], ignore_index=True), languages_frame())


def test_no_filter_keeps_everything(items):
    assert len(ci.filter_items(items, ci.ItemFilters())) == len(items)


def test_each_filter_keeps_what_it_says(items):
    def kept(**kw):
        return ci.filter_items(items, ci.ItemFilters(**kw))

    assert set(kept(langs=("swh_Latn",))["lang"]) == {"swh_Latn"}
    assert set(kept(levels=("low",))["lang"]) == {"swh_Latn", "yor_Latn"}
    assert set(kept(modalities=("speech",))["modality"]) == {"speech"}
    second = kept(voice_ranks=(1,))
    assert set(second.loc[second.modality == "speech", "voice_rank"]) == {1}
    assert (second["modality"] == "text").sum() == len(LANGS) * N_SENTENCES  # text has no voice
    short = kept(duration_s=(2.5, 2.8))
    assert short.loc[short.modality == "speech", "duration_s"].between(2.5, 2.8).all()
    assert (short["modality"] == "text").sum() == len(LANGS) * N_SENTENCES
    low_cer = kept(cer=(0.0, 0.1))
    assert low_cer.loc[low_cer.modality == "speech", "cer"].le(0.1).all()
    assert set(kept(search="#3] THE")["sentence_id"]) == {3}
    assert set(kept(item_ids=(0, 1))["item_id"]) == {0, 1}
    assert kept(search="no such words").empty


def test_side_by_side_has_one_row_per_sentence_and_a_column_per_language(items):
    table = ci.side_by_side(items, languages_frame(), ["swh_Latn", "eng_Latn"])
    assert list(table.columns) == ["sentence_id", "English", "Swahili", "speech (s)", "mean CER"]
    assert list(table["sentence_id"]) == list(range(N_SENTENCES))
    assert table.loc[2, "Swahili"].startswith("[swh_Latn #2]")


def test_item_table_and_the_items_to_play(items):
    table = ci.item_table(items[items.lang.isin(["yor_Latn", "eng_Latn"])], languages_frame())
    assert list(table.columns) == ci.ITEM_COLUMNS
    assert table["language"].iloc[0] == "English" and table["language"].iloc[-1] == "Yoruba"
    playing = ci.speech_items(items, 1, ["deu_Latn", "eng_Latn"], (0, 1))
    assert list(zip(playing.lang, playing.voice_rank, strict=True)) == \
        [("deu_Latn", 0), ("deu_Latn", 1), ("eng_Latn", 0)]


def test_value_range_and_previews(items):
    assert ci.value_range(pd.Series([0.12, 0.47]), step=0.1) == (0.1, 0.5)
    assert ci.value_range(pd.Series([np.nan])) is None
    assert ci.sentence_previews(items, languages_frame())[4].startswith("[eng_Latn #4]")


def test_rows_key_names_the_rows_not_the_positions():
    assert ci.rows_key("t", [3, 1, 2]) == ci.rows_key("t", np.array([3, 1, 2]))
    assert ci.rows_key("t", [3, 1, 2]) != ci.rows_key("t", [1, 2, 3])  # row order matters
    assert ci.rows_key("t", [3, 1, 2]) != ci.rows_key("t", [3, 1])  # a filtered table
    assert ci.rows_key("t", [1]) != ci.rows_key("u", [1])
    assert ci.rows_key("t", []).startswith("t_")
