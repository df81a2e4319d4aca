"""BEATs audio encoder (Chen et al. 2022, microsoft/unilm ``beats/``), written for this project.

SALMONN's second audio encoder. transformers has no BEATs, so this file holds a port of the
inference path the official code runs (``BEATs.extract_features(..., feature_only=True)``),
written from reading ``beats/BEATs.py`` and ``beats/backbone.py`` (the copies in
bytedance/SALMONN ``models/beats/`` are the same files):

1. **Kaldi filterbank** (``kaldi_fbank``): 128 log-mel bins, 25 ms frames every 10 ms, Povey
   window, pre-emphasis 0.97, DC offset removed, 512-point FFT power spectrum, Kaldi mel banks from
   20 Hz to Nyquist, ``snip_edges`` (``1 + (n - 400) // 160`` frames), on the waveform scaled by
   2**15, then normalised ``(fbank - 15.41663) / (2 * 6.55582)``: what ``BEATs.preprocess`` gets
   from ``torchaudio.compliance.kaldi.fbank`` (torchaudio is not a dependency here).
2. **Patch embedding**: a 16 x 16 convolution with stride 16 over (time, mel), so 128 mel bins give
   8 bands per 160 ms; patches are flattened time-major (``t0 b0 .. t0 b7, t1 b0 ..``), i.e. 50
   tokens a second, then LayerNorm and (when the widths differ) a linear projection.
3. **Transformer encoder**: a weight-normed grouped convolutional position embedding (kernel 128,
   16 groups, SamePad, GELU) added to the input, LayerNorm (post-LN model), then post-LN layers
   with DeepNorm residual scaling (``alpha = (2 * layers) ** 0.25``) and self-attention with a
   bucketed relative position bias (computed once from layer 0's table, which all layers share)
   scaled per query by a learnt GRU-style gate (``gru_rel_pos``).

The official attention scales queries by 1/32 and rescales the shifted scores by 32 (a float16
trick); softmax is shift-invariant, so this port computes ``softmax(q.k * scale + gated bias)`` in
float32, which is the same function.

Module and parameter names follow the official ones, so an official checkpoint's ``model`` state
dict loads as is (including ``encoder.pos_conv.0.weight_g``/``weight_v`` of the weight norm and the
per-layer copies of the shared ``relative_attention_bias``). The fine-tuned classification head
(``predictor``) is built when the checkpoint has one but never run (SALMONN uses features only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FBANK_MEAN = 15.41663
FBANK_STD = 6.55582
SAMPLE_RATE = 16_000
FRAME_LENGTH = 400   # 25 ms
FRAME_SHIFT = 160    # 10 ms
N_FFT = 512


@dataclass
class BEATsConfig:
    """The official ``BEATsConfig`` fields this port reads (defaults as in the official class)."""

    input_patch_size: int = 16
    embed_dim: int = 512
    conv_bias: bool = False
    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_norm_first: bool = False
    deep_norm: bool = False
    conv_pos: int = 128
    conv_pos_groups: int = 16
    relative_position_embedding: bool = False
    num_buckets: int = 320
    max_distance: int = 1280
    gru_rel_pos: bool = False
    finetuned_model: bool = False
    predictor_class: int = 527
    num_mel_bins: int = 128

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> BEATsConfig:
        """From a checkpoint's ``cfg`` dict; keys this port does not use (dropouts, layer-drop,
        gradient-decay ratio) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in dict(cfg).items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------------------------------
# Front end


def _mel_scale(freq: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


def kaldi_mel_banks(num_bins: int = 128, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT,
                    low_freq: float = 20.0) -> np.ndarray:
    """(num_bins, n_fft // 2 + 1) triangular Kaldi mel filters (no VTLN), last FFT bin zero."""
    nyquist = sample_rate / 2
    mel_low, mel_high = _mel_scale(low_freq), _mel_scale(nyquist)
    delta = (mel_high - mel_low) / (num_bins + 1)
    bins = np.arange(num_bins, dtype=np.float64)[:, None]
    left, center, right = mel_low + bins * delta, mel_low + (bins + 1) * delta, \
        mel_low + (bins + 2) * delta
    mel = _mel_scale(sample_rate / n_fft * np.arange(n_fft // 2, dtype=np.float64))[None, :]
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = np.maximum(0.0, np.minimum(up, down))
    return np.pad(banks, ((0, 0), (0, 1)))


def fbank_frame_count(n_samples: int) -> int:
    """Frames of the Kaldi filterbank (snip_edges): ``1 + (n - 400) // 160``, 0 below 25 ms."""
    return 0 if n_samples < FRAME_LENGTH else 1 + (n_samples - FRAME_LENGTH) // FRAME_SHIFT


def kaldi_fbank(wave: np.ndarray, num_mel_bins: int = 128) -> np.ndarray:
    """(frames, num_mel_bins) float64 log-mel filterbank of a 16 kHz waveform in [-1, 1], scaled
    and normalised as ``BEATs.preprocess`` does (see the module docstring)."""
    x = np.asarray(wave, dtype=np.float64) * 2 ** 15
    n = fbank_frame_count(x.size)
    if n == 0:
        raise ValueError(f"a waveform of {x.size} samples is shorter than one 25 ms frame")
    index = np.arange(FRAME_LENGTH)[None, :] + FRAME_SHIFT * np.arange(n)[:, None]
    frames = x[index]
    frames = frames - frames.mean(axis=1, keepdims=True)
    previous = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    frames = frames - 0.97 * previous
    window = np.hanning(FRAME_LENGTH) ** 0.85  # symmetric Hann ** 0.85: Kaldi's Povey window
    frames = frames * window[None, :]
    spectrum = np.abs(np.fft.rfft(frames, n=N_FFT, axis=1)) ** 2
    energies = spectrum @ kaldi_mel_banks(num_mel_bins).T
    log = np.log(np.maximum(energies, np.finfo(np.float32).eps))
    return (log - FBANK_MEAN) / (2 * FBANK_STD)


def token_count(n_samples: int, cfg: BEATsConfig) -> int:
    """BEATs tokens for a waveform: (fbank frames // patch) time patches x (mel bins // patch)."""
    patch = cfg.input_patch_size
    return (fbank_frame_count(n_samples) // patch) * (cfg.num_mel_bins // patch)


# --------------------------------------------------------------------------------------------------
# Encoder


class _WeightNormConv1d(nn.Module):
    """``nn.utils.weight_norm(Conv1d, dim=2)`` with its two parameters named as the official
    checkpoint names them (``weight_g`` (1, 1, k), ``weight_v``)."""

    def __init__(self, channels: int, kernel: int, groups: int):
        super().__init__()
        self.padding, self.groups = kernel // 2, groups
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.weight_v = nn.Parameter(torch.empty(channels, channels // groups, kernel))
        self.bias = nn.Parameter(torch.zeros(channels))
        nn.init.normal_(self.weight_v, std=math.sqrt(4.0 / (kernel * channels)))
        with torch.no_grad():
            self.weight_g.copy_(self.weight_v.norm(dim=(0, 1), keepdim=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = torch._weight_norm(self.weight_v, self.weight_g, 2)
        return F.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


class _PositionalConv(nn.Module):
    """conv (index 0, as in the official ``nn.Sequential``) -> SamePad -> GELU."""

    def __init__(self, channels: int, kernel: int, groups: int):
        super().__init__()
        self.add_module("0", _WeightNormConv1d(channels, kernel, groups))
        self.remove = 1 if kernel % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        y = getattr(self, "0")(x)
        if self.remove:
            y = y[:, :, : -self.remove]
        return F.gelu(y)


class BEATsAttention(nn.Module):
    def __init__(self, cfg: BEATsConfig, has_relative_bias: bool):
        super().__init__()
        dim, heads = cfg.encoder_embed_dim, cfg.encoder_attention_heads
        self.num_heads, self.head_dim = heads, dim // heads
        self.scaling = self.head_dim ** -0.5
        self.num_buckets, self.max_distance = cfg.num_buckets, cfg.max_distance
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        if has_relative_bias:
            self.relative_attention_bias = nn.Embedding(cfg.num_buckets, heads)
        self.gru_rel_pos = cfg.gru_rel_pos
        if self.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, heads, 1, 1))

    def _buckets(self, relative: torch.Tensor) -> torch.Tensor:
        half = self.num_buckets // 2
        buckets = (relative > 0).long() * half
        distance = relative.abs()
        exact = half // 2
        large = exact + (torch.log(distance.float().clamp(min=1) / exact)
                         / math.log(self.max_distance / exact) * (half - exact)).long()
        large = large.clamp(max=half - 1)
        return buckets + torch.where(distance < exact, distance, large)

    def position_bias(self, length: int) -> torch.Tensor:
        """(heads, length, length) relative position bias from this layer's table."""
        positions = torch.arange(length, device=self.relative_attention_bias.weight.device)
        relative = positions[None, :] - positions[:, None]   # memory - context
        return self.relative_attention_bias(self._buckets(relative)).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None,
                position_bias: torch.Tensor | None) -> torch.Tensor:
        batch, length, dim = x.shape
        shape = (batch, length, self.num_heads, self.head_dim)
        q = self.q_proj(x).view(shape).transpose(1, 2).float()
        k = self.k_proj(x).view(shape).transpose(1, 2).float()
        v = self.v_proj(x).view(shape).transpose(1, 2)
        scores = (q * self.scaling) @ k.transpose(-1, -2)          # (B, H, L, L)
        if position_bias is not None:
            bias = position_bias.float()[None]
            if self.gru_rel_pos:
                gates = self.grep_linear(q.to(x.dtype)).float().view(batch, self.num_heads,
                                                                     length, 2, 4).sum(-1)
                gate_a, gate_b = torch.sigmoid(gates).chunk(2, dim=-1)
                bias = (gate_a * (gate_b * self.grep_a.float() - 1.0) + 2.0) * bias
            scores = scores + bias
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1).to(v.dtype)
        out = (weights @ v).transpose(1, 2).reshape(batch, length, dim)
        return self.out_proj(out)


class BEATsLayer(nn.Module):
    """One post-LN (or pre-LN, ``layer_norm_first``) transformer layer; returns a tuple
    ``(hidden, position_bias)`` so the bias computed in layer 0 travels to the next layers."""

    def __init__(self, cfg: BEATsConfig, has_relative_bias: bool):
        super().__init__()
        dim = cfg.encoder_embed_dim
        if cfg.activation_fn != "gelu":
            raise ValueError(f"this BEATs port supports activation_fn 'gelu', not "
                             f"{cfg.activation_fn!r}")
        self.self_attn = BEATsAttention(cfg, has_relative_bias)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, cfg.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.layer_norm_first = cfg.layer_norm_first
        self.alpha = math.pow(2 * cfg.encoder_layers, 0.25) if cfg.deep_norm else 1.0
        self.has_relative_bias = has_relative_bias

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None,
                position_bias: torch.Tensor | None = None):
        if self.has_relative_bias and position_bias is None:
            position_bias = self.self_attn.position_bias(x.shape[1])
        if self.layer_norm_first:
            x = x + self.self_attn(self.self_attn_layer_norm(x), key_padding_mask, position_bias)
            x = x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))
        else:
            x = self.self_attn_layer_norm(
                x * self.alpha + self.self_attn(x, key_padding_mask, position_bias))
            x = self.final_layer_norm(x * self.alpha + self.fc2(F.gelu(self.fc1(x))))
        return x, position_bias


class BEATsEncoder(nn.Module):
    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        dim = cfg.encoder_embed_dim
        self.pos_conv = _PositionalConv(dim, cfg.conv_pos, cfg.conv_pos_groups)
        self.layers = nn.ModuleList([BEATsLayer(cfg, cfg.relative_position_embedding)
                                     for _ in range(cfg.encoder_layers)])
        if cfg.relative_position_embedding:
            # one table shared by every layer, as the official encoder does (its state dict then
            # lists the same tensor under every layer's name)
            for layer in self.layers[1:]:
                layer.self_attn.relative_attention_bias = \
                    self.layers[0].self_attn.relative_attention_bias
        self.layer_norm = nn.LayerNorm(dim)
        self.layer_norm_first = cfg.layer_norm_first

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if padding_mask is not None:
            x = x.masked_fill(padding_mask[..., None], 0.0)
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        bias = None
        for layer in self.layers:
            x, bias = layer(x, padding_mask, bias)
        if self.layer_norm_first:
            x = self.layer_norm(x)
        return x


class BEATs(nn.Module):
    """The BEATs model: ``extract_features(fbank)`` gives (batch, tokens, encoder_embed_dim)."""

    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        self.cfg = cfg
        patch = cfg.input_patch_size
        self.patch_embedding = nn.Conv2d(1, cfg.embed_dim, kernel_size=patch, stride=patch,
                                         bias=cfg.conv_bias)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.post_extract_proj = (nn.Linear(cfg.embed_dim, cfg.encoder_embed_dim)
                                  if cfg.embed_dim != cfg.encoder_embed_dim else None)
        self.encoder = BEATsEncoder(cfg)
        self.predictor = (nn.Linear(cfg.encoder_embed_dim, cfg.predictor_class)
                          if cfg.finetuned_model else None)

    @property
    def layers(self) -> nn.ModuleList:
        return self.encoder.layers

    def extract_features(self, fbank: torch.Tensor,
                         padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``fbank`` (batch, frames, mel) from ``kaldi_fbank``; ``padding_mask`` (batch, tokens)
        True at padding tokens (None: every token is real)."""
        x = self.patch_embedding(fbank.unsqueeze(1).to(self.patch_embedding.weight.dtype))
        x = x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2)   # time-major patches
        x = self.layer_norm(x)
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)
        return self.encoder(x, padding_mask)


def beats_parameter_names(cfg: BEATsConfig) -> list[str]:
    """Every name of the official state dict for ``cfg`` (what a checkpoint must hold)."""
    with torch.device("meta"):
        return list(BEATs(cfg).state_dict().keys())


def load_beats_state(model: BEATs, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Load an official BEATs state dict, every name and shape checked; the per-layer copies of the
    shared relative-position table must equal layer 0's."""
    expected = model.state_dict()
    problems = state_problems(expected, state)
    if problems:
        raise ValueError(f"{what} does not match the BEATs configuration it declares:\n{problems}")
    shared = "encoder.layers.0.self_attn.relative_attention_bias.weight"
    for name, tensor in state.items():
        if name.endswith("relative_attention_bias.weight") and name != shared \
                and not torch.equal(tensor, state[shared]):
            raise ValueError(f"{what}: {name} differs from {shared}; BEATs shares one table")
    model.load_state_dict(dict(state), strict=True)


def state_problems(expected: Mapping[str, torch.Tensor], given: Mapping[str, Any]) -> str:
    """Every name ``given`` lacks, has in excess or holds in the wrong shape against
    ``expected``, one titled list each (at most 20 names shown per list); empty when it fits."""
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong = sorted(f"{k}: checkpoint {tuple(given[k].shape)}, model {tuple(expected[k].shape)}"
                   for k in set(expected) & set(given)
                   if tuple(given[k].shape) != tuple(expected[k].shape))
    lines = []
    for title, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if names:
            shown = "\n    ".join(names[:20]) + (f"\n    ... {len(names) - 20} more"
                                                  if len(names) > 20 else "")
            lines.append(f"  {title} ({len(names)}):\n    {shown}")
    return "\n".join(lines)
