"""What a page says about its speech (synthetic or recorded), from items.voice (pure frames)."""

from __future__ import annotations

import pandas as pd

from dashboard.speech_source import (
    source_of, speech_notice, speech_sources, synthesiser_of,
)


def _voices(rows: list[tuple[str, int, object, int]]) -> pd.DataFrame:
    """Like ``dashboard.state.speech_voices``: lang, voice_rank, voice, n_items."""
    return pd.DataFrame(rows, columns=["lang", "voice_rank", "voice", "n_items"])


SYNTHETIC = _voices([("deu_Latn", 0, "espeak-ng 1.51 de", 200),
                     ("deu_Latn", 1, "espeak-ng 1.51 de+f3", 200),
                     ("eng_Latn", 0, "espeak-ng 1.51 en-us", 200)])
RECORDED = _voices([("deu_Latn", 0, "recording", 150), ("eng_Latn", 0, "recording", 120)])
MIXED = _voices([("deu_Latn", 0, "recording", 150), ("eng_Latn", 0, "espeak-ng 1.51 en-us", 200),
                 ("hin_Deva", 0, "festival 2.5 hindi_ned", 100)])
NO_SPEECH = _voices([])


def test_each_item_is_recorded_synthesised_or_unknown():
    assert source_of("recording") == "recorded"
    assert source_of("espeak-ng 1.51 de+f3") == "synthesised"
    assert source_of(None) == source_of(float("nan")) == source_of("") == "unknown"
    assert synthesiser_of("espeak-ng 1.51 de+f3") == "espeak-ng 1.51"
    assert synthesiser_of("de") == "a synthesiser"


def test_all_synthetic_speech_is_said_with_its_synthesiser_voices_and_counts():
    assert speech_notice(SYNTHETIC) == (
        "Speech here is synthetic (espeak-ng 1.51, 3 voices): 600 of 600 speech items; results "
        "may differ on recorded speech.")
    # only the languages shown count
    assert speech_notice(SYNTHETIC, ["eng_Latn"]).startswith(
        "Speech here is synthetic (espeak-ng 1.51, 1 voice): 200 of 200 speech items")


def test_recorded_or_absent_speech_says_nothing():
    assert speech_notice(RECORDED) == ""
    assert speech_notice(NO_SPEECH) == ""
    assert speech_notice(MIXED, ["deu_Latn"]) == ""  # the languages shown are all recorded
    assert speech_notice(SYNTHETIC, []) == ""


def test_mixed_speech_says_the_split_and_where():
    notice = speech_notice(MIXED)
    assert notice.startswith("Speech here is partly synthetic (espeak-ng 1.51, 1 voice; "
                             "festival 2.5, 1 voice): 300 of 450 speech items (eng_Latn, hin_Deva)")
    assert "the rest: 150 recorded (deu_Latn)" in notice
    unknown = speech_notice(pd.concat([MIXED, _voices([("fra_Latn", 0, None, 10)])]))
    assert "300 of 460" in unknown and "10 of unknown source (fra_Latn)" in unknown


def test_many_synthetic_languages_are_named_up_to_a_few():
    many = _voices([(f"l{i:02d}", 0, f"espeak-ng 1.51 v{i}", 10) for i in range(9)]
                   + [("rec", 0, "recording", 5)])
    assert "(l00, l01, l02, l03, l04, l05 and 3 more)" in speech_notice(many)


def test_the_overview_table_counts_recordings_and_synthesis_per_language():
    table = speech_sources(MIXED, order=["hin_Deva", "eng_Latn"], names={"deu_Latn": "German"})
    assert list(table["lang"]) == ["hin_Deva", "eng_Latn", "deu_Latn"]
    rows = table.set_index("lang")
    assert rows.loc["deu_Latn", "language"] == "German"
    assert (rows.loc["deu_Latn", "recorded"], rows.loc["deu_Latn", "synthesised"]) == (150, 0)
    assert (rows.loc["eng_Latn", "recorded"], rows.loc["eng_Latn", "synthesised"]) == (0, 200)
    assert rows.loc["hin_Deva", "synthesised by"] == "festival 2.5 (hindi_ned)"
    assert "unknown" not in table  # only when some speech has no recorded source
    both = speech_sources(SYNTHETIC).set_index("lang")
    assert both.loc["deu_Latn", "synthesised"] == 400
    assert both.loc["deu_Latn", "synthesised by"] == "espeak-ng 1.51 (de, de+f3)"
    assert speech_sources(NO_SPEECH).empty
