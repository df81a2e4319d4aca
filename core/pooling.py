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


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden[b, t]`` over the positions where ``mask[b, t]`` is true, in float32.

    ``hidden`` is (batch, time, dim), ``mask`` is (batch, time) (bool or 0/1). Accumulates in float32
    so fp16 activations do not overflow on long sequences.
    """
    if hidden.ndim != 3:
        raise ValueError(f"hidden must be (batch, time, dim), got shape {tuple(hidden.shape)}")
    if mask.ndim != 2 or tuple(mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(
            f"mask must be (batch, time) = {tuple(hidden.shape[:2])} to match hidden, "
            f"got shape {tuple(mask.shape)}"
        )
    weights = mask.to(device=hidden.device, dtype=torch.float32)
    if ((weights != 0) & (weights != 1)).any():
        raise ValueError("mask must hold only 0/1 (or booleans)")
    counts = weights.sum(dim=1)
    empty = (counts == 0).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"cannot pool: rows {empty} of the batch have no real positions (empty input?); "
            "drop empty inputs before pooling"
        )
    summed = torch.einsum("btd,bt->bd", hidden.to(torch.float32), weights)
    return summed / counts.unsqueeze(1)


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
