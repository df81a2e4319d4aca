"""Links into the Items page from the other pages: a list of item ids (a map selection), or the
languages behind a heatmap cell. ``items_query`` is pure; ``open_items`` switches page.

For other pages (the Projection page's selection): ``open_items(item_ids, run_id=...)`` opens the
Items page showing exactly those items; the ids travel in the URL (``items=3-7,12``), so the
opened view is a link too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

import streamlit as st

from dashboard import url_state

#: the Items page, as ``st.switch_page`` takes it (relative to dashboard/app.py)
ITEMS_PAGE = "views/items.py"
#: the Items page's URL parameters
IDS_PARAM, LANGS_PARAM, CELL_PARAM, RUN_PARAM = "items", "item_langs", "cell", "run_id"
#: the Items page's session state that a link replaces
PAGE_KEYS = ("item_langs", "item_ids_shown", "item_cell", "hear_sentence", "hear_langs")


def items_query(item_ids: Sequence[int] = (), *, langs: Sequence[str] = (),
                run_id: str | None = None, cell: tuple[str, str, str] | None = None
                ) -> dict[str, str]:
    """The Items page's query parameters: ``item_ids`` (ranges compressed), ``langs`` (the
    languages shown), ``run_id`` (whose tokens, transcripts and CER), ``cell`` ((pairing, lang_a,
    lang_b) of a heatmap cell, for the page to say where the reader came from)."""
    query: dict[str, str] = {}
    if run_id:
        query[RUN_PARAM] = run_id
    if item_ids:
        query[IDS_PARAM] = url_state.encode_ids(item_ids)
    if langs:
        query[LANGS_PARAM] = url_state.encode_many(langs)
    if cell is not None:
        query[CELL_PARAM] = url_state.encode(tuple(cell))
    return query


def open_items(item_ids: Sequence[int] = (), *, langs: Sequence[str] = (),
               run_id: str | None = None, cell: tuple[str, str, str] | None = None) -> NoReturn:
    """Switch to the Items page showing ``item_ids`` (all items when empty) in ``langs``. Call
    it in the page's body (``if st.button(...): open_items(...)``), not in a widget callback,
    where Streamlit does not switch pages."""
    for key in PAGE_KEYS:  # the link's values win over what the page showed last
        st.session_state.pop(key, None)
    st.switch_page(ITEMS_PAGE, query_params=items_query(item_ids, langs=langs, run_id=run_id,
                                                        cell=cell))


def cell_link(order: Sequence[str], names: dict[str, str], *, pairing: str, run_id: str) -> None:
    """Under a heatmap: "the sentences behind a cell": pick its row and column, open its items.

    (Plotly sends no selection event for a click on a heatmap trace, checked in Chromium with
    Streamlit 1.67, so the cell is picked here rather than clicked.)"""
    if not order:
        return
    side_a, side_b = pairing.split("-")
    url_state.seed("cell_a", list(order), order[0])
    url_state.seed("cell_b", list(order), order[min(1, len(order) - 1)])
    with st.container(border=True):
        st.markdown("**The sentences behind a cell**: pick its row and column.")
        row, column, go = st.columns([2, 2, 1], vertical_alignment="bottom")
        lang_a = row.selectbox(f"Row ({side_a})", list(order), key="cell_a",
                               format_func=lambda lang: names.get(lang, lang))
        lang_b = column.selectbox(f"Column ({side_b})", list(order), key="cell_b",
                                  format_func=lambda lang: names.get(lang, lang))
        if go.button("Open its sentences", icon=":material/format_list_bulleted:",
                     key="open_cell"):
            open_items(langs=list(dict.fromkeys([lang_a, lang_b])), run_id=run_id,
                       cell=(pairing, lang_a, lang_b))

