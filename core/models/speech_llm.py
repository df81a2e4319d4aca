"""What every speech-LLM adapter shares (Qwen2-Audio, SALMONN): one decoder-only LLM read twice.

A speech LLM is an audio front end whose output is written into a chat prompt, and an LLM that
reads the prompt. The study reads the LLM twice, in one space: ``llm_speech`` (the clip in the
prompt, pooled over the clip's positions) and ``llm_text`` (the sentence in the same prompt, pooled
over the sentence's own tokens). This module holds that shared path once:

- the prompt rows: ``prefix + lead + CONTENT + tail + suffix``, right-padded, with a mask of the
  content span (the only positions ever pooled);
- the LLM pass with each layer's states reduced in a forward hook the moment they are produced
  (a batch's token states are never held for all layers at once; hooks are always removed);
- the language checks (every language of the project's table plus the family's documented ones;
  nothing language-specific enters the prompt, the code only labels the input);
- ``extract``, ``token_counts`` and ``token_states`` for the LLM components.

A family's adapter (``SpeechLLMAdapter`` subclass) keeps only what is its own: its prompt template
(``_template_pieces``, ``_prompt_notes``), its audio front end (``_pooled_audio``,
``_audio_token_states``, ``_llm_inputs`` for speech), its components and its checkpoint layout.
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from core.languages import known_language_codes
from core.models.base import (Component, Extraction, LayerPoint, ModelAdapter, Pooling,
                              TokenStates, UnsupportedLanguageError, path_points)
from core.pooling import lengths_to_mask, pool
from core.models.common import (
    check_inputs, count_parameters, extract_in_batches, package_versions,
    prepare_waveform, quiet_transformers, reduce_layer_states,
)

SAMPLING_RATE = 16_000

LLM_SPEECH = "llm_speech"
LLM_TEXT = "llm_text"
LLM_COMPONENTS = (LLM_SPEECH, LLM_TEXT)

GENERATION_NOTE = "none: one forward pass over the prompt, no assistant reply is generated"
LLM_FINAL_NORM_NOTE = "not applied: LLM points are raw decoder-layer outputs"

#: (lead, content, tail) token ids of one prompt's middle part; only ``content`` is pooled
PromptPiece = tuple[list[int], list[int], list[int]]


# --------------------------------------------------------------------------------------------------
# Hooks and reductions


def first_item_slicer(count: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """A reduction keeping the first batch item's positions (all, or the first ``count``) as
    float32 on the CPU: token states of one input."""
    def reduce(hidden: torch.Tensor) -> torch.Tensor:
        rows = hidden[0] if count is None else hidden[0, :count]
        return rows.detach().to(device="cpu", dtype=torch.float32)
    return reduce


def leading_pool(counts: Sequence[int], pooling: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A reduction pooling each row of a (batch, time, dim) state over its first ``counts[i]``
    positions (the frames that hold the clip), returned on the CPU."""
    def reduce(hidden: torch.Tensor) -> torch.Tensor:
        return pool(hidden, lengths_to_mask(counts, hidden.shape[1]).to(hidden.device), pooling).cpu()
    return reduce


def llm_point_names(n_layers: int) -> list[str]:
    """The LLM decoder layers' point names, ``llm 1`` .. ``llm n``."""
    return [f"llm {i}" for i in range(1, n_layers + 1)]


def project_languages() -> set[str]:
    """Every language code of the project's table, with the aliases of its languages."""
    return set(known_language_codes())


# --------------------------------------------------------------------------------------------------
# The adapter core


class SpeechLLMAdapter(ModelAdapter):
    """The ``llm_speech`` / ``llm_text`` path of a speech LLM, and the checks and batching around
    every component. Subclasses set the model parts and the attributes named below, then call
    ``_finish_setup``."""

    poolings: tuple[Pooling, ...] = ("mean", "last")

    #: the family's registry name (``info()["family"]``)
    family: str = ""
    #: languages the family's own documents name for speech (FLORES-200 codes)
    documented_languages: tuple[str, ...] = ()
    #: appended to "the project's language table" in the unknown-language error
    documented_languages_note: str = ""
    #: packages besides the common ones whose versions ``info`` records
    version_packages: tuple[str, ...] = ()
    #: the speech content of the template, as ``conditioning`` describes it
    speech_content: str = ""
    #: what the content spans are, for ``conditioning`` ("audio tokens / sentence tokens")
    content_spans: str = ""
    #: how prompts are padded, for ``conditioning``
    padding_note: str = ""
    #: written before the template's first piece in ``conditioning`` (a BOS the tokenizer adds)
    template_lead: str = ""
    #: the longest clip the audio side reads, in samples, and who reads it (for the warning)
    max_samples: int = 30 * SAMPLING_RATE
    clip_reader: str = ""

    # set by the subclass before ``_finish_setup``
    tokenizer: Any
    language_model: nn.Module
    _prefix_ids: list[int]
    _suffix_ids: list[int]
    _pad_id: int
    _max_positions: int

    def __init__(self, *, name: str, device: str, dtype: torch.dtype, source: dict | None,
                 instruction: str):
        self.name = name
        self.device = device
        self.dtype = dtype
        self.instruction = instruction
        self._source = source or {}

    def _finish_setup(self) -> None:
        """Components and languages, once the model parts and prompt pieces are set."""
        self._components = self._build_components()
        self._table_languages = project_languages()

    # ---- what each family provides

    @abstractmethod
    def _template_pieces(self) -> tuple[str, str]:
        """The prompt's text before and after the content."""

    @abstractmethod
    def _prompt_notes(self) -> dict[str, Any]:
        """The family's own ``conditioning`` entries (instruction, system prompt, source)."""

    @abstractmethod
    def _build_components(self) -> list[Component]:
        """All components (``_llm_components`` builds the two LLM ones)."""

    @abstractmethod
    def _architecture(self) -> dict[str, Any]:
        """The architecture numbers ``info`` records (parameters are added here)."""

    @abstractmethod
    def _final_norm_notes(self) -> dict[str, str]:
        """Where the audio side's final norms are applied, for ``info``."""

    @abstractmethod
    def _fit_wave(self, wave: np.ndarray, index: int) -> np.ndarray:
        """One resampled clip of at most ``max_samples``, made ready for the audio side (padded,
        or refused when too short)."""

    @abstractmethod
    def _llm_inputs(self, component: str, items: list
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(ids, attention mask, content mask, input embeddings or None) for an LLM component."""

    @abstractmethod
    def _pooled_audio(self, component: str, items: list, pooling: str
                      ) -> tuple[list[torch.Tensor], list[list[int]]]:
        """Per point (batch, dim) pooled states and per item the pooled positions per point, of
        an audio-side component."""

    @abstractmethod
    def _audio_token_states(self, comp: Component, wave: np.ndarray) -> TokenStates:
        """Token states of one prepared clip for an audio-side component."""

    @abstractmethod
    def _speech_times(self, wave: np.ndarray, content: np.ndarray, labels: list[str]
                      ) -> np.ndarray:
        """Start time of each ``llm_speech`` prompt position (NaN for the template's); may
        relabel the audio positions in ``labels``."""

    # ---- description

    def conditioning(self) -> dict[str, Any]:
        before, after = self._template_pieces()
        return {
            "template": self.template_lead + before + "{CONTENT}" + after,
            "speech_content": self.speech_content,
            "text_content": "{sentence}",
            **self._prompt_notes(),
            "generation": GENERATION_NOTE,
            "pooled_over": f"content span only ({self.content_spans}), never the template",
            "padding": self.padding_note,
        }

    def _llm_components(self, speech_layers: list[LayerPoint], llm_names: list[str], dim: int,
                        speech_description: str, text_description: str) -> list[Component]:
        """``llm_speech`` (its points given) and ``llm_text`` (token embeddings, then the LLM
        layers), in one space."""
        text_layers = path_points([("frontend", ["embed"]), ("llm", llm_names)])
        space = f"{self.name}/llm"
        conditioning = self.conditioning()
        return [
            Component(name=LLM_SPEECH, modality="speech", dim=dim, space=space,
                      layers=speech_layers, description=speech_description,
                      conditioning=conditioning),
            Component(name=LLM_TEXT, modality="text", dim=dim, space=space, layers=text_layers,
                      description=text_description, conditioning=conditioning),
        ]

    def components(self) -> list[Component]:
        return list(self._components)

    def modality_pairs(self) -> list[tuple[str, str]]:
        """The study compares the LLM given the text with the LLM given the speech."""
        return [(LLM_TEXT, LLM_SPEECH)]

    def info(self) -> dict:
        return {
            "name": self.name,
            "family": self.family,
            "device": self.device,
            "dtype": str(self.dtype).removeprefix("torch."),
            **self._source,
            "template": self.conditioning(),
            "llm_final_norm": LLM_FINAL_NORM_NOTE,
            **self._final_norm_notes(),
            "documented_speech_languages": list(self.documented_languages),
            "architecture": {**self._architecture(),
                             "n_parameters": count_parameters(self.model)},
            "versions": package_versions(self.version_packages),
        }

    # ---- languages

    def supports_language(self, lang: str) -> bool:
        return lang in self._table_languages or lang in self.documented_languages

    def documented_language(self, lang: str) -> bool:
        """Whether the family's own documents name ``lang`` among its speech languages."""
        return lang in self.documented_languages

    def _check_languages(self, langs: Sequence[str]) -> None:
        for lang in dict.fromkeys(langs):
            if not self.supports_language(lang):
                known = sorted(self._table_languages | set(self.documented_languages))
                raise UnsupportedLanguageError(
                    f"unknown language {lang!r} for {self.name}: expected a FLORES-200 code of the "
                    f"project's language table{self.documented_languages_note} "
                    f"({', '.join(known)})")

    # ---- inputs

    def _prepare_waves(self, waves: Sequence[np.ndarray], sampling_rate: int) -> list[np.ndarray]:
        prepared = []
        seconds = self.max_samples // SAMPLING_RATE
        for i, wave in enumerate(waves):
            wave = prepare_waveform(wave, i, sampling_rate, SAMPLING_RATE)
            if wave.size > self.max_samples:
                warnings.warn(f"waveform {i} lasts {wave.size / SAMPLING_RATE:.1f} s; "
                              f"{self.clip_reader} {seconds} s, so only its first {seconds} s "
                              "are used", stacklevel=3)
                wave = wave[: self.max_samples]
            prepared.append(self._fit_wave(wave, i))
        return prepared

    def _text_tokens(self, texts: Sequence[str]) -> list[list[int]]:
        rows = []
        for i, text in enumerate(texts):
            tokens = self.tokenizer.encode(text.strip(), add_special_tokens=False)
            if not tokens:
                raise ValueError(f"text {i} has no tokens; drop it before computing states")
            rows.append(tokens)
        return rows

    def _rows(self, pieces: list[PromptPiece]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded ids, attention mask and content mask of ``prefix + lead + content + tail
        + suffix`` per item."""
        rows, spans = [], []
        for lead, content, tail in pieces:
            start = len(self._prefix_ids) + len(lead)
            rows.append(self._prefix_ids + lead + content + tail + self._suffix_ids)
            spans.append((start, start + len(content)))
        width = max(len(r) for r in rows)
        if width > self._max_positions:
            raise ValueError(f"a prompt has {width} tokens; the LLM holds {self._max_positions} "
                             "positions")
        ids = torch.tensor([r + [self._pad_id] * (width - len(r)) for r in rows], dtype=torch.long)
        positions = torch.arange(width)[None, :]
        lengths = torch.tensor([len(r) for r in rows])[:, None]
        starts = torch.tensor([s for s, _ in spans])[:, None]
        ends = torch.tensor([e for _, e in spans])[:, None]
        return ids, (positions < lengths).long(), (positions >= starts) & (positions < ends)

    def text_ids(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ids, attention mask, sentence-token mask) of the text prompts."""
        return self._rows([([], tokens, []) for tokens in self._text_tokens(texts)])

    # ---- the LLM pass

    def _embedding_device(self) -> torch.device:
        return self.language_model.get_input_embeddings().weight.device

    def _run_llm(self, ids: torch.Tensor, attention: torch.Tensor, reduce,
                 embeds: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The decoder stack (no LM head) over ``ids`` or ``embeds``, ``reduce`` applied to the
        token embeddings and each layer's output."""
        device = self._embedding_device()
        kwargs: dict[str, Any] = {"attention_mask": attention.to(device), "use_cache": False}
        if embeds is None:
            kwargs["input_ids"] = ids.to(device)
        else:
            kwargs["inputs_embeds"] = embeds
        with reduce_layer_states(self.language_model.layers, reduce) as states:
            self.language_model(**kwargs)
        return states

    def _pooled_batch(self, component: str, items: list, pooling: str
                      ) -> tuple[np.ndarray, np.ndarray]:
        if component in LLM_COMPONENTS:
            ids, attention, content, embeds = self._llm_inputs(component, items)
            states = self._run_llm(ids, attention,
                                   lambda h: pool(h, content.to(h.device), pooling).cpu(), embeds)
            counts = [[int(n)] * len(states) for n in content.sum(dim=1).tolist()]
        else:
            states, counts = self._pooled_audio(component, items, pooling)
        pooled = torch.stack([s.float().cpu() for s in states], dim=1).numpy()
        return pooled, np.asarray(counts, dtype=np.int64)

    # ---- the interface

    def extract(self, component: str, inputs: Sequence[str] | Sequence[np.ndarray],
                langs: Sequence[str], *, sampling_rate: int = SAMPLING_RATE, batch_size: int = 8,
                pooling: Pooling = "mean") -> Extraction:
        comp = self.component(component)
        self.check_pooling(pooling)
        check_inputs(comp, inputs, langs)
        self._check_languages(langs)
        items = (self._prepare_waves(inputs, sampling_rate) if comp.modality == "speech" and
                 len(inputs) else list(inputs))
        return extract_in_batches(comp, items, batch_size,
                                  lambda part: self._pooled_batch(component, part, pooling))

    def token_counts(self, texts: Sequence[str], langs: Sequence[str]) -> list[int]:
        """Sentence tokens ``llm_text`` pools over (the text-side length for length baselines)."""
        check_inputs(self.component(LLM_TEXT), texts, langs)
        self._check_languages(langs)
        return [len(tokens) for tokens in self._text_tokens(texts)]

    def token_states(self, component: str, item: str | np.ndarray, lang: str, *,
                     sampling_rate: int = SAMPLING_RATE) -> TokenStates:
        """Per point (positions, dim). Audio-side components: see the family's
        ``_audio_token_states``. ``llm_*``: the whole prompt, labels = tokens, pooled_mask = the
        content span; for ``llm_speech`` times_s gives each audio position's start (NaN for
        template tokens)."""
        comp = self.component(component)
        check_inputs(comp, [item], [lang])
        self._check_languages([lang])
        with torch.inference_mode(), quiet_transformers():
            items = self._prepare_waves([item], sampling_rate) if comp.modality == "speech" \
                else [item]
            if component not in LLM_COMPONENTS:
                return self._audio_token_states(comp, items[0])
            ids, attention, content, embeds = self._llm_inputs(component, items)
            layers = self._run_llm(ids, attention, first_item_slicer(), embeds)
        mask = content[0].numpy()
        labels = [self.tokenizer.decode([int(i)]) for i in ids[0]]
        times: np.ndarray | None = None
        if component == LLM_SPEECH:
            times = self._speech_times(items[0], mask, labels)
        return TokenStates(component, [s.numpy() for s in layers], [list(labels) for _ in layers],
                           [None if times is None else times.copy() for _ in layers],
                           [mask.copy() for _ in layers])
