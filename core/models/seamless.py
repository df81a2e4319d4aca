"""SeamlessM4T adapter (v2 ``SeamlessM4Tv2Model`` and v1 ``SeamlessM4TModel``, one code path).

The reference study (Lee et al., arXiv 2411.17666) analyses SeamlessM4T v2. Components, in order
(see docs/models/seamless.md):

``speech_encoder`` (speech)
    Point 0 ``feature projection`` (stage ``frontend``): the w2v-BERT feature projection of the
    stacked log-mel fbank (the input of conformer layer 1). Points 1..N ``conformer i`` (stage
    ``encoder``): each conformer layer's output. Last point ``length adaptor`` (stage
    ``length_adaptor``, its own space ``<name>/speech_encoder_adapted``): the speech encoder's output
    after intermediate FFN + strided adaptor + ``inner_layer_norm``, i.e. what the text decoder
    cross-attends to. Conformer frames are 20 ms (fbank hop 160 samples x feature-extractor stride
    2); adapted frames are ``adaptor_stride`` (8) times longer. transformers replaces the speech
    encoder's ``hidden_states[-1]`` by the adapted output, so the conformer layers are read by forward
    hooks (``common.record_layer_states``; always removed, also when the forward raises).
    Conformer points are pooled over the frames the feature extractor marks real; the adapted point
    over the first ``floor((L + 2*(k//2) - k) / s) + 1`` frames (L real conformer frames, adaptor
    kernel k and stride s: ``_compute_sub_sample_lengths_from_attention_mask``). ``n_positions``
    records both lengths per item.

    Padding: the adaptor's strided convolutions read the LayerNorm-ed conformer states of padded
    frames into a short clip's last adapted frame when it is batched with a longer one (Hugging
    Face only masks the adaptor's attention). While the speech encoder runs, forward hooks on the
    adaptor's two pre-convolution LayerNorms zero those padded frames: exactly the convolution's own
    zero padding that the clip sees when encoded alone. So a clip's states never depend on its batch.

``text_encoder`` (text)
    Input ``__<lang>__ <sentence tokens> </s>`` (the tokenizer's source-language format). Point 0
    ``embedding`` (stage ``frontend``): scaled token embedding + sinusoidal positions (the input of
    layer 1); points 1..N the encoder layers. Pooled over the sentence tokens only (not the language
    token, not ``</s>``, never padding).

``text_decoder_text`` (text) and ``text_decoder_speech`` (speech)
    The text decoder teacher-forced on the sentence itself in the input language: decoder input
    ``</s> __<lang>__ <sentence tokens>`` (``</s>`` is ``decoder_start_token_id``, the language token
    is what ``generate(tgt_lang=<lang>)`` forces; no final ``</s>`` is fed), cross-attending to the
    text encoder output (``text_decoder_text``) or to the speech encoder output after the length
    adaptor (``text_decoder_speech``, with the adapted frames' mask). Point 0 ``embedding`` (stage
    ``frontend``: token embedding + positions, which holds no context, so it is identical across the
    two components when the same target is fed), points 1..N the decoder layers (stage
    ``decoder``); both write into one space ``<name>/text_decoder``. Pooled over the positions whose
    input is a sentence token (position k has read the sentence up to token k).

    The forced target of ``text_decoder_speech`` is ``targets=`` (one text per waveform: pass the
    reference sentence, as the text side is fed) to ``extract``/``pooled_states``/``token_states``;
    without it the model's own greedy transcript in the input language is used (at least one
    token), and ``info()`` / the component's ``conditioning`` say so.

Layers are the raw block outputs (the stacks' final ``layer_norm`` is not applied to the last
layer; conformer layers end in their own LayerNorm). Depths run along each modality's whole path:
speech = speech encoder then decoder, text = text encoder then decoder.

Languages: corpus codes are FLORES-200 (``deu_Latn``); Seamless uses ``deu``, ``cmn``,
``cmn_Hant``... ``seamless_language`` maps them (script stripped; ``zho_Hans``/``cmn_Hans`` ->
``cmn``, ``zho_Hant`` -> ``cmn_Hant``, ``zsm_Latn`` -> ``zlm``, Seamless's only Malay text token) and
checks the model's text-language list (``generation_config.text_decoder_lang_to_code_id``, else the
tokenizer's ``__xxx__`` tokens). Every component refuses a language without a text-language token
(the decoders need it; the speech encoder refuses too so that all components cover the same set).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from core import languages
from core.models.base import (
    Component,
    Extraction,
    ModelAdapter,
    Pooling,
    TokenStates,
    UnsupportedLanguageError,
    path_points,
)
from core.device import pick_device
from core.pooling import pool
from core.models.common import (
    batches, check_fits, meta_parameter_count, check_inputs, count_parameters, package_versions,
    pick_dtype, prepare_waveform, quiet_transformers, record_layer_states,
)
from core.models.hub import fit_and_place, read_config

SAMPLING_RATE = 16_000
#: SeamlessM4TFeatureExtractor: Kaldi fbank, 25 ms window, 10 ms hop, ``center=False`` (hard-coded
#: in its ``_extract_fbank_features``); consecutive ``stride`` frames are then stacked.
FBANK_WINDOW_SAMPLES = 400
FBANK_HOP_SAMPLES = 160

SPEECH_ENCODER = "speech_encoder"
TEXT_ENCODER = "text_encoder"
TEXT_DECODER_TEXT = "text_decoder_text"
TEXT_DECODER_SPEECH = "text_decoder_speech"
COMPONENT_NAMES = (SPEECH_ENCODER, TEXT_ENCODER, TEXT_DECODER_TEXT, TEXT_DECODER_SPEECH)
MODEL_TYPES = ("seamless_m4t_v2", "seamless_m4t")

#: generous speech rate in Seamless tokens for the fallback transcript (cuts decoding loops)
TRANSCRIPT_TOKENS_PER_SECOND = 12.0

#: The 98 text language codes of SeamlessM4T v1/v2 large (``special_tokens_map.json`` of
#: facebook/seamless-m4t-v2-large), as the language table's ``seamless`` column holds them. Loaded
#: models use their own list (their tokenizer's); this one builds the tiny random tokenizer.
SEAMLESS_TEXT_LANGUAGES: tuple[str, ...] = tuple(sorted(
    {languages.family_code(lang, "seamless") for lang in languages.family_languages("seamless")}))

_LANG_TOKEN = re.compile(r"^__([a-z]{3}(?:_[A-Z][a-z]{3})?)__$")


def seamless_language(lang: str, known: Sequence[str]) -> str:
    """Corpus code (FLORES-200 ``deu_Latn``) or Seamless code (``deu``) -> the Seamless code.

    ``known`` are the model's text languages (its tokenizer's); tried in order: ``lang`` itself,
    the language table's Seamless code, the ISO 639-3 part of ``lang``. Raises
    ``UnsupportedLanguageError`` naming ``lang`` and the supported codes.
    """
    known_set = set(known)
    candidates = [lang, languages.family_code(lang, "seamless"), lang.split("_", 1)[0]]
    for code in candidates:
        if code and code in known_set:
            return code
    # the codes a reader would not guess from the ISO part: aliases and renamed languages
    renamed = [c for c in [*languages.family_languages("seamless"), *languages.ALIASES]
               if c in languages.ALIASES or languages.family_code(c, "seamless") != c.split("_", 1)[0]]
    flores = sorted(c for c in renamed if languages.family_code(c, "seamless") in known_set)
    raise UnsupportedLanguageError(
        f"SeamlessM4T has no text language for {lang!r} (tried "
        f"{', '.join(dict.fromkeys(c for c in candidates if c))}). Supported: FLORES-200 codes whose "
        f"ISO 639-3 part is one of {', '.join(sorted(known_set))}; also {', '.join(flores)}")


# --------------------------------------------------------------------------------------------------
# Configurations


def tiny_random_config(model_type: str = "seamless_m4t_v2", *, vocab_size: int):
    """A few layers, small widths, the real audio front end (80 mel bins x stride 2 = 160 inputs) and
    the real adaptor (kernel 8, stride 8). Tests and demos only."""
    common: dict[str, Any] = dict(
        vocab_size=vocab_size, hidden_size=32, encoder_layers=2, decoder_layers=2,
        speech_encoder_layers=3, encoder_attention_heads=2, decoder_attention_heads=2,
        speech_encoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        speech_encoder_intermediate_size=64, conv_depthwise_kernel_size=7,
        max_position_embeddings=1024, t2u_vocab_size=32, t2u_encoder_layers=1, t2u_decoder_layers=1,
        t2u_encoder_ffn_dim=32, t2u_decoder_ffn_dim=32, t2u_encoder_attention_heads=2,
        t2u_decoder_attention_heads=2, t2u_max_position_embeddings=64, unit_embed_dim=16,
        unit_hifi_gan_vocab_size=16, upsample_initial_channel=16, upsample_rates=(2, 2),
        upsample_kernel_sizes=(4, 4), resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),),
        lang_embed_dim=8, spkr_embed_dim=8, vocoder_num_langs=4, vocoder_num_spkrs=4,
    )
    if model_type == "seamless_m4t_v2":
        from transformers import SeamlessM4Tv2Config

        return SeamlessM4Tv2Config(**common, char_vocab_size=32, t2u_variance_predictor_embed_dim=32,
                                   t2u_variance_predictor_hidden_dim=16)
    if model_type == "seamless_m4t":
        from transformers import SeamlessM4TConfig

        return SeamlessM4TConfig(**common)
    raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")


def real_size_random_config():
    """The architecture of facebook/seamless-m4t-v2-large (its config.json equals transformers'
    ``SeamlessM4Tv2Config`` defaults: width 1024, 24 conformer / 24 encoder / 24 decoder layers,
    vocabulary 256102, adaptor kernel = stride = 8), for benchmarks with random weights."""
    from transformers import SeamlessM4Tv2Config

    return SeamlessM4Tv2Config()


def _model_class(model_type: str):
    if model_type == "seamless_m4t_v2":
        from transformers import SeamlessM4Tv2Model

        return SeamlessM4Tv2Model
    if model_type == "seamless_m4t":
        from transformers import SeamlessM4TModel

        return SeamlessM4TModel
    raise ValueError(f"not a SeamlessM4T model_type: {model_type!r} (expected one of {MODEL_TYPES})")


def estimate_parameters(config) -> int:
    """Exact parameter count of the whole model (speech generation included), built on the meta
    device: no memory, about a second for v2 large."""
    return meta_parameter_count(_model_class(config.model_type), config)


# --------------------------------------------------------------------------------------------------
# Tokenizer and features for the tiny random model


def _tiny_characters() -> list[str]:
    ranges = [(0x21, 0x7F), (0xC0, 0x180), (0x391, 0x3CA), (0x400, 0x460)]
    return [chr(c) for lo, hi in ranges for c in range(lo, hi) if chr(c).isprintable()]


def build_tiny_tokenizer(languages: Sequence[str] = SEAMLESS_TEXT_LANGUAGES):
    """A character-level ``SeamlessM4TTokenizer`` built offline (no files): the real class,
    normaliser and ``▁`` word marker, the specials ``<pad>=0 <unk>=1 <s>=2 </s>=3`` that the
    SeamlessM4T configs expect, ASCII/Latin/Greek/Cyrillic characters (others are ``<unk>``), and
    the language tokens ``__eng__``... as additional special tokens."""
    from transformers import SeamlessM4TTokenizer

    vocab = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3}
    for char in ["▁", *_tiny_characters()]:
        vocab.setdefault(char, len(vocab))
    with quiet_transformers():
        return SeamlessM4TTokenizer(vocab=vocab, merges=[], src_lang="eng", tgt_lang="eng",
                                    additional_special_tokens=[f"__{c}__" for c in languages])


def build_feature_extractor():
    from transformers import SeamlessM4TFeatureExtractor

    return SeamlessM4TFeatureExtractor(feature_size=80, num_mel_bins=80, sampling_rate=SAMPLING_RATE,
                                       padding_value=0.0, stride=2)


# --------------------------------------------------------------------------------------------------
# Hooks


@contextmanager
def zero_adaptor_padding(speech_encoder: nn.Module, frame_mask: torch.Tensor | None
                         ) -> Iterator[None]:
    """While active, padded conformer frames enter the adaptor's strided convolutions as zeros.

    The adaptor LayerNorms its input before each convolution, so padded frames would otherwise read
    as LayerNorm(state of a padded frame) into the last real adapted frame; zeros are what the
    convolution's own padding gives a clip encoded alone. Hooks are removed on exit, also on error.
    """
    adapter = getattr(speech_encoder, "adapter", None)
    handles = []
    if adapter is not None and frame_mask is not None and not bool(frame_mask.all()):
        keep = frame_mask.to(torch.bool).unsqueeze(-1)

        def zero(_module, _args, output):
            if output.shape[:2] != keep.shape[:2]:
                raise RuntimeError(f"adaptor input {tuple(output.shape)} does not match the frame "
                                   f"mask {tuple(keep.shape)}")
            return output.masked_fill(~keep.to(output.device), 0.0)

        layer = adapter.layers[0]
        modules = (layer.residual_layer_norm, layer.self_attn_layer_norm)
        try:
            handles = [m.register_forward_hook(zero) for m in modules]
        except Exception:
            for handle in handles:
                handle.remove()
            raise
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


# --------------------------------------------------------------------------------------------------
# The adapter


@dataclass
class _Run:
    """One batch through a component: per point (batch, time, dim) states, the mask of positions
    that exist for each row (not padding) and the mask of positions that are pooled."""

    states: list[torch.Tensor]
    valid: list[torch.Tensor]
    pooled: list[torch.Tensor]
    labels: list[list[list[str]]]           # [row][point] -> labels of the valid positions
    times_s: list[list[np.ndarray | None]]  # [row][point]


class SeamlessAdapter(ModelAdapter):
    """SeamlessM4T (v2 or v1) as speech_encoder, text_encoder, text_decoder_text/_speech."""

    poolings: tuple[Pooling, ...] = ("mean",)

    def __init__(self, model, tokenizer, feature_extractor, *, name: str, device: str,
                 dtype: torch.dtype = torch.float32, source: dict | None = None,
                 n_parameters: int | None = None):
        config = model.config
        if config.model_type not in MODEL_TYPES:
            raise ValueError(f"{name}: model_type {config.model_type!r} is not SeamlessM4T "
                             f"({', '.join(MODEL_TYPES)})")
        if config.add_adapter and config.num_adapter_layers != 1:
            raise NotImplementedError(
                f"{name}: num_adapter_layers={config.num_adapter_layers}; transformers passes the "
                "input mask to every adaptor layer, so only one layer (all released checkpoints) "
                "has a well-defined adapted mask")
        self.name = name
        self.device = device
        self.dtype = dtype
        self.model_type = config.model_type
        if getattr(model, "hf_device_map", None) is None:
            model = model.to(device=device, dtype=dtype)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.feature_extractor = feature_extractor
        self._source = source or {}
        self._n_parameters = n_parameters if n_parameters is not None else count_parameters(model)
        self._lang_ids = self._language_ids()
        if not self._lang_ids:
            raise ValueError(f"{name}: found no language tokens (__eng__...) in the model's "
                             "generation config or tokenizer")
        self._components = self._build_components()

    # ---- description

    @property
    def config(self):
        return self.model.config

    @property
    def frame_s(self) -> float:
        """Seconds per conformer frame (fbank hop x feature-extractor stride)."""
        return FBANK_HOP_SAMPLES * int(self.feature_extractor.stride) / SAMPLING_RATE

    @property
    def adaptor_stride(self) -> int:
        return int(self.config.adaptor_stride) if self.config.add_adapter else 1

    def _build_components(self) -> list[Component]:
        cfg = self.config
        n_speech, n_enc, n_dec = cfg.speech_encoder_layers, cfg.encoder_layers, cfg.decoder_layers
        space = {s: f"{self.name}/{s}" for s in
                 ("speech_encoder", "speech_encoder_adapted", "text_encoder", "text_decoder")}
        speech_names = ["feature projection", *(f"conformer {i}" for i in range(1, n_speech + 1)),
                        "length adaptor"]
        decoder_names = ["embedding", *(f"decoder {i}" for i in range(1, n_dec + 1))]
        text_names = ["embedding", *(f"encoder {i}" for i in range(1, n_enc + 1))]
        speech_path = path_points(
            [("frontend", speech_names[:1]), ("encoder", speech_names[1:-1]),
             ("length_adaptor", speech_names[-1:]), ("frontend", decoder_names[:1]),
             ("decoder", decoder_names[1:])],
            [space["speech_encoder"], space["speech_encoder"], space["speech_encoder_adapted"],
             space["text_decoder"], space["text_decoder"]])
        text_path = path_points(
            [("frontend", text_names[:1]), ("encoder", text_names[1:]),
             ("frontend", decoder_names[:1]), ("decoder", decoder_names[1:])],
            [space["text_encoder"]] * 2 + [space["text_decoder"]] * 2)
        n_se, n_te = len(speech_names), len(text_names)
        decoder_conditioning = {
            "forced_target": "the sentence in the input language",
            "target_lang_token": "__<lang>__",
            "decoder_input": "</s> (decoder_start_token_id) __<lang>__ <sentence tokens>, no final </s>",
            "pooled": "positions whose input is a sentence token",
        }
        return [
            Component(SPEECH_ENCODER, "speech", cfg.hidden_size, space["speech_encoder"],
                      speech_path[:n_se],
                      "w2v-BERT conformer speech encoder: feature projection, conformer layers, then "
                      f"the length adaptor (stride {self.adaptor_stride}); mean over real frames",
                      {"input": "80-bin log-mel fbank, 2 frames stacked (20 ms per frame)",
                       "adaptor_padding": "padded frames enter the adaptor convolutions as zeros"}),
            Component(TEXT_ENCODER, "text", cfg.hidden_size, space["text_encoder"],
                      text_path[:n_te],
                      "NLLB-style text encoder on __<lang>__ <sentence> </s>; mean over sentence tokens",
                      {"source_lang_token": "__<lang>__", "suffix": "</s>",
                       "pooled": "sentence tokens (not the language token or </s>)"}),
            Component(TEXT_DECODER_TEXT, "text", cfg.hidden_size, space["text_decoder"],
                      text_path[n_te:],
                      "text decoder teacher-forced on the sentence in its own language, "
                      "cross-attending to the text encoder output",
                      {**decoder_conditioning, "context": "text encoder output"}),
            Component(TEXT_DECODER_SPEECH, "speech", cfg.hidden_size, space["text_decoder"],
                      speech_path[n_se:],
                      "text decoder teacher-forced on the sentence (its transcript) in its own "
                      "language, cross-attending to the speech encoder output after the adaptor",
                      {**decoder_conditioning,
                       "context": "speech encoder output after the length adaptor",
                       "forced_target_source": "targets= (the reference sentence) when given, else "
                                               "the model's own greedy transcript"}),
        ]

    def components(self) -> list[Component]:
        return list(self._components)

    def modality_pairs(self) -> list[tuple[str, str]]:
        return [(TEXT_ENCODER, SPEECH_ENCODER), (TEXT_DECODER_TEXT, TEXT_DECODER_SPEECH)]

    def info(self) -> dict:
        cfg = self.config
        return {
            "name": self.name,
            "family": "seamless_m4t",
            "model_type": self.model_type,
            "device": self.device,
            "dtype": str(self.dtype).removeprefix("torch."),
            **self._source,
            "n_parameters": self._n_parameters,
            "architecture": {
                "hidden_size": cfg.hidden_size,
                "speech_encoder_layers": cfg.speech_encoder_layers,
                "encoder_layers": cfg.encoder_layers,
                "decoder_layers": cfg.decoder_layers,
                "add_adapter": bool(cfg.add_adapter),
                "adaptor_kernel_size": cfg.adaptor_kernel_size,
                "adaptor_stride": cfg.adaptor_stride,
                "position_embeddings_type": cfg.position_embeddings_type,
                "vocab_size": cfg.vocab_size,
                "frame_s": self.frame_s,
                "adapted_frame_s": self.frame_s * self.adaptor_stride,
            },
            "conditioning": {c.name: c.conditioning for c in self._components},
            "last_layer": "raw block output (the stacks' final layer_norm is not applied)",
            "languages": sorted(self._lang_ids),
            "versions": package_versions(),
        }

    # ---- languages

    def _language_ids(self) -> dict[str, int]:
        generation = getattr(self.model, "generation_config", None)
        table = dict(getattr(generation, "text_decoder_lang_to_code_id", None) or {})
        if table:
            return {code: int(i) for code, i in table.items()}
        ids = {}
        for token in getattr(self.tokenizer, "all_special_tokens", []):
            match = _LANG_TOKEN.match(token)
            if match:
                ids[match.group(1)] = int(self.tokenizer.convert_tokens_to_ids(token))
        return ids

    def seamless_language(self, lang: str) -> str:
        return seamless_language(lang, list(self._lang_ids))

    def supports_language(self, lang: str) -> bool:
        try:
            self.seamless_language(lang)
        except UnsupportedLanguageError:
            return False
        return True

    def _lang_id(self, lang: str) -> int:
        return self._lang_ids[self.seamless_language(lang)]

    # ---- inputs

    def _sentence_ids(self, text: str, index: int) -> list[int]:
        ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        if not ids:
            raise ValueError(f"text {index} gives no tokens; drop it before computing states")
        return ids

    def token_counts(self, texts: Sequence[str], langs: Sequence[str]) -> list[int]:
        """Sentence tokens pooled by text_encoder and the decoders (the text length in tokens)."""
        for lang in set(langs):
            self.seamless_language(lang)
        return [len(self._sentence_ids(t, i)) for i, t in enumerate(texts)]

    def _features(self, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        for i, wave in enumerate(waves):
            if wave.size < FBANK_WINDOW_SAMPLES + FBANK_HOP_SAMPLES * (self.feature_extractor.stride - 1):
                raise ValueError(f"waveform {i} has {wave.size} samples; SeamlessM4T needs at least "
                                 f"{FBANK_WINDOW_SAMPLES + FBANK_HOP_SAMPLES} (35 ms) for one frame")
        out = self.feature_extractor(waves, sampling_rate=SAMPLING_RATE, return_tensors="pt",
                                     padding=True, return_attention_mask=True)
        features = out.input_features.to(device=self.device, dtype=self.dtype)
        return features, out.attention_mask.to(self.device)

    def _pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        pad = int(self.config.pad_token_id)
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long)
        real = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.long)
        return ids.to(self.device), real.to(self.device)

    def _labels(self, ids: Sequence[int]) -> list[str]:
        return list(self.tokenizer.convert_ids_to_tokens(list(ids)))

    # ---- forward passes

    def adapted_lengths(self, frame_mask: torch.Tensor) -> torch.Tensor:
        """Adapted frames per row from the conformer frame mask (the adaptor's length formula)."""
        if not self.config.add_adapter:
            return frame_mask.sum(dim=1).long()
        return self.model._compute_sub_sample_lengths_from_attention_mask(frame_mask).long()

    def _speech_encoder(self, waves: list[np.ndarray], *, layers: bool):
        """(conformer point states or None, adapted states, frame mask, adapted mask)."""
        encoder = self.model.speech_encoder
        features, frame_mask = self._features(waves)
        with zero_adaptor_padding(encoder, frame_mask):
            if layers:
                with record_layer_states(encoder.encoder.layers, include_input=True) as states:
                    adapted = encoder(input_features=features, attention_mask=frame_mask)[0]
                states = list(states)
                if len(states) != self.config.speech_encoder_layers + 1:
                    raise RuntimeError(f"recorded {len(states)} conformer states, expected "
                                       f"{self.config.speech_encoder_layers + 1}")
            else:
                states = None
                adapted = encoder(input_features=features, attention_mask=frame_mask)[0]
        lengths = self.adapted_lengths(frame_mask).to(adapted.device)
        if int(lengths.max()) > adapted.shape[1]:
            raise RuntimeError(f"adapted lengths {lengths.tolist()} exceed the adapted sequence "
                               f"({adapted.shape[1]} frames)")
        adapted_mask = torch.arange(adapted.shape[1], device=adapted.device)[None] < lengths[:, None]
        return states, adapted, frame_mask.bool(), adapted_mask

    def _decoder(self, target_ids: list[list[int]], langs: Sequence[str], context: torch.Tensor,
                 context_mask: torch.Tensor):
        start = int(self.config.decoder_start_token_id)
        rows = [[start, self._lang_id(lang), *ids] for ids, lang in zip(target_ids, langs, strict=True)]
        ids, real = self._pad(rows)
        decoder = self.model.text_decoder
        with record_layer_states(decoder.layers, include_input=True) as states:
            decoder(input_ids=ids, attention_mask=real, encoder_hidden_states=context,
                    encoder_attention_mask=context_mask.long(), use_cache=False)
        states = list(states)
        valid = real.bool()
        pooled = valid.clone()
        pooled[:, :2] = False
        labels = [self._labels(r) for r in rows]
        return states, valid, pooled, labels

    def _text_encoder(self, texts: Sequence[str], langs: Sequence[str], *, layers: bool):
        eos = int(self.config.eos_token_id if isinstance(self.config.eos_token_id, int)
                  else self.config.eos_token_id[0])
        rows = [[self._lang_id(lang), *self._sentence_ids(text, i), eos]
                for i, (text, lang) in enumerate(zip(texts, langs, strict=True))]
        ids, real = self._pad(rows)
        encoder = self.model.text_encoder
        if layers:
            with record_layer_states(encoder.layers, include_input=True) as states:
                out = encoder(input_ids=ids, attention_mask=real)[0]
            states = list(states)
        else:
            states = None
            out = encoder(input_ids=ids, attention_mask=real)[0]
        valid = real.bool()
        pooled = valid.clone()
        pooled[:, 0] = False
        pooled[torch.arange(len(rows), device=real.device), real.sum(dim=1) - 1] = False
        labels = [self._labels(r) for r in rows]
        return states, out, valid, pooled, labels

    def _frame_times(self, n: int, adapted: bool) -> np.ndarray:
        if not adapted:
            return np.arange(n, dtype=np.float64) * self.frame_s
        if not self.config.add_adapter:
            return np.arange(n, dtype=np.float64) * self.frame_s
        conv = self.model.speech_encoder.adapter.layers[0].self_attn_conv
        stride, padding = int(conv.stride[0]), int(conv.padding[0])
        first = np.maximum(np.arange(n) * stride - padding, 0)
        return first.astype(np.float64) * self.frame_s  # start of the window the convolution reads

    def _run(self, comp: Component, items: Sequence, langs: Sequence[str],
             targets: Sequence[str] | None) -> _Run:
        n = len(items)
        if comp.name == SPEECH_ENCODER:
            states, adapted, frame_mask, adapted_mask = self._speech_encoder(list(items), layers=True)
            states = [*states, adapted]
            masks = [frame_mask] * (len(states) - 1) + [adapted_mask]
            labels, times = [], []
            for b in range(n):
                row_l, row_t = [], []
                for k, mask in enumerate(masks):
                    count = int(mask[b].sum())
                    row_l.append([str(i) for i in range(count)])
                    row_t.append(self._frame_times(count, adapted=k == len(masks) - 1))
                labels.append(row_l)
                times.append(row_t)
            return _Run(states, masks, masks, labels, times)
        if comp.name == TEXT_ENCODER:
            states, _, valid, pooled, labels = self._text_encoder(items, langs, layers=True)
            k = len(states)
            return _Run(states, [valid] * k, [pooled] * k, [[lab] * k for lab in labels],
                        [[None] * k for _ in range(n)])
        if comp.name == TEXT_DECODER_TEXT:
            _, context, context_mask, _, _ = self._text_encoder(items, langs, layers=False)
            target_ids = [self._sentence_ids(t, i) for i, t in enumerate(items)]
        elif comp.name == TEXT_DECODER_SPEECH:
            _, context, _, context_mask = self._speech_encoder(list(items), layers=False)
            if targets is None:
                target_ids = self._generate_ids(list(items), langs, min_new_tokens=1)
            else:
                target_ids = [self._sentence_ids(t, i) for i, t in enumerate(targets)]
        else:  # pragma: no cover - components() lists only the four above
            raise KeyError(comp.name)
        states, valid, pooled, labels = self._decoder(target_ids, langs, context, context_mask)
        k = len(states)
        return _Run(states, [valid] * k, [pooled] * k, [[lab] * k for lab in labels],
                    [[None] * k for _ in range(n)])

    # ---- public entry points

    def _prepare(self, component: str, inputs, langs, sampling_rate: int,
                 targets: Sequence[str] | None) -> tuple[Component, list]:
        comp = self.component(component)
        check_inputs(comp, inputs, langs)
        for lang in dict.fromkeys(langs):
            self.seamless_language(lang)  # fail early, before any compute
        if targets is not None:
            if comp.name != TEXT_DECODER_SPEECH:
                raise ValueError(f"targets= is only read by {TEXT_DECODER_SPEECH}, not {comp.name}")
            if isinstance(targets, str) or len(targets) != len(inputs):
                raise ValueError(f"give one target text per waveform: {len(inputs)} waveforms, "
                                 f"targets {targets!r:.60}")
        if comp.modality == "speech":
            items = [prepare_waveform(w, i, sampling_rate, SAMPLING_RATE) for i, w in enumerate(inputs)]
        else:
            items = list(inputs)
        return comp, items

    def reads_reference_text(self, component: str) -> bool:
        return component == TEXT_DECODER_SPEECH

    def extract(self, component: str, inputs: Sequence[str] | Sequence[np.ndarray],
                langs: Sequence[str], *, sampling_rate: int = SAMPLING_RATE, batch_size: int = 8,
                pooling: Pooling = "mean", targets: Sequence[str] | None = None) -> Extraction:
        """Pooled states (items, points, dim) and pooled positions (items, points).

        ``targets``: for ``text_decoder_speech`` only, the text (one per waveform) the decoder is
        teacher-forced on; None uses the model's own greedy transcript."""
        self.check_pooling(pooling)
        comp, items = self._prepare(component, inputs, langs, sampling_rate, targets)
        pooled = np.zeros((len(items), comp.n_layers, comp.dim), dtype=np.float32)
        counts = np.zeros((len(items), comp.n_layers), dtype=np.int64)
        with torch.inference_mode():
            for part in batches(len(items), batch_size):
                run = self._run(comp, items[part], list(langs[part]),
                                None if targets is None else list(targets[part]))
                if len(run.states) != comp.n_layers:
                    raise RuntimeError(f"{comp.name}: got {len(run.states)} states for "
                                       f"{comp.n_layers} points")
                for k, (hidden, mask) in enumerate(zip(run.states, run.pooled, strict=True)):
                    pooled[part, k] = pool(hidden, mask, pooling).cpu().numpy()
                    counts[part, k] = mask.sum(dim=1).cpu().numpy()
        return Extraction(pooled=pooled, n_positions=counts)

    def pooled_states(self, component: str, inputs: Sequence[str] | Sequence[np.ndarray],
                      langs: Sequence[str], *, sampling_rate: int = SAMPLING_RATE,
                      batch_size: int = 8, pooling: Pooling = "mean",
                      targets: Sequence[str] | None = None) -> np.ndarray:
        return self.extract(component, inputs, langs, sampling_rate=sampling_rate,
                            batch_size=batch_size, pooling=pooling, targets=targets).pooled

    def token_states(self, component: str, item: str | np.ndarray, lang: str, *,
                     sampling_rate: int = SAMPLING_RATE, target: str | None = None) -> TokenStates:
        comp, items = self._prepare(component, [item], [lang], sampling_rate,
                                    None if target is None else [target])
        with torch.inference_mode():
            run = self._run(comp, items, [lang], None if target is None else [target])
        layers, masks = [], []
        for hidden, valid, pooled in zip(run.states, run.valid, run.pooled, strict=True):
            keep = valid[0]
            layers.append(hidden[0][keep].float().cpu().numpy())
            masks.append(pooled[0][keep].cpu().numpy().astype(bool))
        return TokenStates(component=comp.name, layers=layers, labels=run.labels[0],
                           times_s=run.times_s[0], pooled_mask=masks)

    # ---- transcription

    def _generate_ids(self, waves: list[np.ndarray], langs: Sequence[str], *,
                      max_new_tokens: int | None = None, min_new_tokens: int = 0) -> list[list[int]]:
        """Greedy speech-to-text in each clip's own language: token ids after the prefix, up to
        the first </s> or padding."""
        out: list[list[int] | None] = [None] * len(waves)
        stop = {int(self.config.pad_token_id), int(self.config.eos_token_id)}
        for code in dict.fromkeys(self.seamless_language(lang) for lang in langs):
            idx = [i for i, lang in enumerate(langs) if self.seamless_language(lang) == code]
            group = [waves[i] for i in idx]
            features, frame_mask = self._features(group)
            budget = max_new_tokens or max(
                1, math.ceil(max(len(w) for w in group) / SAMPLING_RATE * TRANSCRIPT_TOKENS_PER_SECOND) + 8)
            with zero_adaptor_padding(self.model.speech_encoder, frame_mask), quiet_transformers():
                generated = self.model.generate(
                    input_features=features, attention_mask=frame_mask, tgt_lang=code,
                    generate_speech=False, do_sample=False, num_beams=1,
                    max_new_tokens=budget, min_new_tokens=min_new_tokens)
            sequences = generated.sequences if hasattr(generated, "sequences") else generated[0]
            lang_id = self._lang_ids[code]
            for row, i in zip(sequences.tolist(), idx, strict=True):
                # the prefix is </s> __<lang>__ (decoder start, forced language)
                position = row.index(lang_id) + 1 if lang_id in row[:3] else 0
                ids = []
                for token in row[position:]:
                    if token in stop:
                        break
                    ids.append(token)
                if not ids and min_new_tokens:
                    raise RuntimeError(f"waveform {i}: the model's transcript is empty; pass "
                                       "targets= (the reference sentence)")
                out[i] = ids
        return [ids or [] for ids in out]

    def transcribe(self, waveforms: Sequence[np.ndarray], langs: Sequence[str], *,
                   sampling_rate: int = SAMPLING_RATE, batch_size: int = 8,
                   max_new_tokens: int | None = None) -> list[str]:
        """Greedy ASR (speech-to-text with the target language = the clip's language)."""
        comp = self.component(SPEECH_ENCODER)
        check_inputs(comp, waveforms, langs)
        waves = [prepare_waveform(w, i, sampling_rate, SAMPLING_RATE) for i, w in enumerate(waveforms)]
        texts: list[str] = []
        with torch.inference_mode():
            for part in batches(len(waves), batch_size):
                ids = self._generate_ids(waves[part], list(langs[part]), max_new_tokens=max_new_tokens)
                texts += [self.tokenizer.decode(r, skip_special_tokens=True).strip() for r in ids]
        return texts


# --------------------------------------------------------------------------------------------------
# Loading


def _load_pretrained(source: str, device: str, dtype: torch.dtype):
    config = read_config(source, "Pass a local directory holding config.json, the safetensors, "
                                 "the tokenizer and preprocessor_config.json, or use "
                                 "'seamless-m4t-v2-tiny-random'")
    cls = _model_class(config.model_type)
    n_parameters = estimate_parameters(config)
    kwargs = fit_and_place(source, n_parameters, dtype, device, spread=False)
    with quiet_transformers():
        model = cls.from_pretrained(source, **kwargs)
    try:
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(source)
        tokenizer, features = processor.tokenizer, processor.feature_extractor
    except (OSError, ValueError, AttributeError):
        from transformers import AutoTokenizer, SeamlessM4TFeatureExtractor

        tokenizer = AutoTokenizer.from_pretrained(source)
        features = SeamlessM4TFeatureExtractor.from_pretrained(source)
    return model, tokenizer, features, {"weights": f"from_pretrained({source!r})"}, n_parameters


def _build_random(model_type: str, seed: int, device: str, dtype: torch.dtype, real_size: bool):
    tokenizer = build_tiny_tokenizer()
    if real_size:
        config = real_size_random_config()
        if model_type != config.model_type:
            raise ValueError("real_size=True builds the v2 large architecture only")
    else:
        config = tiny_random_config(model_type, vocab_size=len(tokenizer))
    n_parameters = estimate_parameters(config)
    check_fits(f"random {model_type}", n_parameters, dtype, device)
    cls = _model_class(model_type)
    with torch.random.fork_rng(devices=[]), quiet_transformers():
        torch.manual_seed(seed)
        model = cls(config)
    lang_ids = {c: int(tokenizer.convert_tokens_to_ids(f"__{c}__")) for c in SEAMLESS_TEXT_LANGUAGES}
    model.generation_config.text_decoder_lang_to_code_id = lang_ids
    model.generation_config.decoder_start_token_id = config.decoder_start_token_id
    source = {"weights": f"random (seed {seed}) for tests/demos only",
              "random_config": "real size (v2 large)" if real_size else "tiny",
              "tokenizer": "character-level, built offline"}
    return model, tokenizer, build_feature_extractor(), source, n_parameters


def load_seamless(*, name: str, device: str | None = None, source: str | None = None,
                  random: bool = False, dtype: str | torch.dtype | None = None, seed: int = 0,
                  model_type: str = "seamless_m4t_v2", real_size: bool = False,
                  **kw: Any) -> SeamlessAdapter:
    """Factory behind the registry: an HF id / local directory (``source``), or random weights.

    ``random=True`` builds a tiny random model (``model_type`` v2 or ``seamless_m4t`` for v1), or
    with ``real_size=True`` the v2 large architecture. Real weights load in bfloat16 on CUDA (with
    ``device_map``) and float32 on CPU unless ``dtype`` says otherwise; the memory is checked first.
    """
    if kw:
        raise TypeError(f"load_seamless got unexpected arguments: {', '.join(sorted(kw))}")
    if random == (source is not None):
        raise ValueError("give exactly one of source=<HF id or directory> or random=True")
    device = pick_device(device)
    if random:
        resolved = pick_dtype(dtype, device)
        model, tokenizer, features, info, n_parameters = _build_random(
            model_type, seed, device, resolved, real_size)
    else:
        resolved = pick_dtype(dtype, device, default_cuda=torch.bfloat16)
        model, tokenizer, features, info, n_parameters = _load_pretrained(str(source), device,
                                                                          resolved)
    return SeamlessAdapter(model, tokenizer, features, name=name, device=device, dtype=resolved,
                           source=info, n_parameters=n_parameters)
