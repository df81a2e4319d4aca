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
