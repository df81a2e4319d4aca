"""The language tables: what the corpus knows of each language, and each model family's code for it.

Two files in ``data/corpus/`` so the bundled corpus carries its own language metadata:

- ``languages.tsv``: the corpus languages (FLORES-200 code -> name, espeak-ng voices, Whisper hours,
  resource level and its source), every row checked against the sources below;
- ``language_codes.tsv``: for every language any model family knows (about 200 FLORES-200 codes,
  most of them not in the corpus), each family's code for it (``FAMILIES``: Whisper's language
  token, SeamlessM4T's text language, SONAR's text token and speech encoder, XLM-R's CC-100
  language), empty where the family has none. It is a separate file because a row there needs no
  name, voice or resource level: the corpus table stays the list of languages the tool can build
  with, while adapters look up codes for any language a checkpoint may hold.

Other spellings of a language (``ALIASES``, the Chinese ``cmn_*`` codes) are resolved once, here,
for every family. A checkpoint's own languages come from its tokenizer or config (the adapters read
them); this table only says which code to look for.

Resource levels rank languages by how much transcribed audio Whisper saw in training
(Radford et al. 2022, "Robust Speech Recognition via Large-Scale Weak Supervision", Appendix E,
Figure 11; Figure 3 plots the same hours against WER). Thresholds, in hours of multilingual ASR
training audio:

- high:   >= 5,000 h
- medium: 100 h to < 5,000 h
- low:    < 100 h (including languages Whisper has no token for: 0 h)

Where the exact hours are not recorded (``whisper_hours`` empty), the level comes from the same figure
and ``level_source`` says so.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

LANGUAGES_TSV = Path(__file__).resolve().parents[1] / "data" / "corpus" / "languages.tsv"
LANGUAGE_CODES_TSV = LANGUAGES_TSV.with_name("language_codes.tsv")

#: the columns of ``language_codes.tsv``: one model family's codes each. ``xlmr`` holds the ISO
#: 639-1 code of XLM-R's (CC-100) languages (Conneau et al. 2020, Table 6); FLORES-200 has no code
#: for its romanised, Zawgyi and Breton / Western Frisian / Latin entries, which it lists under the
#: ISO 639-3 + script codes one would use (``bre_Latn``, ``fry_Latn``, ``lat_Latn``).
FAMILIES: tuple[str, ...] = ("whisper", "seamless", "sonar_text", "sonar_speech", "xlmr")

RESOURCE_LEVELS: tuple[str, ...] = ("high", "medium", "low")
HIGH_MIN_HOURS = 5_000.0
MEDIUM_MIN_HOURS = 100.0
#: where every level of the table comes from
WHISPER_HOURS_SOURCE = ("Whisper's multilingual speech recognition training hours (Radford et al. "
                        "2022, App. E, Fig. 11; levels: high >= 5,000 h, medium >= 100 h, low < 100 h)")

#: other spellings callers may use for the same language (every family reads them through
#: ``canonical_code``)
ALIASES: dict[str, str] = {"cmn_Hans": "zho_Hans", "cmn_Hant": "zho_Hant"}

#: FLEURS locale directory (Conneau et al. 2022) -> FLORES-200 code; all 102 FLEURS locales
FLEURS_TO_FLORES: dict[str, str] = {
    "af_za": "afr_Latn", "am_et": "amh_Ethi", "ar_eg": "arb_Arab", "as_in": "asm_Beng",
    "ast_es": "ast_Latn", "az_az": "azj_Latn", "be_by": "bel_Cyrl", "bg_bg": "bul_Cyrl",
    "bn_in": "ben_Beng", "bs_ba": "bos_Latn", "ca_es": "cat_Latn", "ceb_ph": "ceb_Latn",
    "ckb_iq": "ckb_Arab", "cmn_hans_cn": "zho_Hans", "cs_cz": "ces_Latn", "cy_gb": "cym_Latn",
    "da_dk": "dan_Latn", "de_de": "deu_Latn", "el_gr": "ell_Grek", "en_us": "eng_Latn",
    "es_419": "spa_Latn", "et_ee": "est_Latn", "fa_ir": "pes_Arab", "ff_sn": "fuv_Latn",
    "fi_fi": "fin_Latn", "fil_ph": "tgl_Latn", "fr_fr": "fra_Latn", "ga_ie": "gle_Latn",
    "gl_es": "glg_Latn", "gu_in": "guj_Gujr", "ha_ng": "hau_Latn", "he_il": "heb_Hebr",
    "hi_in": "hin_Deva", "hr_hr": "hrv_Latn", "hu_hu": "hun_Latn", "hy_am": "hye_Armn",
    "id_id": "ind_Latn", "ig_ng": "ibo_Latn", "is_is": "isl_Latn", "it_it": "ita_Latn",
    "ja_jp": "jpn_Jpan", "jv_id": "jav_Latn", "ka_ge": "kat_Geor", "kam_ke": "kam_Latn",
    "kea_cv": "kea_Latn", "kk_kz": "kaz_Cyrl", "km_kh": "khm_Khmr", "kn_in": "kan_Knda",
    "ko_kr": "kor_Hang", "ky_kg": "kir_Cyrl", "lb_lu": "ltz_Latn", "lg_ug": "lug_Latn",
    "ln_cd": "lin_Latn", "lo_la": "lao_Laoo", "lt_lt": "lit_Latn", "luo_ke": "luo_Latn",
    "lv_lv": "lvs_Latn", "mi_nz": "mri_Latn", "mk_mk": "mkd_Cyrl", "ml_in": "mal_Mlym",
    "mn_mn": "khk_Cyrl", "mr_in": "mar_Deva", "ms_my": "zsm_Latn", "mt_mt": "mlt_Latn",
    "my_mm": "mya_Mymr", "nb_no": "nob_Latn", "ne_np": "npi_Deva", "nl_nl": "nld_Latn",
    "nso_za": "nso_Latn", "ny_mw": "nya_Latn", "oc_fr": "oci_Latn", "om_et": "gaz_Latn",
    "or_in": "ory_Orya", "pa_in": "pan_Guru", "pl_pl": "pol_Latn", "ps_af": "pbt_Arab",
    "pt_br": "por_Latn", "ro_ro": "ron_Latn", "ru_ru": "rus_Cyrl", "sd_in": "snd_Arab",
    "sk_sk": "slk_Latn", "sl_si": "slv_Latn", "sn_zw": "sna_Latn", "so_so": "som_Latn",
    "sr_rs": "srp_Cyrl", "sv_se": "swe_Latn", "sw_ke": "swh_Latn", "ta_in": "tam_Taml",
    "te_in": "tel_Telu", "tg_tj": "tgk_Cyrl", "th_th": "tha_Thai", "tr_tr": "tur_Latn",
    "uk_ua": "ukr_Cyrl", "umb_ao": "umb_Latn", "ur_pk": "urd_Arab", "uz_uz": "uzn_Latn",
    "vi_vn": "vie_Latn", "wo_sn": "wol_Latn", "xh_za": "xho_Latn", "yo_ng": "yor_Latn",
    "yue_hant_hk": "yue_Hant", "zu_za": "zul_Latn",
}

FRAME_COLUMNS: tuple[str, ...] = (
    "lang", "name", "resource_level", "whisper_hours", "level_source", "espeak_voice",
)


@dataclass(frozen=True)
class Language:
    """One row of the corpus language table (``whisper_code`` from the family code table);
    ``None`` marks what Whisper or espeak-ng lacks."""

    lang: str
    name: str
    whisper_code: str | None
    espeak_voice: str | None
    whisper_hours: float | None
    resource_level: str
    level_source: str
    notes: str = ""
    #: A second espeak-ng voice (a variant of the first, e.g. ``de+f3``) for a voice-change
    #: reference: the same sentence, language and synthesiser, another voice.
    espeak_voice_2: str | None = None


def level_for_hours(hours: float) -> str:
    """The resource level that ``hours`` of Whisper ASR training audio puts a language in."""
    if hours < 0 or math.isnan(hours):
        raise ValueError(f"Whisper training hours must be a number >= 0, got {hours!r}")
    if hours >= HIGH_MIN_HOURS:
        return "high"
    if hours >= MEDIUM_MIN_HOURS:
        return "medium"
    return "low"


def _optional(value: str) -> str | None:
    value = value.strip()
    return value or None


def _parse_row(row: dict[str, str], line_no: int, path: Path) -> Language:
    where = f"{path}:{line_no}"
    hours_text = (row.get("whisper_hours") or "").strip()
    try:
        hours = float(hours_text) if hours_text else None
    except ValueError:
        raise ValueError(f"{where}: whisper_hours {hours_text!r} is not a number") from None
    level = (row.get("resource_level") or "").strip()
    if level not in RESOURCE_LEVELS:
        raise ValueError(f"{where}: resource_level {level!r} is not one of {RESOURCE_LEVELS}")
    if hours is not None and level_for_hours(hours) != level:
        raise ValueError(
            f"{where}: {row['lang']} has {hours:g} h, which is level {level_for_hours(hours)!r} "
            f"by the thresholds, but the table says {level!r}"
        )
    return Language(
        lang=row["lang"].strip(),
        name=row["name"].strip(),
        whisper_code=family_code(row["lang"].strip(), "whisper"),
        espeak_voice=_optional(row.get("espeak_voice") or ""),
        whisper_hours=hours,
        resource_level=level,
        level_source=(row.get("level_source") or "").strip(),
        notes=(row.get("notes") or "").strip(),
        espeak_voice_2=_optional(row.get("espeak_voice_2") or ""),
    )


def read_table(path: Path | str = LANGUAGES_TSV) -> dict[str, Language]:
    """Read and check a language table TSV (header row; columns as in ``Language``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"language table {path} is missing; it ships in data/corpus/")
    table: dict[str, Language] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        for line_no, row in enumerate(reader, start=2):
            entry = _parse_row(row, line_no, path)
            if entry.lang in table:
                raise ValueError(f"{path}:{line_no}: language {entry.lang} appears twice")
            table[entry.lang] = entry
    return table


@lru_cache(maxsize=1)
def _table() -> dict[str, Language]:
    return read_table(LANGUAGES_TSV)


def known_languages() -> list[str]:
    """FLORES-200 codes in the table, in table order (high to low resource)."""
    return list(_table())


def read_codes(path: Path | str = LANGUAGE_CODES_TSV) -> dict[str, dict[str, str | None]]:
    """Read and check a family code table TSV: ``lang`` then one column per family of
    ``FAMILIES``; an empty cell means the family has no code for that language."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"language code table {path} is missing; it ships in data/corpus/")
    table: dict[str, dict[str, str | None]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        if tuple(reader.fieldnames or ()) != ("lang", *FAMILIES):
            raise ValueError(f"{path}: columns must be lang, {', '.join(FAMILIES)}; "
                             f"got {', '.join(reader.fieldnames or ())}")
        for line_no, row in enumerate(reader, start=2):
            lang = row["lang"].strip()
            if lang in table or lang in ALIASES:
                raise ValueError(f"{path}:{line_no}: language {lang} appears twice (or is an alias)")
            table[lang] = {family: _optional(row[family] or "") for family in FAMILIES}
    return table


@lru_cache(maxsize=1)
def _codes() -> dict[str, dict[str, str | None]]:
    return read_codes(LANGUAGE_CODES_TSV)


def canonical_code(lang: str) -> str:
    """The FLORES-200 code the tables use for ``lang`` (``cmn_Hans`` -> ``zho_Hans``)."""
    return ALIASES.get(lang, lang)


def family_code(lang: str, family: str) -> str | None:
    """``family``'s code for ``lang`` (FLORES-200 code or alias): ``deu_Latn`` -> ``de`` for
    ``whisper``; None when the family has none or the table does not know ``lang``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; the code table has {', '.join(FAMILIES)}")
    row = _codes().get(canonical_code(lang))
    return None if row is None else row[family]


def family_languages(family: str) -> list[str]:
    """FLORES-200 codes that ``family`` has a code for, in table order (aliases not included)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; the code table has {', '.join(FAMILIES)}")
    return [lang for lang, codes in _codes().items() if codes[family] is not None]


def known_language_codes() -> list[str]:
    """Every code ``language`` accepts: the corpus table's languages, then their aliases."""
    known = known_languages()
    return [*known, *(alias for alias, lang in ALIASES.items() if lang in known)]


def _unknown(lang: str) -> KeyError:
    return KeyError(
        f"unknown language {lang!r}: expected a FLORES-200 code from data/corpus/languages.tsv "
        f"(known: {', '.join(sorted(_table()))}); add a row there (and its family codes to "
        f"language_codes.tsv) to support a new language"
    )


def language(lang: str) -> Language:
    """The table row for ``lang`` (FLORES-200 code, or an alias such as ``cmn_Hans``)."""
    table = _table()
    code = canonical_code(lang)
    if code not in table:
        raise _unknown(lang)
    return table[code]


def whisper_code(lang: str) -> str:
    """Whisper's language token for ``lang`` (``deu_Latn`` -> ``de``)."""
    entry = language(lang)
    if entry.whisper_code is None:
        raise ValueError(f"{entry.name} ({entry.lang}) is not one of Whisper's languages")
    return entry.whisper_code


def espeak_voice(lang: str) -> str:
    """The espeak-ng voice used to synthesise speech for ``lang``."""
    entry = language(lang)
    if entry.espeak_voice is None:
        why = f": {entry.notes}" if entry.notes else ""
        raise ValueError(f"{entry.name} ({entry.lang}) has no usable espeak-ng voice{why}")
    return entry.espeak_voice


def espeak_voices(lang: str, n_voices: int = 1) -> list[str]:
    """Up to ``n_voices`` espeak-ng voices for ``lang``: its voice, then its second voice where the
    table has one (``espeak_voice_2``). The first raises like ``espeak_voice``."""
    if n_voices < 1:
        raise ValueError(f"n_voices must be >= 1, got {n_voices}")
    voices = [espeak_voice(lang)]
    second = language(lang).espeak_voice_2
    if n_voices >= 2 and second is not None:
        voices.append(second)
    return voices


def proxy_levels(langs: Iterable[str], model: str) -> pd.DataFrame:
    """lang, resource_level, level_source for a model whose family publishes no per-language
    training amounts: Whisper's levels, labelled as a proxy (how much speech of a language exists
    on the web correlates across models' data, but this model's own amounts are unknown)."""
    langs = list(langs)
    return pd.DataFrame({
        "lang": langs, "resource_level": [resource_level(lang) for lang in langs],
        "level_source": [f"proxy: {model} publishes no per-language training amounts; "
                         + WHISPER_HOURS_SOURCE] * len(langs)})


def resource_level(lang: str) -> str:
    """``high``, ``medium`` or ``low`` by Whisper ASR training hours (see module docstring)."""
    return language(lang).resource_level


def from_fleurs_code(code: str) -> str:
    """FLORES-200 code for a FLEURS locale directory name (``de_de`` -> ``deu_Latn``)."""
    key = code.strip().lower()
    if key not in FLEURS_TO_FLORES:
        raise KeyError(
            f"unknown FLEURS locale {code!r} (known: {', '.join(sorted(FLEURS_TO_FLORES))})"
        )
    return FLEURS_TO_FLORES[key]


def languages_frame(langs: Iterable[str]) -> pd.DataFrame:
    """Rows for the store's ``languages`` table, one per language, in the given order.

    ``whisper_hours`` is float64 with NaN where the exact hours are not recorded.
    """
    entries = [language(lang) for lang in langs]
    return pd.DataFrame(
        {
            "lang": [e.lang for e in entries],
            "name": [e.name for e in entries],
            "resource_level": [e.resource_level for e in entries],
            "whisper_hours": [
                math.nan if e.whisper_hours is None else e.whisper_hours for e in entries
            ],
            "level_source": [e.level_source for e in entries],
            "espeak_voice": [e.espeak_voice for e in entries],
        },
        columns=list(FRAME_COLUMNS),
    )


# ---------------------------------------------------------------------- a corpus's own codes
#: the code schemes a corpus may label its languages with, tried in this order
CORPUS_CODE_SCHEMES: tuple[str, ...] = ("FLORES-200", "FLEURS locale", "ISO 639-1")


def _iso_639_1() -> dict[str, str]:
    """ISO 639-1 code -> FLORES-200 code, from the Whisper and XLM-R columns of the code table
    (both hold ISO 639-1 codes); a code naming two languages (``zh``: Simplified and Traditional)
    is left out, so it must be mapped explicitly."""
    seen: dict[str, set[str]] = {}
    for lang, codes in _codes().items():
        for family in ("whisper", "xlmr"):
            if codes[family]:
                seen.setdefault(codes[family].lower(), set()).add(lang)
    return {code: next(iter(langs)) for code, langs in seen.items() if len(langs) == 1}


def from_corpus_code(code: str, mapping: dict[str, str] | None = None) -> str:
    """The FLORES-200 code for a corpus's language label: ``mapping`` first (the corpus's own
    table, e.g. ``{"english": "eng_Latn"}``), then a FLORES-200 code or alias (``deu_Latn``), a
    FLEURS locale (``de_de``) or an ISO 639-1 code (``de``). KeyError when none applies."""
    raw = str(code).strip()
    if mapping and raw in mapping:
        return canonical_code(mapping[raw])
    if canonical_code(raw) in _codes() or canonical_code(raw) in _table():
        return canonical_code(raw)
    key = raw.lower()
    if key in FLEURS_TO_FLORES:
        return FLEURS_TO_FLORES[key]
    iso = _iso_639_1()
    if key in iso:
        return iso[key]
    raise KeyError(f"unknown language code {raw!r}")


def corpus_labels(lang: str, mapping: dict[str, str] | None = None) -> list[str]:
    """Every label ``from_corpus_code`` reads as ``lang``'s language: the corpus's own
    (``mapping``), the code itself, its FLEURS locales and ISO 639-1 code; sorted. Why: to name a
    language's folders in a repository before any of it is read (``core.corpus_hub``). ``lang``
    may itself be any such label; one no scheme knows is its own only label."""
    try:
        code = from_corpus_code(lang, mapping)
    except KeyError:
        return [str(lang)]
    labels = {code, str(lang)}
    labels |= {label for label, mapped in (mapping or {}).items() if canonical_code(mapped) == code}
    labels |= {locale for locale, flores in FLEURS_TO_FLORES.items() if flores == code}
    labels |= {iso for iso, flores in _iso_639_1().items() if flores == code}
    return sorted(labels)


def unknown_corpus_codes(codes: Iterable[str], mapping: dict[str, str] | None = None) -> list[str]:
    """The codes of ``codes`` that ``from_corpus_code`` cannot place, sorted."""
    unknown = set()
    for code in codes:
        try:
            from_corpus_code(code, mapping)
        except KeyError:
            unknown.add(str(code))
    return sorted(unknown)
