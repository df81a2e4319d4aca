"""Normalisation and CER against hand-computed cases and an independent implementation (jiwer)."""

from __future__ import annotations

import random

import jiwer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.asr_quality import (
    character_error_rate,
    levenshtein,
    levenshtein_reference,
    normalise_text,
)


@pytest.mark.parametrize(("text", "lang", "expected"), [
    ("Hello, World!", None, "hello world"),
    ("  many   spaces\tand\nnewlines ", None, "many spaces and newlines"),
    ("l'avion, c'est ça.", "fra_Latn", "l avion c est ça"),
    ("ＡＢＣ１２３", None, "abc123"),                        # full-width forms fold under NFKC
    ("Cafe\u0301", None, "café"),                             # combining accent composes
    ("¿Dónde está la estación?", "spa_Latn", "dónde está la estación"),
    ("今天天气很好。", "zho_Hans", "今天天气很好"),
    ("मैं घर जा रहा हूँ।", "hin_Deva", "मैं घर जा रहा हूँ"),   # danda removed, matras kept
    ("می\u200cپزد.", "pes_Arab", "میپزد"),                    # zero-width non-joiner dropped
    ("İSTANBUL'DA IŞIK", "tur_Latn", "istanbul da ışık"),     # Turkish dotted/dotless i
    ("ISTANBUL", None, "istanbul"),
    ("well-known state-of-the-art", None, "well known state of the art"),
])
def test_normalise_text(text, lang, expected):
    assert normalise_text(text, lang) == expected


@pytest.mark.parametrize(("a", "b", "distance"), [
    ("", "", 0),
    ("abc", "", 3),
    ("", "abc", 3),
    ("kitten", "sitting", 3),        # k->s, e->i, +g
    ("flaw", "lawn", 2),             # -f, +n
    ("intention", "execution", 5),
    ("今天天气很好", "今天天很好", 1),
])
def test_levenshtein_hand_computed(a, b, distance):
    assert levenshtein(a, b) == distance
    assert levenshtein(b, a) == distance
    assert levenshtein_reference(a, b) == distance == levenshtein_reference(b, a)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcé今 ", max_size=25), st.text(alphabet="abcé今 ", max_size=25))
def test_levenshtein_equals_the_textbook_programme(a, b):
    """The C implementation the project calls against the pure-Python dynamic programme."""
    assert levenshtein(a, b) == levenshtein_reference(a, b)


def test_cer_hand_computed():
    assert character_error_rate("abc", "abd") == pytest.approx(1 / 3)
    assert character_error_rate("kitten", "sitting") == pytest.approx(3 / 6)
    assert character_error_rate("Hello, world!", "hello world") == 0.0  # normalised away
    assert character_error_rate("Hello, world!", "hello world", normalise=False) == pytest.approx(3 / 13)
    # CJK: one character deleted out of six
    assert character_error_rate("今天天气很好。", "今天天很好", "zho_Hans") == pytest.approx(1 / 6)
    # spaces count: "a b" -> "ab" is one deletion over three characters
    assert character_error_rate("a b", "ab") == pytest.approx(1 / 3)
    # a long hallucination can push CER above one
    assert character_error_rate("ab", "xyzxyz") == pytest.approx(6 / 2)


def test_cer_empty_reference_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        character_error_rate(" ... ", "something")


def test_cer_agrees_with_jiwer_on_random_strings():
    rng = random.Random(0)
    alphabet = "abcdé 天气"
    for _ in range(200):
        ref = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 25))).strip() or "a"
        hyp = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 25))).strip()
        ref_n, hyp_n = normalise_text(ref), normalise_text(hyp)
        if not ref_n:
            continue
        expected = jiwer.cer(ref_n, hyp_n) if hyp_n else 1.0
        assert character_error_rate(ref, hyp) == pytest.approx(expected), (ref, hyp)
