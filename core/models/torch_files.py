"""Reading ``torch.save`` checkpoints (``.pt``/``.pth``) without running their pickles.

A pickle can hold any object, and unpickling one can run any code. ``torch.load`` with
``weights_only=True`` rebuilds only tensors and plain containers (dict, list, tuple, set, str,
numbers, ``OrderedDict``); released research checkpoints sometimes also carry a few small
bookkeeping objects next to the weights. This module allows exactly those (``SAFE_GLOBALS``:
fairseq's ``args`` as an ``argparse.Namespace``, numbers saved as numpy scalars, and the
``nn.Embedding`` that SONAR's fairseq-layout text loader reads from ``checkpoint["embed_tokens"]``);
rebuilding them only sets their attributes, it runs no code of the file's choosing. A file holding
anything else is refused with the names of what it holds and the one explicit opt-in
(``trust=True``, or the environment variable ``TRUST_ENV``) that reads it as a full pickle: only
for a file whose source you trust, since it can run arbitrary code.
"""

from __future__ import annotations

import argparse
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

#: set to 1/true/yes to read checkpoints as full pickles (arbitrary code execution: trusted files only)
TRUST_ENV = "CROSSMODAL_LENS_TRUST_CHECKPOINTS"
TRUST_RISK = ("unpickling a file can run arbitrary code on this machine: trust only a file you "
              "downloaded yourself from the official source")


def _numeric_dtype_classes() -> list[type]:
    """numpy's dtype classes of booleans and numbers (a pickled numpy scalar rebuilds its dtype,
    whose class the unpickler must know); object, string and structured dtypes stay refused."""
    kinds = {"b", "i", "u", "f", "c"}
    classes = [cls for name in sorted(dir(np.dtypes))
               if isinstance(cls := getattr(np.dtypes, name), type) and issubclass(cls, np.dtype)
               and getattr(cls, "type", None) is not None and np.dtype(cls.type).kind in kinds]
    return list(dict.fromkeys(classes))  # some names are aliases of one class


def _numpy_scalar() -> Callable:
    return np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar


#: the objects allowed beyond torch's own: (object, the name a pickle calls it by)
SAFE_GLOBALS: list[tuple[object, str]] = [
    (argparse.Namespace, "argparse.Namespace"),
    (torch.nn.Embedding, "torch.nn.modules.sparse.Embedding"),
    (np.dtype, "numpy.dtype"),
    # numpy >= 2 pickles its scalars under numpy._core, numpy 1.x under numpy.core
    (_numpy_scalar(), "numpy._core.multiarray.scalar"),
    (_numpy_scalar(), "numpy.core.multiarray.scalar"),
    *[(cls, f"{cls.__module__}.{cls.__name__}") for cls in _numeric_dtype_classes()],
]


class UntrustedCheckpointError(ValueError):
    """A checkpoint holding objects that ``weights_only`` loading does not rebuild; the message
    names them and the opt-in."""


def trusted_by_environment() -> bool:
    """Whether ``TRUST_ENV`` asks to read checkpoints as full pickles."""
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def unsafe_globals(path: str | Path) -> list[str] | None:
    """The classes and functions the file's pickle names beyond torch's defaults and
    ``SAFE_GLOBALS`` (read statically, nothing is run); None for a file that is not a zip
    checkpoint (the legacy format), which cannot be inspected this way."""
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        try:
            return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
        except (ValueError, RuntimeError):
            return None


def _torch_load(path: Path, *, mmap: bool, weights_only: bool) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only, mmap=mmap)
    except RuntimeError as exc:  # legacy (non-zip) files cannot be memory-mapped
        if not mmap or "mmap" not in str(exc).lower():
            raise
        return torch.load(path, map_location="cpu", weights_only=weights_only)


def _refusal_reason(exc: Exception) -> str:
    """The unpickler's own reason, without torch's generic advice around it."""
    text = str(exc)
    text = text.split("WeightsUnpickler error:", 1)[-1].split("Check the documentation", 1)[0]
    return " ".join(text.split())[:300]


def load_checkpoint_file(path: str | Path, *, mmap: bool = True, trust: bool = False) -> object:
    """``torch.load`` of ``path`` on the CPU, memory-mapped (tensors are read from disk only when
    used, so what the caller drops is never materialised; legacy non-zip files are read whole).

    Without ``trust``: ``weights_only=True`` plus ``SAFE_GLOBALS``; a file holding anything else
    raises ``UntrustedCheckpointError`` naming those objects. With ``trust``: a full unpickle."""
    path = Path(path)
    if trust:
        return _torch_load(path, mmap=mmap, weights_only=False)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return _torch_load(path, mmap=mmap, weights_only=True)
    except pickle.UnpicklingError as exc:
        names = unsafe_globals(path)
        held = ", ".join(names) if names else f"an object it refused ({_refusal_reason(exc)})"
        raise UntrustedCheckpointError(
            f"{path.name} holds more than tensors and plain values: {held}. It was not read, "
            f"because {TRUST_RISK}. If you trust it, pass trust_checkpoint=True to the loader "
            f"or set {TRUST_ENV}=1 (for `python -m precompute build` too)") from exc
