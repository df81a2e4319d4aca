"""``SonarAdapter``: SONAR's text and speech encoders as components meeting in one sentence space
(see the package docstring)."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.models.base import (
    Component,
    Extraction,
    ModelAdapter,
    Pooling,
    TokenStates,
    UnsupportedLanguageError,
    path_points,
)
from core.models.cache import sha256_file
from core.models.common import (
    batches,
    check_fits,
    check_inputs,
    count_parameters,
    package_versions,
    prepare_waveform,
    quiet_transformers,
    record_layer_states,
)
from core.models.sonar.checkpoint import (
    SPEECH_FILES,
    CheckpointError,
    convert_speech_checkpoint,
    read_checkpoint,
    speech_code,
    speech_config_from_state,
    speech_parameter_count,
)
from core.models.sonar.config import (
    FBANK_HOP_SAMPLES,
    FBANK_WINDOW_SAMPLES,
    SAMPLING_RATE,
    SpeechEncoderConfig,
    TextEncoderConfig,
)
from core.models.sonar.modules import SpeechEncoder, init_random
from core.models.sonar.tokenizer import NllbTokenizer
from core.pooling import pool

TEXT_ENCODER = "text_encoder"
SPEECH_ENCODER = "speech_encoder"


@dataclass
class SpeechSource:
    """Where one language's speech encoder comes from: a checkpoint file or a random seed."""

    iso: str
    cfg: SpeechEncoderConfig
    path: Path | None = None
    seed: int | None = None
    #: read the file as a full pickle (the user's explicit opt-in), not weights_only
    trusted: bool = False


class SonarAdapter(ModelAdapter):
    """SONAR as ``text_encoder`` and ``speech_encoder`` meeting in ``<name>/sentence``."""

    poolings: tuple[Pooling, ...] = ("mean",)

    def __init__(self, *, name: str, device: str, dtype: torch.dtype,
                 text_encoder: nn.Module | None, text_cfg: TextEncoderConfig | None,
                 tokenizer: NllbTokenizer | None, speech_sources: Mapping[str, SpeechSource],
                 provenance: dict, max_speech_encoders: int = 2):
        if text_encoder is None and not speech_sources:
            raise ValueError(f"{name}: neither a text encoder nor a speech encoder to load")
        self.name = name
        self.device = device
        self.dtype = dtype
        self.text_cfg = text_cfg
        self.tokenizer = tokenizer
        self.text_encoder = (text_encoder.to(device=device, dtype=dtype).eval()
                             if text_encoder is not None else None)
        self._speech_sources = dict(speech_sources)
        self._speech: OrderedDict[str, SpeechEncoder] = OrderedDict()
        self.max_speech_encoders = max(1, int(max_speech_encoders))
        self._provenance = provenance
        self._speech_files: dict[str, dict] = {}
        self._feature_extractor = None
        dims = {c.model_dim for c in [*(s.cfg for s in self._speech_sources.values())]}
        if text_cfg is not None:
            dims.add(text_cfg.model_dim)
        if len(dims) != 1:
            raise ValueError(f"{name}: text and speech encoders disagree on the sentence width {dims}")
        self.dim = dims.pop()
        self.n_pooler_points = max((s.cfg.pooler_layers for s in self._speech_sources.values()),
                                   default=0)
        self._components = self._build_components()

    # ---- description

    def _build_components(self) -> list[Component]:
        comps = []
        sentence = f"{self.name}/sentence"
        if self.text_encoder is not None:
            n = self.text_cfg.num_layers
            text_space = f"{self.name}/text_encoder"
            points = path_points([("frontend", ["embedding"]),
                                  ("encoder", [f"encoder {i}" for i in range(1, n + 1)]),
                                  ("pooler", ["sentence embedding"])],
                                 [text_space, text_space, sentence])
            comps.append(Component(
                TEXT_ENCODER, "text", self.dim, text_space, points,
                "NLLB-200 encoder on __<lang>__ <sentence> </s>; layers mean-pooled over the "
                "sentence tokens, then SONAR's sentence embedding (mean over all tokens of the "
                "final LayerNorm'd output)",
                {"source_lang_token": "__<lang>__", "suffix": "</s>",
                 "pooled": "sentence tokens (not the language token or </s>)",
                 "sentence_embedding": "mean over all tokens (language token and </s> included) "
                                       "of LayerNorm(last layer), as SONAR pools"}))
        if self._speech_sources:
            any_cfg = next(iter(self._speech_sources.values())).cfg
            n, p = any_cfg.num_layers, self.n_pooler_points
            speech_space = f"{self.name}/speech_encoder"
            pooler_space = f"{self.name}/speech_pooler"
            points = path_points([("frontend", ["feature projection"]),
                                  ("encoder", [f"conformer {i}" for i in range(1, n + 1)]),
                                  ("pooler", [f"pooler {k}" for k in range(1, p + 1)]),
                                  ("pooler", ["sentence embedding"])],
                                 [speech_space, speech_space, pooler_space, sentence])
            comps.append(Component(
                SPEECH_ENCODER, "speech", self.dim, speech_space, points,
                "SONAR speech encoder of the clip's language: w2v-BERT conformer (mean over real "
                "frames), then the attention pooler's query after each layer and the sentence "
                "embedding",
                {"input": "80-bin Kaldi fbank, standardised per utterance, 2 frames stacked "
                          "(20 ms per frame)",
                 "encoder": "one speech encoder per language (the clip's own)",
                 "pooler_points": f"{p} points; a pooler of L layers gives at point k its layer "
                                  f"ceil(k * L / {p})"}))
        return comps

    def components(self) -> list[Component]:
        return list(self._components)

    def modality_pairs(self) -> list[tuple[str, str]]:
        names = {c.name for c in self._components}
        return [(TEXT_ENCODER, SPEECH_ENCODER)] if {TEXT_ENCODER, SPEECH_ENCODER} <= names else []

    def speech_languages(self) -> list[str]:
        return sorted(self._speech_sources)

    def pooler_layer_for_point(self, iso: str, k: int) -> int:
        """1-based pooler layer of language ``iso`` shown at pooler point ``k`` (1..P)."""
        layers = self._speech_sources[iso].cfg.pooler_layers
        return max(1, math.ceil(k * layers / self.n_pooler_points))

    def info(self) -> dict:
        speech = {}
        for iso, src in sorted(self._speech_sources.items()):
            entry: dict[str, Any] = {"pooler_layers": src.cfg.pooler_layers,
                                     "pooler_points": [self.pooler_layer_for_point(iso, k)
                                                       for k in range(1, self.n_pooler_points + 1)]}
            if src.path is not None:
                entry["checkpoint"] = src.path.name
                entry.update(self._speech_files.get(iso, {"sha256": "not loaded yet"}))
            else:
                entry["weights"] = f"random (seed {src.seed})"
            speech[iso] = entry
        any_speech = next(iter(self._speech_sources.values())).cfg if self._speech_sources else None
        return {
            "name": self.name,
            "family": "sonar",
            "device": self.device,
            "dtype": str(self.dtype).removeprefix("torch."),
            **self._provenance,
            "architecture": {
                "text": asdict(self.text_cfg) if self.text_cfg else None,
                "speech": asdict(any_speech) if any_speech else None,
                "sentence_dim": self.dim,
                "frame_s": self.frame_s,
            },
            "speech_encoders": speech,
            "tokenizer": self.tokenizer.source if self.tokenizer else None,
            "conditioning": {c.name: c.conditioning for c in self._components},
            "last_layer": "encoder points are raw layer outputs; the sentence embedding is "
                          "SONAR's own output",
            "versions": package_versions(),
        }

    @property
    def frame_s(self) -> float:
        stride = next(iter(self._speech_sources.values())).cfg.fbank_stride \
            if self._speech_sources else 2
        return FBANK_HOP_SAMPLES * stride / SAMPLING_RATE

    # ---- languages

    def supports_language(self, lang: str) -> bool:
        text_ok = self.tokenizer is None or self.tokenizer.supports(lang)
        speech_ok = not self._speech_sources or speech_code(lang) in self._speech_sources
        return text_ok and speech_ok

    def _check_langs(self, comp: Component, langs: Sequence[str]) -> None:
        for lang in dict.fromkeys(langs):
            if comp.modality == "text":
                self.tokenizer.lang_id(lang)
            elif speech_code(lang) not in self._speech_sources:
                iso = speech_code(lang)
                wanted = SPEECH_FILES.get(iso, f"spenc.v3ap.{iso}.pt")
                known = ", ".join(self.speech_languages())
                raise UnsupportedLanguageError(
                    f"{self.name}: no SONAR speech encoder for {lang!r}: put its checkpoint "
                    f"{wanted} in the model folder"
                    + ("" if iso in SPEECH_FILES else
                       f" (SONAR releases none for {iso!r}: see sonar/cards/sonar_speech_encoder.yaml)")
                    + f". Loaded speech languages: {known}")

    # ---- text

    def token_counts(self, texts: Sequence[str], langs: Sequence[str]) -> list[int]:
        """Sentence tokens (the text encoder's pooled positions; no language token, no </s>)."""
        comp = self.component(TEXT_ENCODER)
        check_inputs(comp, texts, langs)
        self._check_langs(comp, langs)
        return [len(self._sentence_ids(t, i)) for i, t in enumerate(texts)]

    def _sentence_ids(self, text: str, index: int) -> list[int]:
        ids = self.tokenizer.sentence_ids(text)
        if not ids:
            raise ValueError(f"text {index} gives no tokens; drop it before computing states")
        limit = self.text_cfg.max_seq_len - 2
        if len(ids) + 2 > self.text_cfg.max_seq_len:
            raise ValueError(f"text {index} has {len(ids)} tokens; SONAR's text encoder reads at "
                             f"most {limit} besides the language token and </s>")
        return ids

    def _run_text(self, texts: Sequence[str], langs: Sequence[str]):
        rows = [[self.tokenizer.lang_id(lang), *self._sentence_ids(t, i), NllbTokenizer.EOS]
                for i, (t, lang) in enumerate(zip(texts, langs, strict=True))]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [NllbTokenizer.PAD] * (width - len(r)) for r in rows],
                           device=self.device)
        real = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows],
                            device=self.device)
        enc = self.text_encoder
        # inputs_embeds: positions are then sequential from pad_idx + 1 (fairseq2's arange), not
        # derived from the ids (token 1 is <unk>, which M2M100 would take for padding)
        embeds = enc.embed_tokens(ids)
        with record_layer_states(enc.layers, include_input=True) as recorded:
            out = enc(inputs_embeds=embeds, attention_mask=real).last_hidden_state
        states = list(recorded)
        sentence = pool(out, real, "mean").to(out.dtype)[:, None, :]
        sentence_mask = torch.ones(len(rows), 1, dtype=torch.bool, device=self.device)
        valid = real.bool()
        pooled = valid.clone()
        pooled[:, 0] = False
        pooled[torch.arange(len(rows), device=self.device), real.sum(dim=1) - 1] = False
        labels = [[self.tokenizer.token(i) for i in r] for r in rows]
        return ([*states, sentence], [valid] * len(states) + [sentence_mask],
                [pooled] * len(states) + [sentence_mask],
                [[lab] * len(states) + [["<sentence>"]] for lab in labels])

    # ---- speech

    @property
    def feature_extractor(self):
        if self._feature_extractor is None:
            from transformers import SeamlessM4TFeatureExtractor

            stride = next(iter(self._speech_sources.values())).cfg.fbank_stride
            self._feature_extractor = SeamlessM4TFeatureExtractor(
                feature_size=80, num_mel_bins=80, sampling_rate=SAMPLING_RATE, padding_value=0.0,
                stride=stride)
        return self._feature_extractor

    def speech_encoder(self, lang: str) -> SpeechEncoder:
        """The speech encoder of ``lang`` (FLORES-200 or ISO 639-3), loaded on first use."""
        iso = speech_code(lang)
        if iso in self._speech:
            self._speech.move_to_end(iso)
            return self._speech[iso]
        src = self._speech_sources[iso]
        while len(self._speech) >= self.max_speech_encoders:
            self._speech.popitem(last=False)
        if src.path is not None:
            module = self._load_speech_file(src)
        else:
            with quiet_transformers():
                module = init_random(SpeechEncoder(src.cfg), src.seed)
        self._speech[iso] = module.to(device=self.device, dtype=self.dtype).eval()
        return self._speech[iso]

    def _load_speech_file(self, src: SpeechSource) -> SpeechEncoder:
        state = read_checkpoint(src.path, trust=src.trusted)
        cfg = speech_config_from_state(state, src.cfg)
        if cfg != src.cfg:
            raise CheckpointError(f"{src.path.name}: architecture {cfg} differs from the one read "
                                  f"when the folder was opened ({src.cfg})")
        check_fits(f"SONAR speech encoder {src.path.name}", speech_parameter_count(state, cfg),
                   self.dtype, self.device)
        module = convert_speech_checkpoint(state, cfg, what=src.path.name)
        self._speech_files[src.iso] = {"sha256": sha256_file(src.path),
                                       "n_parameters": count_parameters(module)}
        return module

    def _features(self, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        stride = self.feature_extractor.stride
        need = FBANK_WINDOW_SAMPLES + FBANK_HOP_SAMPLES * (stride - 1)
        for i, wave in enumerate(waves):
            if wave.size < need:
                raise ValueError(f"waveform {i} has {wave.size} samples; SONAR needs at least "
                                 f"{need} ({need / SAMPLING_RATE * 1000:.0f} ms) for one frame")
        out = self.feature_extractor(waves, sampling_rate=SAMPLING_RATE, return_tensors="pt",
                                     padding=True, return_attention_mask=True)
        return (out.input_features.to(device=self.device, dtype=self.dtype),
                out.attention_mask.to(self.device).bool())

    def _run_speech(self, waves: list[np.ndarray], lang: str):
        """Per point: states (batch, time, dim), valid and pooled masks; all rows share ``lang``."""
        iso = speech_code(lang)
        encoder = self.speech_encoder(iso)
        features, frame_mask = self._features(waves)
        recorded, queries, sentence = encoder(features, frame_mask)
        if len(recorded) != encoder.cfg.num_layers + 1:
            raise RuntimeError(f"recorded {len(recorded)} conformer states, expected "
                               f"{encoder.cfg.num_layers + 1}")
        shown = [queries[self.pooler_layer_for_point(iso, k) - 1]
                 for k in range(1, self.n_pooler_points + 1)]
        one = torch.ones(len(waves), 1, dtype=torch.bool, device=self.device)
        states = [*recorded, *shown, sentence]
        masks = [frame_mask] * len(recorded) + [one] * (len(shown) + 1)
        return states, masks

    def _speech_labels(self, n_frames: int, n_points: int) -> tuple[list, list]:
        frames = [str(i) for i in range(n_frames)]
        times = np.arange(n_frames, dtype=np.float64) * self.frame_s
        n_conf = n_points - self.n_pooler_points - 1
        labels = [frames] * n_conf + [["query"]] * self.n_pooler_points + [["sentence"]]
        times_s = [times] * n_conf + [np.zeros(1)] * (self.n_pooler_points + 1)
        return labels, times_s

    # ---- public entry points

    def _prepare(self, component: str, inputs, langs, sampling_rate: int):
        comp = self.component(component)
        check_inputs(comp, inputs, langs)
        self._check_langs(comp, langs)
        if comp.modality == "speech":
            items = [prepare_waveform(w, i, sampling_rate, SAMPLING_RATE) for i, w in enumerate(inputs)]
        else:
            items = list(inputs)
        return comp, items

    def extract(self, component: str, inputs: Sequence[str] | Sequence[np.ndarray],
                langs: Sequence[str], *, sampling_rate: int = SAMPLING_RATE, batch_size: int = 8,
                pooling: Pooling = "mean") -> Extraction:
        self.check_pooling(pooling)
        comp, items = self._prepare(component, inputs, langs, sampling_rate)
        langs = list(langs)
        pooled = np.zeros((len(items), comp.n_layers, comp.dim), dtype=np.float32)
        counts = np.zeros((len(items), comp.n_layers), dtype=np.int64)
        with torch.inference_mode():
            for part in batches(len(items), batch_size):
                index = np.arange(len(items))[part]
                if comp.modality == "text":
                    groups = [(index, self._run_text(items[part], langs[part])[:3:2])]
                else:  # one speech encoder per language: run each language's rows together
                    groups = []
                    for lang in dict.fromkeys(speech_code(x) for x in langs[part]):
                        rows = index[[speech_code(langs[i]) == lang for i in index]]
                        groups.append((rows, self._run_speech([items[i] for i in rows], lang)))
                for rows, (states, masks) in groups:
                    if len(states) != comp.n_layers:
                        raise RuntimeError(f"{comp.name}: got {len(states)} states for "
                                           f"{comp.n_layers} points")
                    for k, (hidden, mask) in enumerate(zip(states, masks, strict=True)):
                        pooled[rows, k] = pool(hidden, mask, pooling).cpu().numpy()
                        counts[rows, k] = mask.sum(dim=1).cpu().numpy()
        return Extraction(pooled=pooled, n_positions=counts)

    def token_states(self, component: str, item: str | np.ndarray, lang: str, *,
                     sampling_rate: int = SAMPLING_RATE) -> TokenStates:
        comp, items = self._prepare(component, [item], [lang], sampling_rate)
        with torch.inference_mode():
            if comp.modality == "text":
                states, valid, pooled_masks, labels = self._run_text(items, [lang])
                labels, times = labels[0], [None] * len(states)
            else:
                states, valid = self._run_speech(items, lang)
                pooled_masks = valid
                labels, times = self._speech_labels(int(valid[0][0].sum()), len(states))
        layers, masks = [], []
        for hidden, keep, use in zip(states, valid, pooled_masks, strict=True):
            layers.append(hidden[0][keep[0]].float().cpu().numpy())
            masks.append(use[0][keep[0]].cpu().numpy().astype(bool))
        return TokenStates(component=comp.name, layers=layers, labels=labels, times_s=times,
                           pooled_mask=masks)
