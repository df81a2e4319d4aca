"""SONAR's released checkpoints: their file names, the official fairseq2 (and fairseq) tensor names
mapped onto our modules, reading a checkpoint safely, converting it (failing loudly on any
missing, unexpected or wrong-shape tensor) and reading an architecture from tensor shapes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from core import languages
from core.models.sonar.config import SpeechEncoderConfig, TextEncoderConfig
from core.models.sonar.modules import SpeechEncoder, build_text_encoder
from core.models.torch_files import UntrustedCheckpointError, load_checkpoint_file

#: file names of the official release (sonar/cards/*.yaml)
TEXT_CHECKPOINT = "sonar_text_encoder.pt"
TOKENIZER_FILE = "sentencepiece.source.256000.model"
SPEECH_CHECKPOINT = re.compile(r"^spenc\.(?:v\d+ap\.)?([a-z]{3})\.pt$")

#: The 57 speech encoders of sonar/cards/sonar_speech_encoder.yaml (ISO 639-3 code -> file).
#: English is ``spenc.eng.pt`` (architecture ``english``), all others ``non_english``.
SPEECH_FILES: dict[str, str] = {
    **{iso: f"spenc.v3ap.{iso}.pt" for iso in (
        "arb", "cat", "cym", "dan", "deu", "est", "fin", "fra", "ind", "ita", "kor", "nld", "pes",
        "por", "ron", "spa", "swh", "tgl", "tur", "uzn")},
    "eng": "spenc.eng.pt",
    **{iso: f"spenc.v5ap.{iso}.pt" for iso in (
        "asm", "bel", "ben", "bos", "bul", "ces", "cmn", "guj", "heb", "hin", "hrv", "jpn", "kan",
        "lao", "lit", "lvs", "mal", "mar", "mkd", "mlt", "npi", "ory", "pan", "pol", "rus", "slk",
        "slv", "snd", "srp", "tam", "tel", "tha", "ukr", "urd", "vie", "yue")},
}


def speech_code(lang: str) -> str:
    """FLORES-200 code (``deu_Latn``) or ISO 639-3 code -> the speech encoder's language code: the
    language table's ``sonar_speech`` code, else the code's ISO 639-3 part."""
    return languages.family_code(lang, "sonar_speech") or lang.split("_", 1)[0]


class CheckpointError(ValueError):
    """A checkpoint that does not match the architecture; the message names the tensors."""


def text_name_map(cfg: TextEncoderConfig) -> dict[str, str]:
    """Official fairseq2 name (sonar_text ``SonarTextTransformerEncoderModel``) -> our name."""
    names = {"encoder_frontend.embed.weight": "embed_tokens.weight",
             "layer_norm.weight": "layer_norm.weight", "layer_norm.bias": "layer_norm.bias"}
    parts = {"self_attn.q_proj": "self_attn.q_proj", "self_attn.k_proj": "self_attn.k_proj",
             "self_attn.v_proj": "self_attn.v_proj", "self_attn.output_proj": "self_attn.out_proj",
             "self_attn_layer_norm": "self_attn_layer_norm", "ffn.inner_proj": "fc1",
             "ffn.output_proj": "fc2", "ffn_layer_norm": "final_layer_norm"}
    for i in range(cfg.num_layers):
        for theirs, ours in parts.items():
            for p in ("weight", "bias"):
                names[f"encoder.layers.{i}.{theirs}.{p}"] = f"layers.{i}.{ours}.{p}"
    return names


def speech_name_map(cfg: SpeechEncoderConfig) -> dict[str, str]:
    """Official fairseq2 name (sonar_speech ``SonarSpeechEncoderModel``) -> our name."""
    names: dict[str, str] = {}
    wb = ("weight", "bias")
    for p in wb:
        names[f"encoder_frontend.post_extract_layer_norm.{p}"] = f"feature_projection.layer_norm.{p}"
        names[f"encoder_frontend.model_dim_proj.{p}"] = f"feature_projection.projection.{p}"
        names[f"layer_norm.{p}"] = f"encoder.layer_norm.{p}"
    for i in range(cfg.num_layers):
        a, b = f"encoder.layers.{i}", f"encoder.layers.{i}"
        pairs = {}
        for k in (1, 2):
            pairs[f"ffn{k}_layer_norm"] = f"ffn{k}_layer_norm"
            pairs[f"ffn{k}.inner_proj"] = f"ffn{k}.intermediate_dense"
            pairs[f"ffn{k}.output_proj"] = f"ffn{k}.output_dense"
        pairs.update({"self_attn_layer_norm": "self_attn_layer_norm",
                      "self_attn.q_proj": "self_attn.linear_q", "self_attn.k_proj": "self_attn.linear_k",
                      "self_attn.v_proj": "self_attn.linear_v",
                      "self_attn.output_proj": "self_attn.linear_out",
                      "conv_layer_norm": "conv_module.layer_norm", "layer_norm": "final_layer_norm"})
        for theirs, ours in pairs.items():
            for p in wb:
                names[f"{a}.{theirs}.{p}"] = f"{b}.{ours}.{p}"
        names[f"{a}.self_attn.sdpa.r_proj.weight"] = f"{b}.self_attn.linear_pos.weight"
        names[f"{a}.self_attn.sdpa.u_bias"] = f"{b}.self_attn.pos_bias_u"
        names[f"{a}.self_attn.sdpa.v_bias"] = f"{b}.self_attn.pos_bias_v"
        for conv in ("pointwise_conv1", "depthwise_conv", "pointwise_conv2"):
            names[f"{a}.conv.{conv}.weight"] = f"{b}.conv_module.{conv}.weight"
        for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            names[f"{a}.conv.batch_norm.{p}"] = f"{b}.conv_module.batch_norm.{p}"
    names["encoder_pooler.decoder_frontend.embed.weight"] = "pooler.embed.weight"
    names["encoder_pooler.projection_out.weight"] = "pooler.projection_out.weight"
    for j in range(cfg.pooler_layers):
        for part in ("self_attn", "encoder_decoder_attn"):
            for proj in ("q_proj", "k_proj", "v_proj", "output_proj"):
                for p in wb:
                    key = f"layers.{j}.{part}.{proj}.{p}"
                    names[f"encoder_pooler.decoder.{key}"] = f"pooler.{key}"
        for part in ("self_attn_layer_norm", "encoder_decoder_attn_layer_norm", "ffn_layer_norm",
                     "ffn.inner_proj", "ffn.output_proj"):
            for p in wb:
                key = f"layers.{j}.{part}.{p}"
                names[f"encoder_pooler.decoder.{key}"] = f"pooler.{key}"
    return names


#: buffers that may be absent from a checkpoint without changing inference
_OPTIONAL = ("num_batches_tracked",)
#: keys of the fairseq(1) layouts that carry no inference weights (the official converters drop them)
_IGNORED = re.compile(r"(^|\.)version$|_float_tensor$|^encoder\.w2v_model\.mask_emb$|"
                      r"^encoder\.w2v_model\.encoder\.pos_conv\.")

#: fairseq(1) speech layout -> fairseq2 names (the renames of sonar_speech/handler.py)
_FAIRSEQ1_SPEECH = [
    (r"^encoder\.w2v_model\.layer_norm\.", "encoder_frontend.post_extract_layer_norm."),
    (r"^encoder\.w2v_model\.post_extract_proj\.", "encoder_frontend.model_dim_proj."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.conv_module\.layer_norm\.",
     r"encoder.layers.\1.conv_layer_norm."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.conv_module\.", r"encoder.layers.\1.conv."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.ffn(1|2)\.layer_norm\.",
     r"encoder.layers.\1.ffn\2_layer_norm."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.ffn(1|2)\.w_1\.", r"encoder.layers.\1.ffn\2.inner_proj."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.ffn(1|2)\.w_2\.", r"encoder.layers.\1.ffn\2.output_proj."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.self_attn_layer_norm\.",
     r"encoder.layers.\1.self_attn_layer_norm."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.self_attn\.linear_q\.", r"encoder.layers.\1.self_attn.q_proj."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.self_attn\.linear_k\.", r"encoder.layers.\1.self_attn.k_proj."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.self_attn\.linear_v\.", r"encoder.layers.\1.self_attn.v_proj."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.self_attn\.linear_out\.",
     r"encoder.layers.\1.self_attn.output_proj."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.self_attn\.linear_pos\.",
     r"encoder.layers.\1.self_attn.sdpa.r_proj."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.self_attn\.pos_bias_u$",
     r"encoder.layers.\1.self_attn.sdpa.u_bias"),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.self_attn\.pos_bias_v$",
     r"encoder.layers.\1.self_attn.sdpa.v_bias"),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.final_layer_norm\.", r"encoder.layers.\1.layer_norm."),
    # the redundant LayerNorm after the conformer blocks becomes the SONAR model's ``layer_norm``
    (r"^encoder\.w2v_model\.encoder\.layer_norm\.", "layer_norm."),
    (r"^decoder\.embed_tokens\.", "encoder_pooler.decoder_frontend.embed."),
    (r"^decoder\.layers\.(\d+)\.self_attn\.out_proj\.", r"encoder_pooler.decoder.layers.\1.self_attn.output_proj."),
    (r"^decoder\.layers\.(\d+)\.self_attn_layer_norm\.",
     r"encoder_pooler.decoder.layers.\1.self_attn_layer_norm."),
    (r"^decoder\.layers\.(\d+)\.self_attn\.", r"encoder_pooler.decoder.layers.\1.self_attn."),
    (r"^decoder\.layers\.(\d+)\.encoder_attn_layer_norm\.",
     r"encoder_pooler.decoder.layers.\1.encoder_decoder_attn_layer_norm."),
    (r"^decoder\.layers\.(\d+)\.encoder_attn\.out_proj\.",
     r"encoder_pooler.decoder.layers.\1.encoder_decoder_attn.output_proj."),
    (r"^decoder\.layers\.(\d+)\.encoder_attn\.", r"encoder_pooler.decoder.layers.\1.encoder_decoder_attn."),
    (r"^decoder\.layers\.(\d+)\.fc1\.", r"encoder_pooler.decoder.layers.\1.ffn.inner_proj."),
    (r"^decoder\.layers\.(\d+)\.fc2\.", r"encoder_pooler.decoder.layers.\1.ffn.output_proj."),
    (r"^decoder\.layers\.(\d+)\.final_layer_norm\.", r"encoder_pooler.decoder.layers.\1.ffn_layer_norm."),
    (r"^decoder\.embed_out$", "encoder_pooler.projection_out.weight"),
]

#: fairseq(1) text layout -> fairseq2 names (the renames of sonar_text/handler.py)
_FAIRSEQ1_TEXT = [
    (r"^layers\.(\d+)\.self_attn\.out_proj\.", r"encoder.layers.\1.self_attn.output_proj."),
    (r"^layers\.(\d+)\.self_attn\.", r"encoder.layers.\1.self_attn."),
    (r"^layers\.(\d+)\.self_attn_layer_norm\.", r"encoder.layers.\1.self_attn_layer_norm."),
    (r"^layers\.(\d+)\.fc1\.", r"encoder.layers.\1.ffn.inner_proj."),
    (r"^layers\.(\d+)\.fc2\.", r"encoder.layers.\1.ffn.output_proj."),
    (r"^layers\.(\d+)\.final_layer_norm\.", r"encoder.layers.\1.ffn_layer_norm."),
    (r"^embed_tokens\.", "encoder_frontend.embed."),
]


def _text_fairseq2_names(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A text state under fairseq2 names: the fairseq layout renamed (embedding rows not yet
    reordered), a fairseq2 one as it is."""
    if "encoder_frontend.embed.weight" not in state and "embed_tokens.weight" in state:
        return _rename(state, _FAIRSEQ1_TEXT)
    return dict(state)


def _speech_fairseq2_names(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A speech state under fairseq2 names: the fairseq layout renamed, a fairseq2 one as it is."""
    if "encoder_frontend.model_dim_proj.weight" not in state and any(
            k.startswith("encoder.w2v_model.") for k in state):
        return _rename(state, _FAIRSEQ1_SPEECH)
    return dict(state)


def _rename(state: Mapping[str, torch.Tensor], table) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        new = key
        for pattern, repl in table:
            new, n = re.subn(pattern, repl, key)
            if n:
                break
        out[new] = value
    return out


def read_checkpoint(path: str | Path, *, mmap: bool = True, trust: bool = False
                    ) -> dict[str, torch.Tensor]:
    """The tensors of a released checkpoint, unwrapped from fairseq2's ``{"model": ...}`` (or
    fairseq's ``{"state_dict": ...}``) layout; everything else in the file (optimizer state,
    metadata) is dropped, and, the file being memory-mapped, never read from disk.

    Read by ``core.models.torch_files.load_checkpoint_file``: ``weights_only=True`` plus the few
    safe objects released files carry; a file holding anything else is refused (a
    ``CheckpointError`` naming those objects and the opt-in) unless ``trust`` (a full unpickle,
    which can run arbitrary code: trusted files only)."""
    path = Path(path)
    try:
        obj = load_checkpoint_file(path, mmap=mmap, trust=trust)
    except UntrustedCheckpointError as exc:
        raise CheckpointError(str(exc)) from exc
    except Exception as exc:  # RuntimeError, EOFError, OSError...: not a readable torch file
        raise CheckpointError(
            f"{path.name}: could not be read as a torch checkpoint ({type(exc).__name__}: "
            f"{str(exc)[:300]})") from exc
    state = obj
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), Mapping):
                state = obj[key]
                break
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"{path.name}: holds no state dict (expected a dict of tensors, "
                              "possibly under 'model')")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path.name}: entries that are not tensors: {', '.join(map(str, bad[:10]))}")
    return dict(state)


def _apply(module: nn.Module, state: Mapping[str, torch.Tensor], names: Mapping[str, str],
           what: str) -> nn.Module:
    """Copy ``state`` (official names) into ``module`` through ``names``; every parameter and
    buffer must be set with its shape, nothing may be left over."""
    ours = module.state_dict()
    state = {k: v for k, v in state.items() if not _IGNORED.search(k)}
    unexpected = sorted(set(state) - set(names))
    missing = sorted(k for k, v in names.items() if k not in state and not v.endswith(_OPTIONAL))
    not_ours = sorted(v for v in names.values() if v not in ours)
    unmapped = sorted(k for k in ours if k not in set(names.values()))
    wrong = sorted(f"{k} {tuple(state[k].shape)} (expected {tuple(ours[v].shape)})"
                   for k, v in names.items() if k in state and v in ours
                   and tuple(state[k].shape) != tuple(ours[v].shape))
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong),
                         ("name map targets absent from the module", not_ours),
                         ("module tensors the name map does not cover", unmapped)):
        if items:
            shown = ", ".join(items[:12]) + (f" ... ({len(items)} in all)" if len(items) > 12 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise CheckpointError(f"{what} does not match the architecture: " + "; ".join(problems))
    with torch.no_grad():
        for theirs, mine in names.items():
            if theirs in state:
                target = ours[mine]
                target.copy_(state[theirs].to(dtype=target.dtype))
    return module


def convert_text_checkpoint(state: Mapping[str, torch.Tensor], cfg: TextEncoderConfig,
                            module: nn.Module | None = None, what: str = "text checkpoint") -> nn.Module:
    """Load an official text encoder state (fairseq2 names, or the fairseq layout, whose embedding
    rows for (BOS, PAD, EOS, UNK) are reordered to the tokenizer's (PAD, UNK, BOS, EOS) exactly as
    sonar_text/handler.py does) into a ``build_text_encoder(cfg)`` module."""
    fairseq1 = "encoder_frontend.embed.weight" not in state and "embed_tokens.weight" in state
    state = _text_fairseq2_names(state)
    if fairseq1:
        embed = state["encoder_frontend.embed.weight"].clone()
        embed[[0, 1, 2, 3]] = embed[[1, 3, 0, 2]]
        state["encoder_frontend.embed.weight"] = embed
    module = module if module is not None else build_text_encoder(cfg)
    return _apply(module, state, text_name_map(cfg), what)


def convert_speech_checkpoint(state: Mapping[str, torch.Tensor], cfg: SpeechEncoderConfig,
                              module: nn.Module | None = None,
                              what: str = "speech checkpoint") -> nn.Module:
    """Load an official speech encoder state (fairseq2 names, or the fairseq layout renamed as
    sonar_speech/handler.py does) into a ``SpeechEncoder(cfg)``."""
    state = _speech_fairseq2_names(state)
    module = module if module is not None else SpeechEncoder(cfg)
    return _apply(module, state, speech_name_map(cfg), what)


def text_parameter_count(state: Mapping[str, torch.Tensor], cfg: TextEncoderConfig) -> int:
    """How many weights the text encoder takes from ``state`` through its name map (floating
    tensors only): what the memory check counts, so tensors the conversion drops (fairseq's
    bookkeeping keys, anything saved beside the weights) never make a model look larger."""
    return _mapped_parameter_count(_text_fairseq2_names(state), text_name_map(cfg))


def speech_parameter_count(state: Mapping[str, torch.Tensor], cfg: SpeechEncoderConfig) -> int:
    """How many weights a speech encoder takes from ``state`` through its name map (floating
    tensors only; see ``text_parameter_count``)."""
    return _mapped_parameter_count(_speech_fairseq2_names(state), speech_name_map(cfg))


def _mapped_parameter_count(state: Mapping[str, torch.Tensor], names: Mapping[str, str]) -> int:
    return sum(state[k].numel() for k in names if k in state and state[k].is_floating_point())


def official_state_dict(module: nn.Module, names: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """Our module's tensors under the official fairseq2 names (the inverse of the converters)."""
    ours = module.state_dict()
    return {theirs: ours[mine].detach().clone() for theirs, mine in names.items()}


def text_config_from_state(state: Mapping[str, torch.Tensor], base: TextEncoderConfig | None = None
                           ) -> TextEncoderConfig:
    """Vocabulary, width, depth and FFN width read from the tensors' shapes (heads, positions
    from ``base``, default the release)."""
    base = base or TextEncoderConfig()
    state = _text_fairseq2_names(state)
    try:
        vocab, dim = state["encoder_frontend.embed.weight"].shape
        ffn = state["encoder.layers.0.ffn.inner_proj.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"not a SONAR text encoder checkpoint: no tensor {exc}") from exc
    layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"encoder\.layers\.(\d+)\.", k)))
    return replace(base, vocab_size=int(vocab), model_dim=int(dim), num_layers=layers,
                   ffn_inner_dim=int(ffn))


def speech_config_from_state(state: Mapping[str, torch.Tensor],
                             base: SpeechEncoderConfig | None = None) -> SpeechEncoderConfig:
    """Width, depths, conformer heads and FFN widths read from the tensors' shapes (the pooler's
    heads, which no shape shows, from ``base``: 16 in the release)."""
    base = base or SpeechEncoderConfig()
    state = _speech_fairseq2_names(state)
    try:
        dim, feat = state["encoder_frontend.model_dim_proj.weight"].shape
        ffn = state["encoder.layers.0.ffn1.inner_proj.weight"].shape[0]
        kernel = state["encoder.layers.0.conv.depthwise_conv.weight"].shape[-1]
        rows = state["encoder_pooler.decoder_frontend.embed.weight"].shape[0]
        pooler_ffn = state["encoder_pooler.decoder.layers.0.ffn.inner_proj.weight"].shape[0]
        heads = state["encoder.layers.0.self_attn.sdpa.u_bias"].shape[0]  # (heads, head_dim)
    except KeyError as exc:
        raise CheckpointError(f"not a SONAR speech encoder checkpoint: no tensor {exc}") from exc

    def depth(prefix: str) -> int:
        return 1 + max(int(m.group(1)) for k in state if (m := re.match(prefix + r"(\d+)\.", k)))

    if feat % base.num_fbank_channels:
        raise CheckpointError(f"feature projection reads {feat} values, not a multiple of "
                              f"{base.num_fbank_channels} mel bins")
    return replace(base, model_dim=int(dim), num_layers=depth(r"encoder\.layers\."),
                   num_heads=int(heads),
                   ffn_inner_dim=int(ffn), depthwise_kernel_size=int(kernel),
                   fbank_stride=int(feat) // base.num_fbank_channels,
                   pooler_layers=depth(r"encoder_pooler\.decoder\.layers\."),
                   pooler_ffn_inner_dim=int(pooler_ffn), pooler_num_embeddings=int(rows))
