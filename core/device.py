"""Which torch device a computation runs on: one rule for model adapters and the metric grid.

``None`` means "the best this machine has" (CUDA when torch sees a GPU, else the CPU); a CUDA
request on a torch without CUDA is refused at once with a ``ValueError`` that says what to do,
instead of failing later inside a kernel (the command line turns ``ValueError`` into one line).
"""

from __future__ import annotations

import torch


def pick_device(device: str | None = None) -> str:
    """``device`` as given, else ``"cuda"`` when available, else ``"cpu"``."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but this torch ({torch.__version__}) sees no CUDA device; "
                         f"use device='cpu' or None, or install a CUDA build of torch")
    return device
