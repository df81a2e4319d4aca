"""Which heatmap cell a click picked: the point selection's customdata, read without Streamlit."""

from __future__ import annotations

import pytest

from dashboard.item_links import clicked_cell, items_query


@pytest.mark.parametrize("event, expected", [
    (None, None),
    ({}, None),
    ({"selection": {"points": []}}, None),  # the empty selection a redraw sends
    ({"selection": {"points": [{"x": 1, "y": 2}]}}, None),  # a point of another trace
    ({"selection": {"points": [{"customdata": 7}]}}, None),  # a map's item id
    ({"selection": {"points": [{"customdata": ["swh_Latn", 3]}]}}, None),
    ({"selection": {"points": [{"customdata": ["swh_Latn", "deu_Latn"], "x": 1, "y": 2}]}},
     ("swh_Latn", "deu_Latn")),
    ({"selection": {"points": [{"customdata": None},
                               {"customdata": ["eng_Latn", "eng_Latn"]}]}},
     ("eng_Latn", "eng_Latn")),
])
def test_clicked_cell_reads_the_languages_of_the_clicked_cell(event, expected):
    assert clicked_cell(event) == expected


def test_a_clicked_cell_becomes_an_items_link():
    row, column = clicked_cell({"selection": {"points": [{"customdata": ["swh_Latn",
                                                                        "deu_Latn"]}]}})
    query = items_query(langs=[row, column], run_id="r1", cell=("text-speech", row, column))
    assert query == {"run_id": "r1", "item_langs": "swh_Latn,deu_Latn",
                     "cell": "text-speech~swh_Latn~deu_Latn"}
