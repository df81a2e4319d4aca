"""The Projection page's linked selection (dashboard.projection_selection): item ids out of a
Plotly selection event, counterparts in the other modality, the same sentences in other
languages, and the listed table."""

from __future__ import annotations

import pandas as pd

from dashboard.projection_selection import (
    SELECTION_COLUMNS,
    event_item_ids,
    in_other_languages,
    key_ids,
    player_labels,
    selection_key,
    selection_summary,
    selection_table,
    with_counterparts,
)

from chart_fixtures import languages, tables  # noqa: F401 - fixtures
from dashboard.charts.languages import language_names, language_order


def _event(points):
    return {"selection": {"points": points, "point_indices": [], "box": [], "lasso": []}}


def test_event_item_ids_reads_customdata_in_order_without_repeats():
    points = [{"customdata": 7}, {"customdata": [3]}, {"customdata": 7}, {"x": 1.0},
              {"customdata": None}, {"customdata": []}, {"customdata": "12"}, "junk"]
    assert event_item_ids(_event(points)) == [7, 3, 12]


def test_event_item_ids_of_nothing():
    assert event_item_ids(None) == []
    assert event_item_ids({}) == []
    assert event_item_ids(_event([])) == []
    assert event_item_ids({"selection": None}) == []


def _ids(items, **where):
    mask = pd.Series(True, index=items.index)
    for column, value in where.items():
        mask &= items[column].isin(value if isinstance(value, list) else [value])
    return sorted(int(i) for i in items.loc[mask, "item_id"])


def test_counterparts_add_the_other_modality_of_the_same_sentence_and_language(tables):
    items = tables["items"]
    lang = items["lang"].iloc[0]
    text = _ids(items, lang=lang, sentence_id=[0, 1], modality="text")
    linked = with_counterparts(items, text, ["text", "speech"])
    assert linked[:len(text)] == text  # the selection first, in its order
    assert sorted(linked) == _ids(items, lang=lang, sentence_id=[0, 1])
    assert with_counterparts(items, text, ["text"]) == text


def test_other_languages_add_the_same_sentences_in_the_same_modalities(tables):
    items = tables["items"]
    langs = list(dict.fromkeys(items["lang"]))
    speech = _ids(items, lang=langs[0], sentence_id=2, modality="speech")
    grown = in_other_languages(items, speech, langs[:3])
    assert sorted(grown) == _ids(items, lang=langs[:3], sentence_id=2, modality="speech")
    # a language outside the list stays out, the selection itself stays in
    assert set(speech) <= set(in_other_languages(items, speech, langs[1:2]))
    assert in_other_languages(items, [], langs) == []


def test_selection_table_orders_by_sentence_language_then_text_first(tables, languages):
    items = tables["items"]
    order = language_order(languages)
    chosen = _ids(items, sentence_id=[3, 1], lang=order[:2])
    table = selection_table(items, chosen[::-1], language_names(languages), order)
    assert list(table.columns[:len(SELECTION_COLUMNS)]) == SELECTION_COLUMNS
    assert len(table) == len(chosen)
    keys = list(zip(table["sentence_id"], table["lang"].map(order.index),
                    table["modality"] != "text", strict=True))
    assert keys == sorted(keys)
    assert set(table["name"]) == {language_names(languages)[lang] for lang in order[:2]}


def test_selection_table_of_unknown_ids_is_empty(tables, languages):
    table = selection_table(tables["items"], [10**9], {}, [])
    assert table.empty and list(table.columns[:len(SELECTION_COLUMNS)]) == SELECTION_COLUMNS
    assert selection_summary(table) == "nothing selected"


def test_selection_summary_counts():
    table = pd.DataFrame({"sentence_id": [1, 1, 2], "lang": ["a", "b", "a"],
                          "modality": ["text", "speech", "text"]})
    assert selection_summary(table) == ("3 items: 2 sentences in 2 languages "
                                        "(speech 1, text 2)")
    one = table.iloc[:1]
    assert selection_summary(one) == "1 item: 1 sentence in 1 language (text 1)"


def test_selection_key_names_the_set_of_ids_whatever_their_order():
    key = selection_key([7, 3, 7, 12])
    assert isinstance(key, bytes)
    assert key == selection_key([12, 3, 7]) != selection_key([3, 7])
    assert key_ids(key).tolist() == [3, 7, 12]
    assert key_ids(selection_key([])).tolist() == []


def test_player_labels_name_each_speech_item_by_its_id(tables, languages):
    items = tables["items"]
    order = language_order(languages)
    chosen = _ids(items, sentence_id=[1, 2], lang=order[:2])
    table = selection_table(items, chosen, language_names(languages), order)
    speech = table[table["modality"] == "speech"]
    labels = player_labels(speech, text_chars=10)
    assert list(labels) == speech["item_id"].tolist()
    for _, row in speech.iterrows():
        text = row["text"][:10]
        assert labels[row["item_id"]] == f"{row['name']} · sentence {row['sentence_id']}: {text}"
    # a grown selection moves the rows, not what an item id names
    grown = selection_table(items, _ids(items, sentence_id=[0, 1, 2], lang=order[:3]),
                            language_names(languages), order)
    grown_labels = player_labels(grown[grown["modality"] == "speech"], text_chars=10)
    assert all(grown_labels[item_id] == label for item_id, label in labels.items())
    first_row = speech.index[0]  # the same row of the grown list is another item
    assert grown.loc[first_row, "item_id"] != speech.loc[first_row, "item_id"]
    assert player_labels(speech.iloc[:0]) == {}
    missing = speech.assign(text=None)
    assert all(label.endswith(": ") for label in player_labels(missing).values())
