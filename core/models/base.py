"""The one interface every model family implements (adapter interface v2).

An adapter hides how a family is loaded and hooked; callers only see *components* and states.

A **component** is one path through the model for one input modality, as a list of *layer points*
(``LayerPoint``): Whisper's ``speech_encoder`` is conv stem + 6 blocks; a speech LLM's
``llm_speech`` is the LLM's layers when it is fed audio. Each point says

- its **stage** (``frontend``, ``encoder``, ``length_adaptor``, ``projector``, ``decoder``, ``llm``,
  ``pooler``): findings and charts read these labels, never free-text descriptions;
- its **depth** in [0, 1] along the model's whole path for that input (a speech LLM's audio encoder,
  projector and LLM layers are one path), so models of different depth can be overlaid;
- its **space**: which representation space the vector lives in. Two points are comparable by
  coordinate-wise measures (paired cosine, retrieval, joint 2-D maps) only when their spaces are
  equal; SVCCA, CKA and mutual kNN are invariant to the basis and stay valid across spaces.

A component that shortens the sequence (a length adaptor, pooling + projector, window Q-Former,
attention pooler) exposes the states before and after it as separate points; ``extract`` records,
per item and point, how many positions were pooled, so the lengths before and after are stored.

Decoders and LLMs need a prompt or a forced target: ``Component.conditioning`` says what is fed
(template, target language, context) and is recorded in the run config.

Pooling is a function of token-level states: ``token_states`` gives them for one input (one array
per point, since points before and after a length adaptor have different lengths) and
``pool_token_states`` pools them; ``pooled_states`` is the batched entry point that scripts and
benchmarks call, and must equal pooling the token states (tested per adapter).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

Modality = Literal["text", "speech"]
MODALITIES: tuple[Modality, ...] = ("text", "speech")

Stage = Literal["frontend", "encoder", "length_adaptor", "projector", "decoder", "llm", "pooler"]
STAGES: tuple[Stage, ...] = get_args(Stage)
#: stages whose output is shorter than their input: the "after" points of length adaptation
LENGTH_REDUCING_STAGES: frozenset[str] = frozenset({"length_adaptor", "pooler"})

Pooling = Literal["mean", "last"]
POOLINGS: tuple[Pooling, ...] = ("mean", "last")


@dataclass(frozen=True)
class LayerPoint:
    """One pooled state along a component's path.

    ``space`` None means the component's own space (the usual case); a point that writes into
    another space (e.g. an audio projector writing into an LLM's embedding space) names it.
    """

    name: str
    stage: Stage
    depth: float
    space: str | None = None

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if not 0.0 <= float(self.depth) <= 1.0:
            raise ValueError(f"depth must lie in [0, 1], got {self.depth!r} for {self.name!r}")


@dataclass(frozen=True)
class Component:
    """A path through the model for one modality, e.g. Whisper's ``speech_encoder``.

    ``layers`` are its points in order, point 0 being the input embedding (or front end).
    ``space`` names the representation space the points write into (unless a point overrides it):
    by convention ``"<model>/<stream>"``, e.g. ``"whisper-base/decoder"``. ``conditioning`` says what
    the component is fed besides the input (prompt template, target language, context).
    """

    name: str
    modality: Modality
    dim: int
    space: str
    layers: tuple[LayerPoint, ...]
    description: str
    conditioning: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        if not self.layers:
            raise ValueError(f"component {self.name!r} has no layers")
        depths = [p.depth for p in self.layers]
        if depths != sorted(depths):
            raise ValueError(f"component {self.name!r}: depths must not decrease, got {depths}")

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.layers)

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(p.stage for p in self.layers)

    @property
    def depths(self) -> tuple[float, ...]:
        return tuple(float(p.depth) for p in self.layers)

    def layer_space(self, layer: int) -> str:
        """The representation space of point ``layer``."""
        return self.layers[layer].space or self.space

    def length_adaptation(self) -> list[tuple[int, int]]:
        """(before, after) point indices around each length-reducing stage of this path."""
        pairs = []
        for i, point in enumerate(self.layers):
            if i > 0 and point.stage in LENGTH_REDUCING_STAGES \
                    and self.layers[i - 1].stage not in LENGTH_REDUCING_STAGES:
                pairs.append((i - 1, i))
        return pairs


def stack_points(names: Sequence[str], stage: Stage, *, start: float = 0.0, end: float = 1.0,
                 space: str | None = None) -> tuple[LayerPoint, ...]:
    """Points of one stage spread evenly over depths [start, end] (a plain layer stack)."""
    n = len(names)
    if n == 0:
        return ()
    step = (end - start) / (n - 1) if n > 1 else 0.0
    return tuple(LayerPoint(name, stage, min(1.0, max(0.0, start + i * step)), space)
                 for i, name in enumerate(names))


def path_points(stages: Sequence[tuple[Stage, Sequence[str]]],
                spaces: Sequence[str | None] | None = None) -> tuple[LayerPoint, ...]:
    """Points of a whole path (several stages in order), depth = index / (number of points - 1)."""
    flat = [(stage, name, (spaces[k] if spaces else None))
            for k, (stage, names) in enumerate(stages) for name in names]
    n = len(flat)
    return tuple(LayerPoint(name, stage, (i / (n - 1)) if n > 1 else 0.0, space)
                 for i, (stage, name, space) in enumerate(flat))


def shares_space(a: Component, layer_a: int, b: Component, layer_b: int) -> bool:
    """Whether coordinate-wise measures (cosine, retrieval, joint maps) are defined for the pair."""
    return a.layer_space(layer_a) == b.layer_space(layer_b) and a.dim == b.dim


@dataclass
class Extraction:
    """What ``extract`` gives for a batch: pooled states and the positions each was pooled over.

    ``pooled`` is float32 (items, layers, dim); ``n_positions`` int (items, layers): for a length
    adaptor, the lengths before and after are the columns of its before/after points.
    """

    pooled: np.ndarray
    n_positions: np.ndarray


@dataclass
class TokenStates:
    """Token-level states of one input: one (positions, dim) float32 array per layer point.

    ``labels[l]`` names each position of point ``l`` (tokens for text); ``times_s[l]`` gives the
    start time in seconds of each position for speech (None for text). ``pooled_mask[l]`` marks the
    positions that pooling uses (real audio frames, sentence tokens: not prompt or padding).
    """

    component: str
    layers: list[np.ndarray]
    labels: list[list[str]]
    times_s: list[np.ndarray | None]
    pooled_mask: list[np.ndarray]

    @property
    def n_layers(self) -> int:
        return len(self.layers)


def pool_token_states(states: TokenStates, pooling: Pooling = "mean") -> np.ndarray:
    """(layers, dim) float32: mean over the pooled positions, or the last pooled position, by
    ``core.pooling.pool`` (the arithmetic ``extract`` uses). Torch is imported only when called:
    this module stays importable without it."""
    import torch

    from core.pooling import pool

    _check_pooling(pooling)
    out = []
    for layer, mask in zip(states.layers, states.pooled_mask, strict=True):
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            raise ValueError(f"{states.component}: a layer has no positions to pool")
        hidden = torch.from_numpy(np.ascontiguousarray(layer))[None]
        out.append(pool(hidden, torch.from_numpy(mask)[None], pooling)[0].numpy())
    return np.stack(out).astype(np.float32)


def _check_pooling(pooling: str) -> None:
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")



@dataclass(frozen=True)
class ResourceLevels:
    """A model's resource level per language ("high", "medium", "low") and where it comes from."""

    levels: dict[str, str]
    source: str


class ModelAdapter(ABC):
    """Loads one model and returns per-layer states for texts or waveforms.

    Implementations run under ``torch.inference_mode()``, batch internally, pool only over real
    positions (never padding, never prompt tokens) and pool layer by layer as states are produced.
    """

    #: short registry name or the HF id / directory it was loaded from
    name: str
    #: "cuda" or "cpu"
    device: str
    #: poolings this family supports ("last" only where a decoder-only LLM makes it meaningful)
    poolings: tuple[Pooling, ...] = ("mean",)

    @abstractmethod
    def components(self) -> list[Component]:
        """All components, in a stable order."""

    def component(self, name: str) -> Component:
        for comp in self.components():
            if comp.name == name:
                return comp
        known = ", ".join(c.name for c in self.components())
        raise KeyError(f"model {self.name!r} has no component {name!r} (known: {known})")

    def modality_pairs(self) -> list[tuple[str, str]]:
        """(text component, speech component) pairs the study compares; default: every pair."""
        comps = self.components()
        return [(t.name, s.name) for t in comps if t.modality == "text"
                for s in comps if s.modality == "speech"]

    @abstractmethod
    def extract(self, component: str, inputs: Sequence[str] | Sequence[np.ndarray],
                langs: Sequence[str], *, sampling_rate: int = 16_000, batch_size: int = 8,
                pooling: Pooling = "mean") -> Extraction:
        """Pooled states and pooled position counts for a batch of inputs.

        ``inputs`` are strings for a text component, mono float32 waveforms at ``sampling_rate`` for
        a speech component. ``langs`` are corpus language codes (FLORES-200 style, e.g.
        ``deu_Latn``), one per input; adapters map them to their own language tokens and raise
        ``UnsupportedLanguageError`` for a language they do not know.
        """

    def pooled_states(self, component: str, inputs: Sequence[str] | Sequence[np.ndarray],
                      langs: Sequence[str], *, sampling_rate: int = 16_000, batch_size: int = 8,
                      pooling: Pooling = "mean") -> np.ndarray:
        """Float32 array (len(inputs), n_layers, dim): the simple entry point."""
        return self.extract(component, inputs, langs, sampling_rate=sampling_rate,
                            batch_size=batch_size, pooling=pooling).pooled

    @abstractmethod
    def token_states(self, component: str, item: str | np.ndarray, lang: str, *,
                     sampling_rate: int = 16_000) -> TokenStates:
        """Token-level states of one input (for live inspection of a user's recording)."""

    def reads_reference_text(self, component: str) -> bool:
        """Whether ``extract`` on this component takes ``targets=`` (the reference sentence of each
        speech input, e.g. a decoder teacher-forced on the transcript); precompute then passes it."""
        return False

    def supports_language(self, lang: str) -> bool:
        """Whether the model has this corpus language (FLORES-200 code)."""
        return True

    def resource_levels(self, langs: Sequence[str]) -> ResourceLevels | None:
        """How much of each language this model was trained on, as a level, with its source; None
        when the family publishes no per-language amounts (findings then read Whisper's training
        hours as a stated proxy: ``core.languages.proxy_levels``)."""
        return None

    def transcribe(self, waveforms: Sequence[np.ndarray], langs: Sequence[str],
                   *, sampling_rate: int = 16_000, batch_size: int = 8) -> list[str]:
        """Speech-to-text, for models that can; used to measure how well synthetic speech is heard."""
        raise NotImplementedError(f"model {self.name!r} cannot transcribe")

    def clear_clip_caches(self) -> None:
        """Forget the states kept of recent clips (adapters that keep some: Whisper's encoder
        and layer caches), e.g. after a warm-up or between benchmark runs. Nothing by default."""

    def info(self) -> dict:
        """Provenance recorded in a run's config (weights source, dtype, revision...)."""
        return {"name": self.name, "device": self.device}

    def check_pooling(self, pooling: str) -> None:
        _check_pooling(pooling)
        if pooling not in self.poolings:
            raise ValueError(f"model {self.name!r} supports pooling {list(self.poolings)}, "
                             f"not {pooling!r}")


class UnsupportedLanguageError(ValueError):
    """A language the model does not know; the message names it and the model's languages."""


def resolves(code_of: Callable[[str], object], lang: str) -> bool:
    """Whether ``code_of`` (a family's corpus-code -> model-code lookup, raising
    ``UnsupportedLanguageError`` for a language it lacks) finds ``lang``: the family's
    ``supports_language`` and its error message then come from one lookup."""
    try:
        code_of(lang)
    except UnsupportedLanguageError:
        return False
    return True


class ModelTooLargeError(MemoryError):
    """The model would not fit this machine's memory; the message says how much it needs."""
