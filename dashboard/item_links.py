"""Links into the Items page from the other pages: a list of item ids (a map selection), or the
languages behind a heatmap cell (clicked, or picked by row and column). ``items_query`` and
``clicked_cell`` are pure; ``open_items`` switches page.

For other pages (the Projection page's selection): ``open_items(item_ids, run_id=...)`` opens the
Items page showing exactly those items; the ids travel in the URL (``items=3-7,12``), so the
opened view is a link too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import streamlit as st

from dashboard import url_state

#: the Items page, as ``st.switch_page`` takes it (relative to dashboard/app.py)
ITEMS_PAGE = "views/items.py"
#: the Items page's URL parameters
IDS_PARAM, LANGS_PARAM, CELL_PARAM, RUN_PARAM = "items", "item_langs", "cell", "run_id"
#: the Items page's session state that a link replaces
PAGE_KEYS = ("item_langs", "item_ids_shown", "item_cell", "hear_sentence", "hear_langs")
#: a heatmap's cell pickers (row, column) and whether the reader has picked a cell (then outlined)
ROW_KEY, COLUMN_KEY, PICKED_KEY = "cell_a", "cell_b", "cell_picked"


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


def clicked_cell(event: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(row language, column language) of the cell a point selection on a heatmap holds (the
    ``customdata`` of ``dashboard.charts.heatmap.add_cell_targets``' markers); None when the
    event holds no such point (an empty selection after a redraw, another trace's point)."""
    if not event:
        return None
    points = (event.get("selection") or {}).get("points") or []
    for point in points:
        data = point.get("customdata") if isinstance(point, Mapping) else None
        if isinstance(data, (list, tuple)) and len(data) == 2 \
                and all(isinstance(v, str) for v in data):
            return data[0], data[1]
    return None


def take_clicked_cell(chart_key: str) -> None:
    """``on_select`` callback of a heatmap: a clicked cell fills the cell pickers (a callback runs
    before the pickers are drawn, so it may set them) and is outlined. An empty selection (the
    chart sends one when it is redrawn) leaves the picked cell as it was."""
    cell = clicked_cell(st.session_state.get(chart_key))
    if cell is not None:
        st.session_state[ROW_KEY], st.session_state[COLUMN_KEY] = cell
        st.session_state[PICKED_KEY] = True


def picked_cell() -> tuple[str, str] | None:
    """The cell to outline: the pickers' cell once the reader has clicked or picked one."""
    if not st.session_state.get(PICKED_KEY):
        return None
    row, column = st.session_state.get(ROW_KEY), st.session_state.get(COLUMN_KEY)
    return (row, column) if isinstance(row, str) and isinstance(column, str) else None


def _mark_picked() -> None:
    st.session_state[PICKED_KEY] = True


def cell_link(rows: Sequence[str], columns: Sequence[str], names: dict[str, str], *,
              pairing: str, run_id: str) -> None:
    """Under a heatmap: "the sentences behind a cell": click it (``take_clicked_cell``) or pick
    its row and column, then open its items."""
    if not rows or not columns:
        return
    side_a, side_b = pairing.split("-")
    url_state.seed(ROW_KEY, list(rows), rows[0])
    url_state.seed(COLUMN_KEY, list(columns), columns[min(1, len(columns) - 1)])
    with st.container(border=True):
        st.markdown("**The sentences behind a cell**: click it in the heatmap, or pick its row "
                    "and column.")
        row, column, go = st.columns([2, 2, 1], vertical_alignment="bottom")
        lang_a = row.selectbox(f"Row ({side_a})", list(rows), key=ROW_KEY, on_change=_mark_picked,
                               format_func=lambda lang: names.get(lang, lang))
        lang_b = column.selectbox(f"Column ({side_b})", list(columns), key=COLUMN_KEY,
                                  on_change=_mark_picked,
                                  format_func=lambda lang: names.get(lang, lang))
        if go.button("Open its sentences", icon=":material/format_list_bulleted:",
                     key="open_cell"):
            open_items(langs=list(dict.fromkeys([lang_a, lang_b])), run_id=run_id,
                       cell=(pairing, lang_a, lang_b))
