"""SONAR adapter: a native port of Meta's SONAR text and speech encoders (no fairseq2 needed).

SONAR (Duquenne et al. 2023; analysed by Lee et al., arXiv 2411.17666) maps sentences of 200
languages as text, and of 57 languages as speech (one speech encoder per language), into one
1024-wide sentence space. The released checkpoints are fairseq2 files; this module rebuilds both
encoders from ``transformers`` modules plus a small attention pooler written here, and converts the
checkpoints name by name (``convert_text_checkpoint``, ``convert_speech_checkpoint``), failing
loudly on any missing, unexpected or wrong-shape tensor. Everything below was checked against the
official sources (facebookresearch/SONAR ``sonar/models/sonar_speech/*``,
``sonar/models/sonar_text/*``, ``sonar/nn/encoder_pooler.py``, ``sonar/cards/*.yaml`` and fairseq2
v0.4.6, the version SONAR pins); docs/models/sonar.md lists what and where.

Components (see docs/models/sonar.md):

``text_encoder`` (text, dim 1024)
    The NLLB-200 encoder (transformers ``M2M100Encoder`` modules: 24 pre-LN layers, ReLU FFN 8192,
    embeddings scaled by sqrt(1024), fairseq sinusoidal positions starting at pad_idx + 1 = 2) on
    ``__<lang>__ <sentence tokens> </s>`` (fairseq2's NLLB tokenizer in ``source`` mode). Point 0
    ``embedding`` (stage ``frontend``), points 1..24 ``encoder i`` (``encoder``, raw layer outputs,
    space ``<name>/text_encoder``), each pooled over the sentence tokens only (not the language
    token, not ``</s>``). Last point ``sentence embedding`` (stage ``pooler``, space
    ``<name>/sentence``, one position): SONAR's own embedding, the mean over *all* tokens
    (language token and ``</s>`` included, as the official model pools) of the final LayerNorm'd
    encoder output.

``speech_encoder`` (speech, dim 1024)
    Fbank features (80 Kaldi mel bins, 16 kHz, standardised per utterance, 2 frames stacked: 160
    values per 20 ms frame), point 0 ``feature projection`` (``frontend``: LayerNorm(160) + Linear,
    the input of conformer 1), points ``conformer i`` (``encoder``, 24 layers, space
    ``<name>/speech_encoder``). The conformer is the w2v-BERT "600m" one of fairseq2 that SONAR
    pins: Transformer-XL relative positions, a non-causal depthwise convolution (kernel 31) with
    BatchNorm; that is transformers' SeamlessM4T (v1) conformer, *not* ``Wav2Vec2BertModel``
    (w2v-BERT 2.0: Shaw positions, causal convolution, LayerNorm), so the v1 conformer modules are
    used. Then the attention pooler (``AttentionPooler``): one query (embedding row ``bos_idx`` = 2
    scaled by sqrt(1024), plus the sinusoidal encoding of position 0) through a post-LN transformer
    decoder (self-attention, cross-attention over the LayerNorm'd conformer output, ReLU FFN) and a
    bias-free output projection. Points ``pooler i`` (stage ``pooler``, space
    ``<name>/speech_pooler``, one position: the query) and last ``sentence embedding`` (``pooler``,
    space ``<name>/sentence``). The first pooler point is SONAR's length adaptation: frames before
    it, 1 position from it on (``n_positions`` records both).

    The pooler has 3 layers for English and 6 for the other languages (official ``english`` /
    ``non_english`` architectures). The component declares as many pooler points as the deepest
    pooler among the speech languages this adapter holds (``P``); a language whose pooler has
    ``L < P`` layers gives at pooler point k (1..P) its layer ``ceil(k * L / P)`` (the layer at the
    same relative depth), so English in a 6-point path repeats each of its layers twice.
    ``info()['pooler_points']`` records the mapping per language.

Both last points live in ``<name>/sentence`` with the same width, so paired cosine and retrieval
are defined there and only there. Depth runs from 0 to 1 along each component (each is its whole
path). ``modality_pairs()`` is ``[("text_encoder", "speech_encoder")]``; pooling is ``mean`` only.

Languages: FLORES-200 codes. Text: the 202 languages of the text encoder card (the token
``__<code>__``; ``cmn_Hans``/``cmn_Hant`` are accepted for ``zho_Hans``/``zho_Hant``). Speech: only
the languages whose speech encoder checkpoint the adapter holds (``spenc.v3ap.<iso>.pt``,
``spenc.v5ap.<iso>.pt``, ``spenc.eng.pt``; ``<iso>`` is the ISO 639-3 part, ``cmn`` for Chinese);
they are loaded lazily, at most ``max_speech_encoders`` at a time (least recently used dropped).
"""

from core.models.sonar.adapter import SPEECH_ENCODER, TEXT_ENCODER, SonarAdapter, SpeechSource
from core.models.sonar.checkpoint import (
    SPEECH_CHECKPOINT,
    SPEECH_FILES,
    TEXT_CHECKPOINT,
    TOKENIZER_FILE,
    CheckpointError,
    convert_speech_checkpoint,
    convert_text_checkpoint,
    official_state_dict,
    read_checkpoint,
    speech_code,
    speech_config_from_state,
    speech_name_map,
    speech_parameter_count,
    text_config_from_state,
    text_name_map,
    text_parameter_count,
)
from core.models.sonar.config import (
    FBANK_HOP_SAMPLES,
    FBANK_WINDOW_SAMPLES,
    SAMPLING_RATE,
    TINY_SPEECH_LANGUAGES,
    SonarConfig,
    SpeechEncoderConfig,
    TextEncoderConfig,
    real_size_random_config,
    tiny_random_config,
)
from core.models.sonar.load import estimate_parameters, load_sonar
from core.models.sonar.modules import (
    AttentionPooler,
    PoolerLayer,
    SpeechEncoder,
    build_text_encoder,
    init_random,
    sinusoidal_encoding,
)
from core.models.sonar.tokenizer import EXTRA_CONTROL_SYMBOLS, TEXT_LANGUAGES, NllbTokenizer, text_code

__all__ = [
    "EXTRA_CONTROL_SYMBOLS", "FBANK_HOP_SAMPLES", "FBANK_WINDOW_SAMPLES", "SAMPLING_RATE",
    "SPEECH_CHECKPOINT", "SPEECH_ENCODER", "SPEECH_FILES", "TEXT_CHECKPOINT", "TEXT_ENCODER",
    "TEXT_LANGUAGES", "TINY_SPEECH_LANGUAGES", "TOKENIZER_FILE", "AttentionPooler",
    "CheckpointError", "NllbTokenizer", "PoolerLayer", "SonarAdapter", "SonarConfig",
    "SpeechEncoder", "SpeechEncoderConfig", "SpeechSource", "TextEncoderConfig",
    "build_text_encoder", "convert_speech_checkpoint", "convert_text_checkpoint",
    "estimate_parameters", "init_random", "load_sonar", "official_state_dict", "read_checkpoint",
    "real_size_random_config", "sinusoidal_encoding", "speech_code", "speech_config_from_state",
    "speech_name_map", "speech_parameter_count", "text_code", "text_config_from_state",
    "text_name_map", "text_parameter_count", "tiny_random_config",
]
