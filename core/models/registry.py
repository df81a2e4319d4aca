"""Explicit registry: short model name -> adapter factory.

``load_model("whisper-base")`` gives the offline default; any other string is treated as a Hugging
Face id or a local directory and handed to the family whose ``accepts`` says it can load it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.models.base import ModelAdapter

Factory = Callable[..., ModelAdapter]


@dataclass(frozen=True)
class Family:
    """A model family: its factory and a test for HF ids / config ``model_type`` it accepts."""

    name: str
    factory: Factory
    accepts: Callable[[str], bool]


_SHORT_NAMES: dict[str, tuple[str, dict]] = {}
_FAMILIES: dict[str, Family] = {}


def register_family(name: str, factory: Factory, accepts: Callable[[str], bool]) -> None:
    _FAMILIES[name] = Family(name, factory, accepts)


def register_short_name(short: str, family: str, **kwargs) -> None:
    """``short`` (e.g. ``whisper-base``) loads ``family`` with fixed keyword arguments."""
    _SHORT_NAMES[short] = (family, kwargs)


def available_models() -> list[str]:
    _ensure_builtin()
    return sorted(_SHORT_NAMES)


def families() -> list[str]:
    _ensure_builtin()
    return sorted(_FAMILIES)


def load_model(name: str, *, device: str | None = None, **kwargs) -> ModelAdapter:
    """Load by short name, HF id or local directory. ``device`` None picks CUDA when available."""
    _ensure_builtin()
    if name in _SHORT_NAMES:
        family, fixed = _SHORT_NAMES[name]
        return _FAMILIES[family].factory(name=name, device=device, **fixed, **kwargs)
    for family in _FAMILIES.values():
        if family.accepts(name):
            return family.factory(name=name, source=name, device=device, **kwargs)
    raise KeyError(
        f"unknown model {name!r}: not a short name ({', '.join(sorted(_SHORT_NAMES))}) and no "
        f"registered family ({', '.join(sorted(_FAMILIES))}) accepts it. Pass a short name, a "
        "Hugging Face id of a supported family (e.g. 'openai/whisper-small') or a local model "
        "directory whose config.json names a supported model_type"
    )


def _ensure_builtin() -> None:
    # Importing the adapter modules registers them; kept lazy so `import core` stays light (no torch).
    import core.models.whisper  # noqa: F401
