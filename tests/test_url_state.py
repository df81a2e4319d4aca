"""dashboard.url_state's pure half: options <-> URL text, and malformed parameters as bad input
(never an exception, always a value among the options or the default, with a note)."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard import url_state as us

LANGS = ["eng_Latn", "deu_Latn", "swh_Latn", "zho_Hans"]
PAIRS = [("speech_encoder", "text_decoder"), ("llm_text", "llm_speech")]
LAYERS = [0, 1, 2, 6, 12]
OPTION_SETS = [LANGS, PAIRS, LAYERS, [True, False], [None, 3, 7]]
FAST = settings(max_examples=60, deadline=None)


def test_encode_is_readable_and_distinct_per_option():
    assert us.encode(True) == "true" and us.encode(False) == "false"
    assert us.encode(6) == "6" and us.encode(("a", "b")) == "a~b"
    assert us.encode_many(["eng_Latn", "deu_Latn"]) == "eng_Latn,deu_Latn"
    for options in OPTION_SETS:
        assert len({us.encode(o) for o in options}) == len(options)


def test_every_option_round_trips_and_absent_means_default_without_a_note():
    for options in OPTION_SETS:
        for option in options:
            assert us.parse_one("p", us.encode(option), options, options[-1]) == us.Parsed(option)
        assert us.parse_one("p", None, options, options[0]) == us.Parsed(options[0])


def test_unknown_value_falls_back_with_a_note_naming_it():
    parsed = us.parse_one("metric", "bogus", ["svcca", "linear_cka"], "svcca")
    assert parsed.value == "svcca"
    assert "metric" in parsed.note and "bogus" in parsed.note and "svcca" in parsed.note


def test_many_keeps_link_order_drops_unknown_and_duplicates():
    parsed = us.parse_many("langs", "swh_Latn,xxx,eng_Latn,swh_Latn", LANGS, LANGS)
    assert parsed.value == ["swh_Latn", "eng_Latn"]
    assert "xxx" in parsed.note
    assert us.parse_many("langs", "swh_Latn,eng_Latn", LANGS, LANGS) == \
        us.Parsed(["swh_Latn", "eng_Latn"])
    nothing = us.parse_many("langs", ",,nope", LANGS, LANGS)
    assert nothing.value == LANGS and nothing.note


@FAST
@given(raw=st.text(max_size=300), which=st.integers(0, len(OPTION_SETS) - 1))
def test_any_text_gives_an_option_or_the_default(raw, which):
    options = OPTION_SETS[which]
    one = us.parse_one("p", raw, options, options[0])
    assert one.value in options
    assert (one.note is None) == (raw in {us.encode(o) for o in options})
    many = us.parse_many("p", raw, options, options[:1])
    assert many.value and all(v in options for v in many.value)


@FAST
@given(ids=st.sets(st.integers(0, 5000), max_size=300))
def test_item_ids_round_trip_compressed(ids):
    text = us.encode_ids(ids)
    assert us.parse_ids("items", text) == us.Parsed(sorted(ids))
    assert len(text) <= len(",".join(map(str, sorted(ids))))


def test_consecutive_ids_become_ranges():
    assert us.encode_ids([7, 1, 2, 3, 3]) == "1-3,7"
    assert us.encode_ids(range(200, 400)) == "200-399"


@FAST
@given(raw=st.text(alphabet="0123456789-,x ", max_size=60) | st.text(max_size=60))
def test_malformed_ids_never_raise(raw):
    parsed = us.parse_ids("items", raw)
    assert all(isinstance(i, int) and i >= 0 for i in parsed.value)
    assert parsed.value == sorted(set(parsed.value))
    if parsed.note:
        assert parsed.value == []


def test_bad_id_lists_are_refused_whole():
    for raw in ("5-2", "1-2-3", "-4", "a,b", "1,,2", "1" * 20, "0-99999999"):
        parsed = us.parse_ids("items", raw)
        assert parsed.value == [] and parsed.note, raw


@FAST
@given(raw=st.text(max_size=40) | st.tuples(st.floats(), st.floats()).map(
    lambda t: f"{t[0]!r}~{t[1]!r}"))
def test_ranges_are_clipped_or_default(raw):
    parsed = us.parse_range("cer", raw, (0.0, 1.0), (0.0, 1.0))
    low, high = parsed.value
    assert 0.0 <= low <= high <= 1.0 and math.isfinite(low) and math.isfinite(high)


def test_range_parsing():
    assert us.parse_range("d", "0.5~2.0", (0.0, 9.0), (0.0, 9.0)) == us.Parsed((0.5, 2.0))
    assert us.parse_range("d", "-3~20", (0.0, 9.0), (0.0, 9.0)) == us.Parsed((0.0, 9.0))
    assert us.parse_range("d", us.encode_range((1.5, 2.5)), (0, 9), (0, 9)).value == (1.5, 2.5)
    for raw in ("2~1", "nan~1", "1", "a~b", "20~30"):
        assert us.parse_range("d", raw, (0.0, 9.0), (0.0, 9.0)).note, raw


def test_text_is_cleaned_and_capped():
    assert us.parse_text("q", "river\x00\n bank") == us.Parsed("river bank")
    long = us.parse_text("q", "w" * 500, max_chars=50)
    assert long.value == "w" * 50 and long.note


def test_query_value_takes_the_last_of_a_repeated_parameter():
    assert us.query_value({"a": ["1", "2"]}, "a") == "2"
    assert us.query_value({"a": "x"}, "a") == "x"
    assert us.query_value({}, "a") is None
