"""SALMONN adapter (Tang et al., ICLR 2024; bytedance/SALMONN), a native port on transformers blocks.

SALMONN hears a clip through two encoders, fuses them frame by frame, shortens the sequence with a
window-level Q-Former and feeds the windows to a LoRA-adapted Vicuna:

- **Whisper large-v2 encoder** (``transformers.WhisperEncoder``): the clip's 80-bin log-mel
  spectrogram padded to 30 s (3000 mel frames) -> 1500 frames of 20 ms, final LayerNorm, then
  SALMONN's own ``ln_speech``.
- **BEATs** (``beats.py`` here, the fine-tuned iter3+ AS2M cpt2 checkpoint in the release):
  the clip itself (not padded to 30 s) -> 8 patch tokens per 160 ms (50 a second), then
  ``ln_audio``.
- **Fusion**: the BEATs tokens are zero-padded to the Whisper length (1500) and concatenated with
  the Whisper frames index by index (width 1280 + 768 = 2048): token ``i`` of BEATs sits with Whisper
  frame ``i`` (both 50 a second, so the two streams' frame rates match).
- **Window-level Q-Former** (``transformers.Blip2QFormerModel``: BERT-base widths, 2 layers,
  cross-attention in every layer, ``encoder_hidden_size`` 2048): the 1500 fused frames are cut into
  windows of ``k = round(1500 * 0.333333 / 30) = 17`` frames with stride 17 (0.34 s; the last 4
  frames are dropped), ``L = (1500 - 17) // 17 + 1 = 88`` windows; one learnt query per window
  attends to that window's 17 frames only.
- **Projection** ``speech_llama_proj`` (Linear 768 -> LLM width) and the **LLM**
  (``transformers.LlamaForCausalLM``, Vicuna 13B v1.1 for ``salmonn_v1.pth``) with **LoRA** from
  ``peft`` (rank 8, alpha 32, dropout 0.1, peft's default targets for Llama: ``q_proj`` and
  ``v_proj``; the official code passes ``target_modules=None``).

Components (names are fixed; the pipeline relies on them):

``whisper_encoder`` (speech, space ``<name>/whisper_encoder``, dim d_model)
    point 0 ``conv+pos`` (``frontend``): conv stem + positions, the input of layer 1; points
    1..N ``whisper i`` (``encoder``): each layer's output; point N+1 ``ln_speech`` (``encoder``):
    the encoder's final LayerNorm and SALMONN's ``ln_speech``, i.e. the Whisper half of what the
    Q-Former reads. Pooled over the ``E = min(1500, ceil(n / 320))`` frames holding the clip.
``beats_encoder`` (speech, space ``<name>/beats_encoder``, dim encoder_embed_dim)
    point 0 ``patch+pos`` (``frontend``): patch embedding, LayerNorm, projection and the
    convolutional positions, the input of layer 1; points 1..N ``beats i`` (``encoder``); point N+1
    ``ln_audio`` (``encoder``): the BEATs half of what the Q-Former reads. Pooled over the clip's
    ``B = (fbank_frames // 16) * 8`` tokens, ``fbank_frames = 1 + (n - 400) // 160``.
``qformer`` (speech, space ``<name>/qformer``, dim Q-Former hidden)
    point 0 ``frames (xattn values)`` (``encoder``): the fused frames as the first Q-Former layer
    reads them, i.e. its cross-attention value projection of each windowed frame (768 wide; each
    window query's attention output is a convex combination of its window's values). The fused
    frames themselves are 2048 wide, and a component has one width: they are the concatenation of
    the ``ln_speech`` and ``ln_audio`` points. Pooled over ``F = min(max(E, B), L * 17)`` frames.
    Points ``qformer i`` (``length_adaptor``; the first is where frames become windows): each
    Q-Former layer's output at the window queries, pooled over the ``W = min(L, ceil(max(E, B) /
    17))`` windows that hold the clip (the others hold only the 30 s padding).
    ``Extraction.n_positions`` gives F before and W after.
``llm_speech`` (speech, space ``<name>/llm``, dim LLM hidden)
    point 0 ``projector`` (``projector``): ``speech_llama_proj``'s output, which is exactly the
    LLM input at the window positions; points 1..M ``llm i`` (``llm``). Pooled over the W clip
    windows (of the 88 the LLM is given).
``llm_text`` (text, space ``<name>/llm``, dim LLM hidden)
    point 0 ``embed`` (``frontend``): token embeddings; points 1..M ``llm i`` (``llm``). Pooled
    over the sentence tokens. ``llm_text`` point i and ``llm_speech`` point i are one LLM layer in
    one space.

Template (``conditioning``): the official one, ``prompt_template = "USER: {}\\nASSISTANT:"`` with
``"<Speech><SpeechHere></Speech> " + instruction`` (``cli_inference.py``), and BOS in front
(``generate``): ``<s>USER: <Speech>{CONTENT}</Speech> {INSTRUCTION}\\nASSISTANT:``. For speech,
CONTENT is the 88 projected windows (the official ``prompt_wrap``: the pieces before and after
``<SpeechHere>`` are tokenised separately, without special tokens); for text it is the sentence,
tokenised on its own, in the same place. INSTRUCTION is the same for both
(``DEFAULT_INSTRUCTION``); it comes after the content, and the LLM is causal, so pooled states do
not depend on it. Nothing is generated.

Input handling as the official code: clips shorter than 1 s are padded with silence to 1 s and
longer than 30 s cut at 30 s (branch ``salmonn``, ``utils.prepare_one_sample``; the v1 release does
not pad, which changes BEATs tokens under 1 s: ``config.pad_to_minimum``); Whisper always reads
30 s; BEATs reads the clip once per clip (as the official single-clip inference does, so a batch
never changes a clip's BEATs tokens); every speech prompt has the same length (88 windows), so
speech batches carry no padding; text prompts are right-padded and masked.

Depth: the speech path is Whisper (N + 2 points) -> Q-Former (1 + 2) -> projector -> LLM (M), depth
= index / (points - 1); BEATs runs beside Whisper, so its points are spread over the same depths as
``whisper_encoder``'s (0 to the depth of ``ln_speech``). Text: the LLM only, 0 to 1.

Final norms: LLM points are raw decoder-layer outputs (before the final RMSNorm), as in every
adapter; Whisper's final LayerNorm is applied only in the ``ln_speech`` point.

Languages: SALMONN is English-centric (the LLM is Vicuna; the official prompts ask for English,
Chinese and German ASR and translation into Chinese, Japanese and German:
``DOCUMENTED_SPEECH_LANGUAGES``). The study compares representations, not task outputs, and the
Whisper encoder is multilingual, so every language of the project's table is accepted (nothing
language-specific enters the prompt; the code only labels the input); unknown codes raise
``UnsupportedLanguageError``. ``documented_language`` tells the two apart.

The package, one concern a module: ``config`` (configuration, sizes, lengths), ``beats`` (the BEATs
port), ``modules`` (``SalmonnModel``: the network and its audio side piece by piece), ``checkpoint``
(the released files, name conversion, loading), ``tokenizer`` (Vicuna's tokenizer as loaded, and the
offline tokenizer and feature extractor of the tiny model), ``prompt`` (the official template and
its pieces' token ids, checked against the slow tokenizer), ``adapter`` (``SalmonnAdapter`` over the
speech-LLM core in ``core.models.speech_llm``, and ``load_salmonn``).
"""


from core.models.salmonn.adapter import (
    BEATS_ENCODER,
    DOCUMENTED_SPEECH_LANGUAGES,
    LLM_SPEECH,
    LLM_TEXT,
    QFORMER,
    WHISPER_ENCODER,
    SalmonnAdapter,
    load_salmonn,
)
from core.models.salmonn.checkpoint import (
    CheckpointError,
    convert_official_state,
    official_name,
    resolve_files,
)
from core.models.salmonn.config import (
    SalmonnConfig,
    SpeechLengths,
    estimate_parameters,
    memory_needed_bytes,
    real_size_random_config,
    speech_lengths,
)
from core.models.salmonn.modules import SalmonnModel
from core.models.salmonn.prompt import DEFAULT_INSTRUCTION, prompt_piece_ids, template_pieces

__all__ = [
    "BEATS_ENCODER",
    "DEFAULT_INSTRUCTION",
    "DOCUMENTED_SPEECH_LANGUAGES",
    "LLM_SPEECH",
    "LLM_TEXT",
    "QFORMER",
    "WHISPER_ENCODER",
    "CheckpointError",
    "SalmonnAdapter",
    "SalmonnConfig",
    "SalmonnModel",
    "SpeechLengths",
    "convert_official_state",
    "estimate_parameters",
    "load_salmonn",
    "memory_needed_bytes",
    "official_name",
    "prompt_piece_ids",
    "real_size_random_config",
    "resolve_files",
    "speech_lengths",
    "template_pieces",
]
