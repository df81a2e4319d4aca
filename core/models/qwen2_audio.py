"""Qwen2-Audio adapter: ``Qwen2AudioForConditionalGeneration``, e.g. ``Qwen/Qwen2-Audio-7B-Instruct``.

The model is a Whisper-style audio encoder (32 layers, d_model 1280), an average pooling (stride 2)
+ LayerNorm, a linear projector into the LLM's input space, and a Qwen decoder-only LLM (32 layers,
hidden 4096). In transformers 5.x the parts sit under ``model.model``: ``audio_tower``,
``multi_modal_projector``, ``language_model``.

Components (names are fixed; the pipeline relies on them):

``audio_encoder`` (speech, space ``<name>/audio_encoder``, dim d_model)
    point 0 ``conv+pos`` (stage ``frontend``): conv front end + positions, the input of encoder
    layer 1; points 1..N ``enc i`` (``encoder``): each encoder layer's output, before the pooling;
    point N+1 ``avgpool+ln`` (``length_adaptor``): the encoder's output, average-pooled (stride 2)
    and layer-normed (HF's ``last_hidden_state``, what the projector reads). The encoder always sees
    3000 mel frames (30 s); padding is masked in its attention exactly as the full model masks it
    (built from ``feature_attention_mask``), and pooling uses only the frames holding real audio:
    ``E = (L - 1) // 2 + 1`` encoder frames (20 ms) for ``L = ceil(n_samples / 160)`` mel frames,
    and ``P = (E - 2) // 2 + 1`` pooled frames (40 ms), the same counts the model uses to decide how
    many audio tokens the LLM gets. ``Extraction.n_positions`` holds E for points 0..N and P for the
    last point.

``llm_speech`` (speech, space ``<name>/llm``, dim hidden_size)
    The LLM fed the clip in the chat template. Point 0 ``projector`` (stage ``projector``): the
    projector's output, which is exactly the LLM's input embedding at the audio positions; points
    1..M ``llm i`` (``llm``): each decoder layer's output. Pooled over the P audio tokens only.
    The projector point lives here rather than in ``audio_encoder`` because it is hidden_size wide
    (4096), not d_model (1280), and a component has one width.

``llm_text`` (text, space ``<name>/llm``, dim hidden_size)
    The same LLM layers fed the sentence's text in the same chat template. Point 0 ``embed``
    (stage ``frontend``): the token embeddings; points 1..M ``llm i`` (``llm``). Pooled over the
    sentence tokens only. ``llm_text`` point i and ``llm_speech`` point i are the same LLM layer, in
    one space: coordinate-wise measures (cosine, retrieval) are defined between them.

Template (``conditioning``): the model's own chat template for one user turn; nothing is generated
(one forward pass over the prompt, no assistant reply):

    <|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n<|im_start|>user\\n{CONTENT}\\n
    {INSTRUCTION}<|im_end|>\\n<|im_start|>assistant\\n

with CONTENT = ``Audio 1: <|audio_bos|><|AUDIO|>*P<|audio_eos|>`` for speech (the template's own
rendering of an audio item) and the sentence for text, and the same INSTRUCTION for both
(``DEFAULT_INSTRUCTION``). The LLM is causal and the instruction comes after the content, so the
pooled states cannot depend on it (tested); it is there so the prompt is one the model was trained
on. The text prompt is tokenised in three pieces (prefix, sentence, suffix), so the sentence tokens
are exactly the sentence's own tokens (what ``token_counts`` reports), never merged with the
template's newline.

Poolings: ``mean`` over the content span, or ``last``: the state at the last position of the content
span (the last audio token / the last sentence token: in the decoder-only LLM it has attended to
the whole span). For ``audio_encoder`` ``last`` is defined the same way (the last real frame), but
the encoder is bidirectional, so that frame is no summary of the clip; prefer ``mean`` there.

Depth: speech is one path, audio encoder + pooling + projector + LLM layers (N + M + 3 points, depth
= index / (points - 1)), so ``llm_speech``'s depths come after ``audio_encoder``'s; text is the LLM
only (M + 1 points from 0 to 1).

Final norms: LLM points are the raw residual stream (decoder-layer outputs before the stack's final
RMSNorm), as for every other adapter; encoder points 1..N are before the encoder's final LayerNorm,
which is applied (after the pooling) in the ``length_adaptor`` point, because that is what the model
feeds forward.

Memory: each layer's states are pooled in a forward hook the moment they are produced; a batch's
token states are never held for all layers at once. Hooks are always removed.

Languages: no language token or language name enters the prompt; the language code only labels the
input. The model is multilingual (encoder initialised from Whisper large-v3; Qwen LLM), and its
documented speech languages are ``DOCUMENTED_SPEECH_LANGUAGES``; ``supports_language`` accepts
every language of the project's table (core/languages.py) plus those, and raises
``UnsupportedLanguageError`` for any other code.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from core.models.base import Component, TokenStates, path_points
from core.models.common import DTYPE_BYTES, check_fits, quiet_transformers, reduce_layer_states
from core.models.hub import fit_and_place, read_config
# LLM_SPEECH: unused here, but one of this family's component names, which importers read here
from core.models.hub import load_target
from core.models.speech_llm import (LLM_SPEECH, LLM_TEXT, SAMPLING_RATE, SpeechLLMAdapter,
                                    first_item_slicer, leading_pool, llm_point_names)

HUB_ID = "Qwen/Qwen2-Audio-7B-Instruct"

AUDIO_ENCODER = "audio_encoder"

#: mel hop (samples): one mel frame = 10 ms
MEL_HOP = 160
#: the encoder always reads 30 s = 3000 mel frames
N_MEL_FRAMES = 3000
ENCODER_FRAME_S = 0.02
POOLED_FRAME_S = 0.04

SYSTEM_PROMPT = "You are a helpful assistant."
#: neutral for both inputs; after the content, so the pooled (causal) states do not depend on it
DEFAULT_INSTRUCTION = "Repeat this exactly."
AUDIO_TOKEN = "<|AUDIO|>"
AUDIO_BOS = "<|audio_bos|>"
AUDIO_EOS = "<|audio_eos|>"
SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>", AUDIO_BOS, AUDIO_TOKEN, AUDIO_EOS)

#: Languages Qwen2-Audio's model card names for speech (Chinese, English, Cantonese, French,
#: Italian, Spanish, German, Japanese), as FLORES-200 codes.
DOCUMENTED_SPEECH_LANGUAGES: tuple[str, ...] = (
    "zho_Hans", "eng_Latn", "yue_Hant", "fra_Latn", "ita_Latn", "spa_Latn", "deu_Latn", "jpn_Jpan",
)

#: Tiny random Qwen2-Audio for tests and demos only (its states mean nothing). The encoder keeps
#: the real front end (128 mel bins, 1500 positions) so the real feature extractor fits.
TINY_RANDOM_CONFIG: dict[str, Any] = {
    "audio_config": {
        "d_model": 32, "encoder_layers": 2, "encoder_attention_heads": 2, "encoder_ffn_dim": 64,
        "num_mel_bins": 128, "max_source_positions": 1500,
    },
    "text_config": {
        "hidden_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "intermediate_size": 96, "max_position_embeddings": 4096,
    },
}


# --------------------------------------------------------------------------------------------------
# Configs and sizes


def real_size_random_config():
    """The real Qwen2-Audio-7B(-Instruct) architecture numbers as a ``Qwen2AudioConfig`` (for
    benchmarks and memory estimates; it is 8.4 B parameters, do not instantiate it on a CPU)."""
    from transformers import Qwen2AudioConfig

    return Qwen2AudioConfig(
        audio_config={
            "model_type": "qwen2_audio_encoder", "d_model": 1280, "encoder_layers": 32,
            "encoder_attention_heads": 20, "encoder_ffn_dim": 5120, "num_mel_bins": 128,
            "max_source_positions": 1500, "activation_function": "gelu", "scale_embedding": False,
        },
        text_config={
            "model_type": "qwen2", "vocab_size": 156032, "hidden_size": 4096,
            "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 32, "max_position_embeddings": 8192, "rope_theta": 10000.0,
            "rms_norm_eps": 1e-5, "bos_token_id": 151643, "eos_token_id": 151645,
            "tie_word_embeddings": False,
        },
        audio_token_index=151646,
    )


def estimate_parameters(config) -> int:
    """Parameters of ``Qwen2AudioForConditionalGeneration(config)``, from the config alone."""
    a, t = config.audio_config, config.text_config
    d, f = a.d_model, a.encoder_ffn_dim
    layer = (3 * d * d + 2 * d) + (d * d + d)          # q (bias), k (no bias), v (bias); out
    layer += 2 * (2 * d)                               # two LayerNorms
    layer += (d * f + f) + (f * d + d)                 # fc1, fc2
    encoder = a.encoder_layers * layer
    encoder += (a.num_mel_bins * d * 3 + d) + (d * d * 3 + d)   # conv1, conv2
    encoder += a.max_source_positions * d + 2 * d               # positions, final LayerNorm
    h, v, i = t.hidden_size, t.vocab_size, t.intermediate_size
    head_dim = getattr(t, "head_dim", None) or h // t.num_attention_heads
    kv = (t.num_key_value_heads or t.num_attention_heads) * head_dim
    q = t.num_attention_heads * head_dim
    block = (h * q + q) + 2 * (h * kv + kv) + q * h    # q, k, v with bias; o without
    block += 3 * h * i + 2 * h                         # MLP, two RMSNorms
    llm = t.num_hidden_layers * block + v * h + h      # embeddings, final norm
    head = 0 if getattr(t, "tie_word_embeddings", False) else v * h
    projector = d * h + h
    return int(encoder + projector + llm + head)


def memory_needed_bytes(config, dtype: torch.dtype) -> int:
    """Weights only (no activations) in ``dtype``."""
    return estimate_parameters(config) * DTYPE_BYTES[dtype]


# --------------------------------------------------------------------------------------------------
# Tokenizer, processor, model


def build_offline_processor(feature_size: int = 128):
    """A ``Qwen2AudioProcessor`` built with no download: the real ``Qwen2Tokenizer`` class over a
    byte-level vocabulary (256 bytes, no merges) plus Qwen2-Audio's special tokens, and a
    ``WhisperFeatureExtractor`` with the real settings (128 mel bins, 30 s, hop 160)."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import Qwen2AudioProcessor, WhisperFeatureExtractor
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    vocab = {"<|endoftext|>": 0}
    for char in sorted(ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    with quiet_transformers():
        tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[],
                                   additional_special_tokens=list(SPECIAL_TOKENS))
        features = WhisperFeatureExtractor(feature_size=feature_size, sampling_rate=SAMPLING_RATE,
                                           hop_length=MEL_HOP, chunk_length=30)
        processor = Qwen2AudioProcessor(feature_extractor=features, tokenizer=tokenizer)
    return processor


def _build_random(seed: int, random_config, device: str = "cpu",
                  dtype: torch.dtype = torch.float32):
    """Random weights for ``random_config``: a dict of ``audio_config``/``text_config`` settings
    (default: the tiny test config) or a ``Qwen2AudioConfig`` (e.g. ``real_size_random_config()``);
    refused before instantiation when it cannot fit ``device``."""
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration

    processor = build_offline_processor()
    tokenizer = processor.tokenizer
    if isinstance(random_config, Qwen2AudioConfig):
        random_config = {"audio_config": random_config.audio_config.to_dict(),
                         "text_config": random_config.text_config.to_dict()}
    settings = random_config or TINY_RANDOM_CONFIG
    text = {"model_type": "qwen2", "vocab_size": len(tokenizer), "pad_token_id": 0,
            "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
            **settings.get("text_config", {})}
    audio = {"model_type": "qwen2_audio_encoder", **settings.get("audio_config", {})}
    config = Qwen2AudioConfig(audio_config=audio, text_config=text,
                              audio_token_index=tokenizer.convert_tokens_to_ids(AUDIO_TOKEN))
    check_fits("random Qwen2-Audio", estimate_parameters(config), dtype, device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2AudioForConditionalGeneration(config)
    info = {"weights": f"random (seed {seed}) for tests/demos only",
            "tokenizer": "byte-level Qwen2Tokenizer built offline (no merges)",
            "random_config": settings}
    return model, processor, info


def _load_pretrained(source: str, device: str, dtype: torch.dtype):
    from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration

    config = read_config(source, f"Download {HUB_ID} where the hub is reachable and pass its "
                                 "directory, or use 'qwen2-audio-tiny-random' for a test run")
    n_parameters = estimate_parameters(config)
    kwargs = fit_and_place(source, n_parameters, dtype, device, spread=True)
    model = Qwen2AudioForConditionalGeneration.from_pretrained(source, **kwargs)
    processor = AutoProcessor.from_pretrained(source)
    info = {"weights": f"from_pretrained({source!r})", "n_parameters_estimated": n_parameters,
            "device_map": kwargs.get("device_map")}
    return model, processor, info


# --------------------------------------------------------------------------------------------------
# Lengths


def mel_frame_count(n_samples: int) -> int:
    """Mel frames holding real audio (the feature extractor's attention mask): ceil(n / 160)."""
    return min(math.ceil(n_samples / MEL_HOP), N_MEL_FRAMES)


def encoder_lengths(mel_frames: int) -> tuple[int, int]:
    """(encoder frames, pooled frames = audio tokens) for ``mel_frames`` real mel frames: the
    model's ``_get_feat_extract_output_lengths`` and the processor's token count."""
    encoder = (mel_frames - 1) // 2 + 1
    return encoder, (encoder - 2) // 2 + 1


# --------------------------------------------------------------------------------------------------
# The adapter


class Qwen2AudioAdapter(SpeechLLMAdapter):
    """Qwen2-Audio as ``audio_encoder`` + ``llm_speech`` + ``llm_text`` (see the module docstring)."""

    family = "qwen2_audio"
    documented_languages = DOCUMENTED_SPEECH_LANGUAGES
    documented_languages_note = " or Qwen2-Audio's documented languages"
    speech_content = f"Audio 1: {AUDIO_BOS}{AUDIO_TOKEN}*n{AUDIO_EOS}"
    content_spans = "audio tokens / sentence tokens"
    padding_note = "right (positions and causal attention of real tokens are unchanged)"
    max_samples = N_MEL_FRAMES * MEL_HOP
    clip_reader = "Qwen2-Audio's encoder sees"

    def __init__(self, model, processor, *, name: str, device: str,
                 dtype: torch.dtype = torch.float32, source: dict | None = None,
                 instruction: str = DEFAULT_INSTRUCTION, placed: bool = False):
        super().__init__(name=name, device=device, dtype=dtype, source=source,
                         instruction=instruction)
        if not placed:
            model = model.to(device=device, dtype=dtype)
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.feature_extractor = processor.feature_extractor
        inner = self.model.model
        self.audio_tower = inner.audio_tower
        self.projector = inner.multi_modal_projector
        self.language_model = inner.language_model
        config = self.model.config
        self.audio_token_id = int(config.audio_token_id)
        convert = self.tokenizer.convert_tokens_to_ids
        if convert(AUDIO_TOKEN) != self.audio_token_id:
            raise ValueError(f"tokenizer's {AUDIO_TOKEN} is id {convert(AUDIO_TOKEN)} but the "
                             f"model's audio_token_index is {self.audio_token_id}; mismatched files?")
        self._bos_id, self._eos_id = convert(AUDIO_BOS), convert(AUDIO_EOS)
        pad = config.text_config.pad_token_id
        self._pad_id = int(pad if pad is not None else (self.tokenizer.pad_token_id or 0))
        self._max_positions = int(config.text_config.max_position_embeddings)
        expected = config.audio_config.max_source_positions * 2
        if expected != N_MEL_FRAMES or int(self.feature_extractor.nb_max_frames) != N_MEL_FRAMES:
            raise ValueError(f"the encoder expects {expected} mel frames and the feature extractor "
                             f"gives {self.feature_extractor.nb_max_frames}; this adapter assumes "
                             f"{N_MEL_FRAMES} (30 s)")
        prefix, suffix = self._template_pieces()
        encode = self.tokenizer.encode
        self._prefix_ids = encode(prefix, add_special_tokens=False)
        self._speech_lead_ids = encode("Audio 1: ", add_special_tokens=False) + [self._bos_id]
        self._speech_tail_ids = [self._eos_id]
        self._suffix_ids = encode(suffix, add_special_tokens=False)
        self._finish_setup()

    # ---- description

    def _template_pieces(self) -> tuple[str, str]:
        prefix = f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n"
        suffix = f"\n{self.instruction}<|im_end|>\n<|im_start|>assistant\n"
        return prefix, suffix

    def _prompt_notes(self) -> dict[str, Any]:
        return {"system_prompt": SYSTEM_PROMPT, "instruction": self.instruction}

    def speech_prompt(self, n_audio_tokens: int | None = None) -> str:
        """The speech prompt; ``n_audio_tokens`` None leaves one ``<|AUDIO|>`` placeholder (as the
        chat template renders it, before the processor expands it)."""
        prefix, suffix = self._template_pieces()
        audio = AUDIO_TOKEN * (1 if n_audio_tokens is None else n_audio_tokens)
        return f"{prefix}Audio 1: {AUDIO_BOS}{audio}{AUDIO_EOS}{suffix}"

    def text_prompt(self, text: str) -> str:
        prefix, suffix = self._template_pieces()
        return f"{prefix}{text.strip()}{suffix}"

    def _build_components(self) -> list[Component]:
        config = self.model.config
        n_enc = config.audio_config.encoder_layers
        llm_names = llm_point_names(config.text_config.num_hidden_layers)
        speech_path = path_points([
            ("frontend", ["conv+pos"]),
            ("encoder", [f"enc {i}" for i in range(1, n_enc + 1)]),
            ("length_adaptor", ["avgpool+ln"]),
            ("projector", ["projector"]),
            ("llm", llm_names),
        ])
        encoder = Component(
            name=AUDIO_ENCODER, modality="speech", dim=config.audio_config.d_model,
            space=f"{self.name}/audio_encoder", layers=speech_path[: n_enc + 2],
            description=("Qwen2-Audio audio encoder: conv front end, each layer (20 ms frames), "
                         "then avg-pool (stride 2) + LayerNorm (40 ms); mean over real frames"),
            conditioning={"input": "30 s window, padding masked as the full model masks it"},
        )
        return [encoder, *self._llm_components(
            speech_path[n_enc + 2:], llm_names, config.text_config.hidden_size,
            speech_description=("Qwen2-Audio LLM fed the clip in the chat template: projector "
                                "output (= LLM input at the audio tokens), then each decoder "
                                "layer; pooled over the audio tokens"),
            text_description=("Qwen2-Audio LLM fed the sentence in the same chat template: token "
                              "embeddings, then each decoder layer; pooled over the sentence "
                              "tokens"))]

    def _final_norm_notes(self) -> dict[str, str]:
        return {"encoder_final_norm": "applied only in the length_adaptor point (after the "
                                      "avg-pool)"}

    def _architecture(self) -> dict[str, Any]:
        config = self.model.config
        a, t = config.audio_config, config.text_config
        return {
            "encoder_layers": a.encoder_layers, "d_model": a.d_model,
            "encoder_attention_heads": a.encoder_attention_heads,
            "encoder_ffn_dim": a.encoder_ffn_dim, "num_mel_bins": a.num_mel_bins,
            "llm_layers": t.num_hidden_layers, "hidden_size": t.hidden_size,
            "intermediate_size": t.intermediate_size,
            "attention_heads": t.num_attention_heads, "kv_heads": t.num_key_value_heads,
            "vocab_size": t.vocab_size, "audio_token_index": config.audio_token_id,
        }

    # ---- inputs

    def _fit_wave(self, wave: np.ndarray, index: int) -> np.ndarray:
        if encoder_lengths(mel_frame_count(wave.size))[1] < 1:
            raise ValueError(f"waveform {index} has {wave.size} samples; Qwen2-Audio needs at "
                             f"least {2 * MEL_HOP + 1} (one audio token) to encode it")
        return wave

    def _features(self, waves: list[np.ndarray]) -> tuple[torch.Tensor, list[int], list[int]]:
        """Mel features (batch, mel, 3000), encoder frames and audio tokens per clip."""
        out = self.feature_extractor(waves, sampling_rate=SAMPLING_RATE, return_tensors="pt",
                                     padding="max_length", return_attention_mask=True)
        mel = out["attention_mask"].sum(-1).tolist()
        lengths = [encoder_lengths(int(m)) for m in mel]
        device = self.audio_tower.conv1.weight.device
        dtype = self.audio_tower.conv1.weight.dtype
        features = out["input_features"].to(device=device, dtype=dtype)
        return features, [e for e, _ in lengths], [p for _, p in lengths]

    def _encoder_mask(self, encoder_frames: list[int], features: torch.Tensor):
        """The 4-D attention mask the full model gives the audio encoder (padding frames masked)."""
        from transformers.masking_utils import create_bidirectional_mask

        n = self.audio_tower.config.max_source_positions
        lengths = torch.tensor(encoder_frames, device=features.device)
        mask_2d = (torch.arange(n, device=features.device)[None, :] < lengths[:, None]).long()
        dummy = torch.zeros((len(encoder_frames), n, 1), dtype=features.dtype,
                            device=features.device)
        return create_bidirectional_mask(config=self.audio_tower.config, inputs_embeds=dummy,
                                         attention_mask=mask_2d)

    def speech_ids(self, n_audio_tokens: list[int]):
        """(ids, attention mask, audio-token mask) of the speech prompts."""
        return self._rows([(self._speech_lead_ids, [self.audio_token_id] * n, self._speech_tail_ids)
                           for n in n_audio_tokens])

    # ---- forward passes

    def _speech_embeds(self, features: torch.Tensor, encoder_frames: list[int],
                       n_audio_tokens: list[int], ids: torch.Tensor) -> torch.Tensor:
        """LLM input embeddings with the projected audio written over the <|AUDIO|> tokens: the
        model's own (non-legacy) merge in ``Qwen2AudioModel.forward``."""
        mask = self._encoder_mask(encoder_frames, features)
        encoded = self.audio_tower(features, attention_mask=mask).last_hidden_state
        audio = self.projector(encoded)
        keep = torch.arange(audio.shape[1], device=audio.device)[None, :] < torch.tensor(
            n_audio_tokens, device=audio.device)[:, None]
        audio = audio[keep]
        embeds = self.language_model.get_input_embeddings()(ids)
        slots = (ids == self.audio_token_id).unsqueeze(-1).to(embeds.device)
        return embeds.masked_scatter(slots, audio.to(embeds.device, embeds.dtype))

    def _llm_inputs(self, component: str, items: list):
        if component == LLM_TEXT:
            return (*self.text_ids(items), None)
        features, frames, tokens = self._features(items)
        ids, attention, content = self.speech_ids(tokens)
        embeds = self._speech_embeds(features, frames, tokens, ids.to(self._embedding_device()))
        return ids, attention, content, embeds

    def _run_encoder(self, waves: list[np.ndarray], reduce_frames, reduce_pooled):
        """Hooked encoder pass: reduce_frames on each point before the pooling, reduce_pooled on
        the pooled + normed output."""
        features, frames, tokens = self._features(waves)
        mask = self._encoder_mask(frames, features)
        with reduce_layer_states(self.audio_tower.layers, reduce_frames(frames)) as states:
            encoded = self.audio_tower(features, attention_mask=mask).last_hidden_state
        return [*states, reduce_pooled(tokens)(encoded)], frames, tokens

    def _pooled_audio(self, component: str, items: list, pooling: str):
        states, frames, tokens = self._run_encoder(items, lambda f: leading_pool(f, pooling),
                                                   lambda t: leading_pool(t, pooling))
        counts = [[e] * (len(states) - 1) + [p] for e, p in zip(frames, tokens, strict=True)]
        return states, counts

    def _audio_token_states(self, comp: Component, wave: np.ndarray) -> TokenStates:
        """The real frames only (all pooled), times every 20 ms before the pooling and 40 ms
        after."""
        layers, frames, tokens = self._run_encoder(
            [wave], lambda f: first_item_slicer(f[0]), lambda t: first_item_slicer(t[0]))
        e, p = frames[0], tokens[0]
        times = [np.arange(e) * ENCODER_FRAME_S] * (len(layers) - 1) \
            + [np.arange(p) * POOLED_FRAME_S]
        labels = [[f"{t:.2f}s" for t in ts] for ts in times]
        masks = [np.ones(len(ts), dtype=bool) for ts in times]
        return TokenStates(comp.name, [s.numpy() for s in layers], labels,
                           [t.astype(np.float64) for t in times], masks)

    def _speech_times(self, wave: np.ndarray, content: np.ndarray, labels: list[str]
                      ) -> np.ndarray:
        """Each audio token's start (one every 40 ms); NaN for the template's tokens."""
        times = np.full(len(content), np.nan)
        times[content] = np.arange(int(content.sum())) * POOLED_FRAME_S
        return times


# --------------------------------------------------------------------------------------------------
# Factory (called by core/models/registry.py)


def load_qwen2_audio(*, name: str, device: str | None = None, source: str | None = None,
                     random: bool = False, dtype: str | torch.dtype | None = None, seed: int = 0,
                     random_config: dict | None = None, instruction: str = DEFAULT_INSTRUCTION,
                     progress: bool = True) -> Qwen2AudioAdapter:
    """Real weights (``source``: hub id or local directory; bf16 + ``device_map="auto"`` on CUDA by
    default, float32 on CPU; refused before loading when it cannot fit) or a tiny random model
    (``random=True``, seeded, built offline). ``progress`` is accepted for the registry's callers."""
    del progress
    device, resolved = load_target(source, random, device, dtype, "HF id or directory")
    if random:
        model, processor, info = _build_random(seed, random_config)
        return Qwen2AudioAdapter(model, processor, name=name, device=device, dtype=resolved,
                                 source=info, instruction=instruction)
    model, processor, info = _load_pretrained(str(source), device, resolved)
    placed = device.startswith("cuda")
    return Qwen2AudioAdapter(model, processor, name=name, device=device, dtype=resolved,
                             source=info, instruction=instruction, placed=placed)
