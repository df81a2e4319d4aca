"""The Projection page's linked selection, pure (no streamlit): which items a box or lasso picked,
their counterparts, and the table that lists them.

Why its own state: a Plotly chart's selection lives in the chart, and Streamlit makes a new chart
(with an empty selection) whenever the figure changes, which is every layer change and every
highlight. The page keeps the selected item ids itself, so a selection survives a change of layer,
component or colouring and can be followed through every layer's map. Items are shared by a
store's runs and by all layers of a component, so an item id names the same sentence, language and
modality in every map.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

SELECTION_COLUMNS = ["item_id", "sentence_id", "lang", "name", "modality", "text"]


def event_item_ids(event: Mapping[str, Any] | None) -> list[int]:
    """Item ids of the points a Plotly selection event holds (each point's ``customdata`` is its
    item id, as a number or a one-element list), in selection order without repeats. Points
    without one (legend markers, link lines) are skipped."""
    if not event:
        return []
    selection = event.get("selection") or {}
    points = selection.get("points") or []
    ids: dict[int, None] = {}
    for point in points:
        data = point.get("customdata") if isinstance(point, Mapping) else None
        if isinstance(data, (list, tuple)):
            data = data[0] if data else None
        try:
            ids[int(data)] = None
        except (TypeError, ValueError):
            continue
    return list(ids)


def with_counterparts(items: pd.DataFrame, item_ids: Iterable[int], modalities: Sequence[str]
                      ) -> list[int]:
    """``item_ids`` plus the items of the same sentence and language in ``modalities``: a
    selection made on the text map of a model whose text and speech live in different spaces
    also picks those sentences' speech (and the other way round)."""
    chosen = items[items["item_id"].isin(list(item_ids))]
    keys = set(zip(chosen["lang"], chosen["sentence_id"], strict=True))
    linked = items[items["modality"].isin(list(modalities))
                   & pd.Series(list(zip(items["lang"], items["sentence_id"], strict=True)),
                               index=items.index).isin(keys)]
    return _merge(item_ids, linked["item_id"])


def in_other_languages(items: pd.DataFrame, item_ids: Iterable[int], langs: Sequence[str]
                       ) -> list[int]:
    """``item_ids`` plus the same sentences, in the same modalities, in every language of
    ``langs``: "these sentences in the other languages"."""
    chosen = items[items["item_id"].isin(list(item_ids))]
    same = items[items["sentence_id"].isin(set(chosen["sentence_id"]))
                 & items["modality"].isin(set(chosen["modality"]))
                 & items["lang"].isin(list(langs))]
    return _merge(item_ids, same["item_id"])


def _merge(first: Iterable[int], more: Iterable[int]) -> list[int]:
    return list(dict.fromkeys([int(i) for i in first] + [int(i) for i in more]))


def selection_table(items: pd.DataFrame, item_ids: Iterable[int], names: Mapping[str, str],
                    order: Sequence[str]) -> pd.DataFrame:
    """The selected items, one row each (``SELECTION_COLUMNS`` plus duration and voice where the
    items have them), by sentence, then language in ``order``, text before speech."""
    chosen = items[items["item_id"].isin(list(item_ids))].copy()
    extra = [c for c in ("duration_s", "voice") if c in chosen]
    if chosen.empty:
        return pd.DataFrame(columns=SELECTION_COLUMNS + extra)
    rank = {lang: i for i, lang in enumerate(order)}
    chosen["name"] = chosen["lang"].map(lambda lang: names.get(lang, lang))
    chosen = chosen.assign(
        _rank=chosen["lang"].map(rank).fillna(len(rank)),
        _speech=chosen["modality"] != "text").sort_values(["sentence_id", "_rank", "_speech"])
    return chosen[SELECTION_COLUMNS + extra].reset_index(drop=True)


def selection_summary(table: pd.DataFrame) -> str:
    """"12 items: 4 sentences in 3 languages (text 6, speech 6)", for the list's caption."""
    if table.empty:
        return "nothing selected"
    by_modality = table["modality"].value_counts()
    parts = ", ".join(f"{m} {int(by_modality[m])}" for m in sorted(by_modality.index))
    n_sent, n_lang = table["sentence_id"].nunique(), table["lang"].nunique()
    return (f"{len(table)} item{'s' * (len(table) != 1)}: {n_sent} sentence"
            f"{'s' * (n_sent != 1)} in {n_lang} language{'s' * (n_lang != 1)} ({parts})")


def player_labels(table: pd.DataFrame, text_chars: int = 80) -> dict[int, str]:
    """The play control's options: item id -> "Swahili · sentence 12: <text>". Keyed by item id,
    not by row: when the selection grows (other languages), rows move, and a control keyed by row
    kept its position and played another item than the one it showed. Built once per list,
    column-wise: a format function reading the table cell by cell took most of a rerun for a
    list of a thousand speech items."""
    if table.empty:
        return {}
    labels = (table["name"].astype(str) + " · sentence " + table["sentence_id"].astype(str)
              + ": " + table["text"].fillna("").astype(str).str.slice(0, text_chars))
    return dict(zip(table["item_id"].astype(int).tolist(), labels, strict=True))


def selection_key(item_ids: Iterable[int]) -> bytes:
    """The selection as a cache key: its distinct ids, sorted, as int64 bytes. Why: Streamlit
    hashes a tuple argument element by element (18 ms for 5,000 ids on every rerun) and bytes in
    one go; the order of a selection changes nothing it draws."""
    return np.unique(np.fromiter((int(i) for i in item_ids), dtype=np.int64)).tobytes()


def key_ids(key: bytes) -> np.ndarray:
    """The sorted item ids of a ``selection_key``."""
    return np.frombuffer(key, dtype=np.int64)
