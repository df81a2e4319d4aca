"""The load preamble of the families loaded with ``from_pretrained`` (Qwen2-Audio, SeamlessM4T,
SALMONN's LLM): read the configuration, refuse before loading what cannot fit, and say where the
weights go.

Refusing first matters: a 7-13 B checkpoint that does not fit is found out from its config in a
second, instead of after minutes of reading weights and an out-of-memory crash.
"""

from __future__ import annotations

from typing import Any

import torch

from core.device import pick_device
from core.models.common import check_fits, pick_dtype


def load_target(source: str | None, random: bool, device: str | None,
                dtype: str | torch.dtype | None, source_hint: str, *,
                default_cuda: torch.dtype = torch.bfloat16) -> tuple[str, torch.dtype]:
    """(device, dtype) of a load: ``default_cuda`` on CUDA unless ``dtype`` says otherwise
    (bfloat16 for released weights; float32 suits the tiny random models), float32 on CPU.
    Refuses a call that gives both or neither of ``source`` (``source_hint`` says what it is) and
    ``random=True``."""
    if random == (source is not None):
        raise ValueError(f"give exactly one of source=<{source_hint}> or random=True")
    device = pick_device(device)
    return device, pick_dtype(dtype, device, default_cuda=default_cuda)


def read_config(source: str, offline_hint: str):
    """``AutoConfig.from_pretrained(source)`` (a hub id or a local directory); when it cannot be
    read, an ``OSError`` that says why and, in ``offline_hint``, what to do without the hub."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source)
    except OSError as error:
        raise OSError(
            f"could not read the config of {source!r} from a local directory or the Hugging Face "
            f"hub ({error}). Offline? {offline_hint}") from error


def fit_and_place(what: str, n_parameters: int, dtype: torch.dtype, device: str, *,
                  spread: bool) -> dict[str, Any]:
    """Refuse (``ModelTooLargeError``) when ``n_parameters`` of ``dtype`` cannot fit ``device``,
    then the ``from_pretrained`` keywords that place the weights there.

    ``spread``: on plain ``"cuda"`` the layers go over every visible GPU (``device_map="auto"``,
    and the free memory of all of them counts); ``"cuda:i"`` puts everything on that GPU. Without
    it the device itself is the device map."""
    available = None
    if spread and device == "cuda":
        available = sum(torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count()))
    check_fits(what, n_parameters, dtype, device, available=available)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if device.startswith("cuda"):
        if spread:
            kwargs["device_map"] = "auto" if device == "cuda" else {"": device}
        else:
            kwargs["device_map"] = device
    return kwargs
