"""``SeamlessAdapter``: SeamlessM4T (v2 or v1) as speech_encoder, text_encoder and the text decoder
fed text or speech (see the package docstring)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from core.models.base import (
    Component,
    Extraction,
    ModelAdapter,
    Pooling,
    TokenStates,
    path_points,
    resolves,
)
from core.pooling import pool
from core.models.common import (
    batches, check_inputs, count_parameters, package_versions, prepare_waveform,
    quiet_transformers, record_layer_states,
)
from core.models.seamless.config import (
    FBANK_HOP_SAMPLES,
    FBANK_WINDOW_SAMPLES,
    MODEL_TYPES,
    SAMPLING_RATE,
)
from core.models.seamless.hooks import zero_adaptor_padding
from core.models.seamless.tokenizer import LANG_TOKEN, seamless_language

SPEECH_ENCODER = "speech_encoder"
TEXT_ENCODER = "text_encoder"
TEXT_DECODER_TEXT = "text_decoder_text"
TEXT_DECODER_SPEECH = "text_decoder_speech"
COMPONENT_NAMES = (SPEECH_ENCODER, TEXT_ENCODER, TEXT_DECODER_TEXT, TEXT_DECODER_SPEECH)

#: generous speech rate in Seamless tokens for the fallback transcript (cuts decoding loops)
TRANSCRIPT_TOKENS_PER_SECOND = 12.0


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
            match = LANG_TOKEN.match(token)
            if match:
                ids[match.group(1)] = int(self.tokenizer.convert_tokens_to_ids(token))
        return ids

    def seamless_language(self, lang: str) -> str:
        return seamless_language(lang, list(self._lang_ids))

    def supports_language(self, lang: str) -> bool:
        return resolves(self.seamless_language, lang)

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
