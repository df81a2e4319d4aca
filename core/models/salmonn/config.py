"""SALMONN's configuration: every block's settings, the official constants, sizes and lengths.

``SalmonnConfig`` gathers the Whisper, BEATs, Q-Former and LLM configurations with SALMONN's own
settings (LoRA, windows); ``speech_lengths`` gives the number of positions each point of the
speech path holds for a clip (see the package docstring for the formulas' meaning).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from core.models.common import DTYPE_BYTES, meta_parameter_count
from core.models.salmonn.beats import BEATs, BEATsConfig, token_count
from core.models.speech_llm import SAMPLING_RATE

#: branch ``salmonn`` ``utils.prepare_one_sample``: pad to at least 1 s, cut at 30 s (the v1
#: release's ``model.py`` only cuts; see ``pad_to_minimum``)
MIN_SAMPLES = SAMPLING_RATE
MAX_SAMPLES = 30 * SAMPLING_RATE
CHUNK_S = 30.0

#: official configs/decode_config.yaml
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


def pad_to_minimum(wave: np.ndarray) -> np.ndarray:
    """``wave`` with silence (zeros) appended up to exactly ``MIN_SAMPLES`` (1 s) when shorter;
    longer clips are returned unchanged.

    A choice between the two official codes: the ``salmonn`` branch, whose ``cli_inference.py``
    and ``utils.prepare_one_sample`` are the maintained inference path, pads so; the v1 release
    (commit ``8eaed6d``, ``model.py`` ``generate``) does not. Whisper reads 30 s either way, but
    BEATs reads the clip itself, so for a clip under 1 s the two give different BEATs tokens (48
    instead of fewer, every one changed by the extra silence it attends to), and the pooled spans
    here (``speech_lengths``) cover the padded second.
    """
    if wave.size >= MIN_SAMPLES:
        return wave
    return np.concatenate([wave, np.zeros(MIN_SAMPLES - wave.size, dtype=wave.dtype)])


def prepared_length(n_samples: int) -> int:
    """Samples the model reads: at least 1 s (silence appended, ``pad_to_minimum``), at most
    30 s."""
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
