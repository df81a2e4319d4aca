"""SALMONN's network: Whisper encoder + BEATs + window-level Q-Former + projection + LoRA Llama.

``SalmonnModel`` holds the blocks under this project's attribute names (``checkpoint`` maps the
official names onto them) and runs the audio side piece by piece, so the adapter can hook each
piece's layers: each half's encoder and norm (``speech_half``, ``audio_half``), their fusion
(``fuse``) and the Q-Former over windows of the fused frames (``window_queries``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.models.common import record_output
from core.models.salmonn.beats import BEATs
from core.models.salmonn.config import SalmonnConfig
from core.models.common import reduce_layer_states

#: a reduction applied to hooked states (see ``core.models.common.reduce_layer_states``)
Reduce = Callable[[torch.Tensor], Any]


class SalmonnModel(nn.Module):
    """Whisper encoder + BEATs + ln_speech/ln_audio + window Q-Former + projection + LoRA Llama.

    Attribute names are this project's; ``convert_official_state`` maps the official checkpoint
    names onto them. ``llm`` is the peft model; ``llm_model`` its inner ``LlamaModel``.
    """

    def __init__(self, config: SalmonnConfig, *, whisper: nn.Module | None = None,
                 beats: BEATs | None = None, llm: nn.Module | None = None,
                 init_lora_weights: bool = True):
        super().__init__()
        from peft import LoraConfig, TaskType, get_peft_model
        from transformers import Blip2QFormerModel, LlamaForCausalLM
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        self.config = config
        self.whisper = whisper if whisper is not None else WhisperEncoder(config.whisper)
        self.beats = beats if beats is not None else BEATs(config.beats)
        self.ln_speech = nn.LayerNorm(config.whisper.d_model)
        self.ln_audio = nn.LayerNorm(config.beats.encoder_embed_dim)
        self.qformer = Blip2QFormerModel(config.qformer)
        hq = config.qformer.hidden_size
        self.query_tokens = nn.Parameter(torch.zeros(1, config.num_query_tokens, hq))
        nn.init.normal_(self.query_tokens, std=config.qformer.initializer_range)
        self.proj = nn.Linear(hq, config.llm.hidden_size)
        base = llm if llm is not None else LlamaForCausalLM(config.llm)
        lora = LoraConfig(task_type=TaskType.CAUSAL_LM, inference_mode=True, r=config.lora_rank,
                          lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=list(config.lora_targets),
                          init_lora_weights=init_lora_weights)
        with warnings.catch_warnings():  # peft calls a transformers property deprecated in 5.x
            warnings.simplefilter("ignore", FutureWarning)
            self.llm = get_peft_model(base, lora)

    @property
    def llm_model(self) -> nn.Module:
        """The LoRA-adapted ``LlamaModel`` (decoder stack without the LM head)."""
        return self.llm.base_model.model.model

    def trainable_state_names(self) -> list[str]:
        """What a SALMONN checkpoint sets (everything but the frozen Whisper, BEATs and Vicuna)."""
        names = [n for n, _ in self.named_parameters()
                 if not n.startswith(("whisper.", "beats.", "llm."))]
        names += [n for n, _ in self.llm.named_parameters(prefix="llm") if ".lora_" in n]
        return names

    # ---- the audio side, piece by piece

    @property
    def audio_device(self) -> torch.device:
        """Where the audio side runs (with ``device_map`` the LLM may sit elsewhere)."""
        return self.proj.weight.device

    @staticmethod
    def _normed_half(layers: nn.ModuleList, encode: Callable[[], torch.Tensor], norm: nn.Module,
                     reduce: Reduce | None) -> tuple[torch.Tensor, list]:
        """``norm(encode())`` and, with ``reduce``, the reduced input of the first layer, each
        layer's output and the normed output."""
        with reduce_layer_states(layers if reduce else None, reduce) as states:
            encoded = encode()
        half = norm(encoded)
        if reduce:
            states.append(reduce(half))
        return half, states

    def speech_half(self, features: torch.Tensor, reduce: Reduce | None = None
                    ) -> tuple[torch.Tensor, list]:
        """ln_speech(Whisper(30 s mel)) (B, 1500, d) and the reduced points of whisper_encoder."""
        return self._normed_half(self.whisper.layers,
                                 lambda: self.whisper(features).last_hidden_state,
                                 self.ln_speech, reduce)

    def audio_half(self, fbank: torch.Tensor, reduce: Reduce | None = None
                   ) -> tuple[torch.Tensor, list]:
        """ln_audio(BEATs(one clip's fbank)) (1, tokens, d) and the reduced points of
        beats_encoder."""
        return self._normed_half(self.beats.layers, lambda: self.beats.extract_features(fbank),
                                 self.ln_audio, reduce)

    @staticmethod
    def fuse(speech: torch.Tensor, audio: list[torch.Tensor]) -> torch.Tensor:
        """The official fusion: pad the shorter stream with zeros, concatenate per index."""
        frames = max(speech.shape[1], max(a.shape[0] for a in audio))
        speech = F.pad(speech, (0, 0, 0, frames - speech.shape[1]))
        audio_t = torch.stack([F.pad(a, (0, 0, 0, frames - a.shape[0])) for a in audio])
        return torch.cat([speech, audio_t.to(speech.dtype)], dim=-1)

    def window_queries(self, fused: torch.Tensor,
                       reduce: tuple[Reduce, Reduce] | None = None) -> tuple[torch.Tensor, list]:
        """(B, L * queries, hq) window-query outputs. ``reduce`` = (on frames, on windows): the
        first sees layer 1's cross-attention values of the windowed frames as (B, L * k, hq), the
        second each layer's output as (B, L * queries, hq)."""
        kernel, stride = self.config.window
        windows = fused.unfold(1, kernel, stride).permute(0, 1, 3, 2)   # (B, L, k, C)
        batch, n_windows = windows.shape[:2]
        flat = windows.reshape(batch * n_windows, kernel, windows.shape[-1])
        queries = self.query_tokens.expand(flat.shape[0], -1, -1)
        layers = self.qformer.encoder.layer

        def regroup(hidden: torch.Tensor) -> torch.Tensor:
            return hidden.reshape(batch, -1, hidden.shape[-1])

        if reduce is None:
            out = self.qformer(query_embeds=queries, encoder_hidden_states=flat)
            return regroup(out.last_hidden_state), []
        on_frames, on_windows = reduce
        values = layers[0].crossattention.attention.value
        with record_output(values) as frames, reduce_layer_states(
                layers, lambda h: on_windows(regroup(h)), include_input=False) as states:
            out = self.qformer(query_embeds=queries, encoder_hidden_states=flat)
        return regroup(out.last_hidden_state), [on_frames(regroup(frames[0])), *states]
