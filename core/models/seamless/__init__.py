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

from core.models.seamless.adapter import (
    COMPONENT_NAMES,
    SPEECH_ENCODER,
    TEXT_DECODER_SPEECH,
    TEXT_DECODER_TEXT,
    TEXT_ENCODER,
    TRANSCRIPT_TOKENS_PER_SECOND,
    SeamlessAdapter,
)
from core.models.seamless.config import (
    FBANK_HOP_SAMPLES,
    FBANK_WINDOW_SAMPLES,
    MODEL_TYPES,
    SAMPLING_RATE,
    build_feature_extractor,
    estimate_parameters,
    model_class,
    real_size_random_config,
    tiny_random_config,
)
from core.models.seamless.hooks import zero_adaptor_padding
from core.models.seamless.load import load_seamless
from core.models.seamless.tokenizer import (
    LANG_TOKEN,
    SEAMLESS_TEXT_LANGUAGES,
    build_tiny_tokenizer,
    seamless_language,
)

__all__ = [
    "COMPONENT_NAMES", "FBANK_HOP_SAMPLES", "FBANK_WINDOW_SAMPLES", "LANG_TOKEN", "MODEL_TYPES",
    "SAMPLING_RATE", "SEAMLESS_TEXT_LANGUAGES", "SPEECH_ENCODER", "TEXT_DECODER_SPEECH",
    "TEXT_DECODER_TEXT", "TEXT_ENCODER", "TRANSCRIPT_TOKENS_PER_SECOND", "SeamlessAdapter",
    "build_feature_extractor", "build_tiny_tokenizer", "estimate_parameters", "load_seamless",
    "model_class", "real_size_random_config", "seamless_language", "tiny_random_config",
    "zero_adaptor_padding",
]
