"""SALMONN adapter (Tang et al., ICLR 2024; bytedance/SALMONN), a native port on transformers blocks.

SALMONN hears a clip through two encoders, fuses them frame by frame, shortens the sequence with a
window-level Q-Former and feeds the windows to a LoRA-adapted Vicuna:

- **Whisper large-v2 encoder** (``transformers.WhisperEncoder``): the clip's 80-bin log-mel
  spectrogram padded to 30 s (3000 mel frames) -> 1500 frames of 20 ms, final LayerNorm, then
  SALMONN's own ``ln_speech``.
- **BEATs** (``core/models/beats.py``, the fine-tuned iter3+ AS2M cpt2 checkpoint in the release):
  the clip itself (not padded to 30 s) -> 8 patch tokens per 160 ms (50 a second), then
  ``ln_audio``.
- **Fusion**: the BEATs tokens are zero-padded to the Whisper length (1500) and concatenated with
  the Whisper frames index by index (width 1280 + 768 = 2048): token ``i`` of BEATs sits with Whisper
  frame ``i`` (both 50 a second, so the two streams' frame rates match).
- **Window-level Q-Former** (``transformers.Blip2QFormerModel``: BERT-base widths, 2 layers,
  cross-attention in every layer, ``encoder_hidden_size`` 2048): the 1500 fused frames are cut into
  windows of ``k = round(1500 * 0.333333 / 30) = 17`` frames with stride 17 (0.34 s; the last 4
  frames are dropped), ``L = (1500 - 17) // 17 + 1 = 88`` windows; one learnt query per window
  attends to that window's 17 frames only.
- **Projection** ``speech_llama_proj`` (Linear 768 -> LLM width) and the **LLM**
  (``transformers.LlamaForCausalLM``, Vicuna 13B v1.1 for ``salmonn_v1.pth``) with **LoRA** from
  ``peft`` (rank 8, alpha 32, dropout 0.1, peft's default targets for Llama: ``q_proj`` and
  ``v_proj``; the official code passes ``target_modules=None``).

Components (names are fixed; the pipeline relies on them):

``whisper_encoder`` (speech, space ``<name>/whisper_encoder``, dim d_model)
    point 0 ``conv+pos`` (``frontend``): conv stem + positions, the input of layer 1; points
    1..N ``whisper i`` (``encoder``): each layer's output; point N+1 ``ln_speech`` (``encoder``):
    the encoder's final LayerNorm and SALMONN's ``ln_speech``, i.e. the Whisper half of what the
    Q-Former reads. Pooled over the ``E = min(1500, ceil(n / 320))`` frames holding the clip.
``beats_encoder`` (speech, space ``<name>/beats_encoder``, dim encoder_embed_dim)
    point 0 ``patch+pos`` (``frontend``): patch embedding, LayerNorm, projection and the
    convolutional positions, the input of layer 1; points 1..N ``beats i`` (``encoder``); point N+1
    ``ln_audio`` (``encoder``): the BEATs half of what the Q-Former reads. Pooled over the clip's
    ``B = (fbank_frames // 16) * 8`` tokens, ``fbank_frames = 1 + (n - 400) // 160``.
``qformer`` (speech, space ``<name>/qformer``, dim Q-Former hidden)
    point 0 ``frames (xattn values)`` (``encoder``): the fused frames as the first Q-Former layer
    reads them, i.e. its cross-attention value projection of each windowed frame (768 wide; each
    window query's attention output is a convex combination of its window's values). The fused
    frames themselves are 2048 wide, and a component has one width: they are the concatenation of
    the ``ln_speech`` and ``ln_audio`` points. Pooled over ``F = min(max(E, B), L * 17)`` frames.
    Points ``qformer i`` (``length_adaptor``; the first is where frames become windows): each
    Q-Former layer's output at the window queries, pooled over the ``W = min(L, ceil(max(E, B) /
    17))`` windows that hold the clip (the others hold only the 30 s padding).
    ``Extraction.n_positions`` gives F before and W after.
``llm_speech`` (speech, space ``<name>/llm``, dim LLM hidden)
    point 0 ``projector`` (``projector``): ``speech_llama_proj``'s output, which is exactly the
    LLM input at the window positions; points 1..M ``llm i`` (``llm``). Pooled over the W clip
    windows (of the 88 the LLM is given).
``llm_text`` (text, space ``<name>/llm``, dim LLM hidden)
    point 0 ``embed`` (``frontend``): token embeddings; points 1..M ``llm i`` (``llm``). Pooled
    over the sentence tokens. ``llm_text`` point i and ``llm_speech`` point i are one LLM layer in
    one space.

Template (``conditioning``): the official one, ``prompt_template = "USER: {}\\nASSISTANT:"`` with
``"<Speech><SpeechHere></Speech> " + instruction`` (``cli_inference.py``), and BOS in front
(``generate``): ``<s>USER: <Speech>{CONTENT}</Speech> {INSTRUCTION}\\nASSISTANT:``. For speech,
CONTENT is the 88 projected windows (the official ``prompt_wrap``: the pieces before and after
``<SpeechHere>`` are tokenised separately, without special tokens); for text it is the sentence,
tokenised on its own, in the same place. INSTRUCTION is the same for both
(``DEFAULT_INSTRUCTION``); it comes after the content, and the LLM is causal, so pooled states do
not depend on it. Nothing is generated.

Input handling as the official code: clips shorter than 1 s are padded with silence to 1 s and
longer than 30 s cut at 30 s (``utils.prepare_one_sample``); Whisper always reads 30 s; BEATs reads
the clip once per clip (as the official single-clip inference does, so a batch never changes a
clip's BEATs tokens); every speech prompt has the same length (88 windows), so speech batches carry
no padding; text prompts are right-padded and masked.

Depth: the speech path is Whisper (N + 2 points) -> Q-Former (1 + 2) -> projector -> LLM (M), depth
= index / (points - 1); BEATs runs beside Whisper, so its points are spread over the same depths as
``whisper_encoder``'s (0 to the depth of ``ln_speech``). Text: the LLM only, 0 to 1.

Final norms: LLM points are raw decoder-layer outputs (before the final RMSNorm), as in every
adapter; Whisper's final LayerNorm is applied only in the ``ln_speech`` point.

Languages: SALMONN is English-centric (the LLM is Vicuna; the official prompts ask for English,
Chinese and German ASR and translation into Chinese, Japanese and German:
``DOCUMENTED_SPEECH_LANGUAGES``). The study compares representations, not task outputs, and the
Whisper encoder is multilingual, so every language of the project's table is accepted (nothing
language-specific enters the prompt; the code only labels the input); unknown codes raise
``UnsupportedLanguageError``. ``documented_language`` tells the two apart.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.models.base import (
    Component,
    Extraction,
    ModelAdapter,
    Pooling,
    TokenStates,
    UnsupportedLanguageError,
    path_points,
    stack_points,
)
from core.models.beats import (
    BEATs,
    BEATsConfig,
    _state_problems,
    kaldi_fbank,
    load_beats_state,
    token_count,
)
from core.models.common import (
    DTYPE_BYTES,
    check_fits,
    check_inputs,
    extract_in_batches,
    count_parameters,
    package_versions,
    pick_device,
    pick_dtype,
    pool,
    prepare_waveform,
    quiet_transformers,
    record_output,
)

SAMPLING_RATE = 16_000
#: official ``prepare_one_sample``: pad to at least 1 s, cut at 30 s
MIN_SAMPLES = SAMPLING_RATE
MAX_SAMPLES = 30 * SAMPLING_RATE
CHUNK_S = 30.0

WHISPER_ENCODER = "whisper_encoder"
BEATS_ENCODER = "beats_encoder"
QFORMER = "qformer"
LLM_SPEECH = "llm_speech"
LLM_TEXT = "llm_text"

#: official configs/decode_config.yaml
PROMPT_TEMPLATE = "USER: {}\nASSISTANT:"
SPEECH_PLACEHOLDER = "<SpeechHere>"
SECOND_PER_WINDOW = 0.333333
SECOND_STRIDE = 0.333333
NUM_QUERY_TOKENS = 1
LORA_RANK = 8
LORA_ALPHA = 32
LORA_DROPOUT = 0.1
#: peft's default LoRA targets for Llama (the official code passes target_modules=None)
LORA_TARGETS = ("q_proj", "v_proj")
#: BERT-base's attention head width: the Q-Former has hidden / 64 heads (768 -> 12)
QFORMER_HEAD_DIM = 64
#: neutral, the same for text and speech; after the content, so it cannot change pooled states
DEFAULT_INSTRUCTION = "Repeat the content exactly."

WHISPER_HUB_ID = "openai/whisper-large-v2"
#: README: SALMONN-13B v1 uses Vicuna 13B v1.1. The 7B release's Vicuna version is not stated in
#: the repository; 7B checkpoints need ``llm=`` (or a ``vicuna*`` folder next to the checkpoint).
VICUNA_13B_HUB_ID = "lmsys/vicuna-13b-v1.1"

#: Languages the official prompts (prompts/test_prompt.json) name: English, Chinese and German ASR;
#: translation into Chinese, Japanese, German.
DOCUMENTED_SPEECH_LANGUAGES: tuple[str, ...] = ("eng_Latn", "zho_Hans", "deu_Latn", "jpn_Jpan")

#: checkpoint buffers the official model saves but this port recomputes (never weights)
IGNORED_CHECKPOINT_SUFFIXES = ("embeddings.position_ids", "rotary_emb.inv_freq")

_OFFICIAL_QFORMER = "speech_Qformer.bert."
_OFFICIAL_LLM = "llama_model."


# --------------------------------------------------------------------------------------------------
# Configuration


@dataclass
class SalmonnConfig:
    """Every block's configuration plus SALMONN's own settings (official defaults)."""

    whisper: Any            # transformers.WhisperConfig
    beats: BEATsConfig
    qformer: Any            # transformers.Blip2QFormerConfig
    llm: Any                # transformers.LlamaConfig
    lora_rank: int = LORA_RANK
    lora_alpha: int = LORA_ALPHA
    lora_dropout: float = LORA_DROPOUT
    lora_targets: tuple[str, ...] = LORA_TARGETS
    num_query_tokens: int = NUM_QUERY_TOKENS
    second_per_window: float = SECOND_PER_WINDOW
    second_stride: float = SECOND_STRIDE
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def whisper_frames(self) -> int:
        """Encoder frames of the 30 s window (1500)."""
        return int(self.whisper.max_source_positions)

    @property
    def window(self) -> tuple[int, int]:
        """(kernel, stride) in frames: the official ``round(1500 * seconds / 30)``."""
        n = self.whisper_frames
        return round(n * self.second_per_window / CHUNK_S), round(n * self.second_stride / CHUNK_S)


def qformer_config(hidden: int, layers: int, intermediate: int, encoder_width: int):
    """The official Q-Former: ``BertConfig("bert-base-uncased")`` with 2 layers, cross-attention
    in every layer (``cross_attention_freq = 1``) over ``encoder_width``-wide frames."""
    from transformers import Blip2QFormerConfig

    return Blip2QFormerConfig(
        hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=hidden // QFORMER_HEAD_DIM,
        intermediate_size=intermediate, hidden_act="gelu", layer_norm_eps=1e-12,
        cross_attention_frequency=1, encoder_hidden_size=encoder_width,
        use_qformer_text_input=False, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


def real_size_random_config(size: str = "13b") -> SalmonnConfig:
    """The released architectures as a ``SalmonnConfig`` (for memory estimates; do not instantiate
    on a CPU): Whisper large-v2 encoder, BEATs iter3+ (its ``cfg`` as the official BEATsConfig
    defaults plus the iter3+ switches), the Q-Former, and Vicuna 13B (v1.1) or 7B (Llama 7B
    shapes)."""
    from transformers import LlamaConfig, WhisperConfig

    whisper = WhisperConfig(d_model=1280, encoder_layers=32, encoder_attention_heads=20,
                            encoder_ffn_dim=5120, decoder_layers=32, decoder_attention_heads=20,
                            decoder_ffn_dim=5120, num_mel_bins=80, max_source_positions=1500,
                            vocab_size=51865)
    beats = BEATsConfig(input_patch_size=16, embed_dim=512, conv_bias=False, encoder_layers=12,
                        encoder_embed_dim=768, encoder_ffn_embed_dim=3072,
                        encoder_attention_heads=12, layer_norm_first=False, deep_norm=True,
                        relative_position_embedding=True, num_buckets=320, max_distance=800,
                        gru_rel_pos=True, finetuned_model=True, predictor_class=527)
    llm_sizes = {"13b": (5120, 13824, 40, 40), "7b": (4096, 11008, 32, 32)}
    if size not in llm_sizes:
        raise ValueError(f"size must be one of {sorted(llm_sizes)}, got {size!r}")
    hidden, intermediate, layers, heads = llm_sizes[size]
    llm = LlamaConfig(vocab_size=32000, hidden_size=hidden, intermediate_size=intermediate,
                      num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=heads, max_position_embeddings=2048, rms_norm_eps=1e-6,
                      tie_word_embeddings=False)
    return SalmonnConfig(whisper=whisper, beats=beats,
                         qformer=qformer_config(768, 2, 3072, 1280 + 768), llm=llm)


#: Tiny random SALMONN for tests and demos only (its states mean nothing). Whisper keeps the real
#: front end (80 mel bins, 3000 mel frames, 1500 positions) and BEATs its real patching (128 mel
#: bins, 16 x 16 patches), so every length formula is the released model's.
TINY_RANDOM_CONFIG: dict[str, Any] = {
    "whisper": {"d_model": 32, "encoder_layers": 2, "encoder_attention_heads": 2,
                "encoder_ffn_dim": 64, "decoder_layers": 1, "decoder_attention_heads": 2,
                "decoder_ffn_dim": 64, "num_mel_bins": 80, "max_source_positions": 1500,
                "max_target_positions": 16},
    "beats": {"input_patch_size": 16, "embed_dim": 24, "encoder_layers": 2,
              "encoder_embed_dim": 32, "encoder_ffn_embed_dim": 64, "encoder_attention_heads": 2,
              "conv_pos": 16, "conv_pos_groups": 4, "deep_norm": True,
              "relative_position_embedding": True, "num_buckets": 32, "max_distance": 128,
              "gru_rel_pos": True, "finetuned_model": True, "predictor_class": 5},
    "qformer": {"hidden": 128, "layers": 2, "intermediate": 256},
    "llm": {"hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "intermediate_size": 96, "max_position_embeddings": 1024},
}


def tiny_config(vocab_size: int, settings: dict[str, Any] | None = None) -> SalmonnConfig:
    from transformers import LlamaConfig, WhisperConfig

    settings = settings or TINY_RANDOM_CONFIG
    whisper = WhisperConfig(**settings["whisper"])
    beats = BEATsConfig.from_dict(settings["beats"])
    q = settings["qformer"]
    llm = LlamaConfig(vocab_size=vocab_size, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                      **settings["llm"])
    return SalmonnConfig(whisper=whisper, beats=beats,
                         qformer=qformer_config(q["hidden"], q["layers"], q["intermediate"],
                                                whisper.d_model + beats.encoder_embed_dim),
                         llm=llm)


def estimate_parameters(config: SalmonnConfig) -> int:
    """Exact parameters of ``SalmonnModel(config)`` from the config alone (blocks instantiated on
    the meta device; LoRA counted from its rank and targets)."""
    from transformers import Blip2QFormerModel, LlamaForCausalLM
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from core.models.common import meta_parameter_count

    total = meta_parameter_count(WhisperEncoder, config.whisper)
    total += meta_parameter_count(BEATs, config.beats)
    total += meta_parameter_count(Blip2QFormerModel, config.qformer)
    total += meta_parameter_count(LlamaForCausalLM, config.llm)
    d_w, d_b = config.whisper.d_model, config.beats.encoder_embed_dim
    hq, h = config.qformer.hidden_size, config.llm.hidden_size
    total += 2 * d_w + 2 * d_b + config.num_query_tokens * hq + hq * h + h
    total += lora_parameters(config)
    return int(total)


def lora_parameters(config: SalmonnConfig) -> int:
    t = config.llm
    head = getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads
    widths = {"q_proj": t.num_attention_heads * head,
              "k_proj": (t.num_key_value_heads or t.num_attention_heads) * head,
              "v_proj": (t.num_key_value_heads or t.num_attention_heads) * head,
              "o_proj": t.hidden_size}
    per_layer = sum(config.lora_rank * (t.hidden_size + widths[m]) for m in config.lora_targets)
    return per_layer * t.num_hidden_layers


def memory_needed_bytes(config: SalmonnConfig, dtype: torch.dtype) -> int:
    """Weights only (no activations) in ``dtype``."""
    return estimate_parameters(config) * DTYPE_BYTES[dtype]


# --------------------------------------------------------------------------------------------------
# Lengths


def prepared_length(n_samples: int) -> int:
    """Samples the model reads: at least 1 s (silence appended), at most 30 s."""
    return min(max(int(n_samples), MIN_SAMPLES), MAX_SAMPLES)


@dataclass(frozen=True)
class SpeechLengths:
    whisper_frames: int   # E: encoder frames holding the clip
    beats_tokens: int     # B: BEATs tokens of the clip
    fused_frames: int     # F: fused frames holding the clip that the windows cover
    windows: int          # W: Q-Former windows holding the clip (pooled)
    total_windows: int    # L: windows the LLM is given (88)


def speech_lengths(n_samples: int, config: SalmonnConfig) -> SpeechLengths:
    """Positions along the speech path for a clip of ``n_samples`` (16 kHz, after
    ``prepared_length``): E = min(1500, ceil(n / 320)); B = (fbank_frames // 16) * 8;
    T = max(1500, B) fused frames; L = (T - k) // s + 1; F = min(max(E, B), L * k) clip frames
    in the windows; W = min(L, ceil(max(E, B) / s))."""
    frames = config.whisper_frames
    per_frame = MAX_SAMPLES // frames
    whisper = min(frames, math.ceil(n_samples / per_frame))
    beats = token_count(n_samples, config.beats)
    kernel, stride = config.window
    fused = max(frames, beats)
    total = (fused - kernel) // stride + 1
    windows = min(total, math.ceil(max(whisper, beats) / stride))
    return SpeechLengths(whisper, beats, min(max(whisper, beats), total * kernel), windows, total)


# --------------------------------------------------------------------------------------------------
# The model


class SalmonnModel(nn.Module):
    """Whisper encoder + BEATs + ln_speech/ln_audio + window Q-Former + projection + LoRA Llama.

    Attribute names are this project's; ``convert_official_state`` maps the official checkpoint
    names onto them. ``llm`` is the peft model; ``llm_model`` its inner ``LlamaModel``.
    """

    def __init__(self, config: SalmonnConfig, *, whisper: nn.Module | None = None,
                 beats: BEATs | None = None, llm: nn.Module | None = None,
                 init_lora_weights: bool = True):
        super().__init__()
        from peft import LoraConfig, TaskType, get_peft_model
        from transformers import Blip2QFormerModel, LlamaForCausalLM
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        self.config = config
        self.whisper = whisper if whisper is not None else WhisperEncoder(config.whisper)
        self.beats = beats if beats is not None else BEATs(config.beats)
        self.ln_speech = nn.LayerNorm(config.whisper.d_model)
        self.ln_audio = nn.LayerNorm(config.beats.encoder_embed_dim)
        self.qformer = Blip2QFormerModel(config.qformer)
        hq = config.qformer.hidden_size
        self.query_tokens = nn.Parameter(torch.zeros(1, config.num_query_tokens, hq))
        nn.init.normal_(self.query_tokens, std=config.qformer.initializer_range)
        self.proj = nn.Linear(hq, config.llm.hidden_size)
        base = llm if llm is not None else LlamaForCausalLM(config.llm)
        lora = LoraConfig(task_type=TaskType.CAUSAL_LM, inference_mode=True, r=config.lora_rank,
                          lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=list(config.lora_targets),
                          init_lora_weights=init_lora_weights)
        with warnings.catch_warnings():  # peft calls a transformers property deprecated in 5.x
            warnings.simplefilter("ignore", FutureWarning)
            self.llm = get_peft_model(base, lora)

    @property
    def llm_model(self) -> nn.Module:
        """The LoRA-adapted ``LlamaModel`` (decoder stack without the LM head)."""
        return self.llm.base_model.model.model

    def trainable_state_names(self) -> list[str]:
        """What a SALMONN checkpoint sets (everything but the frozen Whisper, BEATs and Vicuna)."""
        names = [n for n, _ in self.named_parameters()
                 if not n.startswith(("whisper.", "beats.", "llm."))]
        names += [n for n, _ in self.llm.named_parameters(prefix="llm") if ".lora_" in n]
        return names


def convert_official_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor],
                                                                     list[str], list[str]]:
    """(tensors under this port's names, ignored buffer names, names that map to nothing).

    ``speech_Qformer.bert.embeddings.LayerNorm`` -> ``qformer.layernorm``; in each layer
    ``attention.self`` / ``crossattention.self`` -> ``attention.attention`` /
    ``crossattention.attention`` (the rest of the Q-Former names are the same);
    ``speech_query_tokens`` -> ``query_tokens``; ``speech_llama_proj`` -> ``proj``;
    ``llama_model.base_model.model.…lora_[AB].default.weight`` -> ``llm.base_model.model.…``;
    ``ln_speech`` and ``ln_audio`` keep their names.
    """
    converted, ignored, unknown = {}, [], []
    for name, tensor in state.items():
        if name.endswith(IGNORED_CHECKPOINT_SUFFIXES):
            ignored.append(name)
            continue
        new = None
        if name == "speech_query_tokens":
            new = "query_tokens"
        elif name.startswith(("ln_speech.", "ln_audio.")):
            new = name
        elif name.startswith("speech_llama_proj."):
            new = "proj." + name.removeprefix("speech_llama_proj.")
        elif name.startswith(_OFFICIAL_QFORMER + "embeddings.LayerNorm."):
            new = "qformer.layernorm." + name.rsplit(".", 1)[1]
        elif name.startswith(_OFFICIAL_QFORMER + "encoder.layer."):
            rest = name.removeprefix(_OFFICIAL_QFORMER)
            rest = rest.replace(".attention.self.", ".attention.attention.")
            rest = rest.replace(".crossattention.self.", ".crossattention.attention.")
            new = "qformer." + rest
        elif name.startswith(_OFFICIAL_LLM) and ".lora_" in name:
            new = "llm." + name.removeprefix(_OFFICIAL_LLM)
        if new is None:
            unknown.append(name)
        else:
            converted[new] = tensor
    return converted, ignored, unknown


def official_name(name: str) -> str:
    """The official checkpoint name of one of this port's trainable parameters (the inverse of
    ``convert_official_state``)."""
    if name == "query_tokens":
        return "speech_query_tokens"
    if name.startswith("proj."):
        return "speech_llama_proj." + name.removeprefix("proj.")
    if name.startswith("qformer.layernorm."):
        return _OFFICIAL_QFORMER + "embeddings.LayerNorm." + name.rsplit(".", 1)[1]
    if name.startswith("qformer."):
        rest = name.removeprefix("qformer.")
        rest = rest.replace(".crossattention.attention.", ".crossattention.self.")
        rest = rest.replace(".attention.attention.", ".attention.self.")
        return _OFFICIAL_QFORMER + rest
    if name.startswith("llm."):
        return _OFFICIAL_LLM + name.removeprefix("llm.")
    return name


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model: the message lists every problem."""


def load_official_state(model: SalmonnModel, state: dict[str, torch.Tensor], what: str) -> dict:
    """Set every trainable SALMONN parameter from an official checkpoint state dict; refuse (listing
    missing, unexpected and wrong-shape names together) unless each is set exactly once with the
    right shape."""
    converted, ignored, unknown = convert_official_state(state)
    own = dict(model.named_parameters())
    expected = {n: own[n] for n in model.trainable_state_names()}
    # problems are listed under the official names (what the user's file holds)
    problems = _state_problems({official_name(n): t for n, t in expected.items()},
                               {**{official_name(n): t for n, t in converted.items()},
                                **{n: state[n] for n in unknown}})
    if problems:
        raise CheckpointError(f"{what} does not match the SALMONN model built from the Whisper, "
                              f"BEATs and LLM configurations:\n{problems}")
    with torch.no_grad():
        for name, tensor in converted.items():
            expected[name].copy_(tensor.to(dtype=expected[name].dtype))
    return {"set": len(converted), "ignored_buffers": sorted(ignored)}


def load_tensor_file(path: str | Path, what: str) -> dict[str, Any]:
    """``torch.load(..., weights_only=True)``: tensors, dicts, lists and plain values only; any
    other pickled object is refused (a checkpoint must never run code)."""
    import pickle

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"refusing {what} {str(path)!r}: it holds objects other than tensors and plain "
            f"containers, and only weights are read (torch.load weights_only=True): {error}"
            ) from error


def _state_of(obj: Any, what: str, key: str = "model") -> dict[str, torch.Tensor]:
    state = obj.get(key, obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not state or \
            not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{what} holds no state dict of tensors (expected a dict with "
                              f"{key!r} -> {{name: tensor}})")
    return state


# --------------------------------------------------------------------------------------------------
# Tokenizer and builds


def build_offline_tokenizer():
    """The real ``LlamaTokenizer`` class (Metaspace, byte fallback) over a small vocabulary built
    with no download: <unk> <s> </s>, the 256 byte tokens, the Metaspace mark and printable ASCII."""
    from transformers import LlamaTokenizer

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for char in "\u2581" + "".join(chr(c) for c in range(33, 127)):
        vocab.setdefault(char, len(vocab))
    with quiet_transformers():
        return LlamaTokenizer(vocab=vocab, merges=[])


def build_feature_extractor(num_mel_bins: int = 80):
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=num_mel_bins, sampling_rate=SAMPLING_RATE,
                                   hop_length=160, chunk_length=30)


def _build_random(seed: int, settings: dict | None, device: str, dtype: torch.dtype):
    tokenizer = build_offline_tokenizer()
    config = tiny_config(len(tokenizer), settings)
    check_fits("random SALMONN", estimate_parameters(config), dtype, device)
    with torch.random.fork_rng(devices=[]), quiet_transformers():
        torch.manual_seed(seed)
        # random LoRA A and B (peft's default B = 0 would make the adapters a no-op)
        model = SalmonnModel(config, init_lora_weights=False)
    info = {"weights": f"random (seed {seed}) for tests/demos only",
            "tokenizer": "LlamaTokenizer over a byte-fallback vocabulary built offline",
            "random_config": settings or TINY_RANDOM_CONFIG}
    return model, tokenizer, build_feature_extractor(config.whisper.num_mel_bins), info


def _find_one(folder: Path, patterns: Sequence[str], what: str, *, dirs: bool = False) -> Path | None:
    found = sorted({p for pattern in patterns for p in folder.glob(pattern)
                    if (p.is_dir() if dirs else p.is_file())})
    if len(found) > 1:
        raise FileNotFoundError(f"{folder} has several {what} ({', '.join(p.name for p in found)}); "
                                "keep one or pass it explicitly")
    return found[0] if found else None


def resolve_files(source: str | Path, *, whisper: str | None = None, llm: str | None = None,
                  beats: str | None = None) -> dict[str, str]:
    """Where each part comes from (see docs/models/salmonn.md for the folder layout)."""
    path = Path(source).expanduser()
    if path.is_file():
        checkpoint, folder = path, path.parent
    elif path.is_dir():
        folder = path
        checkpoint = _find_one(path, ("salmonn*.pth", "salmonn*.pt"), "SALMONN checkpoints")
        if checkpoint is None:
            raise FileNotFoundError(f"{path} has no salmonn*.pth / salmonn*.pt (the SALMONN "
                                    "checkpoint, e.g. salmonn_v1.pth)")
    else:
        raise FileNotFoundError(f"SALMONN source {str(source)!r} is neither a checkpoint file nor "
                                "a folder")
    beats_path = Path(beats) if beats else _find_one(
        folder, ("BEATs*.pt", "beats*.pt", "BEATs*.pth", "beats*.pth"), "BEATs checkpoints")
    if beats_path is None:
        raise FileNotFoundError(f"no BEATs checkpoint: put BEATs_iter3_plus_AS2M_finetuned_on_AS2M_"
                                f"cpt2.pt in {folder} or pass beats=<path>")
    whisper_src = whisper or _find_one(folder, ("whisper*",), "Whisper folders", dirs=True)
    llm_src = llm or _find_one(folder, ("vicuna*", "llama*", "llm"), "LLM folders", dirs=True)
    return {"checkpoint": str(checkpoint), "beats": str(beats_path),
            "whisper": str(whisper_src) if whisper_src else WHISPER_HUB_ID,
            "llm": str(llm_src) if llm_src else ""}


def _load_pretrained(source: str, device: str, dtype: torch.dtype, *, whisper: str | None,
                     llm: str | None, beats: str | None, lora_alpha: int):
    from transformers import (
        AutoConfig,
        AutoTokenizer,
        LlamaForCausalLM,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperModel,
    )

    files = resolve_files(source, whisper=whisper, llm=llm, beats=beats)
    state = _state_of(load_tensor_file(files["checkpoint"], "SALMONN checkpoint"),
                      "SALMONN checkpoint")
    beats_obj = load_tensor_file(files["beats"], "BEATs checkpoint")
    if not isinstance(beats_obj, dict) or not isinstance(beats_obj.get("cfg"), dict):
        raise CheckpointError(f"BEATs checkpoint {files['beats']!r} has no 'cfg' dict (the official "
                              "files hold {'cfg': ..., 'model': ...})")
    beats_cfg = BEATsConfig.from_dict(beats_obj["cfg"])
    beats_state = _state_of(beats_obj, "BEATs checkpoint")
    for key in ("speech_llama_proj.weight", "speech_query_tokens"):
        if key not in state:
            raise CheckpointError(f"{files['checkpoint']!r} has no {key!r}: not a SALMONN checkpoint")
    proj = state["speech_llama_proj.weight"]
    llm_width, q_width = int(proj.shape[0]), int(proj.shape[1])
    if not files["llm"]:
        if llm_width != 5120:
            raise FileNotFoundError(
                f"the checkpoint projects into a {llm_width}-wide LLM; give its Vicuna with "
                "llm=<folder or hub id> or a vicuna* folder next to the checkpoint (only the 13B "
                f"release's Vicuna is known: {VICUNA_13B_HUB_ID})")
        files["llm"] = VICUNA_13B_HUB_ID
    try:
        whisper_config = WhisperConfig.from_pretrained(files["whisper"])
        llm_config = AutoConfig.from_pretrained(files["llm"])
    except OSError as error:
        raise OSError(f"could not read the Whisper ({files['whisper']!r}) or LLM ({files['llm']!r}) "
                      f"config ({error}); offline? download them where the hub is reachable and "
                      "put them next to the checkpoint (docs/models/salmonn.md)") from error
    if int(llm_config.hidden_size) != llm_width:
        raise CheckpointError(f"the checkpoint projects into a {llm_width}-wide LLM, but "
                              f"{files['llm']!r} is {llm_config.hidden_size} wide")
    layers = {int(k.split(".")[4]) for k in state
              if k.startswith(_OFFICIAL_QFORMER + "encoder.layer.")}
    inter = state.get(f"{_OFFICIAL_QFORMER}encoder.layer.0.intermediate_query.dense.weight")
    lora_a = [v for k, v in state.items() if ".lora_A." in k]
    if not layers or inter is None or not lora_a:
        raise CheckpointError(f"{files['checkpoint']!r} lacks the Q-Former layers or the LoRA "
                              "weights of a SALMONN checkpoint")
    targets = tuple(t for t in ("q_proj", "k_proj", "v_proj", "o_proj")
                    if any(f".{t}.lora_A." in k for k in state))
    config = SalmonnConfig(
        whisper=whisper_config, beats=beats_cfg,
        qformer=qformer_config(q_width, max(layers) + 1, int(inter.shape[0]),
                               whisper_config.d_model + beats_cfg.encoder_embed_dim),
        llm=llm_config, lora_rank=int(lora_a[0].shape[0]), lora_alpha=lora_alpha,
        lora_targets=targets, num_query_tokens=int(state["speech_query_tokens"].shape[1]))
    n_parameters = estimate_parameters(config)
    available = None
    if device == "cuda":  # device_map="auto" spreads the LLM over every visible GPU
        available = sum(torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count()))
    check_fits(f"SALMONN ({files['checkpoint']})", n_parameters, dtype, device, available=available)

    kwargs: dict[str, Any] = {"dtype": dtype}
    if device.startswith("cuda"):
        kwargs["device_map"] = "auto" if device == "cuda" else {"": device}
    with quiet_transformers():
        encoder = WhisperModel.from_pretrained(files["whisper"], dtype=dtype).encoder
        beats_model = BEATs(beats_cfg)
        load_beats_state(beats_model, beats_state, f"BEATs checkpoint {files['beats']!r}")
        base = LlamaForCausalLM.from_pretrained(files["llm"], **kwargs)
        model = SalmonnModel(config, whisper=encoder, beats=beats_model, llm=base)
    loaded = load_official_state(model, state, f"SALMONN checkpoint {files['checkpoint']!r}")
    tokenizer = AutoTokenizer.from_pretrained(files["llm"])
    features = WhisperFeatureExtractor.from_pretrained(files["whisper"])
    info = {"weights": f"SALMONN checkpoint {files['checkpoint']}", "files": files,
            "n_parameters_estimated": n_parameters, "device_map": kwargs.get("device_map"),
            "checkpoint_tensors_set": loaded["set"], "ignored_buffers": loaded["ignored_buffers"]}
    return model, tokenizer, features, info


# --------------------------------------------------------------------------------------------------
# Hooks


@contextmanager
def _reduce_layer_states(layers: nn.ModuleList | None, reduce: Callable[[torch.Tensor], Any],
                         *, include_input: bool = True) -> Iterator[list]:
    """``reduce`` applied to the input of the first block and each block's output the moment each
    is produced (only the reduced value is kept). Hooks are removed on exit, also on errors."""
    out: list = []
    if layers is None:
        yield out
        return

    def before_first(_module, args, kwargs):
        out.append(reduce(args[0] if args else kwargs["hidden_states"]))

    def after(_module, _args, _kwargs, output):
        out.append(reduce(output[0] if isinstance(output, tuple) else output))

    handles = []
    try:
        if include_input:
            handles.append(layers[0].register_forward_pre_hook(before_first, with_kwargs=True))
        handles += [layer.register_forward_hook(after, with_kwargs=True) for layer in layers]
        yield out
    finally:
        for handle in handles:
            handle.remove()


def _slicer(count: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    def reduce(hidden: torch.Tensor) -> torch.Tensor:
        rows = hidden[0] if count is None else hidden[0, :count]
        return rows.detach().to(device="cpu", dtype=torch.float32)
    return reduce


def _first_mask(lengths: Sequence[int], width: int, device) -> torch.Tensor:
    return torch.arange(width, device=device)[None, :] < torch.tensor(list(lengths),
                                                                      device=device)[:, None]


# --------------------------------------------------------------------------------------------------
# The adapter


class SalmonnAdapter(ModelAdapter):
    """SALMONN as ``whisper_encoder``, ``beats_encoder``, ``qformer``, ``llm_speech`` and
    ``llm_text`` (see the module docstring)."""

    poolings: tuple[Pooling, ...] = ("mean", "last")

    def __init__(self, model: SalmonnModel, tokenizer, feature_extractor, *, name: str, device: str,
                 dtype: torch.dtype = torch.float32, source: dict | None = None,
                 instruction: str = DEFAULT_INSTRUCTION, placed: bool = False):
        self.name = name
        self.device = device
        self.dtype = dtype
        if placed:  # the LLM is placed by device_map; the audio side goes to the first GPU
            for part in (model.whisper, model.beats, model.ln_speech, model.ln_audio,
                         model.qformer, model.proj):
                part.to(device="cuda" if device == "cuda" else device, dtype=dtype)
            model.query_tokens.data = model.query_tokens.data.to(model.proj.weight.device, dtype)
        else:
            model = model.to(device=device, dtype=dtype)
        self.model = model.eval()
        self.config = model.config
        self.tokenizer = tokenizer
        self.feature_extractor = feature_extractor
        self.instruction = instruction
        self._source = source or {}
        expected = 2 * self.config.whisper_frames
        if int(feature_extractor.nb_max_frames) != expected:
            raise ValueError(f"the Whisper encoder expects {expected} mel frames but the feature "
                             f"extractor gives {feature_extractor.nb_max_frames}")
        kernel, stride = self.config.window
        if kernel != stride:
            raise ValueError(f"this adapter supports non-overlapping windows (the official 17/17), "
                             f"not kernel {kernel} / stride {stride}")
        bos = tokenizer.bos_token_id
        if bos is None:
            raise ValueError("the LLM tokenizer has no BOS token; SALMONN starts every prompt "
                             "with it")
        self._bos_id = int(bos)
        self._pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                           else tokenizer.unk_token_id or 0)
        before, after = self._template_pieces()
        self._before_ids = tokenizer.encode(before, add_special_tokens=False)
        self._after_ids = tokenizer.encode(after, add_special_tokens=False)
        self._components = self._build_components()
        self._table_languages = _project_languages()

    # ---- description

    def _template_pieces(self) -> tuple[str, str]:
        """The official prompt split at ``<SpeechHere>`` (``prompt_wrap``)."""
        prompt = PROMPT_TEMPLATE.format(f"<Speech>{SPEECH_PLACEHOLDER}</Speech> "
                                        f"{self.instruction.strip()}")
        before, after = prompt.split(SPEECH_PLACEHOLDER)
        return before, after

    def conditioning(self) -> dict[str, Any]:
        before, after = self._template_pieces()
        return {
            "template": "<s>" + before + "{CONTENT}" + after,
            "speech_content": "the projected Q-Former windows (88 for the 30 s input)",
            "text_content": "{sentence}",
            "instruction": self.instruction,
            "source": "bytedance/SALMONN configs/decode_config.yaml prompt_template, "
                      "cli_inference.py, models/salmonn.py prompt_wrap/generate",
            "generation": "none: one forward pass over the prompt, no assistant reply is generated",
            "pooled_over": "content span only (clip windows / sentence tokens), never the template",
            "padding": "speech: none (all prompts have 88 windows); text: right, masked",
        }

    def _build_components(self) -> list[Component]:
        c = self.config
        n_w, n_b = c.whisper.encoder_layers, c.beats.encoder_layers
        n_q, n_llm = c.qformer.num_hidden_layers, c.llm.num_hidden_layers
        llm_names = [f"llm {i}" for i in range(1, n_llm + 1)]
        speech = path_points([
            ("frontend", ["conv+pos"]),
            ("encoder", [f"whisper {i}" for i in range(1, n_w + 1)] + ["ln_speech"]),
            ("encoder", ["frames (xattn values)"]),
            ("length_adaptor", [f"qformer {i}" for i in range(1, n_q + 1)]),
            ("projector", ["projector"]),
            ("llm", llm_names),
        ])
        whisper_points = speech[: n_w + 2]
        fused_depth = whisper_points[-1].depth
        beats_points = (stack_points(["patch+pos"], "frontend", start=0.0, end=0.0)
                        + stack_points([f"beats {i}" for i in range(1, n_b + 1)] + ["ln_audio"],
                                       "encoder", start=fused_depth / (n_b + 1), end=fused_depth))
        text = path_points([("frontend", ["embed"]), ("llm", llm_names)])
        llm_space = f"{self.name}/llm"
        conditioning = self.conditioning()
        kernel, stride = c.window
        window_note = {"window_frames": kernel, "stride_frames": stride,
                       "window_s": kernel * CHUNK_S / c.whisper_frames,
                       "queries_per_window": c.num_query_tokens}
        return [
            Component(
                name=WHISPER_ENCODER, modality="speech", dim=c.whisper.d_model,
                space=f"{self.name}/whisper_encoder", layers=whisper_points,
                description=("SALMONN's Whisper encoder: conv front end, each layer (20 ms frames), "
                             "then final LayerNorm + ln_speech (what the Q-Former reads); mean "
                             "over the clip's frames"),
                conditioning={"input": "30 s window (clips padded with silence, as the official "
                                       "code does); pooled over the clip's frames"},
            ),
            Component(
                name=BEATS_ENCODER, modality="speech", dim=c.beats.encoder_embed_dim,
                space=f"{self.name}/beats_encoder", layers=beats_points,
                description=("SALMONN's BEATs encoder: patch embedding + conv positions, each "
                             "layer (8 mel-band patches per 160 ms), then ln_audio"),
                conditioning={"input": "the clip itself (>= 1 s, <= 30 s), one clip per pass"},
            ),
            Component(
                name=QFORMER, modality="speech", dim=c.qformer.hidden_size,
                space=f"{self.name}/qformer", layers=speech[n_w + 2: n_w + 3 + n_q],
                description=("SALMONN's window-level Q-Former: the fused frames as its first "
                             "layer reads them (cross-attention values), then each layer's "
                             "output at the window queries (one per 17 frames = 0.34 s); mean "
                             "over the clip's frames / windows"),
                conditioning={"input": "Whisper ln_speech frames ++ BEATs ln_audio tokens "
                                       "(zero-padded), cut into windows", **window_note},
            ),
            Component(
                name=LLM_SPEECH, modality="speech", dim=c.llm.hidden_size, space=llm_space,
                layers=speech[n_w + 3 + n_q:],
                description=("SALMONN's LoRA Vicuna fed the clip in the official prompt: projector "
                             "output (= LLM input at the windows), then each decoder layer; pooled "
                             "over the clip's windows"),
                conditioning=conditioning,
            ),
            Component(
                name=LLM_TEXT, modality="text", dim=c.llm.hidden_size, space=llm_space,
                layers=text,
                description=("SALMONN's LoRA Vicuna fed the sentence in the same prompt: token "
                             "embeddings, then each decoder layer; pooled over the sentence tokens"),
                conditioning=conditioning,
            ),
        ]

    def components(self) -> list[Component]:
        return list(self._components)

    def modality_pairs(self) -> list[tuple[str, str]]:
        """The study compares the LLM given the text with the LLM given the speech."""
        return [(LLM_TEXT, LLM_SPEECH)]

    def info(self) -> dict:
        c = self.config
        kernel, stride = c.window
        return {
            "name": self.name,
            "family": "salmonn",
            "device": self.device,
            "dtype": str(self.dtype).removeprefix("torch."),
            **self._source,
            "template": self.conditioning(),
            "llm_final_norm": "not applied: LLM points are raw decoder-layer outputs",
            "whisper_final_norm": "applied only in the ln_speech point",
            "documented_speech_languages": list(DOCUMENTED_SPEECH_LANGUAGES),
            "architecture": {
                "whisper_layers": c.whisper.encoder_layers, "whisper_d_model": c.whisper.d_model,
                "beats_layers": c.beats.encoder_layers,
                "beats_dim": c.beats.encoder_embed_dim,
                "qformer_layers": c.qformer.num_hidden_layers,
                "qformer_hidden": c.qformer.hidden_size,
                "qformer_heads": c.qformer.num_attention_heads,
                "window_frames": kernel, "window_stride_frames": stride,
                "queries_per_window": c.num_query_tokens,
                "llm_layers": c.llm.num_hidden_layers, "llm_hidden": c.llm.hidden_size,
                "vocab_size": c.llm.vocab_size,
                "lora": {"rank": c.lora_rank, "alpha": c.lora_alpha,
                         "dropout": c.lora_dropout, "targets": list(c.lora_targets)},
                "n_parameters": count_parameters(self.model),
            },
            "versions": package_versions(("peft",)),
        }

    # ---- languages

    def supports_language(self, lang: str) -> bool:
        return lang in self._table_languages or lang in DOCUMENTED_SPEECH_LANGUAGES

    def documented_language(self, lang: str) -> bool:
        """Whether the official SALMONN prompts name ``lang``."""
        return lang in DOCUMENTED_SPEECH_LANGUAGES

    def _check_languages(self, langs: Sequence[str]) -> None:
        for lang in dict.fromkeys(langs):
            if not self.supports_language(lang):
                known = sorted(self._table_languages | set(DOCUMENTED_SPEECH_LANGUAGES))
                raise UnsupportedLanguageError(
                    f"unknown language {lang!r} for {self.name}: expected a FLORES-200 code of the "
                    f"project's language table ({', '.join(known)})")

    # ---- inputs

    def _prepare_waves(self, waves: Sequence[np.ndarray], sampling_rate: int) -> list[np.ndarray]:
        prepared = []
        for i, wave in enumerate(waves):
            wave = prepare_waveform(wave, i, sampling_rate, SAMPLING_RATE)
            if wave.size > MAX_SAMPLES:
                warnings.warn(f"waveform {i} lasts {wave.size / SAMPLING_RATE:.1f} s; SALMONN reads "
                              "30 s, so only its first 30 s are used", stacklevel=3)
                wave = wave[:MAX_SAMPLES]
            if wave.size < MIN_SAMPLES:  # the official code pads short clips with silence to 1 s
                wave = np.pad(wave, (0, MIN_SAMPLES - wave.size))
            prepared.append(wave)
        return prepared

    def lengths(self, wave: np.ndarray) -> SpeechLengths:
        return speech_lengths(wave.size, self.config)

    def _text_tokens(self, texts: Sequence[str]) -> list[list[int]]:
        rows = []
        for i, text in enumerate(texts):
            tokens = self.tokenizer.encode(text.strip(), add_special_tokens=False)
            if not tokens:
                raise ValueError(f"text {i} has no tokens; drop it before computing states")
            rows.append(tokens)
        return rows

    # ---- the audio side

    @property
    def _audio_device(self) -> torch.device:
        return self.model.proj.weight.device

    def _whisper_half(self, waves: list[np.ndarray], reduce=None):
        """ln_speech(Whisper(30 s mel)) (B, 1500, d) and the reduced points of whisper_encoder."""
        out = self.feature_extractor(waves, sampling_rate=SAMPLING_RATE, return_tensors="pt")
        whisper = self.model.whisper
        features = out["input_features"].to(self._audio_device, whisper.conv1.weight.dtype)
        with _reduce_layer_states(whisper.layers if reduce else None, reduce) as states:
            encoded = whisper(features).last_hidden_state
        half = self.model.ln_speech(encoded)
        if reduce:
            states.append(reduce(half))
        return half, states

    def _beats_half(self, waves: list[np.ndarray], reduce=None):
        """Per clip: ln_audio(BEATs(clip)) (tokens, d) and the reduced points of beats_encoder."""
        halves, per_clip = [], []
        beats = self.model.beats
        for wave in waves:
            fbank = torch.from_numpy(kaldi_fbank(wave, self.config.beats.num_mel_bins))
            fbank = fbank.to(device=self._audio_device, dtype=torch.float32)[None]
            with _reduce_layer_states(beats.layers if reduce else None, reduce) as states:
                encoded = beats.extract_features(fbank)
            half = self.model.ln_audio(encoded)
            if reduce:
                states.append(reduce(half))
            halves.append(half[0])
            per_clip.append(states)
        return halves, per_clip

    def _fuse(self, speech: torch.Tensor, audio: list[torch.Tensor]) -> torch.Tensor:
        """The official fusion: pad the shorter stream with zeros, concatenate per index."""
        frames = max(speech.shape[1], max(a.shape[0] for a in audio))
        speech = F.pad(speech, (0, 0, 0, frames - speech.shape[1]))
        audio_t = torch.stack([F.pad(a, (0, 0, 0, frames - a.shape[0])) for a in audio])
        return torch.cat([speech, audio_t.to(speech.dtype)], dim=-1)

    def _qformer(self, fused: torch.Tensor, reduce=None):
        """(B, L * queries, hq) window-query outputs. ``reduce`` = (on frames, on windows): the
        first sees layer 1's cross-attention values of the windowed frames as (B, L * k, hq), the
        second each layer's output as (B, L * queries, hq)."""
        kernel, stride = self.config.window
        windows = fused.unfold(1, kernel, stride).permute(0, 1, 3, 2)   # (B, L, k, C)
        batch, n_windows = windows.shape[:2]
        flat = windows.reshape(batch * n_windows, kernel, windows.shape[-1])
        queries = self.model.query_tokens.expand(flat.shape[0], -1, -1)
        layers = self.model.qformer.encoder.layer

        def regroup(hidden: torch.Tensor) -> torch.Tensor:
            return hidden.reshape(batch, -1, hidden.shape[-1])

        if reduce is None:
            out = self.model.qformer(query_embeds=queries, encoder_hidden_states=flat)
            return regroup(out.last_hidden_state), []
        on_frames, on_windows = reduce
        values = layers[0].crossattention.attention.value
        with record_output(values) as frames, _reduce_layer_states(
                layers, lambda h: on_windows(regroup(h)), include_input=False) as states:
            out = self.model.qformer(query_embeds=queries, encoder_hidden_states=flat)
        return regroup(out.last_hidden_state), [on_frames(regroup(frames[0])), *states]

    def _speech_path(self, waves: list[np.ndarray], component: str, reduce_factory):
        """Run as much of the audio side as ``component`` needs; the hooks of that component's
        points use ``reduce_factory(lengths)``. Returns (states, lengths, projected windows)."""
        lengths = [self.lengths(w) for w in waves]
        reduce = reduce_factory(lengths) if reduce_factory else None
        speech, w_states = self._whisper_half(
            waves, reduce if component == WHISPER_ENCODER else None)
        if component == WHISPER_ENCODER:
            return w_states, lengths, None
        audio, b_states = self._beats_half(waves, reduce if component == BEATS_ENCODER else None)
        if component == BEATS_ENCODER:
            return b_states, lengths, None
        windows, q_states = self._qformer(self._fuse(speech, audio),
                                          reduce if component == QFORMER else None)
        if component == QFORMER:
            return q_states, lengths, None
        return None, lengths, self.model.proj(windows)

    # ---- the LLM side

    def _embedding_device(self) -> torch.device:
        return self.model.llm_model.embed_tokens.weight.device

    def _rows(self, contents: list[list[int]]):
        """Right-padded ids, attention mask and content mask of ``<s> before CONTENT after``."""
        rows, spans = [], []
        for content in contents:
            start = 1 + len(self._before_ids)
            rows.append([self._bos_id, *self._before_ids, *content, *self._after_ids])
            spans.append((start, start + len(content)))
        width = max(len(r) for r in rows)
        limit = int(self.config.llm.max_position_embeddings)
        if width > limit:
            raise ValueError(f"a prompt has {width} tokens; the LLM holds {limit} positions")
        ids = torch.tensor([r + [self._pad_id] * (width - len(r)) for r in rows], dtype=torch.long)
        positions = torch.arange(width)[None, :]
        lengths = torch.tensor([len(r) for r in rows])[:, None]
        starts = torch.tensor([s for s, _ in spans])[:, None]
        ends = torch.tensor([e for _, e in spans])[:, None]
        return ids, (positions < lengths).long(), (positions >= starts) & (positions < ends)

    def text_ids(self, texts: Sequence[str]):
        """(ids, attention mask, sentence-token mask) of the text prompts."""
        return self._rows(self._text_tokens(texts))

    def _llm_inputs(self, component: str, items: list):
        """(ids, attention mask, content mask, input embeddings, lengths or None)."""
        embed = self.model.llm_model.embed_tokens
        if component == LLM_TEXT:
            ids, attention, content = self.text_ids(items)
            return ids, attention, content, embed(ids.to(self._embedding_device())), None
        _, lengths, projected = self._speech_path(items, LLM_SPEECH, None)
        n_slots = projected.shape[1]
        ids, attention, slots = self._rows([[self._pad_id] * n_slots for _ in items])
        embeds = embed(ids.to(self._embedding_device()))
        start = 1 + len(self._before_ids)
        embeds[:, start:start + n_slots] = projected.to(embeds.device, embeds.dtype)
        per_window = self.config.num_query_tokens
        content = torch.zeros_like(slots)
        for i, length in enumerate(lengths):
            content[i, start:start + length.windows * per_window] = True
        return ids, attention, content, embeds, lengths

    def _run_llm(self, embeds: torch.Tensor, attention: torch.Tensor, reduce) -> list:
        inner = self.model.llm_model
        with _reduce_layer_states(inner.layers, reduce) as states:
            inner(inputs_embeds=embeds, attention_mask=attention.to(embeds.device),
                  use_cache=False)
        return states

    # ---- batches

    def _pooled_batch(self, component: str, items: list, pooling: str
                      ) -> tuple[np.ndarray, np.ndarray]:
        comp = self.component(component)
        if component in (WHISPER_ENCODER, QFORMER):
            def masked(counts: list[int]):
                def reduce(hidden: torch.Tensor) -> torch.Tensor:
                    mask = _first_mask(counts, hidden.shape[1], hidden.device)
                    return pool(hidden, mask, pooling).cpu()
                return reduce

            def factory(lengths: list[SpeechLengths]):
                if component == WHISPER_ENCODER:
                    return masked([x.whisper_frames for x in lengths])
                per = self.config.num_query_tokens
                return (masked([x.fused_frames for x in lengths]),
                        masked([x.windows * per for x in lengths]))
            states, lengths, _ = self._speech_path(items, component, factory)
            if component == WHISPER_ENCODER:
                counts = [[x.whisper_frames] * comp.n_layers for x in lengths]
            else:
                per = self.config.num_query_tokens
                counts = [[x.fused_frames] + [x.windows * per] * (comp.n_layers - 1)
                          for x in lengths]
        elif component == BEATS_ENCODER:
            def factory(_lengths):
                def reduce(hidden: torch.Tensor) -> torch.Tensor:
                    mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
                    return pool(hidden, mask, pooling).cpu()
                return reduce
            per_clip, lengths, _ = self._speech_path(items, component, factory)
            states = [torch.cat([clip[p] for clip in per_clip]) for p in range(comp.n_layers)]
            counts = [[x.beats_tokens] * comp.n_layers for x in lengths]
        else:
            _, attention, content, embeds, _ = self._llm_inputs(component, items)
            states = self._run_llm(embeds, attention,
                                   lambda h: pool(h, content.to(h.device), pooling).cpu())
            counts = [[int(n)] * comp.n_layers for n in content.sum(dim=1).tolist()]
        pooled = torch.stack([s.float() for s in states], dim=1).numpy()
        return pooled, np.asarray(counts, dtype=np.int64)

    # ---- the interface

    def extract(self, component: str, inputs: Sequence[str] | Sequence[np.ndarray],
                langs: Sequence[str], *, sampling_rate: int = SAMPLING_RATE, batch_size: int = 8,
                pooling: Pooling = "mean") -> Extraction:
        comp = self.component(component)
        self.check_pooling(pooling)
        check_inputs(comp, inputs, langs)
        self._check_languages(langs)
        items = (self._prepare_waves(inputs, sampling_rate) if comp.modality == "speech" and
                 len(inputs) else list(inputs))
        return extract_in_batches(comp, items, batch_size,
                                  lambda part: self._pooled_batch(component, part, pooling))

    def token_counts(self, texts: Sequence[str], langs: Sequence[str]) -> list[int]:
        """Sentence tokens ``llm_text`` pools over (the text-side length for length baselines)."""
        check_inputs(self.component(LLM_TEXT), texts, langs)
        self._check_languages(langs)
        return [len(tokens) for tokens in self._text_tokens(texts)]

    def token_states(self, component: str, item: str | np.ndarray, lang: str, *,
                     sampling_rate: int = SAMPLING_RATE) -> TokenStates:
        """Per point (positions, dim). ``whisper_encoder``: the clip's frames (times every 20 ms);
        ``beats_encoder``: the clip's tokens, labelled by patch start and mel band, times = the
        20 ms slot SALMONN concatenates each with (patch start + band x 20 ms); ``qformer``: all
        88 windows, the clip's pooled; ``llm_*``: the whole prompt, pooled_mask = the content."""
        comp = self.component(component)
        check_inputs(comp, [item], [lang])
        self._check_languages([lang])
        with torch.inference_mode(), quiet_transformers():
            items = self._prepare_waves([item], sampling_rate) if comp.modality == "speech" \
                else [item]
            if component in (WHISPER_ENCODER, BEATS_ENCODER, QFORMER):
                length = self.lengths(items[0])
                slicer = (_slicer(), _slicer()) if component == QFORMER else _slicer()
                states, _, _ = self._speech_path(items, component, lambda _l: slicer)
                return self._audio_token_states(comp, states, length)
            ids, attention, content, embeds, lengths = self._llm_inputs(component, items)
            layers = self._run_llm(embeds, attention, _slicer())
        mask = content[0].numpy()
        labels = [self.tokenizer.decode([int(i)]) for i in ids[0]]
        times: np.ndarray | None = None
        if component == LLM_SPEECH:
            start = 1 + len(self._before_ids)
            n_slots = lengths[0].total_windows * self.config.num_query_tokens
            times = np.full(len(mask), np.nan)
            times[start:start + n_slots] = self._window_times(n_slots)
            labels[start:start + n_slots] = [f"<window {k}>" for k in range(n_slots)]
        return TokenStates(component, [s.numpy() for s in layers], [list(labels) for _ in layers],
                           [None if times is None else times.copy() for _ in layers],
                           [mask.copy() for _ in layers])

    def _window_times(self, n_slots: int) -> np.ndarray:
        _kernel, stride = self.config.window
        frame_s = CHUNK_S / self.config.whisper_frames
        per = self.config.num_query_tokens
        return (np.arange(n_slots) // per) * stride * frame_s + (np.arange(n_slots) % per) * 1e-3

    def _audio_token_states(self, comp: Component, states, length: SpeechLengths) -> TokenStates:
        frame_s = CHUNK_S / self.config.whisper_frames
        if comp.name == WHISPER_ENCODER:
            layers = [s[: length.whisper_frames].numpy() for s in states]
            times = np.arange(length.whisper_frames) * frame_s
            labels = [f"{t:.2f}s" for t in times]
            masks = [np.ones(len(times), dtype=bool) for _ in layers]
        elif comp.name == BEATS_ENCODER:
            layers = [s.numpy() for s in states[0]]
            cfg = self.config.beats
            bands = cfg.num_mel_bins // cfg.input_patch_size
            patch_s = cfg.input_patch_size * 0.01
            index = np.arange(layers[0].shape[0])
            times = index * (patch_s / bands)
            labels = [f"{(i // bands) * patch_s:.2f}s band {i % bands}" for i in index]
            masks = [np.ones(len(index), dtype=bool) for _ in layers]
        else:
            layers = [s.numpy() for s in states]
            frames = np.arange(layers[0].shape[0]) * frame_s
            frame_mask = np.arange(len(frames)) < length.fused_frames
            n_slots = layers[1].shape[0]
            windows = self._window_times(n_slots)
            window_mask = np.arange(n_slots) < length.windows * self.config.num_query_tokens
            labels = [[f"{t:.2f}s" for t in frames]] + \
                [[f"window {k} ({t:.2f}s)" for k, t in enumerate(windows)]] * (len(layers) - 1)
            times_list = [frames] + [windows] * (len(layers) - 1)
            masks = [frame_mask] + [window_mask.copy() for _ in layers[1:]]
            return TokenStates(comp.name, layers, [list(x) for x in labels],
                               [t.astype(np.float64) for t in times_list], masks)
        return TokenStates(comp.name, layers, [list(labels) for _ in layers],
                           [times.astype(np.float64) for _ in layers], masks)


def _project_languages() -> set[str]:
    try:
        from core.languages import ALIASES, known_languages
    except ImportError:  # the language table is optional for this adapter
        return set()
    return set(known_languages()) | set(ALIASES)


# --------------------------------------------------------------------------------------------------
# Factory (called by core/models/registry.py)


def load_salmonn(*, name: str, device: str | None = None, source: str | None = None,
                 random: bool = False, dtype: str | torch.dtype | None = None, seed: int = 0,
                 random_config: dict | None = None, whisper: str | None = None,
                 llm: str | None = None, beats: str | None = None, lora_alpha: int = LORA_ALPHA,
                 instruction: str = DEFAULT_INSTRUCTION, progress: bool = True) -> SalmonnAdapter:
    """The released SALMONN (``source``: a folder holding ``salmonn*.pth``, the BEATs checkpoint
    and optionally ``whisper*/`` and ``vicuna*/`` folders, or the checkpoint file itself;
    ``whisper``/``llm``/``beats`` override where each part comes from: local folders or hub ids)
    or a tiny random model (``random=True``, seeded, built offline). bf16 + ``device_map="auto"``
    on CUDA by default, float32 on CPU; refused before loading when it cannot fit. ``progress`` is
    accepted for the registry's callers."""
    del progress
    if random == (source is not None):
        raise ValueError("give exactly one of source=<SALMONN folder or checkpoint> or random=True")
    device = pick_device(device)
    resolved = pick_dtype(dtype, device, default_cuda=torch.bfloat16)
    if random:
        model, tokenizer, features, info = _build_random(seed, random_config, device, resolved)
        return SalmonnAdapter(model, tokenizer, features, name=name, device=device,
                              dtype=resolved, source=info, instruction=instruction)
    model, tokenizer, features, info = _load_pretrained(
        str(source), device, resolved, whisper=whisper, llm=llm, beats=beats,
        lora_alpha=lora_alpha)
    return SalmonnAdapter(model, tokenizer, features, name=name, device=device, dtype=resolved,
                          source=info, instruction=instruction, placed=device.startswith("cuda"))
