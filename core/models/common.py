"""What every adapter file needs: device and dtype choice, input checks, batching, hooks that are
always removed, memory checks before loading, and package versions for provenance.

Torch is imported here, so only adapter modules (never ``core.models.base``) import this.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from core.models.base import Component, Extraction, ModelTooLargeError

DTYPE_BYTES = {torch.float32: 4, torch.float16: 2, torch.bfloat16: 2}
#: activations, buffers and the allocator's slack on top of the weights, for memory estimates
MEMORY_OVERHEAD = 1.25


def pick_dtype(dtype: str | torch.dtype | None, device: str, *,
               default_cuda: torch.dtype = torch.float32) -> torch.dtype:
    """float32 on CPU; on CUDA ``default_cuda`` unless given (large models default to bfloat16)."""
    if dtype is None:
        return default_cuda if device.startswith("cuda") else torch.float32
    resolved = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if resolved not in DTYPE_BYTES:
        raise ValueError(f"dtype must be float32, float16 or bfloat16, got {dtype!r}")
    if resolved != torch.float32 and not device.startswith("cuda"):
        raise ValueError(f"dtype {dtype!r} is only supported on CUDA; on {device} use float32")
    return resolved


def package_versions(extra: Sequence[str] = ()) -> dict[str, str]:
    versions = {}
    for dist in ("torch", "transformers", "tokenizers", *extra):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    return versions


def extract_in_batches(comp: Component, items: Sequence, batch_size: int,
                       pooled_batch) -> Extraction:
    """Run ``pooled_batch(items[part]) -> (pooled, counts)`` batch by batch under inference mode
    and assemble the component's Extraction (zeros-shaped for no items)."""
    pooled = np.zeros((len(items), comp.n_layers, comp.dim), dtype=np.float32)
    counts = np.zeros((len(items), comp.n_layers), dtype=np.int64)
    with torch.inference_mode(), quiet_transformers():
        for part in batches(len(items), batch_size):
            pooled[part], counts[part] = pooled_batch(items[part])
    return Extraction(pooled, counts)


def batches(n: int, batch_size: int) -> Iterator[slice]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def check_inputs(comp: Component, inputs: Sequence, langs: Sequence[str]) -> None:
    """Types and counts of a batch for ``comp``: clear errors instead of a shape error deep inside."""
    if isinstance(inputs, (str, np.ndarray)) and not (
        isinstance(inputs, np.ndarray) and inputs.dtype == object
    ):
        kind = "texts" if comp.modality == "text" else "waveforms"
        raise TypeError(f"inputs must be a sequence of {kind}, got a single "
                        f"{type(inputs).__name__}; wrap it in a list")
    if isinstance(langs, str):
        raise TypeError("langs must be a sequence with one language code per input, got a str")
    if len(inputs) != len(langs):
        raise ValueError(f"got {len(inputs)} inputs but {len(langs)} langs; give one lang per input")
    for i, item in enumerate(inputs):
        if comp.modality == "text" and not isinstance(item, str):
            raise TypeError(f"{comp.name} reads texts, but input {i} is {type(item).__name__}")
        if comp.modality == "speech" and not isinstance(item, np.ndarray):
            raise TypeError(f"{comp.name} reads waveforms (1-D float numpy arrays), but input {i} "
                            f"is {type(item).__name__}")
        if comp.modality == "text" and not item.strip():
            raise ValueError(f"text {i} is empty; drop it before computing states")


def prepare_waveform(wave: np.ndarray, index: int, sampling_rate: int,
                     target_rate: int = 16_000) -> np.ndarray:
    """Mono float32 at ``target_rate``; errors name the input."""
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"waveform {index} has shape {wave.shape}; expected mono 1-D audio")
    if not np.issubdtype(wave.dtype, np.floating):
        raise TypeError(f"waveform {index} has dtype {wave.dtype}; expected float samples in [-1, 1]")
    if wave.size == 0:
        raise ValueError(f"waveform {index} is empty; drop it before computing states")
    if sampling_rate != target_rate:
        import librosa

        wave = librosa.resample(wave.astype(np.float32), orig_sr=sampling_rate,
                                target_sr=target_rate)
    return wave.astype(np.float32, copy=False)


@contextmanager
def reduce_layer_states(layers: nn.ModuleList | None, reduce: Callable[[torch.Tensor], Any],
                        *, include_input: bool = True) -> Iterator[list]:
    """``reduce`` applied to the input of the first block and to each block's output the moment
    each is produced, so only the reduced value is kept. ``layers`` None hooks nothing (the list
    stays empty). Hooks are removed on exit, also when the forward pass raises."""
    reduced: list = []
    if layers is None:
        yield reduced
        return

    def on_first_input(_module, args, kwargs):
        reduced.append(reduce(args[0] if args else kwargs["hidden_states"]))

    def on_output(_module, _args, _kwargs, output):
        reduced.append(reduce(output[0] if isinstance(output, tuple) else output))

    with ExitStack() as hooks:
        if include_input:
            hooks.callback(layers[0].register_forward_pre_hook(on_first_input,
                                                               with_kwargs=True).remove)
        for layer in layers:
            hooks.callback(layer.register_forward_hook(on_output, with_kwargs=True).remove)
        yield reduced


def record_layer_states(layers: nn.ModuleList, *, include_input: bool = True):
    """Collect the input of the first block (when ``include_input``) and every block's output, as
    ``reduce_layer_states`` with nothing reduced (a context manager; hooks live only inside it)."""
    return reduce_layer_states(layers, lambda hidden: hidden, include_input=include_input)


@contextmanager
def record_output(module: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect ``module``'s output on each call (first element of a tuple); the hook is removed on
    exit."""
    outputs: list[torch.Tensor] = []

    def after(_module, _args, output):
        outputs.append(output[0] if isinstance(output, tuple) else output)

    handle = module.register_forward_hook(after)
    try:
        yield outputs
    finally:
        handle.remove()


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' warnings that our own (correct) calls trigger."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


def available_memory_bytes(device: str) -> int | None:
    """Free memory on ``device``: CUDA free memory, or the OS's MemAvailable for the CPU."""
    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return None


def required_memory_bytes(n_parameters: int, dtype: torch.dtype) -> int:
    return int(n_parameters * DTYPE_BYTES[dtype] * MEMORY_OVERHEAD)


def check_fits(what: str, n_parameters: int, dtype: torch.dtype, device: str,
               available: int | None = None) -> None:
    """Refuse before loading when ``n_parameters`` of ``dtype`` cannot fit ``device``'s memory."""
    need = required_memory_bytes(n_parameters, dtype)
    have = available_memory_bytes(device) if available is None else available
    if have is not None and need > have:
        dtype_name = str(dtype).removeprefix("torch.")
        raise ModelTooLargeError(
            f"{what} has {parameter_count_text(n_parameters)} parameters: in {dtype_name} it needs about "
            f"{need / 2**30:.1f} GiB on {device}, but only {have / 2**30:.1f} GiB is free. Use a "
            "machine with more memory, a GPU (bfloat16 halves it), or a smaller checkpoint")


def parameter_count_text(n: int) -> str:
    """8397094912 -> '8.40 B', 37_760_000 -> '37.8 M'."""
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_parameter_count(build, *args, **kwargs) -> int:
    """Exact parameter count of ``build(*args, **kwargs)`` (a model class or ``from_config``),
    instantiated on the meta device: no memory, no weights read."""
    with torch.device("meta"), quiet_transformers():
        return count_parameters(build(*args, **kwargs))
