"""The language table: coverage, consistency with its thresholds, and the real Whisper/espeak sets."""

from __future__ import annotations

import re
import shutil
import subprocess

import pandas as pd
import pytest

from core import languages
from core.languages import (
    FLEURS_TO_FLORES,
    espeak_voice,
    from_fleurs_code,
    known_languages,
    language,
    languages_frame,
    level_for_hours,
    read_table,
    resource_level,
    whisper_code,
)

FLORES_CODE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")


def test_every_code_looks_like_a_flores_code():
    for lang in known_languages():
        assert FLORES_CODE.match(lang), lang
    for locale, lang in FLEURS_TO_FLORES.items():
        assert FLORES_CODE.match(lang), (locale, lang)


def test_table_covers_all_flores_devtest_languages(shared_data):
    flores_devtest = shared_data("data", "flores200", "devtest")
    devtest = sorted(p.name.removesuffix(".devtest") for p in flores_devtest.glob("*.devtest"))
    assert len(devtest) == 38
    missing = [lang for lang in devtest if lang not in known_languages()]
    assert not missing


def test_levels_follow_documented_thresholds():
    assert level_for_hours(5_000) == "high"
    assert level_for_hours(4_999.9) == "medium"
    assert level_for_hours(100) == "medium"
    assert level_for_hours(99.9) == "low"
    assert level_for_hours(0) == "low"
    with pytest.raises(ValueError):
        level_for_hours(-1)
    for lang in known_languages():
        entry = language(lang)
        assert entry.resource_level in ("high", "medium", "low")
        assert entry.level_source, f"{lang} has no level source"
        if entry.whisper_hours is not None:
            assert entry.resource_level == level_for_hours(entry.whisper_hours), lang


def test_each_level_is_represented():
    levels = {resource_level(lang) for lang in known_languages()}
    assert levels == {"high", "medium", "low"}
    assert resource_level("eng_Latn") == "high"
    assert resource_level("tur_Latn") == "medium"
    assert resource_level("swh_Latn") == "low"


def test_whisper_codes_are_real_whisper_languages():
    # Independent reference: the language list inside transformers' Whisper tokenizer.
    from transformers.models.whisper.tokenization_whisper import LANGUAGES as WHISPER_LANGUAGES

    for lang in known_languages():
        code = language(lang).whisper_code
        if code is not None:
            assert code in WHISPER_LANGUAGES, (lang, code)
    assert whisper_code("deu_Latn") == "de"
    assert whisper_code("zho_Hans") == "zh"


def test_language_without_whisper_token_raises_clearly():
    with pytest.raises(ValueError, match="not one of Whisper's languages"):
        whisper_code("zul_Latn")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_espeak_voices_exist():
    listing = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True, check=True)
    # columns: Pty Language Age/Gender VoiceName File Other-languages
    installed = {line.split()[1] for line in listing.stdout.splitlines()[1:] if line.strip()}
    for lang in known_languages():
        voice = language(lang).espeak_voice
        if voice is not None:
            assert voice in installed, (lang, voice)


def test_missing_voice_raises_with_reason():
    with pytest.raises(ValueError, match="no usable espeak-ng voice"):
        espeak_voice("yor_Latn")
    with pytest.raises(ValueError, match="kanji"):
        espeak_voice("jpn_Jpan")


def test_unknown_language_lists_known_codes():
    with pytest.raises(KeyError) as info:
        language("xyz_Latn")
    message = str(info.value)
    assert "xyz_Latn" in message and "eng_Latn" in message and "deu_Latn" in message


def test_alias_resolves_to_canonical_code():
    assert language("cmn_Hans").lang == "zho_Hans"


def test_fleurs_locale_mapping():
    assert len(FLEURS_TO_FLORES) == 102
    assert len(set(FLEURS_TO_FLORES.values())) == 102
    assert from_fleurs_code("de_de") == "deu_Latn"
    assert from_fleurs_code("cmn_hans_cn") == "zho_Hans"
    assert from_fleurs_code("en_us") == "eng_Latn"
    assert from_fleurs_code("PT_BR") == "por_Latn"
    with pytest.raises(KeyError, match="de_de"):
        from_fleurs_code("xx_yy")


def test_languages_frame_matches_store_columns():
    frame = languages_frame(["eng_Latn", "est_Latn", "zul_Latn"])
    assert list(frame.columns) == ["lang", "name", "resource_level", "whisper_hours",
                                   "level_source", "espeak_voice"]
    assert frame["lang"].tolist() == ["eng_Latn", "est_Latn", "zul_Latn"]
    assert frame["whisper_hours"].iloc[0] > 400_000
    assert frame["whisper_hours"].iloc[1] == 41  # Radford et al. 2022, Fig. 11
    assert frame["whisper_hours"].iloc[2] == 0
    assert frame["espeak_voice"].iloc[0] == "en-us"
    assert pd.isna(frame["espeak_voice"].iloc[2])


def test_table_rejects_level_that_contradicts_hours(tmp_path):
    header = "lang\tname\twhisper_code\tespeak_voice\twhisper_hours\tresource_level\tlevel_source\tnotes\n"
    bad = tmp_path / "languages.tsv"
    bad.write_text(header + "deu_Latn\tGerman\tde\tde\t13344\tlow\tpaper\t\n", encoding="utf-8")
    with pytest.raises(ValueError, match="languages.tsv:2"):
        read_table(bad)
    duplicate = tmp_path / "dup.tsv"
    duplicate.write_text(header + "deu_Latn\tGerman\tde\tde\t13344\thigh\tp\t\n" * 2, encoding="utf-8")
    with pytest.raises(ValueError, match="twice"):
        read_table(duplicate)


def test_bundled_table_path_is_inside_data_corpus():
    assert languages.LANGUAGES_TSV.parent.name == "corpus"
    assert languages.LANGUAGES_TSV.is_file()


def test_every_language_has_checked_hours_and_a_source():
    """Hours were checked against Radford et al. 2022, App. E, Fig. 11 (arXiv:2212.04356v1)."""
    for lang in known_languages():
        entry = language(lang)
        assert entry.whisper_hours is not None, lang
        assert "checked" in entry.level_source and ("Fig. 11" in entry.level_source), lang


def test_second_voices_are_variants_spread_over_levels():
    from core.languages import espeak_voices

    with_two = [lang for lang in known_languages() if language(lang).espeak_voice_2 is not None]
    assert len(with_two) >= 6
    assert {resource_level(lang) for lang in with_two} == {"high", "medium", "low"}
    for lang in with_two:
        first, second = espeak_voices(lang, 2)
        assert second != first and second.startswith(first.split("+")[0])
    assert espeak_voices("eng_Latn", 1) == ["en-us"]
    with pytest.raises(ValueError, match="n_voices"):
        espeak_voices("eng_Latn", 0)


#: Each family's code for the bundled corpus's 20 languages and the Chinese alias, as the families
#: mapped them before the language table held every family's codes: (Whisper, SeamlessM4T, SONAR
#: text token, SONAR speech encoder, XLM-R).
PINNED_FAMILY_CODES: dict[str, tuple[str, str, str, str, str]] = {
    "afr_Latn": ("af", "afr", "afr_Latn", "afr", "af"),
    "cym_Latn": ("cy", "cym", "cym_Latn", "cym", "cy"),
    "deu_Latn": ("de", "deu", "deu_Latn", "deu", "de"),
    "eng_Latn": ("en", "eng", "eng_Latn", "eng", "en"),
    "fin_Latn": ("fi", "fin", "fin_Latn", "fin", "fi"),
    "fra_Latn": ("fr", "fra", "fra_Latn", "fra", "fr"),
    "hin_Deva": ("hi", "hin", "hin_Deva", "hin", "hi"),
    "ind_Latn": ("id", "ind", "ind_Latn", "ind", "id"),
    "isl_Latn": ("is", "isl", "isl_Latn", "isl", "is"),
    "ita_Latn": ("it", "ita", "ita_Latn", "ita", "it"),
    "nld_Latn": ("nl", "nld", "nld_Latn", "nld", "nl"),
    "pes_Arab": ("fa", "pes", "pes_Arab", "pes", "fa"),
    "pol_Latn": ("pl", "pol", "pol_Latn", "pol", "pl"),
    "por_Latn": ("pt", "por", "por_Latn", "por", "pt"),
    "rus_Cyrl": ("ru", "rus", "rus_Cyrl", "rus", "ru"),
    "spa_Latn": ("es", "spa", "spa_Latn", "spa", "es"),
    "swh_Latn": ("sw", "swh", "swh_Latn", "swh", "sw"),
    "tur_Latn": ("tr", "tur", "tur_Latn", "tur", "tr"),
    "vie_Latn": ("vi", "vie", "vie_Latn", "vie", "vi"),
    "zho_Hans": ("zh", "cmn", "zho_Hans", "cmn", "zh"),
    "cmn_Hans": ("zh", "cmn", "zho_Hans", "cmn", "zh"),
}


def test_pinned_family_codes_cover_the_bundled_corpus():
    bundled = {p.stem for p in (languages.LANGUAGES_TSV.parent / "text").glob("*.txt")}
    assert bundled == set(PINNED_FAMILY_CODES) - {"cmn_Hans"}


def test_every_family_maps_the_bundled_languages_as_pinned():
    from core.models.e5 import xlmr_language
    from core.models.seamless import SEAMLESS_TEXT_LANGUAGES, seamless_language
    from core.models.sonar import NllbTokenizer, speech_code
    from core.models.whisper import resolve_whisper_language

    whisper_known = {codes[0] for codes in PINNED_FAMILY_CODES.values()}
    sonar_tokens = NllbTokenizer.tiny()
    for lang, (whisper, seamless, sonar_text, sonar_speech, xlmr) in PINNED_FAMILY_CODES.items():
        assert resolve_whisper_language(lang, whisper_known) == whisper, lang
        assert seamless_language(lang, SEAMLESS_TEXT_LANGUAGES) == seamless, lang
        assert sonar_tokens.token(sonar_tokens.lang_id(lang)) == f"__{sonar_text}__", lang
        assert speech_code(lang) == sonar_speech, lang
        assert xlmr_language(lang) == xlmr, lang


def test_the_code_table_agrees_with_each_checkpoint_layout():
    """The table's SONAR columns are the card's text languages and released speech encoders, every
    corpus language has a row, and the Chinese aliases resolve to the same codes everywhere."""
    from core.models.sonar import SPEECH_FILES, TEXT_LANGUAGES

    assert set(languages.family_languages("sonar_text")) == set(TEXT_LANGUAGES)
    sonar_speech = {languages.family_code(x, "sonar_speech")
                    for x in languages.family_languages("sonar_speech")}
    assert sonar_speech == set(SPEECH_FILES)
    assert len(languages.family_languages("xlmr")) >= 90
    codes = languages.read_codes()
    assert set(known_languages()) <= set(codes)
    for alias, lang in languages.ALIASES.items():
        assert alias not in codes
        for family in languages.FAMILIES:
            assert languages.family_code(alias, family) == languages.family_code(lang, family)
    assert languages.family_code("zul_Latn", "whisper") is None
    assert languages.family_code("xxx_Latn", "whisper") is None
    with pytest.raises(ValueError, match="unknown model family"):
        languages.family_code("deu_Latn", "nope")


def test_known_language_codes_are_the_corpus_languages_and_their_aliases():
    assert languages.known_language_codes() == [*known_languages(), "cmn_Hans"]


def test_corpus_labels_are_every_label_read_as_the_language():
    labels = languages.corpus_labels("deu_Latn", {"German": "deu_Latn", "English": "eng_Latn"})
    assert labels == ["German", "de", "de_de", "deu_Latn"]
    assert all(languages.from_corpus_code(label, {"German": "deu_Latn"}) == "deu_Latn"
               for label in labels)
    assert languages.corpus_labels("de_de") == languages.corpus_labels("deu_Latn")
    assert "zh" not in languages.corpus_labels("zho_Hans")  # zh names two languages
    assert languages.corpus_labels("xx_unknown") == ["xx_unknown"]
