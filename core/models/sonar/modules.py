"""SONAR's encoders rebuilt from ``transformers`` modules plus the attention pooler written here:
the NLLB-200 text encoder (``M2M100Encoder``), the speech encoder (SeamlessM4T v1 conformer +
``AttentionPooler``), and seeded random weights for tests."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.models.common import quiet_transformers, record_layer_states
from core.models.sonar.config import SpeechEncoderConfig, TextEncoderConfig


def _m2m100_config(cfg: TextEncoderConfig):
    from transformers import M2M100Config

    with quiet_transformers():
        config = M2M100Config(
            vocab_size=cfg.vocab_size, d_model=cfg.model_dim, encoder_layers=cfg.num_layers,
            encoder_attention_heads=cfg.num_heads, encoder_ffn_dim=cfg.ffn_inner_dim,
            decoder_layers=1, decoder_attention_heads=cfg.num_heads, decoder_ffn_dim=8,
            activation_function="relu", scale_embedding=True, pad_token_id=cfg.pad_idx,
            max_position_embeddings=cfg.max_seq_len, dropout=0.0, attention_dropout=0.0,
            activation_dropout=0.0, encoder_layerdrop=0.0)
    config._attn_implementation = "eager"
    return config


def build_text_encoder(cfg: TextEncoderConfig) -> nn.Module:
    """transformers ``M2M100Encoder`` (embedding, sinusoidal positions, pre-LN layers, final LN)."""
    from transformers.models.m2m_100.modeling_m2m_100 import M2M100Encoder

    with quiet_transformers():
        return M2M100Encoder(_m2m100_config(cfg))


def _conformer_config(cfg: SpeechEncoderConfig):
    from transformers import SeamlessM4TConfig

    with quiet_transformers():
        config = SeamlessM4TConfig(
            vocab_size=8, hidden_size=cfg.model_dim, speech_encoder_layers=cfg.num_layers,
            speech_encoder_attention_heads=cfg.num_heads,
            speech_encoder_intermediate_size=cfg.ffn_inner_dim, speech_encoder_hidden_act="swish",
            speech_encoder_dropout=0.0, speech_encoder_layerdrop=0.0,
            feature_projection_input_dim=cfg.feature_dim, conv_depthwise_kernel_size=cfg.depthwise_kernel_size,
            position_embeddings_type="relative", max_source_positions=cfg.max_seq_len,
            layer_norm_eps=1e-5, add_adapter=False)
    config._attn_implementation = "eager"
    return config


class _Attention(nn.Module):
    """fairseq2 ``StandardMultiheadAttention`` (q/k/v/output projections with bias, 1/sqrt(d_head))."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, keys: torch.Tensor,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, q_len, dim = query.shape
        h = self.num_heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, -1, h, dim // h).transpose(1, 2)

        q, k, v = split(self.q_proj(query)), split(self.k_proj(keys)), split(self.v_proj(keys))
        mask = None if key_mask is None else key_mask.to(torch.bool)[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.output_proj(out.transpose(1, 2).reshape(b, q_len, dim))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.inner_proj = nn.Linear(dim, inner)
        self.output_proj = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_proj(F.relu(self.inner_proj(x)))


class PoolerLayer(nn.Module):
    """One post-LN decoder layer (fairseq2 ``StandardTransformerDecoderLayer``, norm order POST):
    x = LN(x + SelfAttn(x)); x = LN(x + CrossAttn(x, frames)); x = LN(x + FFN(x))."""

    def __init__(self, dim: int, num_heads: int, ffn_inner_dim: int):
        super().__init__()
        self.self_attn = _Attention(dim, num_heads)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.encoder_decoder_attn = _Attention(dim, num_heads)
        self.encoder_decoder_attn_layer_norm = nn.LayerNorm(dim)
        self.ffn = _FeedForward(dim, ffn_inner_dim)
        self.ffn_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, frames: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        x = self.self_attn_layer_norm(x + self.self_attn(x, x))
        x = self.encoder_decoder_attn_layer_norm(x + self.encoder_decoder_attn(x, frames, frame_mask))
        return self.ffn_layer_norm(x + self.ffn(x))


def sinusoidal_encoding(steps: torch.Tensor, dim: int) -> torch.Tensor:
    """fairseq2 ``SinusoidalPositionEncoder`` rows: [sin(s*f) | cos(s*f)], f_i = 10000^(-i/(dim/2-1))."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -math.log(10000.0) / (half - 1))
    angles = torch.outer(steps.to(torch.float32), freqs)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class AttentionPooler(nn.Module):
    """SONAR's ``AttentionEncoderOutputPooler`` (sonar/nn/encoder_pooler.py).

    The query is token ``bos_idx`` of a ``StandardEmbedding`` scaled by sqrt(dim) (fairseq2
    ``TransformerEmbeddingFrontend``) plus the sinusoidal encoding of position 0; it runs through
    the post-LN decoder layers (no final decoder LayerNorm under POST order), cross-attending to the
    encoder frames, and a bias-free ``projection_out`` gives the sentence embedding.
    """

    def __init__(self, cfg: SpeechEncoderConfig):
        super().__init__()
        dim = cfg.model_dim
        self.bos_idx = cfg.bos_idx
        self.scale = math.sqrt(dim)
        self.embed = nn.Embedding(cfg.pooler_num_embeddings, dim)
        self.layers = nn.ModuleList(PoolerLayer(dim, cfg.pooler_heads, cfg.pooler_ffn_inner_dim)
                                    for _ in range(cfg.pooler_layers))
        self.projection_out = nn.Linear(dim, dim, bias=False)
        self.register_buffer("position_0", sinusoidal_encoding(torch.zeros(1), dim),
                             persistent=False)

    def query(self, batch_size: int) -> torch.Tensor:
        row = self.embed.weight[self.bos_idx] * self.scale + self.position_0[0].to(self.embed.weight)
        return row.expand(batch_size, 1, -1)

    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor
                ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(the query after each layer, each (batch, 1, dim); the sentence embedding (batch, 1, dim))."""
        x = self.query(frames.shape[0])
        states = []
        for layer in self.layers:
            x = layer(x, frames, frame_mask)
            states.append(x)
        return states, self.projection_out(x)


class SpeechEncoder(nn.Module):
    """One SONAR speech encoder: feature projection + conformer (transformers' SeamlessM4T v1
    modules: relative positions, BatchNorm convolution, final LayerNorm = SONAR's ``layer_norm``)
    and the attention pooler."""

    def __init__(self, cfg: SpeechEncoderConfig):
        super().__init__()
        from transformers.models.seamless_m4t.modeling_seamless_m4t import (
            SeamlessM4TConformerEncoder,
            SeamlessM4TConformerFeatureProjection,
        )

        self.cfg = cfg
        config = _conformer_config(cfg)
        with quiet_transformers():
            self.feature_projection = SeamlessM4TConformerFeatureProjection(config)
            self.encoder = SeamlessM4TConformerEncoder(config)
        self.pooler = AttentionPooler(cfg)

    def forward(self, features: torch.Tensor, frame_mask: torch.Tensor, *, layers: bool = True):
        """(frontend + conformer states or None, pooler query states, sentence embedding)."""
        hidden = self.feature_projection(features)
        if layers:
            with record_layer_states(self.encoder.layers, include_input=True) as recorded:
                frames = self.encoder(hidden, attention_mask=frame_mask.long())
            recorded = list(recorded)
        else:
            recorded = None
            frames = self.encoder(hidden, attention_mask=frame_mask.long())
        queries, sentence = self.pooler(frames, frame_mask.bool())
        return recorded, queries, sentence


def init_random(module: nn.Module, seed: int) -> nn.Module:
    """Random weights (normal 0.02, LayerNorm gain 1 + noise, BatchNorm statistics random) from a
    seed; transformers' own init of these modules depends on the global RNG, this does not."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            if tensor.dtype == torch.long:
                continue
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=gen))
            elif name.endswith("running_mean"):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=gen))
            elif ("layer_norm" in name or "batch_norm" in name) and name.endswith("weight"):
                tensor.copy_(1.0 + 0.1 * torch.randn(tensor.shape, generator=gen))
            elif isinstance(tensor, nn.Parameter):
                tensor.copy_(0.02 * torch.randn(tensor.shape, generator=gen)
                             * (5.0 if "embed" in name else 1.0))
    return module
