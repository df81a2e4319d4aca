"""Languages on the charts: their order (high -> low resource, then Whisper hours), display names,
resource levels and colours, read from the store's ``languages`` table.

Every page orders and colours languages through these functions, so a language sits in the same
place and keeps the same colour whichever page or selection shows it.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from core.languages import RESOURCE_LEVELS as CORE_RESOURCE_LEVELS
from dashboard.charts.theme import LANGUAGE_PALETTE, LEVEL_COLOURS

#: after these, alphabetically
RESOURCE_LEVELS: tuple[str, ...] = (*CORE_RESOURCE_LEVELS, "unknown")


def level_rank(level: object) -> tuple[int, str]:
    """Sort key: known levels in RESOURCE_LEVELS order, then any other level alphabetically."""
    name = _level_name(level)
    if name in RESOURCE_LEVELS:
        return (RESOURCE_LEVELS.index(name), name)
    return (len(RESOURCE_LEVELS), name)


def _level_name(level: object) -> str:
    if level is None or (isinstance(level, float) and math.isnan(level)) or level is pd.NA:
        return "unknown"
    return str(level).strip().lower() or "unknown"


def language_order(languages: pd.DataFrame, langs: Iterable[str] | None = None) -> list[str]:
    """Languages ordered high -> low resource, then by Whisper training hours (most first), then code.

    ``langs`` restricts (and may extend) the set; languages missing from the table sort last.
    """
    table = language_table(languages)
    wanted = list(dict.fromkeys(langs)) if langs is not None else list(table.index)
    return sorted(wanted, key=lambda lang: _language_sort_key(table, lang))


def _language_sort_key(table: pd.DataFrame, lang: str) -> tuple:
    if lang not in table.index:
        return (len(RESOURCE_LEVELS) + 1, "", 0.0, lang)
    row = table.loc[lang]
    hours = -float(row["whisper_hours"]) if pd.notna(row["whisper_hours"]) else 0.0
    return (*level_rank(row["resource_level"]), hours, lang)


def language_table(languages: pd.DataFrame) -> pd.DataFrame:
    """``languages`` indexed by lang with the columns the charts read (missing ones filled)."""
    table = languages.copy() if languages is not None else pd.DataFrame()
    for column, default in (("lang", None), ("name", None), ("resource_level", "unknown"),
                            ("whisper_hours", np.nan)):
        if column not in table.columns:
            table[column] = default
    table = table.drop_duplicates("lang").set_index("lang", drop=False)
    table["name"] = table["name"].where(table["name"].notna(), table["lang"])
    table["resource_level"] = table["resource_level"].map(_level_name)
    return table


def language_levels(languages: pd.DataFrame) -> dict[str, str]:
    """lang -> resource level ("unknown" where the table has none)."""
    return language_table(languages)["resource_level"].to_dict()


def language_names(languages: pd.DataFrame, *, short: bool = True) -> dict[str, str]:
    """lang -> display name; ``short`` drops a parenthesised qualifier ("Chinese (Mandarin, ...)"
    -> "Chinese") so tick labels and legends stay readable; hovers use the full name."""
    names = language_table(languages)["name"].astype(str)
    return (names.map(short_name) if short else names).to_dict()


def short_name(name: str) -> str:
    """"Chinese (Mandarin, Simplified)" -> "Chinese"; names without a qualifier are kept."""
    return re.sub(r"\s*\(.*\)\s*$", "", name) or name


def language_palette(languages: pd.DataFrame, langs: Iterable[str] = ()) -> dict[str, str]:
    """A colour per language (``LANGUAGE_PALETTE``), dealt over the whole language table in
    ``language_order`` and then ``langs`` missing from it (by code): a language keeps its colour
    whichever languages a chart shows, so the charts of a page (and the pages) agree."""
    order = language_order(languages)
    known = set(order)
    order += sorted(lang for lang in dict.fromkeys(langs) if lang not in known)
    return {lang: LANGUAGE_PALETTE[i % len(LANGUAGE_PALETTE)] for i, lang in enumerate(order)}


def level_colour(level: object) -> str:
    """The colour of a resource level (grey for an unknown one)."""
    return LEVEL_COLOURS.get(_level_name(level), LEVEL_COLOURS["unknown"])


def language_colours(languages: pd.DataFrame, langs: Iterable[str] | None = None) -> dict[str, str]:
    """One colour family per resource level, one shade per language inside it (dark -> light)."""
    order = language_order(languages, langs)
    levels = language_levels(languages)
    by_level: dict[str, list[str]] = {}
    for lang in order:
        by_level.setdefault(levels.get(lang, "unknown"), []).append(lang)
    colours = {}
    for level, members in by_level.items():
        for lang, shade in zip(members, _shades(level_colour(level), len(members)), strict=True):
            colours[lang] = shade
    return colours


def _shades(hex_colour: str, count: int) -> list[str]:
    """``count`` shades of one hue, from darker to lighter, all still distinguishable from white."""
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
    if count == 1:
        return [hex_colour]
    shades = []
    for t in np.linspace(-0.45, 0.35, count):
        mixed = rgb * (1 + t) if t < 0 else rgb + (255 - rgb) * t
        shades.append("#" + "".join(f"{int(round(min(max(c, 0), 255))):02X}" for c in mixed))
    return shades


def lang_label(lang: str, names: dict[str, str], levels: dict[str, str]) -> str:
    """"German (deu_Latn, high resource)": how hover text names a language (HTML-escaped)."""
    return html.escape(f"{names.get(lang, lang)} ({lang}, {levels.get(lang, 'unknown')} resource)")
