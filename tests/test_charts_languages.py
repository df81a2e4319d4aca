"""Language ordering, names and colours of the charts (resource level first, one hue family
per level, a palette that keeps a language's colour)."""

from __future__ import annotations

import colorsys

import numpy as np
import pandas as pd
import pytest

from dashboard.charts.languages import (
    language_colours,
    language_names,
    language_order,
    language_palette,
    level_rank,
    short_name,
)
from dashboard.charts.theme import LANGUAGE_PALETTE, LEVEL_COLOURS
from chart_fixtures import LEVEL_ORDER, languages, tables  # noqa: F401 (languages needs tables)
from synthetic_store import LANGS


def _hue(colour: str) -> float:
    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return colorsys.rgb_to_hsv(r, g, b)[0]


def test_language_order_follows_resource_level_then_hours(languages):
    assert language_order(languages) == LEVEL_ORDER


def test_language_order_puts_unknown_languages_last_and_keeps_subset(languages):
    order = language_order(languages, ["yor_Latn", "xxx_Latn", "deu_Latn"])
    assert order == ["deu_Latn", "yor_Latn", "xxx_Latn"]


def test_level_rank_handles_missing_and_unknown_levels():
    assert level_rank("High") < level_rank("medium") < level_rank("low")
    assert level_rank(None) == level_rank("unknown")
    assert level_rank("low") < level_rank("exotic")


def test_short_names_drop_the_qualifier():
    assert short_name("Chinese (Mandarin, Simplified)") == "Chinese"
    assert short_name("German") == "German"
    names = language_names(pd.DataFrame({"lang": ["zho_Hans"], "name": ["Chinese (Mandarin)"]}))
    assert names == {"zho_Hans": "Chinese"}


def test_language_colours_share_one_hue_family_per_level(languages):
    colours = language_colours(languages)
    assert set(colours) == set(LANGS)
    high = [colours[lang] for lang in ("eng_Latn", "deu_Latn", "spa_Latn")]
    assert len(set(high)) == 3  # distinguishable shades
    for colour in high:
        assert _hue(colour) == pytest.approx(_hue(LEVEL_COLOURS["high"]), abs=0.02)
    for colour in (colours["swh_Latn"], colours["yor_Latn"]):
        assert _hue(colour) == pytest.approx(_hue(LEVEL_COLOURS["low"]), abs=0.02)
    assert _hue(colours["hin_Deva"]) != pytest.approx(_hue(colours["eng_Latn"]), abs=0.05)


def test_language_palette_keeps_a_languages_colour_whatever_a_chart_shows(languages):
    whole = language_palette(languages)
    assert list(whole) == LEVEL_ORDER  # dealt in the table's order
    assert len(set(whole.values())) == len(LEVEL_ORDER)
    shown = language_palette(languages, ["yor_Latn", "xxx_Latn", "deu_Latn"])
    assert shown["yor_Latn"] == whole["yor_Latn"] and shown["deu_Latn"] == whole["deu_Latn"]
    # a language the table lacks comes after the table's, not in place of one of them
    assert shown["xxx_Latn"] == LANGUAGE_PALETTE[len(LEVEL_ORDER)]


def test_language_palette_has_twenty_colours_then_repeats():
    codes = [f"l{i:02d}_Latn" for i in range(len(LANGUAGE_PALETTE) + 1)]
    table = pd.DataFrame({"lang": codes, "name": codes, "resource_level": "high",
                          "whisper_hours": np.arange(len(codes), 0, -1, dtype=float)})
    palette = language_palette(table)
    assert len(LANGUAGE_PALETTE) >= 20  # the bundled store's languages
    assert len(set(palette.values())) == len(LANGUAGE_PALETTE)
    assert palette[codes[-1]] == palette[codes[0]]
