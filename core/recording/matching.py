"""Which stored sentence a transcript says: the closest by character error rate, when close
enough to count as the same sentence."""

from __future__ import annotations

import pandas as pd

from core.recording.reference import Reference

#: the transcript is taken to say a stored sentence when its CER against it is at most this
MATCH_MAX_CER = 0.35


def normalised_texts(reference: Reference, lang: str | None) -> pd.DataFrame:
    """sentence_id, lang, norm: the stored texts of ``lang`` (all when None), normalised once
    per reference and language (a clip of a given language then costs its 200, not 4,000)."""
    from core.asr_quality import normalise_text

    cache = reference.__dict__.setdefault("_normalised_texts", {})
    if lang not in cache:
        stored = reference.texts()
        if lang is not None:
            stored = stored[stored["lang"] == lang]
        stored = stored[[isinstance(t, str) and bool(t.strip()) for t in stored["text"]]]
        cache[lang] = pd.DataFrame({
            "sentence_id": stored["sentence_id"].astype(int).to_numpy(),
            "lang": stored["lang"].astype(str).to_numpy(),
            "norm": [normalise_text(t, g) for t, g in zip(stored["text"], stored["lang"],
                                                          strict=True)]})
    return cache[lang]


def match_sentence(reference: Reference, text: str, lang: str | None = None
                   ) -> tuple[int, float, str] | None:
    """(sentence_id, CER, lang) of the stored sentence of ``lang`` (every language when None) that
    the text says, when its CER is at most ``MATCH_MAX_CER``; None otherwise. Sentences whose
    length alone rules them out (CER >= length difference / length) are skipped unmeasured."""
    from core.asr_quality import levenshtein, normalise_text

    if not text or not text.strip():
        return None
    stored = normalised_texts(reference, lang)
    best = None
    hypotheses: dict[str, str] = {}
    for sentence_id, row_lang, ref_text in zip(stored["sentence_id"], stored["lang"],
                                               stored["norm"], strict=True):
        if row_lang not in hypotheses:
            hypotheses[row_lang] = normalise_text(text, row_lang)
        hyp = hypotheses[row_lang]
        if not ref_text or abs(len(ref_text) - len(hyp)) / len(ref_text) > MATCH_MAX_CER:
            continue
        cer = levenshtein(ref_text, hyp) / len(ref_text)
        if best is None or cer < best[1]:
            best = (int(sentence_id), float(cer), str(row_lang))
    return best if best is not None and best[1] <= MATCH_MAX_CER else None
