"""The one small interface every model family implements.

An adapter hides how a family is loaded and hooked; callers only see *components* (a named stack of
layers that reads one modality) and pooled per-layer states: one vector per input, per layer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Modality = Literal["text", "speech"]
MODALITIES: tuple[Modality, ...] = ("text", "speech")


@dataclass(frozen=True)
class Component:
    """A layer stack that reads one modality, e.g. Whisper's ``speech_encoder``.

    ``n_layers`` counts pooled states, layer 0 being the input embedding; ``layer_names`` labels them
    for plots (e.g. ``["embed", "block 1", ...]``).
    """

    name: str
    modality: Modality
    n_layers: int
    dim: int
    description: str
    layer_names: tuple[str, ...] = ()


class ModelAdapter(ABC):
    """Loads one model and returns pooled per-layer states for texts or waveforms.

    Implementations must run under ``torch.inference_mode()``, batch internally, and pool only over
    real positions (no padding).
    """

    #: short registry name or the HF id / directory it was loaded from
    name: str
    #: "cuda" or "cpu"
    device: str

    @abstractmethod
    def components(self) -> list[Component]:
        """All components, in a stable order."""

    def component(self, name: str) -> Component:
        for comp in self.components():
            if comp.name == name:
                return comp
        known = ", ".join(c.name for c in self.components())
        raise KeyError(f"model {self.name!r} has no component {name!r} (known: {known})")

    @abstractmethod
    def pooled_states(
        self,
        component: str,
        inputs: Sequence[str] | Sequence[np.ndarray],
        langs: Sequence[str],
        *,
        sampling_rate: int = 16_000,
        batch_size: int = 8,
    ) -> np.ndarray:
        """Return float32 array (len(inputs), n_layers, dim).

        ``inputs`` are strings for a text component, mono float32 waveforms at ``sampling_rate`` for a
        speech component. ``langs`` are corpus language codes (FLORES-200 style, e.g. ``deu_Latn``),
        one per input; adapters map them to their own language tokens.
        """

    def transcribe(self, waveforms: Sequence[np.ndarray], langs: Sequence[str],
                   *, sampling_rate: int = 16_000, batch_size: int = 8) -> list[str]:
        """Speech-to-text, for models that can; used to measure how well synthetic speech is heard."""
        raise NotImplementedError(f"model {self.name!r} cannot transcribe")

    def info(self) -> dict:
        """Provenance recorded in a run's config (weights source, dtype, revision...)."""
        return {"name": self.name, "device": self.device}
