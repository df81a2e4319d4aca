"""The forward hook that makes a clip's speech-encoder states independent of its batch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def zero_adaptor_padding(speech_encoder: nn.Module, frame_mask: torch.Tensor | None
                         ) -> Iterator[None]:
    """While active, padded conformer frames enter the adaptor's strided convolutions as zeros.

    The adaptor LayerNorms its input before each convolution, so padded frames would otherwise read
    as LayerNorm(state of a padded frame) into the last real adapted frame; zeros are what the
    convolution's own padding gives a clip encoded alone. Hooks are removed on exit, also on error.
    """
    adapter = getattr(speech_encoder, "adapter", None)
    handles = []
    if adapter is not None and frame_mask is not None and not bool(frame_mask.all()):
        keep = frame_mask.to(torch.bool).unsqueeze(-1)

        def zero(_module, _args, output):
            if output.shape[:2] != keep.shape[:2]:
                raise RuntimeError(f"adaptor input {tuple(output.shape)} does not match the frame "
                                   f"mask {tuple(keep.shape)}")
            return output.masked_fill(~keep.to(output.device), 0.0)

        layer = adapter.layers[0]
        modules = (layer.residual_layer_norm, layer.self_attn_layer_norm)
        try:
            handles = [m.register_forward_hook(zero) for m in modules]
        except Exception:
            for handle in handles:
                handle.remove()
            raise
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
