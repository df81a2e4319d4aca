"""How well synthetic speech is heard: text normalisation and character error rate (CER).

CER rather than WER so that languages written without spaces (Chinese, Japanese, Thai) are measured
on the same footing as the others.
"""

from __future__ import annotations

import unicodedata

#: languages whose dotted/dotless i pairs do not follow the default Unicode lowercase mapping
_TURKIC_I = {"tur_Latn", "azj_Latn", "azb_Arab", "crh_Latn", "tat_Cyrl", "gag_Latn"}


def _lowercase(text: str, lang: str | None) -> str:
    if lang in _TURKIC_I:
        text = text.replace("I", "ı").replace("İ", "i")
    return text.lower()


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P")


def normalise_text(text: str, lang: str | None = None) -> str:
    """NFKC, lowercase (Turkic-aware for ``lang``), punctuation to spaces, spaces collapsed.

    Punctuation becomes a space rather than vanishing so that ``l'avion`` and ``l avion`` agree and
    hyphenated words do not fuse; invisible format characters are dropped outright.
    """
    text = unicodedata.normalize("NFKC", text)
    text = _lowercase(text, lang)
    pieces = []
    for char in text:
        if unicodedata.category(char) == "Cf":  # invisible format characters, e.g. ZWNJ
            continue
        pieces.append(" " if _is_punctuation(char) or char.isspace() else char)
    return " ".join("".join(pieces).split())


def levenshtein(reference: str, hypothesis: str) -> int:
    """Edit distance (insertions, deletions, substitutions; cost 1 each) between two strings.

    RapidFuzz's C implementation (a dependency of jiwer, pinned in requirements.txt): the live
    page matches a transcript against every stored sentence, which the pure-Python dynamic
    programme (``levenshtein_reference``, kept as the tests' oracle) made take half a second."""
    from rapidfuzz.distance import Levenshtein

    return int(Levenshtein.distance(reference, hypothesis))


def levenshtein_reference(reference: str, hypothesis: str) -> int:
    """The textbook dynamic programme, O(len(reference) * len(hypothesis)) in pure Python."""
    if len(reference) < len(hypothesis):
        reference, hypothesis = hypothesis, reference
    previous = list(range(len(hypothesis) + 1))
    for i, ref_char in enumerate(reference, start=1):
        current = [i]
        for j, hyp_char in enumerate(hypothesis, start=1):
            current.append(min(
                previous[j] + 1,                          # deletion
                current[j - 1] + 1,                       # insertion
                previous[j - 1] + (ref_char != hyp_char),  # substitution or match
            ))
        previous = current
    return previous[-1]


def character_error_rate(reference: str, hypothesis: str, lang: str | None = None,
                         *, normalise: bool = True) -> float:
    """Character edits needed to turn ``hypothesis`` into ``reference``, over reference length.

    Both strings are normalised with :func:`normalise_text` first (unless ``normalise=False``);
    spaces count as characters. The result can exceed 1 when the hypothesis is much longer.
    """
    if normalise:
        reference = normalise_text(reference, lang)
        hypothesis = normalise_text(hypothesis, lang)
    if not reference:
        raise ValueError("reference is empty (after normalisation); CER is undefined")
    return levenshtein(reference, hypothesis) / len(reference)
