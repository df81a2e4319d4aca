"""The SALMONN adapter: its components, its prompt and its audio side over the speech-LLM core.

What SALMONN shares with every speech LLM (prompt rows, the LLM pass, language checks, extract)
lives in ``core.models.speech_llm``; this module keeps SALMONN's own: the official prompt, the
three audio-side components (``whisper_encoder``, ``beats_encoder``, ``qformer``), the 88 window
slots of ``llm_speech`` and the factory. The package docstring describes every point.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from core.models.base import Component, TokenStates, path_points, stack_points
from core.pooling import pool
from core.models.common import check_fits, quiet_transformers
from core.models.salmonn.beats import kaldi_fbank
from core.models.salmonn.checkpoint import load_pretrained
from core.models.torch_files import trusted_by_environment
from core.models.salmonn.config import (
    CHUNK_S,
    LORA_ALPHA,
    MAX_SAMPLES,
    TINY_RANDOM_CONFIG,
    SpeechLengths,
    estimate_parameters,
    pad_to_minimum,
    speech_lengths,
    tiny_config,
)
from core.models.salmonn.modules import SalmonnModel
from core.models.salmonn.prompt import DEFAULT_INSTRUCTION, prompt_piece_ids, template_pieces
from core.models.salmonn.tokenizer import build_feature_extractor, build_offline_tokenizer
from core.models.hub import load_target
from core.models.speech_llm import (LLM_SPEECH, LLM_TEXT, SAMPLING_RATE, SpeechLLMAdapter,
                                    first_item_slicer, leading_pool, llm_point_names)

WHISPER_ENCODER = "whisper_encoder"
BEATS_ENCODER = "beats_encoder"
QFORMER = "qformer"

#: Languages the official prompts (prompts/test_prompt.json) name: English, Chinese and German ASR;
#: translation into Chinese, Japanese, German.
DOCUMENTED_SPEECH_LANGUAGES: tuple[str, ...] = ("eng_Latn", "zho_Hans", "deu_Latn", "jpn_Jpan")


def _whole_clip_pool(pooling: str):
    """A reduction pooling one clip's (1, tokens, dim) state over all its tokens."""
    def reduce(hidden: torch.Tensor) -> torch.Tensor:
        mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        return pool(hidden, mask, pooling).cpu()
    return reduce


class SalmonnAdapter(SpeechLLMAdapter):
    """SALMONN as ``whisper_encoder``, ``beats_encoder``, ``qformer``, ``llm_speech`` and
    ``llm_text`` (see the package docstring)."""

    family = "salmonn"
    documented_languages = DOCUMENTED_SPEECH_LANGUAGES
    version_packages = ("peft",)
    speech_content = "the projected Q-Former windows (88 for the 30 s input)"
    content_spans = "clip windows / sentence tokens"
    padding_note = "speech: none (all prompts have 88 windows); text: right, masked"
    template_lead = "<s>"
    max_samples = MAX_SAMPLES
    clip_reader = "SALMONN reads"

    def __init__(self, model: SalmonnModel, tokenizer, feature_extractor, *, name: str, device: str,
                 dtype: torch.dtype = torch.float32, source: dict | None = None,
                 instruction: str = DEFAULT_INSTRUCTION, placed: bool = False):
        super().__init__(name=name, device=device, dtype=dtype, source=source,
                         instruction=instruction)
        if placed:  # the LLM is placed by device_map; the audio side goes to the first GPU
            for part in (model.whisper, model.beats, model.ln_speech, model.ln_audio,
                         model.qformer, model.proj):
                part.to(device=device, dtype=dtype)
            model.query_tokens.data = model.query_tokens.data.to(model.proj.weight.device, dtype)
        else:
            model = model.to(device=device, dtype=dtype)
        self.model = model.eval()
        self.config = model.config
        self.language_model = model.llm_model
        self.tokenizer = tokenizer
        self.feature_extractor = feature_extractor
        expected = 2 * self.config.whisper_frames
        if int(feature_extractor.nb_max_frames) != expected:
            raise ValueError(f"the Whisper encoder expects {expected} mel frames but the feature "
                             f"extractor gives {feature_extractor.nb_max_frames}")
        kernel, stride = self.config.window
        if kernel != stride:
            raise ValueError(f"this adapter supports non-overlapping windows (the official 17/17), "
                             f"not kernel {kernel} / stride {stride}")
        bos = tokenizer.bos_token_id
        if bos is None:
            raise ValueError("the LLM tokenizer has no BOS token; SALMONN starts every prompt "
                             "with it")
        self._bos_id = int(bos)
        self._pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                           else tokenizer.unk_token_id or 0)
        self._max_positions = int(self.config.llm.max_position_embeddings)
        # the official slow tokenizer's ids for these pieces (core.models.salmonn.prompt)
        self._before_ids, self._after_ids = prompt_piece_ids(tokenizer, instruction)
        self._prefix_ids = [self._bos_id, *self._before_ids]
        self._suffix_ids = list(self._after_ids)
        self._finish_setup()

    # ---- description

    def _template_pieces(self) -> tuple[str, str]:
        """The official prompt split at ``<SpeechHere>`` (``prompt_wrap``)."""
        return template_pieces(self.instruction)

    def _prompt_notes(self) -> dict[str, Any]:
        return {"instruction": self.instruction,
                "source": "bytedance/SALMONN configs/decode_config.yaml prompt_template, "
                          "cli_inference.py, models/salmonn.py prompt_wrap/generate"}

    def _build_components(self) -> list[Component]:
        c = self.config
        n_w, n_b = c.whisper.encoder_layers, c.beats.encoder_layers
        n_q = c.qformer.num_hidden_layers
        llm_names = llm_point_names(c.llm.num_hidden_layers)
        speech = path_points([
            ("frontend", ["conv+pos"]),
            ("encoder", [f"whisper {i}" for i in range(1, n_w + 1)] + ["ln_speech"]),
            ("encoder", ["frames (xattn values)"]),
            ("length_adaptor", [f"qformer {i}" for i in range(1, n_q + 1)]),
            ("projector", ["projector"]),
            ("llm", llm_names),
        ])
        whisper_points = speech[: n_w + 2]
        fused_depth = whisper_points[-1].depth
        beats_points = (stack_points(["patch+pos"], "frontend", start=0.0, end=0.0)
                        + stack_points([f"beats {i}" for i in range(1, n_b + 1)] + ["ln_audio"],
                                       "encoder", start=fused_depth / (n_b + 1), end=fused_depth))
        kernel, stride = c.window
        window_note = {"window_frames": kernel, "stride_frames": stride,
                       "window_s": kernel * CHUNK_S / c.whisper_frames,
                       "queries_per_window": c.num_query_tokens}
        return [
            Component(
                name=WHISPER_ENCODER, modality="speech", dim=c.whisper.d_model,
                space=f"{self.name}/whisper_encoder", layers=whisper_points,
                description=("SALMONN's Whisper encoder: conv front end, each layer (20 ms frames), "
                             "then final LayerNorm + ln_speech (what the Q-Former reads); mean "
                             "over the clip's frames"),
                conditioning={"input": "30 s window (clips padded with silence, as the official "
                                       "code does); pooled over the clip's frames"},
            ),
            Component(
                name=BEATS_ENCODER, modality="speech", dim=c.beats.encoder_embed_dim,
                space=f"{self.name}/beats_encoder", layers=beats_points,
                description=("SALMONN's BEATs encoder: patch embedding + conv positions, each "
                             "layer (8 mel-band patches per 160 ms), then ln_audio"),
                conditioning={"input": "the clip itself (>= 1 s, <= 30 s), one clip per pass"},
            ),
            Component(
                name=QFORMER, modality="speech", dim=c.qformer.hidden_size,
                space=f"{self.name}/qformer", layers=speech[n_w + 2: n_w + 3 + n_q],
                description=("SALMONN's window-level Q-Former: the fused frames as its first "
                             "layer reads them (cross-attention values), then each layer's "
                             "output at the window queries (one per 17 frames = 0.34 s); mean "
                             "over the clip's frames / windows"),
                conditioning={"input": "Whisper ln_speech frames ++ BEATs ln_audio tokens "
                                       "(zero-padded), cut into windows", **window_note},
            ),
            *self._llm_components(
                speech[n_w + 3 + n_q:], llm_names, c.llm.hidden_size,
                speech_description=("SALMONN's LoRA Vicuna fed the clip in the official prompt: "
                                    "projector output (= LLM input at the windows), then each "
                                    "decoder layer; pooled over the clip's windows"),
                text_description=("SALMONN's LoRA Vicuna fed the sentence in the same prompt: "
                                  "token embeddings, then each decoder layer; pooled over the "
                                  "sentence tokens")),
        ]

    def _final_norm_notes(self) -> dict[str, str]:
        return {"whisper_final_norm": "applied only in the ln_speech point"}

    def _architecture(self) -> dict[str, Any]:
        c = self.config
        kernel, stride = c.window
        return {
            "whisper_layers": c.whisper.encoder_layers, "whisper_d_model": c.whisper.d_model,
            "beats_layers": c.beats.encoder_layers,
            "beats_dim": c.beats.encoder_embed_dim,
            "qformer_layers": c.qformer.num_hidden_layers,
            "qformer_hidden": c.qformer.hidden_size,
            "qformer_heads": c.qformer.num_attention_heads,
            "window_frames": kernel, "window_stride_frames": stride,
            "queries_per_window": c.num_query_tokens,
            "llm_layers": c.llm.num_hidden_layers, "llm_hidden": c.llm.hidden_size,
            "vocab_size": c.llm.vocab_size,
            "lora": {"rank": c.lora_rank, "alpha": c.lora_alpha,
                     "dropout": c.lora_dropout, "targets": list(c.lora_targets)},
        }

    # ---- inputs

    def _fit_wave(self, wave: np.ndarray, index: int) -> np.ndarray:
        return pad_to_minimum(wave)  # silence up to 1 s, as the ``salmonn`` branch does

    def lengths(self, wave: np.ndarray) -> SpeechLengths:
        return speech_lengths(wave.size, self.config)

    # ---- the audio side

    def _whisper_half(self, waves: list[np.ndarray], reduce=None):
        """ln_speech(Whisper(30 s mel)) (B, 1500, d) and the reduced points of whisper_encoder."""
        out = self.feature_extractor(waves, sampling_rate=SAMPLING_RATE, return_tensors="pt")
        features = out["input_features"].to(self.model.audio_device,
                                            self.model.whisper.conv1.weight.dtype)
        return self.model.speech_half(features, reduce)

    def _beats_half(self, waves: list[np.ndarray], reduce=None):
        """Per clip: ln_audio(BEATs(clip)) (tokens, d) and the reduced points of beats_encoder."""
        halves, per_clip = [], []
        for wave in waves:
            fbank = torch.from_numpy(kaldi_fbank(wave, self.config.beats.num_mel_bins))
            fbank = fbank.to(device=self.model.audio_device, dtype=torch.float32)[None]
            half, states = self.model.audio_half(fbank, reduce)
            halves.append(half[0])
            per_clip.append(states)
        return halves, per_clip

    def _speech_path(self, waves: list[np.ndarray], component: str, reduce_factory):
        """Run as much of the audio side as ``component`` needs; the hooks of that component's
        points use ``reduce_factory(lengths)``. Returns (states, lengths, projected windows)."""
        lengths = [self.lengths(w) for w in waves]
        reduce = reduce_factory(lengths) if reduce_factory else None
        speech, w_states = self._whisper_half(
            waves, reduce if component == WHISPER_ENCODER else None)
        if component == WHISPER_ENCODER:
            return w_states, lengths, None
        audio, b_states = self._beats_half(waves, reduce if component == BEATS_ENCODER else None)
        if component == BEATS_ENCODER:
            return b_states, lengths, None
        windows, q_states = self.model.window_queries(self.model.fuse(speech, audio),
                                                      reduce if component == QFORMER else None)
        if component == QFORMER:
            return q_states, lengths, None
        return None, lengths, self.model.proj(windows)

    def _pooled_audio(self, component: str, items: list, pooling: str):
        n_points = self.component(component).n_layers
        per = self.config.num_query_tokens
        if component == BEATS_ENCODER:
            per_clip, lengths, _ = self._speech_path(items, component,
                                                     lambda _l: _whole_clip_pool(pooling))
            states = [torch.cat([clip[p] for clip in per_clip]) for p in range(n_points)]
            return states, [[x.beats_tokens] * n_points for x in lengths]
        if component == WHISPER_ENCODER:
            states, lengths, _ = self._speech_path(
                items, component,
                lambda ls: leading_pool([x.whisper_frames for x in ls], pooling))
            return states, [[x.whisper_frames] * n_points for x in lengths]
        states, lengths, _ = self._speech_path(
            items, component, lambda ls: (leading_pool([x.fused_frames for x in ls], pooling),
                                          leading_pool([x.windows * per for x in ls], pooling)))
        return states, [[x.fused_frames] + [x.windows * per] * (n_points - 1) for x in lengths]

    # ---- the LLM side

    def _llm_inputs(self, component: str, items: list):
        embed = self.language_model.embed_tokens
        if component == LLM_TEXT:
            ids, attention, content = self.text_ids(items)
            return ids, attention, content, embed(ids.to(self._embedding_device()))
        _, lengths, projected = self._speech_path(items, LLM_SPEECH, None)
        n_slots = projected.shape[1]
        ids, attention, slots = self._rows([([], [self._pad_id] * n_slots, []) for _ in items])
        embeds = embed(ids.to(self._embedding_device()))
        start = len(self._prefix_ids)
        embeds[:, start:start + n_slots] = projected.to(embeds.device, embeds.dtype)
        per_window = self.config.num_query_tokens
        content = torch.zeros_like(slots)
        for i, length in enumerate(lengths):
            content[i, start:start + length.windows * per_window] = True
        return ids, attention, content, embeds

    # ---- token states

    def _speech_times(self, wave: np.ndarray, content: np.ndarray, labels: list[str]
                      ) -> np.ndarray:
        """The window slots' times (0.34 s apart) and labels ``<window k>``; NaN elsewhere."""
        start = len(self._prefix_ids)
        n_slots = self.lengths(wave).total_windows * self.config.num_query_tokens
        times = np.full(len(content), np.nan)
        times[start:start + n_slots] = self._window_times(n_slots)
        labels[start:start + n_slots] = [f"<window {k}>" for k in range(n_slots)]
        return times

    def _window_times(self, n_slots: int) -> np.ndarray:
        _kernel, stride = self.config.window
        frame_s = CHUNK_S / self.config.whisper_frames
        per = self.config.num_query_tokens
        return (np.arange(n_slots) // per) * stride * frame_s + (np.arange(n_slots) % per) * 1e-3

    def _audio_token_states(self, comp: Component, wave: np.ndarray) -> TokenStates:
        """``whisper_encoder``: the clip's frames (times every 20 ms); ``beats_encoder``: the
        clip's tokens, labelled by patch start and mel band, times = the 20 ms slot SALMONN
        concatenates each with (patch start + band x 20 ms); ``qformer``: all 88 windows, the
        clip's pooled."""
        slicer = (first_item_slicer(), first_item_slicer()) if comp.name == QFORMER \
            else first_item_slicer()
        states, _, _ = self._speech_path([wave], comp.name, lambda _l: slicer)
        length = self.lengths(wave)
        if comp.name == QFORMER:
            return self._qformer_token_states(states, length)
        if comp.name == WHISPER_ENCODER:
            layers = [s[: length.whisper_frames].numpy() for s in states]
            times = np.arange(length.whisper_frames) * (CHUNK_S / self.config.whisper_frames)
            labels = [f"{t:.2f}s" for t in times]
        else:
            layers = [s.numpy() for s in states[0]]
            cfg = self.config.beats
            bands = cfg.num_mel_bins // cfg.input_patch_size
            patch_s = cfg.input_patch_size * 0.01
            index = np.arange(layers[0].shape[0])
            times = index * (patch_s / bands)
            labels = [f"{(i // bands) * patch_s:.2f}s band {i % bands}" for i in index]
        masks = [np.ones(len(times), dtype=bool) for _ in layers]
        return TokenStates(comp.name, layers, [list(labels) for _ in layers],
                           [times.astype(np.float64) for _ in layers], masks)

    def _qformer_token_states(self, states: list[torch.Tensor], length: SpeechLengths
                              ) -> TokenStates:
        """The fused frames (point 0, 20 ms apart) and the 88 windows (later points); the clip's
        frames / windows are the pooled ones."""
        layers = [s.numpy() for s in states]
        frames = np.arange(layers[0].shape[0]) * (CHUNK_S / self.config.whisper_frames)
        frame_mask = np.arange(len(frames)) < length.fused_frames
        n_slots = layers[1].shape[0]
        windows = self._window_times(n_slots)
        window_mask = np.arange(n_slots) < length.windows * self.config.num_query_tokens
        labels = [[f"{t:.2f}s" for t in frames]] + \
            [[f"window {k} ({t:.2f}s)" for k, t in enumerate(windows)]] * (len(layers) - 1)
        times_list = [frames] + [windows] * (len(layers) - 1)
        masks = [frame_mask] + [window_mask.copy() for _ in layers[1:]]
        return TokenStates(QFORMER, layers, [list(x) for x in labels],
                           [t.astype(np.float64) for t in times_list], masks)


# --------------------------------------------------------------------------------------------------
# Factory (called by core/models/registry.py)


def _build_random(seed: int, settings: dict | None, device: str, dtype: torch.dtype):
    tokenizer = build_offline_tokenizer()
    config = tiny_config(len(tokenizer), settings)
    check_fits("random SALMONN", estimate_parameters(config), dtype, device)
    with torch.random.fork_rng(devices=[]), quiet_transformers():
        torch.manual_seed(seed)
        # random LoRA A and B (peft's default B = 0 would make the adapters a no-op)
        model = SalmonnModel(config, init_lora_weights=False)
    info = {"weights": f"random (seed {seed}) for tests/demos only",
            "tokenizer": "LlamaTokenizer over a byte-fallback vocabulary built offline",
            "random_config": settings or TINY_RANDOM_CONFIG}
    return model, tokenizer, build_feature_extractor(config.whisper.num_mel_bins), info


def load_salmonn(*, name: str, device: str | None = None, source: str | None = None,
                 random: bool = False, dtype: str | torch.dtype | None = None, seed: int = 0,
                 random_config: dict | None = None, whisper: str | None = None,
                 llm: str | None = None, beats: str | None = None, lora_alpha: int = LORA_ALPHA,
                 instruction: str = DEFAULT_INSTRUCTION, trust_checkpoint: bool = False,
                 progress: bool = True) -> SalmonnAdapter:
    """The released SALMONN (``source``: a folder holding ``salmonn*.pth``, the BEATs checkpoint
    and optionally ``whisper*/`` and ``vicuna*/`` folders, or the checkpoint file itself;
    ``whisper``/``llm``/``beats`` override where each part comes from: local folders or hub ids)
    or a tiny random model (``random=True``, seeded, built offline). bf16 + ``device_map="auto"``
    on CUDA by default, float32 on CPU; refused before loading when it cannot fit. Checkpoints are
    read as SONAR's are (``core.models.torch_files``): weights and plain values only, unless
    ``trust_checkpoint=True`` or ``CROSSMODAL_LENS_TRUST_CHECKPOINTS=1``. ``progress`` is accepted
    for the registry's callers."""
    del progress
    device, resolved = load_target(source, random, device, dtype,
                                   "SALMONN folder or checkpoint")
    if random:
        model, tokenizer, features, info = _build_random(seed, random_config, device, resolved)
        return SalmonnAdapter(model, tokenizer, features, name=name, device=device,
                              dtype=resolved, source=info, instruction=instruction)
    model, tokenizer, features, info = load_pretrained(
        str(source), device, resolved, whisper=whisper, llm=llm, beats=beats,
        lora_alpha=lora_alpha, trust=trust_checkpoint or trusted_by_environment())
    return SalmonnAdapter(model, tokenizer, features, name=name, device=device, dtype=resolved,
                          source=info, instruction=instruction, placed=device.startswith("cuda"))
