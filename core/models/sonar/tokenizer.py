"""fairseq2's NLLB tokenizer layout over SONAR's SentencePiece model, with the text encoder card's
languages in the order their ``__<lang>__`` tokens are appended."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from core import languages
from core.models.base import UnsupportedLanguageError

#: The 202 languages of ``text_sonar_basic_encoder`` (sonar/cards/text_sonar_basic_encoder.yaml),
#: in the card's order, which is the order of the ``__<lang>__`` control symbols fairseq2 appends to
#: the SentencePiece model: language i has token id ``n_pieces + 1 + i``.
TEXT_LANGUAGES: tuple[str, ...] = tuple("""
    ace_Arab ace_Latn acm_Arab acq_Arab aeb_Arab afr_Latn ajp_Arab aka_Latn amh_Ethi apc_Arab
    arb_Arab ars_Arab ary_Arab arz_Arab asm_Beng ast_Latn awa_Deva ayr_Latn azb_Arab azj_Latn
    bak_Cyrl bam_Latn ban_Latn bel_Cyrl bem_Latn ben_Beng bho_Deva bjn_Arab bjn_Latn bod_Tibt
    bos_Latn bug_Latn bul_Cyrl cat_Latn ceb_Latn ces_Latn cjk_Latn ckb_Arab crh_Latn cym_Latn
    dan_Latn deu_Latn dik_Latn dyu_Latn dzo_Tibt ell_Grek eng_Latn epo_Latn est_Latn eus_Latn
    ewe_Latn fao_Latn pes_Arab fij_Latn fin_Latn fon_Latn fra_Latn fur_Latn fuv_Latn gla_Latn
    gle_Latn glg_Latn grn_Latn guj_Gujr hat_Latn hau_Latn heb_Hebr hin_Deva hne_Deva hrv_Latn
    hun_Latn hye_Armn ibo_Latn ilo_Latn ind_Latn isl_Latn ita_Latn jav_Latn jpn_Jpan kab_Latn
    kac_Latn kam_Latn kan_Knda kas_Arab kas_Deva kat_Geor knc_Arab knc_Latn kaz_Cyrl kbp_Latn
    kea_Latn khm_Khmr kik_Latn kin_Latn kir_Cyrl kmb_Latn kon_Latn kor_Hang kmr_Latn lao_Laoo
    lvs_Latn lij_Latn lim_Latn lin_Latn lit_Latn lmo_Latn ltg_Latn ltz_Latn lua_Latn lug_Latn
    luo_Latn lus_Latn mag_Deva mai_Deva mal_Mlym mar_Deva min_Latn mkd_Cyrl plt_Latn mlt_Latn
    mni_Beng khk_Cyrl mos_Latn mri_Latn zsm_Latn mya_Mymr nld_Latn nno_Latn nob_Latn npi_Deva
    nso_Latn nus_Latn nya_Latn oci_Latn gaz_Latn ory_Orya pag_Latn pan_Guru pap_Latn pol_Latn
    por_Latn prs_Arab pbt_Arab quy_Latn ron_Latn run_Latn rus_Cyrl sag_Latn san_Deva sat_Beng
    scn_Latn shn_Mymr sin_Sinh slk_Latn slv_Latn smo_Latn sna_Latn snd_Arab som_Latn sot_Latn
    spa_Latn als_Latn srd_Latn srp_Cyrl ssw_Latn sun_Latn swe_Latn swh_Latn szl_Latn tam_Taml
    tat_Cyrl tel_Telu tgk_Cyrl tgl_Latn tha_Thai tir_Ethi taq_Latn taq_Tfng tpi_Latn tsn_Latn
    tso_Latn tuk_Latn tum_Latn tur_Latn twi_Latn tzm_Tfng uig_Arab ukr_Cyrl umb_Latn urd_Arab
    uzn_Latn vec_Latn vie_Latn war_Latn wol_Latn xho_Latn ydd_Hebr yor_Latn yue_Hant zho_Hans
    zho_Hant zul_Latn
""".split())  # noqa: SIM905 - the card's list, as printed
#: control symbols fairseq2's ``load_nllb_tokenizer`` appends after the language tokens
EXTRA_CONTROL_SYMBOLS = ("<MINED_DATA>", "<MMT_BT_DATA>", "<SMT_BT_DATA>")


def text_code(lang: str) -> str:
    """FLORES-200 code or alias -> the code of its ``__<code>__`` token (the language table's
    ``sonar_text`` code; ``cmn_Hans`` -> ``zho_Hans``)."""
    return languages.family_code(lang, "sonar_text") or languages.canonical_code(lang)


class NllbTokenizer:
    """fairseq2's NLLB tokenizer layout over a SentencePiece model: ``<pad>`` inserted at 0 (so
    every SentencePiece id is shifted by 1: ``<unk>`` 1, ``<s>`` 2, ``</s>`` 3), then after the
    ``n`` pieces the control symbols ``__<lang>__`` for the languages in ``TEXT_LANGUAGES`` order
    (ids n + 1 ...), then ``<MINED_DATA> <MMT_BT_DATA> <SMT_BT_DATA>``. A source sentence is
    ``__<lang>__ <pieces> </s>``.

    ``encode_raw(text) -> SentencePiece ids`` and ``piece(id)`` come from a ``sentencepiece`` model
    file (the released one) or, for the tiny random model, from a ``tokenizers`` Unigram model.
    """

    PAD, UNK, BOS, EOS = 0, 1, 2, 3

    def __init__(self, n_pieces: int, encode_raw: Callable[[str], list[int]],
                 piece: Callable[[int], str], source: str,
                 languages: Sequence[str] = TEXT_LANGUAGES):
        self.n_pieces = int(n_pieces)
        self._encode_raw = encode_raw
        self._piece = piece
        self.source = source
        self.languages = tuple(languages)
        self._lang_ids = {lang: self.n_pieces + 1 + i for i, lang in enumerate(self.languages)}
        self.vocab_size = self.n_pieces + 1 + len(self.languages) + len(EXTRA_CONTROL_SYMBOLS)

    @classmethod
    def from_sentencepiece(cls, path: str | Path) -> NllbTokenizer:
        try:
            import sentencepiece as spm
        except ImportError as exc:
            raise ImportError("reading the SONAR tokenizer needs the 'sentencepiece' package: "
                              "pip install sentencepiece") from exc
        processor = spm.SentencePieceProcessor(model_file=str(path))
        return cls(processor.get_piece_size(), lambda text: list(processor.encode(text)),
                   processor.id_to_piece, f"sentencepiece {Path(path).name}")

    @classmethod
    def tiny(cls) -> NllbTokenizer:
        """A character-level Unigram model built offline with ``tokenizers`` (tests)."""
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

        ranges = [(0x21, 0x7F), (0xC0, 0x180), (0x391, 0x3CA), (0x400, 0x460)]
        chars = [chr(c) for lo, hi in ranges for c in range(lo, hi) if chr(c).isprintable()]
        vocab = [("<unk>", 0.0), ("<s>", 0.0), ("</s>", 0.0), ("▁", -1.0)]
        vocab += [(c, -2.0) for c in chars] + [("▁" + c, -2.5) for c in chars if c.isalpha()]
        tok = Tokenizer(models.Unigram(vocab, unk_id=0, byte_fallback=False))
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        return cls(tok.get_vocab_size(), lambda text: tok.encode(text, add_special_tokens=False).ids,
                   lambda i: tok.id_to_token(i) or "<unk>", "tiny character-level Unigram (tokenizers)")

    def supports(self, lang: str) -> bool:
        return text_code(lang) in self._lang_ids

    def lang_id(self, lang: str) -> int:
        code = text_code(lang)
        if code not in self._lang_ids:
            raise UnsupportedLanguageError(
                f"SONAR's text encoder has no language token for {lang!r}; it knows the 202 "
                f"FLORES-200 codes of its card (e.g. {', '.join(self.languages[:4])}, ...)")
        return self._lang_ids[code]

    def sentence_ids(self, text: str) -> list[int]:
        return [i + 1 for i in self._encode_raw(text)]

    def token(self, i: int) -> str:
        if i == self.PAD:
            return "<pad>"
        if 1 <= i <= self.n_pieces:
            return self._piece(i - 1)
        k = i - self.n_pieces - 1
        if 0 <= k < len(self.languages):
            return f"__{self.languages[k]}__"
        return EXTRA_CONTROL_SYMBOLS[k - len(self.languages)]
