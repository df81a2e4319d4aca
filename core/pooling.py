"""Masked mean pooling over real positions, and the frame arithmetic that defines "real".

Sentence-level comparisons (SVCCA, CKA, retrieval) need one vector per input and per layer. Averaging
over padding would mix a constant (padding) vector into every input in proportion to how short it is,
which fakes similarity between short inputs; so pooling is always restricted to a mask of real
positions, and an empty mask is an error rather than a silent NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

#: Whisper's front end: 160-sample mel hop at 16 kHz, then a stride-2 convolution -> 320 samples/frame.
WHISPER_SAMPLES_PER_FRAME = 320
#: Whisper's encoder always sees 30 s = 1500 frames (the input is padded/truncated to that).
WHISPER_N_FRAMES = 1500


def pool_layers(states: Sequence[torch.Tensor], mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """(batch, layers, dim) float32: every layer's (batch, time, dim) states pooled under one mask
    (``mean`` over its true positions, or the ``last`` true position), the mask checked once.

    The project's one pooling: ``pool``, ``masked_mean`` and ``core.models.base.pool_token_states``
    call it. Layer by layer (no stacked copy of every layer's states: 170 MB for a batch of Whisper
    windows); the mean is one product per layer with the 0/1 weights of ``mask`` then a division by
    the count, accumulated in float32 so fp16 activations do not overflow on long sequences.
    """
    if pooling == "last":
        return torch.stack([masked_last(h, mask) for h in states], dim=1)
    if pooling != "mean":
        raise ValueError(f"pooling must be 'mean' or 'last', got {pooling!r}")
    if not states:
        raise ValueError("no layer states to pool")
    first = states[0]
    if first.ndim != 3:
        raise ValueError(f"hidden must be (batch, time, dim), got shape {tuple(first.shape)}")
    weights = mask.to(device=first.device, dtype=torch.float32)
    if weights.ndim != 2 or tuple(weights.shape) != tuple(first.shape[:2]):
        raise ValueError(f"mask must be (batch, time) = {tuple(first.shape[:2])} to match the "
                         f"states, got shape {tuple(mask.shape)}")
    if ((weights != 0) & (weights != 1)).any():
        raise ValueError("mask must hold only 0/1 (or booleans)")
    counts = weights.sum(dim=1, keepdim=True)
    empty = (counts[:, 0] == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"cannot pool: rows {empty} of the batch have no real positions (empty "
                         "input?); drop empty inputs before pooling")
    out = []
    for h in states:
        if tuple(h.shape[:2]) != tuple(first.shape[:2]):
            raise ValueError(f"layer states of shape {tuple(h.shape)} do not match the first "
                             f"layer's {tuple(first.shape)}")
        out.append(torch.einsum("btd,bt->bd", h.to(torch.float32), weights) / counts)
    return torch.stack(out, dim=1)


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """(batch, dim) float32: the mean over real positions or the last real position."""
    return pool_layers([hidden], mask, pooling)[:, 0]


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden[b, t]`` over the positions where ``mask[b, t]`` is true, in float32.

    ``hidden`` is (batch, time, dim), ``mask`` is (batch, time) (bool or 0/1).
    """
    return pool(hidden, mask, "mean")


def masked_last(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(batch, dim): the state at the last true position of each row of ``mask``."""
    mask = mask.to(device=hidden.device, dtype=torch.bool)
    if not mask.any(dim=1).all():
        raise ValueError("cannot pool: a row of the batch has no real positions")
    positions = torch.arange(mask.shape[1], device=hidden.device).expand_as(mask)
    last = torch.where(mask, positions, torch.full_like(positions, -1)).max(dim=1).values
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last].to(torch.float32)


def lengths_to_mask(lengths: Sequence[int] | torch.Tensor, max_len: int) -> torch.Tensor:
    """Boolean (batch, max_len) mask with the first ``lengths[b]`` positions true."""
    lengths_t = torch.as_tensor(lengths, dtype=torch.long)
    if lengths_t.ndim != 1:
        raise ValueError(f"lengths must be 1-D, got shape {tuple(lengths_t.shape)}")
    if (lengths_t < 0).any() or (lengths_t > max_len).any():
        raise ValueError(f"lengths must lie in [0, {max_len}], got {lengths_t.tolist()}")
    return torch.arange(max_len).unsqueeze(0) < lengths_t.unsqueeze(1)


def whisper_frame_count(n_samples: int, *, max_frames: int = WHISPER_N_FRAMES) -> int:
    """Encoder frames that hold real audio for a clip of ``n_samples`` at 16 kHz.

    ``ceil(n_samples / 320)``: a frame that holds any real sample counts as real; clipped to the
    1500 frames Whisper's encoder sees (30 s).
    """
    if n_samples < 0:
        raise ValueError(f"n_samples must be >= 0, got {n_samples}")
    return min(math.ceil(n_samples / WHISPER_SAMPLES_PER_FRAME), max_frames)
