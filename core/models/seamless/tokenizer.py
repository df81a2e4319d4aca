"""SeamlessM4T's text languages: corpus code -> Seamless code, the language-token pattern, and the
character-level tokenizer of the tiny random model (built offline)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from core import languages
from core.models.base import UnsupportedLanguageError
from core.models.common import quiet_transformers

#: The 98 text language codes of SeamlessM4T v1/v2 large (``special_tokens_map.json`` of
#: facebook/seamless-m4t-v2-large), as the language table's ``seamless`` column holds them. Loaded
#: models use their own list (their tokenizer's); this one builds the tiny random tokenizer.
SEAMLESS_TEXT_LANGUAGES: tuple[str, ...] = tuple(sorted(
    {languages.family_code(lang, "seamless") for lang in languages.family_languages("seamless")}))

#: a language token (``__deu__``, ``__cmn_Hant__``); group 1 is its Seamless code
LANG_TOKEN = re.compile(r"^__([a-z]{3}(?:_[A-Z][a-z]{3})?)__$")


def seamless_language(lang: str, known: Sequence[str]) -> str:
    """Corpus code (FLORES-200 ``deu_Latn``) or Seamless code (``deu``) -> the Seamless code.

    ``known`` are the model's text languages (its tokenizer's); tried in order: ``lang`` itself,
    the language table's Seamless code, the ISO 639-3 part of ``lang``. Raises
    ``UnsupportedLanguageError`` naming ``lang`` and the supported codes.
    """
    known_set = set(known)
    candidates = [lang, languages.family_code(lang, "seamless"), lang.split("_", 1)[0]]
    for code in candidates:
        if code and code in known_set:
            return code
    # the codes a reader would not guess from the ISO part: aliases and renamed languages
    renamed = [c for c in [*languages.family_languages("seamless"), *languages.ALIASES]
               if c in languages.ALIASES or languages.family_code(c, "seamless") != c.split("_", 1)[0]]
    flores = sorted(c for c in renamed if languages.family_code(c, "seamless") in known_set)
    raise UnsupportedLanguageError(
        f"SeamlessM4T has no text language for {lang!r} (tried "
        f"{', '.join(dict.fromkeys(c for c in candidates if c))}). Supported: FLORES-200 codes whose "
        f"ISO 639-3 part is one of {', '.join(sorted(known_set))}; also {', '.join(flores)}")



def _tiny_characters() -> list[str]:
    ranges = [(0x21, 0x7F), (0xC0, 0x180), (0x391, 0x3CA), (0x400, 0x460)]
    return [chr(c) for lo, hi in ranges for c in range(lo, hi) if chr(c).isprintable()]


def build_tiny_tokenizer(languages: Sequence[str] = SEAMLESS_TEXT_LANGUAGES):
    """A character-level ``SeamlessM4TTokenizer`` built offline (no files): the real class,
    normaliser and ``▁`` word marker, the specials ``<pad>=0 <unk>=1 <s>=2 </s>=3`` that the
    SeamlessM4T configs expect, ASCII/Latin/Greek/Cyrillic characters (others are ``<unk>``), and
    the language tokens ``__eng__``... as additional special tokens."""
    from transformers import SeamlessM4TTokenizer

    vocab = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3}
    for char in ["▁", *_tiny_characters()]:
        vocab.setdefault(char, len(vocab))
    with quiet_transformers():
        return SeamlessM4TTokenizer(vocab=vocab, merges=[], src_lang="eng", tgt_lang="eng",
                                    additional_special_tokens=[f"__{c}__" for c in languages])
