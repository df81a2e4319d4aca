"""Pure item tables of the Items page: filters, one sentence in every language side by side, and
the per-item measurements (duration, tokens, transcript, CER), from ``Store.items(all_voices=True,
run_id=...)`` frames. No Streamlit here (tests/test_corpus_items.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dashboard.charts.languages import language_levels, language_names, language_order

#: columns of the per-item table, in order
ITEM_COLUMNS = ["item_id", "sentence_id", "language", "level", "modality", "voice", "text",
                "characters", "duration_s", "n_tokens", "transcript", "cer"]
VOICE_RANKS = {0: "first voice", 1: "second voice"}


@dataclass(frozen=True)
class ItemFilters:
    """What the Items page's filters say; an empty or None field filters nothing."""
    langs: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()
    voice_ranks: tuple[int, ...] = ()
    characters: tuple[float, float] | None = None      # sentence length in characters
    duration_s: tuple[float, float] | None = None      # speech only
    cer: tuple[float, float] | None = None             # speech with a CER only
    search: str = ""
    item_ids: tuple[int, ...] = field(default=())      # a link's selection (a map, a cell)


def with_context(items: pd.DataFrame, languages: pd.DataFrame) -> pd.DataFrame:
    """Items plus ``language`` (name), ``level`` (resource level) and ``characters``."""
    names, levels = language_names(languages), language_levels(languages)
    out = items.copy()
    out["language"] = out["lang"].map(lambda lang: names.get(lang, lang))
    out["level"] = out["lang"].map(lambda lang: levels.get(lang, "unknown"))
    out["characters"] = out["text"].str.len()
    return out


def filter_items(items: pd.DataFrame, filters: ItemFilters) -> pd.DataFrame:
    """Items passing every filter (``items`` from ``with_context``). Duration and CER ranges apply
    to speech items (a text item has neither); an item without a stored CER fails a CER range
    that is set. ``search`` is a case-insensitive substring of the text or transcript."""
    keep = pd.Series(True, index=items.index)
    if filters.item_ids:
        keep &= items["item_id"].isin(filters.item_ids)
    if filters.langs:
        keep &= items["lang"].isin(filters.langs)
    if filters.levels:
        keep &= items["level"].isin(filters.levels)
    if filters.modalities:
        keep &= items["modality"].isin(filters.modalities)
    if filters.voice_ranks:
        keep &= (items["modality"] == "text") | items["voice_rank"].isin(filters.voice_ranks)
    if filters.characters is not None:
        keep &= items["characters"].between(*filters.characters)
    speech = items["modality"] == "speech"
    if filters.duration_s is not None:
        keep &= ~speech | items["duration_s"].between(*filters.duration_s)
    if filters.cer is not None:
        keep &= ~speech | items["cer"].between(*filters.cer)
    needle = filters.search.strip().casefold()
    if needle:
        haystack = (items["text"].fillna("") + "\n" + items["transcript"].fillna("")).str.casefold()
        keep &= haystack.str.contains(needle, regex=False)
    return items[keep]


def item_table(items: pd.DataFrame, languages: pd.DataFrame) -> pd.DataFrame:
    """One row per item (``ITEM_COLUMNS``), in language order (high to low resource), then
    sentence, modality, voice."""
    order = {lang: i for i, lang in enumerate(language_order(languages, items["lang"].unique()))}
    out = items.assign(_order=items["lang"].map(order)).sort_values(
        ["_order", "sentence_id", "modality", "voice_rank"], kind="stable")
    return out.reindex(columns=ITEM_COLUMNS).reset_index(drop=True)


def side_by_side(items: pd.DataFrame, languages: pd.DataFrame,
                 langs: Sequence[str]) -> pd.DataFrame:
    """One row per sentence among ``items``, its text in each of ``langs`` (columns named by the
    language, high to low resource), with the sentence's speech duration range and mean CER
    over the shown languages' first voices."""
    order = language_order(languages, [lang for lang in langs
                                       if lang in set(items["lang"]) or not len(items)])
    names = language_names(languages)
    sentences = sorted(items["sentence_id"].unique()) if len(items) else []
    texts = (items[items["modality"] == "text"].drop_duplicates(["sentence_id", "lang"])
             .pivot(index="sentence_id", columns="lang", values="text"))
    speech = items[(items["modality"] == "speech") & (items["voice_rank"] == 0)]
    out = pd.DataFrame({"sentence_id": sentences})
    for lang in order:
        column = texts[lang] if lang in texts.columns else pd.Series(dtype=object)
        out[names.get(lang, lang)] = out["sentence_id"].map(column)
    grouped = speech.groupby("sentence_id")
    out["speech (s)"] = out["sentence_id"].map(grouped["duration_s"].agg(_span))
    out["mean CER"] = out["sentence_id"].map(grouped["cer"].mean())
    return out


def _span(values: pd.Series) -> str | None:
    values = values.dropna()
    if values.empty:
        return None
    low, high = float(values.min()), float(values.max())
    return f"{low:.1f}" if np.isclose(low, high, atol=0.05) else f"{low:.1f}–{high:.1f}"


def value_range(values: pd.Series, *, step: float = 0.1) -> tuple[float, float] | None:
    """The slider range of a column: (floor, ceil) to ``step``; None without two distinct values."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return None
    low = float(np.floor(values.min() / step) * step)
    high = float(np.ceil(values.max() / step) * step)
    return (round(low, 6), round(high, 6)) if high > low else None


def speech_items(items: pd.DataFrame, sentence_id: int, langs: Sequence[str],
                 voice_ranks: Sequence[int] = (0,)) -> pd.DataFrame:
    """The speech items of one sentence in ``langs`` (their order) and voices: what to play."""
    rows = items[(items["modality"] == "speech") & (items["sentence_id"] == sentence_id)
                 & items["lang"].isin(langs) & items["voice_rank"].isin(voice_ranks)]
    position = {lang: i for i, lang in enumerate(langs)}
    return rows.assign(_p=rows["lang"].map(position)).sort_values(["_p", "voice_rank"]).drop(
        columns="_p").reset_index(drop=True)


def sentence_previews(items: pd.DataFrame, languages: pd.DataFrame,
                      prefer: Sequence[str] = ("eng_Latn",)) -> Mapping[int, str]:
    """Sentence id -> its text in the first of ``prefer`` it has, else in its first language."""
    text = items[items["modality"] == "text"]
    order = [*prefer, *language_order(languages, text["lang"].unique())]
    rank = {lang: i for i, lang in enumerate(dict.fromkeys(order))}
    first = text.assign(_r=text["lang"].map(rank)).sort_values(["sentence_id", "_r"]) \
        .drop_duplicates("sentence_id")
    return dict(zip(first["sentence_id"].astype(int), first["text"], strict=True))


def rows_key(prefix: str, ids: Iterable[int]) -> str:
    """A widget key for a selectable table of these rows (``ids`` in row order): ``prefix`` plus
    a digest of the ids. Why: Streamlit keeps a keyed table's row selection as row positions
    when its data changes, so after a filter the same positions would name other items (or rows
    that no longer exist, an IndexError); a table of other rows is a new widget, with no
    selection."""
    digest = hashlib.blake2b(np.fromiter((int(i) for i in ids), dtype=np.int64).tobytes(),
                             digest_size=6).hexdigest()
    return f"{prefix}_{digest}"
