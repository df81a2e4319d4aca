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

from __future__ import annotations

import hashlib
import math
import re
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
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
from core.models.common import (
    batches,
    check_fits,
    check_inputs,
    count_parameters,
    meta_parameter_count,
    package_versions,
    pick_device,
    pick_dtype,
    pool,
    prepare_waveform,
    quiet_transformers,
    record_layer_states,
)

SAMPLING_RATE = 16_000
#: Kaldi fbank: 25 ms window, 10 ms hop; fairseq2's w2v-BERT frontend stacks 2 frames
FBANK_WINDOW_SAMPLES = 400
FBANK_HOP_SAMPLES = 160

TEXT_ENCODER = "text_encoder"
SPEECH_ENCODER = "speech_encoder"

#: file names of the official release (sonar/cards/*.yaml)
TEXT_CHECKPOINT = "sonar_text_encoder.pt"
TOKENIZER_FILE = "sentencepiece.source.256000.model"
SPEECH_CHECKPOINT = re.compile(r"^spenc\.(?:v\d+ap\.)?([a-z]{3})\.pt$")

#: The 202 languages of ``text_sonar_basic_encoder`` (sonar/cards/text_sonar_basic_encoder.yaml),
#: in the card's order, which is the order of the ``__<lang>__`` control symbols fairseq2 appends to
#: the SentencePiece model: language i has token id ``n_pieces + 1 + i``.
TEXT_LANGUAGES: tuple[str, ...] = tuple("""
    ace_Arab ace_Latn acm_Arab acq_Arab aeb_Arab afr_Latn ajp_Arab aka_Latn amh_Ethi apc_Arab
    arb_Arab ars_Arab ary_Arab arz_Arab asm_Beng ast_Latn awa_Deva ayr_Latn azb_Arab azj_Latn
    bak_Cyrl bam_Latn ban_Latn bel_Cyrl bem_Latn ben_Beng bho_Deva bjn_Arab bjn_Latn bod_Tibt
    bos_Latn bug_Latn bul_Cyrl cat_Latn ceb_Latn ces_Latn cjk_Latn ckb_Arab crh_Latn cym_Latn
    dan_Latn deu_Latn dik_Latn dyu_Latn dzo_Tibt ell_Grek eng_Latn epo_Latn est_Latn eus_Latn
    ewe_Latn fao_Latn pes_Arab fij_Latn fin_Latn fon_Latn fra_Latn fur_Latn fuv_Latn gla_Latn
    gle_Latn glg_Latn grn_Latn guj_Gujr hat_Latn hau_Latn heb_Hebr hin_Deva hne_Deva hrv_Latn
    hun_Latn hye_Armn ibo_Latn ilo_Latn ind_Latn isl_Latn ita_Latn jav_Latn jpn_Jpan kab_Latn
    kac_Latn kam_Latn kan_Knda kas_Arab kas_Deva kat_Geor knc_Arab knc_Latn kaz_Cyrl kbp_Latn
    kea_Latn khm_Khmr kik_Latn kin_Latn kir_Cyrl kmb_Latn kon_Latn kor_Hang kmr_Latn lao_Laoo
    lvs_Latn lij_Latn lim_Latn lin_Latn lit_Latn lmo_Latn ltg_Latn ltz_Latn lua_Latn lug_Latn
    luo_Latn lus_Latn mag_Deva mai_Deva mal_Mlym mar_Deva min_Latn mkd_Cyrl plt_Latn mlt_Latn
    mni_Beng khk_Cyrl mos_Latn mri_Latn zsm_Latn mya_Mymr nld_Latn nno_Latn nob_Latn npi_Deva
    nso_Latn nus_Latn nya_Latn oci_Latn gaz_Latn ory_Orya pag_Latn pan_Guru pap_Latn pol_Latn
    por_Latn prs_Arab pbt_Arab quy_Latn ron_Latn run_Latn rus_Cyrl sag_Latn san_Deva sat_Beng
    scn_Latn shn_Mymr sin_Sinh slk_Latn slv_Latn smo_Latn sna_Latn snd_Arab som_Latn sot_Latn
    spa_Latn als_Latn srd_Latn srp_Cyrl ssw_Latn sun_Latn swe_Latn swh_Latn szl_Latn tam_Taml
    tat_Cyrl tel_Telu tgk_Cyrl tgl_Latn tha_Thai tir_Ethi taq_Latn taq_Tfng tpi_Latn tsn_Latn
    tso_Latn tuk_Latn tum_Latn tur_Latn twi_Latn tzm_Tfng uig_Arab ukr_Cyrl umb_Latn urd_Arab
    uzn_Latn vec_Latn vie_Latn war_Latn wol_Latn xho_Latn ydd_Hebr yor_Latn yue_Hant zho_Hans
    zho_Hant zul_Latn
""".split())  # noqa: SIM905 - the card's list, as printed
#: control symbols fairseq2's ``load_nllb_tokenizer`` appends after the language tokens
EXTRA_CONTROL_SYMBOLS = ("<MINED_DATA>", "<MMT_BT_DATA>", "<SMT_BT_DATA>")
#: corpus codes that name a text language of the card under another code
TEXT_ALIASES = {"cmn_Hans": "zho_Hans", "cmn_Hant": "zho_Hant"}

#: The 57 speech encoders of sonar/cards/sonar_speech_encoder.yaml (ISO 639-3 code -> file).
#: English is ``spenc.eng.pt`` (architecture ``english``), all others ``non_english``.
SPEECH_FILES: dict[str, str] = {
    **{iso: f"spenc.v3ap.{iso}.pt" for iso in (
        "arb", "cat", "cym", "dan", "deu", "est", "fin", "fra", "ind", "ita", "kor", "nld", "pes",
        "por", "ron", "spa", "swh", "tgl", "tur", "uzn")},
    "eng": "spenc.eng.pt",
    **{iso: f"spenc.v5ap.{iso}.pt" for iso in (
        "asm", "bel", "ben", "bos", "bul", "ces", "cmn", "guj", "heb", "hin", "hrv", "jpn", "kan",
        "lao", "lit", "lvs", "mal", "mar", "mkd", "mlt", "npi", "ory", "pan", "pol", "rus", "slk",
        "slv", "snd", "srp", "tam", "tel", "tha", "ukr", "urd", "vie", "yue")},
}
#: FLORES-200 codes whose speech encoder is not their ISO 639-3 part
SPEECH_ALIASES = {"zho_Hans": "cmn", "cmn_Hans": "cmn", "zho_Hant": "cmn", "cmn_Hant": "cmn"}

#: languages of the tiny random model (tests): English has the shallower pooler, as in the release
TINY_SPEECH_LANGUAGES = ("eng", "deu", "swh")


def speech_code(lang: str) -> str:
    """FLORES-200 code (``deu_Latn``) or ISO 639-3 code -> the speech encoder's language code."""
    return SPEECH_ALIASES.get(lang, lang.split("_", 1)[0])


def text_code(lang: str) -> str:
    return TEXT_ALIASES.get(lang, lang)


# --------------------------------------------------------------------------------------------------
# Configurations


@dataclass(frozen=True)
class TextEncoderConfig:
    """``text_sonar_basic_encoder`` (sonar/models/sonar_text/config.py, arch ``basic``)."""

    vocab_size: int = 256_206
    model_dim: int = 1024
    num_layers: int = 24
    num_heads: int = 16
    ffn_inner_dim: int = 8192
    #: ``max_seq_len`` 512; ``_from_fairseq`` adds pad_idx + 1, so 514 positions in all
    max_seq_len: int = 514
    #: fairseq's pad index: sinusoidal positions start at pad_idx + 1 (``_legacy_pad_idx``)
    pad_idx: int = 1


@dataclass(frozen=True)
class SpeechEncoderConfig:
    """A SONAR speech encoder (sonar/models/sonar_speech/config.py over fairseq2 w2v-BERT 600m)."""

    model_dim: int = 1024
    num_layers: int = 24
    num_heads: int = 16
    ffn_inner_dim: int = 4096
    depthwise_kernel_size: int = 31
    num_fbank_channels: int = 80
    fbank_stride: int = 2
    #: relative position table of the conformer (fairseq2 ``max_seq_len`` 4096 frames)
    max_seq_len: int = 4096
    #: attention pooler: 6 layers (``non_english``), 3 for English (``english``)
    pooler_layers: int = 6
    pooler_heads: int = 16
    pooler_ffn_inner_dim: int = 4096
    #: the pooler's embedding table has ``w2v2 model_dim`` rows (official factory); row bos_idx used
    pooler_num_embeddings: int = 1024
    bos_idx: int = 2

    @property
    def feature_dim(self) -> int:
        return self.num_fbank_channels * self.fbank_stride


@dataclass(frozen=True)
class SonarConfig:
    text: TextEncoderConfig
    speech: SpeechEncoderConfig
    #: pooler depth of the English speech encoder (official arch ``english``)
    english_pooler_layers: int = 3

    def speech_for(self, iso: str) -> SpeechEncoderConfig:
        if iso == "eng":
            return replace(self.speech, pooler_layers=self.english_pooler_layers)
        return self.speech


def real_size_random_config() -> SonarConfig:
    """The released architecture (numbers from the official configs, see the module docstring)."""
    return SonarConfig(TextEncoderConfig(), SpeechEncoderConfig(), english_pooler_layers=3)


def tiny_random_config(vocab_size: int) -> SonarConfig:
    """Small widths and depths, the real audio front end (80 mel bins x stride 2); English has the
    shallower pooler (1 layer vs 2), as in the release (3 vs 6). Tests only."""
    return SonarConfig(
        TextEncoderConfig(vocab_size=vocab_size, model_dim=32, num_layers=2, num_heads=2,
                          ffn_inner_dim=64),
        SpeechEncoderConfig(model_dim=32, num_layers=2, num_heads=2, ffn_inner_dim=64,
                            depthwise_kernel_size=7, pooler_layers=2, pooler_heads=2,
                            pooler_ffn_inner_dim=64, pooler_num_embeddings=32),
        english_pooler_layers=1)


# --------------------------------------------------------------------------------------------------
# Modules


def _m2m100_config(cfg: TextEncoderConfig):
    from transformers import M2M100Config

    with quiet_transformers():
        config = M2M100Config(
            vocab_size=cfg.vocab_size, d_model=cfg.model_dim, encoder_layers=cfg.num_layers,
            encoder_attention_heads=cfg.num_heads, encoder_ffn_dim=cfg.ffn_inner_dim,
            decoder_layers=1, decoder_attention_heads=cfg.num_heads, decoder_ffn_dim=8,
            activation_function="relu", scale_embedding=True, pad_token_id=cfg.pad_idx,
            max_position_embeddings=cfg.max_seq_len, dropout=0.0, attention_dropout=0.0,
            activation_dropout=0.0, encoder_layerdrop=0.0)
    config._attn_implementation = "eager"
    return config


def build_text_encoder(cfg: TextEncoderConfig) -> nn.Module:
    """transformers ``M2M100Encoder`` (embedding, sinusoidal positions, pre-LN layers, final LN)."""
    from transformers.models.m2m_100.modeling_m2m_100 import M2M100Encoder

    with quiet_transformers():
        return M2M100Encoder(_m2m100_config(cfg))


def _conformer_config(cfg: SpeechEncoderConfig):
    from transformers import SeamlessM4TConfig

    with quiet_transformers():
        config = SeamlessM4TConfig(
            vocab_size=8, hidden_size=cfg.model_dim, speech_encoder_layers=cfg.num_layers,
            speech_encoder_attention_heads=cfg.num_heads,
            speech_encoder_intermediate_size=cfg.ffn_inner_dim, speech_encoder_hidden_act="swish",
            speech_encoder_dropout=0.0, speech_encoder_layerdrop=0.0,
            feature_projection_input_dim=cfg.feature_dim, conv_depthwise_kernel_size=cfg.depthwise_kernel_size,
            position_embeddings_type="relative", max_source_positions=cfg.max_seq_len,
            layer_norm_eps=1e-5, add_adapter=False)
    config._attn_implementation = "eager"
    return config


class _Attention(nn.Module):
    """fairseq2 ``StandardMultiheadAttention`` (q/k/v/output projections with bias, 1/sqrt(d_head))."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, keys: torch.Tensor,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, q_len, dim = query.shape
        h = self.num_heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, -1, h, dim // h).transpose(1, 2)

        q, k, v = split(self.q_proj(query)), split(self.k_proj(keys)), split(self.v_proj(keys))
        mask = None if key_mask is None else key_mask.to(torch.bool)[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.output_proj(out.transpose(1, 2).reshape(b, q_len, dim))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.inner_proj = nn.Linear(dim, inner)
        self.output_proj = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_proj(F.relu(self.inner_proj(x)))


class PoolerLayer(nn.Module):
    """One post-LN decoder layer (fairseq2 ``StandardTransformerDecoderLayer``, norm order POST):
    x = LN(x + SelfAttn(x)); x = LN(x + CrossAttn(x, frames)); x = LN(x + FFN(x))."""

    def __init__(self, dim: int, num_heads: int, ffn_inner_dim: int):
        super().__init__()
        self.self_attn = _Attention(dim, num_heads)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.encoder_decoder_attn = _Attention(dim, num_heads)
        self.encoder_decoder_attn_layer_norm = nn.LayerNorm(dim)
        self.ffn = _FeedForward(dim, ffn_inner_dim)
        self.ffn_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, frames: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        x = self.self_attn_layer_norm(x + self.self_attn(x, x))
        x = self.encoder_decoder_attn_layer_norm(x + self.encoder_decoder_attn(x, frames, frame_mask))
        return self.ffn_layer_norm(x + self.ffn(x))


def sinusoidal_encoding(steps: torch.Tensor, dim: int) -> torch.Tensor:
    """fairseq2 ``SinusoidalPositionEncoder`` rows: [sin(s*f) | cos(s*f)], f_i = 10000^(-i/(dim/2-1))."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -math.log(10000.0) / (half - 1))
    angles = torch.outer(steps.to(torch.float32), freqs)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class AttentionPooler(nn.Module):
    """SONAR's ``AttentionEncoderOutputPooler`` (sonar/nn/encoder_pooler.py).

    The query is token ``bos_idx`` of a ``StandardEmbedding`` scaled by sqrt(dim) (fairseq2
    ``TransformerEmbeddingFrontend``) plus the sinusoidal encoding of position 0; it runs through
    the post-LN decoder layers (no final decoder LayerNorm under POST order), cross-attending to the
    encoder frames, and a bias-free ``projection_out`` gives the sentence embedding.
    """

    def __init__(self, cfg: SpeechEncoderConfig):
        super().__init__()
        dim = cfg.model_dim
        self.bos_idx = cfg.bos_idx
        self.scale = math.sqrt(dim)
        self.embed = nn.Embedding(cfg.pooler_num_embeddings, dim)
        self.layers = nn.ModuleList(PoolerLayer(dim, cfg.pooler_heads, cfg.pooler_ffn_inner_dim)
                                    for _ in range(cfg.pooler_layers))
        self.projection_out = nn.Linear(dim, dim, bias=False)
        self.register_buffer("position_0", sinusoidal_encoding(torch.zeros(1), dim),
                             persistent=False)

    def query(self, batch_size: int) -> torch.Tensor:
        row = self.embed.weight[self.bos_idx] * self.scale + self.position_0[0].to(self.embed.weight)
        return row.expand(batch_size, 1, -1)

    def forward(self, frames: torch.Tensor, frame_mask: torch.Tensor
                ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(the query after each layer, each (batch, 1, dim); the sentence embedding (batch, 1, dim))."""
        x = self.query(frames.shape[0])
        states = []
        for layer in self.layers:
            x = layer(x, frames, frame_mask)
            states.append(x)
        return states, self.projection_out(x)


class SpeechEncoder(nn.Module):
    """One SONAR speech encoder: feature projection + conformer (transformers' SeamlessM4T v1
    modules: relative positions, BatchNorm convolution, final LayerNorm = SONAR's ``layer_norm``)
    and the attention pooler."""

    def __init__(self, cfg: SpeechEncoderConfig):
        super().__init__()
        from transformers.models.seamless_m4t.modeling_seamless_m4t import (
            SeamlessM4TConformerEncoder,
            SeamlessM4TConformerFeatureProjection,
        )

        self.cfg = cfg
        config = _conformer_config(cfg)
        with quiet_transformers():
            self.feature_projection = SeamlessM4TConformerFeatureProjection(config)
            self.encoder = SeamlessM4TConformerEncoder(config)
        self.pooler = AttentionPooler(cfg)

    def forward(self, features: torch.Tensor, frame_mask: torch.Tensor, *, layers: bool = True):
        """(frontend + conformer states or None, pooler query states, sentence embedding)."""
        hidden = self.feature_projection(features)
        if layers:
            with record_layer_states(self.encoder.layers, include_input=True) as recorded:
                frames = self.encoder(hidden, attention_mask=frame_mask.long())
            recorded = list(recorded)
        else:
            recorded = None
            frames = self.encoder(hidden, attention_mask=frame_mask.long())
        queries, sentence = self.pooler(frames, frame_mask.bool())
        return recorded, queries, sentence


def _init_random(module: nn.Module, seed: int) -> nn.Module:
    """Random weights (normal 0.02, LayerNorm gain 1 + noise, BatchNorm statistics random) from a
    seed; transformers' own init of these modules depends on the global RNG, this does not."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
            if tensor.dtype == torch.long:
                continue
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=gen))
            elif name.endswith("running_mean"):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=gen))
            elif ("layer_norm" in name or "batch_norm" in name) and name.endswith("weight"):
                tensor.copy_(1.0 + 0.1 * torch.randn(tensor.shape, generator=gen))
            elif isinstance(tensor, nn.Parameter):
                tensor.copy_(0.02 * torch.randn(tensor.shape, generator=gen)
                             * (5.0 if "embed" in name else 1.0))
    return module


# --------------------------------------------------------------------------------------------------
# Checkpoints: official fairseq2 names <-> our modules


class CheckpointError(ValueError):
    """A checkpoint that does not match the architecture; the message names the tensors."""


def text_name_map(cfg: TextEncoderConfig) -> dict[str, str]:
    """Official fairseq2 name (sonar_text ``SonarTextTransformerEncoderModel``) -> our name."""
    names = {"encoder_frontend.embed.weight": "embed_tokens.weight",
             "layer_norm.weight": "layer_norm.weight", "layer_norm.bias": "layer_norm.bias"}
    parts = {"self_attn.q_proj": "self_attn.q_proj", "self_attn.k_proj": "self_attn.k_proj",
             "self_attn.v_proj": "self_attn.v_proj", "self_attn.output_proj": "self_attn.out_proj",
             "self_attn_layer_norm": "self_attn_layer_norm", "ffn.inner_proj": "fc1",
             "ffn.output_proj": "fc2", "ffn_layer_norm": "final_layer_norm"}
    for i in range(cfg.num_layers):
        for theirs, ours in parts.items():
            for p in ("weight", "bias"):
                names[f"encoder.layers.{i}.{theirs}.{p}"] = f"layers.{i}.{ours}.{p}"
    return names


def speech_name_map(cfg: SpeechEncoderConfig) -> dict[str, str]:
    """Official fairseq2 name (sonar_speech ``SonarSpeechEncoderModel``) -> our name."""
    names: dict[str, str] = {}
    wb = ("weight", "bias")
    for p in wb:
        names[f"encoder_frontend.post_extract_layer_norm.{p}"] = f"feature_projection.layer_norm.{p}"
        names[f"encoder_frontend.model_dim_proj.{p}"] = f"feature_projection.projection.{p}"
        names[f"layer_norm.{p}"] = f"encoder.layer_norm.{p}"
    for i in range(cfg.num_layers):
        a, b = f"encoder.layers.{i}", f"encoder.layers.{i}"
        pairs = {}
        for k in (1, 2):
            pairs[f"ffn{k}_layer_norm"] = f"ffn{k}_layer_norm"
            pairs[f"ffn{k}.inner_proj"] = f"ffn{k}.intermediate_dense"
            pairs[f"ffn{k}.output_proj"] = f"ffn{k}.output_dense"
        pairs.update({"self_attn_layer_norm": "self_attn_layer_norm",
                      "self_attn.q_proj": "self_attn.linear_q", "self_attn.k_proj": "self_attn.linear_k",
                      "self_attn.v_proj": "self_attn.linear_v",
                      "self_attn.output_proj": "self_attn.linear_out",
                      "conv_layer_norm": "conv_module.layer_norm", "layer_norm": "final_layer_norm"})
        for theirs, ours in pairs.items():
            for p in wb:
                names[f"{a}.{theirs}.{p}"] = f"{b}.{ours}.{p}"
        names[f"{a}.self_attn.sdpa.r_proj.weight"] = f"{b}.self_attn.linear_pos.weight"
        names[f"{a}.self_attn.sdpa.u_bias"] = f"{b}.self_attn.pos_bias_u"
        names[f"{a}.self_attn.sdpa.v_bias"] = f"{b}.self_attn.pos_bias_v"
        for conv in ("pointwise_conv1", "depthwise_conv", "pointwise_conv2"):
            names[f"{a}.conv.{conv}.weight"] = f"{b}.conv_module.{conv}.weight"
        for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            names[f"{a}.conv.batch_norm.{p}"] = f"{b}.conv_module.batch_norm.{p}"
    names["encoder_pooler.decoder_frontend.embed.weight"] = "pooler.embed.weight"
    names["encoder_pooler.projection_out.weight"] = "pooler.projection_out.weight"
    for j in range(cfg.pooler_layers):
        for part in ("self_attn", "encoder_decoder_attn"):
            for proj in ("q_proj", "k_proj", "v_proj", "output_proj"):
                for p in wb:
                    key = f"layers.{j}.{part}.{proj}.{p}"
                    names[f"encoder_pooler.decoder.{key}"] = f"pooler.{key}"
        for part in ("self_attn_layer_norm", "encoder_decoder_attn_layer_norm", "ffn_layer_norm",
                     "ffn.inner_proj", "ffn.output_proj"):
            for p in wb:
                key = f"layers.{j}.{part}.{p}"
                names[f"encoder_pooler.decoder.{key}"] = f"pooler.{key}"
    return names


#: buffers that may be absent from a checkpoint without changing inference
_OPTIONAL = ("num_batches_tracked",)
#: keys of the fairseq(1) layouts that carry no inference weights (the official converters drop them)
_IGNORED = re.compile(r"(^|\.)version$|_float_tensor$|^encoder\.w2v_model\.mask_emb$|"
                      r"^encoder\.w2v_model\.encoder\.pos_conv\.")

#: fairseq(1) speech layout -> fairseq2 names (the renames of sonar_speech/handler.py)
_FAIRSEQ1_SPEECH = [
    (r"^encoder\.w2v_model\.layer_norm\.", "encoder_frontend.post_extract_layer_norm."),
    (r"^encoder\.w2v_model\.post_extract_proj\.", "encoder_frontend.model_dim_proj."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.conv_module\.layer_norm\.",
     r"encoder.layers.\1.conv_layer_norm."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.conv_module\.", r"encoder.layers.\1.conv."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.ffn(1|2)\.layer_norm\.",
     r"encoder.layers.\1.ffn\2_layer_norm."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.ffn(1|2)\.w_1\.", r"encoder.layers.\1.ffn\2.inner_proj."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.ffn(1|2)\.w_2\.", r"encoder.layers.\1.ffn\2.output_proj."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.self_attn_layer_norm\.",
     r"encoder.layers.\1.self_attn_layer_norm."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.self_attn\.linear_q\.", r"encoder.layers.\1.self_attn.q_proj."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.self_attn\.linear_k\.", r"encoder.layers.\1.self_attn.k_proj."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.self_attn\.linear_v\.", r"encoder.layers.\1.self_attn.v_proj."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.self_attn\.linear_out\.",
     r"encoder.layers.\1.self_attn.output_proj."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.self_attn\.linear_pos\.",
     r"encoder.layers.\1.self_attn.sdpa.r_proj."),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.self_attn\.pos_bias_u$",
     r"encoder.layers.\1.self_attn.sdpa.u_bias"),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.self_attn\.pos_bias_v$",
     r"encoder.layers.\1.self_attn.sdpa.v_bias"),
    (r"^encoder\.w2v_model\.encoder\.layers\.(\d+)\.final_layer_norm\.", r"encoder.layers.\1.layer_norm."),
    # the redundant LayerNorm after the conformer blocks becomes the SONAR model's ``layer_norm``
    (r"^encoder\.w2v_model\.encoder\.layer_norm\.", "layer_norm."),
    (r"^decoder\.embed_tokens\.", "encoder_pooler.decoder_frontend.embed."),
    (r"^decoder\.layers\.(\d+)\.self_attn\.out_proj\.", r"encoder_pooler.decoder.layers.\1.self_attn.output_proj."),
    (r"^decoder\.layers\.(\d+)\.self_attn_layer_norm\.",
     r"encoder_pooler.decoder.layers.\1.self_attn_layer_norm."),
    (r"^decoder\.layers\.(\d+)\.self_attn\.", r"encoder_pooler.decoder.layers.\1.self_attn."),
    (r"^decoder\.layers\.(\d+)\.encoder_attn_layer_norm\.",
     r"encoder_pooler.decoder.layers.\1.encoder_decoder_attn_layer_norm."),
    (r"^decoder\.layers\.(\d+)\.encoder_attn\.out_proj\.",
     r"encoder_pooler.decoder.layers.\1.encoder_decoder_attn.output_proj."),
    (r"^decoder\.layers\.(\d+)\.encoder_attn\.", r"encoder_pooler.decoder.layers.\1.encoder_decoder_attn."),
    (r"^decoder\.layers\.(\d+)\.fc1\.", r"encoder_pooler.decoder.layers.\1.ffn.inner_proj."),
    (r"^decoder\.layers\.(\d+)\.fc2\.", r"encoder_pooler.decoder.layers.\1.ffn.output_proj."),
    (r"^decoder\.layers\.(\d+)\.final_layer_norm\.", r"encoder_pooler.decoder.layers.\1.ffn_layer_norm."),
    (r"^decoder\.embed_out$", "encoder_pooler.projection_out.weight"),
]

#: fairseq(1) text layout -> fairseq2 names (the renames of sonar_text/handler.py)
_FAIRSEQ1_TEXT = [
    (r"^layers\.(\d+)\.self_attn\.out_proj\.", r"encoder.layers.\1.self_attn.output_proj."),
    (r"^layers\.(\d+)\.self_attn\.", r"encoder.layers.\1.self_attn."),
    (r"^layers\.(\d+)\.self_attn_layer_norm\.", r"encoder.layers.\1.self_attn_layer_norm."),
    (r"^layers\.(\d+)\.fc1\.", r"encoder.layers.\1.ffn.inner_proj."),
    (r"^layers\.(\d+)\.fc2\.", r"encoder.layers.\1.ffn.output_proj."),
    (r"^layers\.(\d+)\.final_layer_norm\.", r"encoder.layers.\1.ffn_layer_norm."),
    (r"^embed_tokens\.", "encoder_frontend.embed."),
]


def _rename(state: Mapping[str, torch.Tensor], table) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        new = key
        for pattern, repl in table:
            new, n = re.subn(pattern, repl, key)
            if n:
                break
        out[new] = value
    return out


def read_checkpoint(path: str | Path, *, mmap: bool = True) -> dict[str, torch.Tensor]:
    """The tensors of a released checkpoint, read with ``weights_only=True`` (tensors and plain
    containers only: a pickle holding any other object is refused) and unwrapped from fairseq2's
    ``{"model": ...}`` (or fairseq's ``{"state_dict": ...}``) layout."""
    path = Path(path)
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError as exc:  # legacy (non-zip) files cannot be memory-mapped
            if not mmap or "mmap" not in str(exc).lower():
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError...
        raise CheckpointError(
            f"{path.name}: could not be read as a tensors-only checkpoint (torch.load with "
            f"weights_only=True refused it: {type(exc).__name__}: {str(exc)[:300]}). Only plain "
            "tensor checkpoints are read, never arbitrary pickles") from exc
    state = obj
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), Mapping):
                state = obj[key]
                break
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"{path.name}: holds no state dict (expected a dict of tensors, "
                              "possibly under 'model')")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path.name}: entries that are not tensors: {', '.join(map(str, bad[:10]))}")
    return dict(state)


def _apply(module: nn.Module, state: Mapping[str, torch.Tensor], names: Mapping[str, str],
           what: str) -> nn.Module:
    """Copy ``state`` (official names) into ``module`` through ``names``; every parameter and
    buffer must be set with its shape, nothing may be left over."""
    ours = module.state_dict()
    state = {k: v for k, v in state.items() if not _IGNORED.search(k)}
    unexpected = sorted(set(state) - set(names))
    missing = sorted(k for k, v in names.items() if k not in state and not v.endswith(_OPTIONAL))
    not_ours = sorted(v for v in names.values() if v not in ours)
    unmapped = sorted(k for k in ours if k not in set(names.values()))
    wrong = sorted(f"{k} {tuple(state[k].shape)} (expected {tuple(ours[v].shape)})"
                   for k, v in names.items() if k in state and v in ours
                   and tuple(state[k].shape) != tuple(ours[v].shape))
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong),
                         ("name map targets absent from the module", not_ours),
                         ("module tensors the name map does not cover", unmapped)):
        if items:
            shown = ", ".join(items[:12]) + (f" ... ({len(items)} in all)" if len(items) > 12 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise CheckpointError(f"{what} does not match the architecture: " + "; ".join(problems))
    with torch.no_grad():
        for theirs, mine in names.items():
            if theirs in state:
                target = ours[mine]
                target.copy_(state[theirs].to(dtype=target.dtype))
    return module


def convert_text_checkpoint(state: Mapping[str, torch.Tensor], cfg: TextEncoderConfig,
                            module: nn.Module | None = None, what: str = "text checkpoint") -> nn.Module:
    """Load an official text encoder state (fairseq2 names, or the fairseq layout, whose embedding
    rows for (BOS, PAD, EOS, UNK) are reordered to the tokenizer's (PAD, UNK, BOS, EOS) exactly as
    sonar_text/handler.py does) into a ``build_text_encoder(cfg)`` module."""
    state = dict(state)
    if "encoder_frontend.embed.weight" not in state and "embed_tokens.weight" in state:
        state = _rename(state, _FAIRSEQ1_TEXT)
        embed = state["encoder_frontend.embed.weight"].clone()
        embed[[0, 1, 2, 3]] = embed[[1, 3, 0, 2]]
        state["encoder_frontend.embed.weight"] = embed
    module = module if module is not None else build_text_encoder(cfg)
    return _apply(module, state, text_name_map(cfg), what)


def convert_speech_checkpoint(state: Mapping[str, torch.Tensor], cfg: SpeechEncoderConfig,
                              module: nn.Module | None = None,
                              what: str = "speech checkpoint") -> nn.Module:
    """Load an official speech encoder state (fairseq2 names, or the fairseq layout renamed as
    sonar_speech/handler.py does) into a ``SpeechEncoder(cfg)``."""
    state = dict(state)
    if "encoder_frontend.model_dim_proj.weight" not in state and any(
            k.startswith("encoder.w2v_model.") for k in state):
        state = _rename(state, _FAIRSEQ1_SPEECH)
    module = module if module is not None else SpeechEncoder(cfg)
    return _apply(module, state, speech_name_map(cfg), what)


def official_state_dict(module: nn.Module, names: Mapping[str, str]) -> dict[str, torch.Tensor]:
    """Our module's tensors under the official fairseq2 names (the inverse of the converters)."""
    ours = module.state_dict()
    return {theirs: ours[mine].detach().clone() for theirs, mine in names.items()}


def text_config_from_state(state: Mapping[str, torch.Tensor], base: TextEncoderConfig | None = None
                           ) -> TextEncoderConfig:
    """Vocabulary, width, depth and FFN width read from the tensors' shapes (heads, positions
    from ``base``, default the release)."""
    base = base or TextEncoderConfig()
    if "encoder_frontend.embed.weight" not in state and "embed_tokens.weight" in state:
        state = _rename(state, _FAIRSEQ1_TEXT)
    try:
        vocab, dim = state["encoder_frontend.embed.weight"].shape
        ffn = state["encoder.layers.0.ffn.inner_proj.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"not a SONAR text encoder checkpoint: no tensor {exc}") from exc
    layers = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"encoder\.layers\.(\d+)\.", k)))
    return replace(base, vocab_size=int(vocab), model_dim=int(dim), num_layers=layers,
                   ffn_inner_dim=int(ffn))


def speech_config_from_state(state: Mapping[str, torch.Tensor],
                             base: SpeechEncoderConfig | None = None) -> SpeechEncoderConfig:
    """Width, depths, conformer heads and FFN widths read from the tensors' shapes (the pooler's
    heads, which no shape shows, from ``base``: 16 in the release)."""
    base = base or SpeechEncoderConfig()
    if "encoder_frontend.model_dim_proj.weight" not in state:
        state = _rename(state, _FAIRSEQ1_SPEECH)
    try:
        dim, feat = state["encoder_frontend.model_dim_proj.weight"].shape
        ffn = state["encoder.layers.0.ffn1.inner_proj.weight"].shape[0]
        kernel = state["encoder.layers.0.conv.depthwise_conv.weight"].shape[-1]
        rows = state["encoder_pooler.decoder_frontend.embed.weight"].shape[0]
        pooler_ffn = state["encoder_pooler.decoder.layers.0.ffn.inner_proj.weight"].shape[0]
        heads = state["encoder.layers.0.self_attn.sdpa.u_bias"].shape[0]  # (heads, head_dim)
    except KeyError as exc:
        raise CheckpointError(f"not a SONAR speech encoder checkpoint: no tensor {exc}") from exc

    def depth(prefix: str) -> int:
        return 1 + max(int(m.group(1)) for k in state if (m := re.match(prefix + r"(\d+)\.", k)))

    if feat % base.num_fbank_channels:
        raise CheckpointError(f"feature projection reads {feat} values, not a multiple of "
                              f"{base.num_fbank_channels} mel bins")
    return replace(base, model_dim=int(dim), num_layers=depth(r"encoder\.layers\."),
                   num_heads=int(heads),
                   ffn_inner_dim=int(ffn), depthwise_kernel_size=int(kernel),
                   fbank_stride=int(feat) // base.num_fbank_channels,
                   pooler_layers=depth(r"encoder_pooler\.decoder\.layers\."),
                   pooler_ffn_inner_dim=int(pooler_ffn), pooler_num_embeddings=int(rows))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Tokenizer


class NllbTokenizer:
    """fairseq2's NLLB tokenizer layout over a SentencePiece model: ``<pad>`` inserted at 0 (so
    every SentencePiece id is shifted by 1: ``<unk>`` 1, ``<s>`` 2, ``</s>`` 3), then after the
    ``n`` pieces the control symbols ``__<lang>__`` for the languages in ``TEXT_LANGUAGES`` order
    (ids n + 1 ...), then ``<MINED_DATA> <MMT_BT_DATA> <SMT_BT_DATA>``. A source sentence is
    ``__<lang>__ <pieces> </s>``.

    ``encode_raw(text) -> SentencePiece ids`` and ``piece(id)`` come from a ``sentencepiece`` model
    file (the released one) or, for the tiny random model, from a ``tokenizers`` Unigram model.
    """

    PAD, UNK, BOS, EOS = 0, 1, 2, 3

    def __init__(self, n_pieces: int, encode_raw: Callable[[str], list[int]],
                 piece: Callable[[int], str], source: str,
                 languages: Sequence[str] = TEXT_LANGUAGES):
        self.n_pieces = int(n_pieces)
        self._encode_raw = encode_raw
        self._piece = piece
        self.source = source
        self.languages = tuple(languages)
        self._lang_ids = {lang: self.n_pieces + 1 + i for i, lang in enumerate(self.languages)}
        self.vocab_size = self.n_pieces + 1 + len(self.languages) + len(EXTRA_CONTROL_SYMBOLS)

    @classmethod
    def from_sentencepiece(cls, path: str | Path) -> NllbTokenizer:
        try:
            import sentencepiece as spm
        except ImportError as exc:
            raise ImportError("reading the SONAR tokenizer needs the 'sentencepiece' package: "
                              "pip install sentencepiece") from exc
        processor = spm.SentencePieceProcessor(model_file=str(path))
        return cls(processor.get_piece_size(), lambda text: list(processor.encode(text)),
                   processor.id_to_piece, f"sentencepiece {Path(path).name}")

    @classmethod
    def tiny(cls) -> NllbTokenizer:
        """A character-level Unigram model built offline with ``tokenizers`` (tests)."""
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

        ranges = [(0x21, 0x7F), (0xC0, 0x180), (0x391, 0x3CA), (0x400, 0x460)]
        chars = [chr(c) for lo, hi in ranges for c in range(lo, hi) if chr(c).isprintable()]
        vocab = [("<unk>", 0.0), ("<s>", 0.0), ("</s>", 0.0), ("▁", -1.0)]
        vocab += [(c, -2.0) for c in chars] + [("▁" + c, -2.5) for c in chars if c.isalpha()]
        tok = Tokenizer(models.Unigram(vocab, unk_id=0, byte_fallback=False))
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        return cls(tok.get_vocab_size(), lambda text: tok.encode(text, add_special_tokens=False).ids,
                   lambda i: tok.id_to_token(i) or "<unk>", "tiny character-level Unigram (tokenizers)")

    def supports(self, lang: str) -> bool:
        return text_code(lang) in self._lang_ids

    def lang_id(self, lang: str) -> int:
        code = text_code(lang)
        if code not in self._lang_ids:
            raise UnsupportedLanguageError(
                f"SONAR's text encoder has no language token for {lang!r}; it knows the 202 "
                f"FLORES-200 codes of its card (e.g. {', '.join(self.languages[:4])}, ...)")
        return self._lang_ids[code]

    def sentence_ids(self, text: str) -> list[int]:
        return [i + 1 for i in self._encode_raw(text)]

    def token(self, i: int) -> str:
        if i == self.PAD:
            return "<pad>"
        if 1 <= i <= self.n_pieces:
            return self._piece(i - 1)
        k = i - self.n_pieces - 1
        if 0 <= k < len(self.languages):
            return f"__{self.languages[k]}__"
        return EXTRA_CONTROL_SYMBOLS[k - len(self.languages)]


# --------------------------------------------------------------------------------------------------
# The adapter


@dataclass
class _SpeechSource:
    """Where one language's speech encoder comes from: a checkpoint file or a random seed."""

    iso: str
    cfg: SpeechEncoderConfig
    path: Path | None = None
    seed: int | None = None


class SonarAdapter(ModelAdapter):
    """SONAR as ``text_encoder`` and ``speech_encoder`` meeting in ``<name>/sentence``."""

    poolings: tuple[Pooling, ...] = ("mean",)

    def __init__(self, *, name: str, device: str, dtype: torch.dtype,
                 text_encoder: nn.Module | None, text_cfg: TextEncoderConfig | None,
                 tokenizer: NllbTokenizer | None, speech_sources: Mapping[str, _SpeechSource],
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
                module = _init_random(SpeechEncoder(src.cfg), src.seed)
        self._speech[iso] = module.to(device=self.device, dtype=self.dtype).eval()
        return self._speech[iso]

    def _load_speech_file(self, src: _SpeechSource) -> SpeechEncoder:
        state = read_checkpoint(src.path)
        n_params = sum(v.numel() for v in state.values() if v.is_floating_point())
        check_fits(f"SONAR speech encoder {src.path.name}", n_params, self.dtype, self.device)
        cfg = speech_config_from_state(state, src.cfg)
        if cfg != src.cfg:
            raise CheckpointError(f"{src.path.name}: architecture {cfg} differs from the one read "
                                  f"when the folder was opened ({src.cfg})")
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


# --------------------------------------------------------------------------------------------------
# Loading


def _speech_sources_from_folder(folder: Path, langs: Sequence[str] | None, base: SonarConfig
                                ) -> dict[str, _SpeechSource]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        match = SPEECH_CHECKPOINT.match(path.name)
        if match:
            iso = match.group(1)
            if iso in found:
                raise ValueError(f"{folder}: two speech encoders for {iso!r}: "
                                 f"{found[iso].name} and {path.name}; keep one")
            found[iso] = path
    if langs is not None:
        wanted = {speech_code(x) for x in langs}
        found = {iso: p for iso, p in found.items() if iso in wanted}
    sources = {}
    for iso, path in found.items():
        state = read_checkpoint(path)  # memory-mapped: only the shapes are read here
        sources[iso] = _SpeechSource(iso, speech_config_from_state(state, base.speech_for(iso)), path)
        del state
    return sources


def _load_folder(folder: Path, langs, device: str, dtype: torch.dtype, kw: dict):
    base = real_size_random_config()
    text_path = folder / TEXT_CHECKPOINT
    if not text_path.exists():
        candidates = sorted(p for p in folder.glob("*.pt")
                            if "text" in p.name and "encoder" in p.name)
        text_path = candidates[0] if candidates else None
    provenance: dict[str, Any] = {"weights": str(folder)}
    text_encoder = text_cfg = tokenizer = None
    if text_path is not None:
        tok_path = folder / TOKENIZER_FILE
        if not tok_path.exists():
            models = sorted(folder.glob("*.model"))
            if not models:
                raise FileNotFoundError(
                    f"{folder}: the text encoder {text_path.name} needs its SentencePiece model "
                    f"{TOKENIZER_FILE} (https://dl.fbaipublicfiles.com/SONAR/{TOKENIZER_FILE}) in "
                    "the same folder")
            tok_path = models[0]
        tokenizer = NllbTokenizer.from_sentencepiece(tok_path)
        state = read_checkpoint(text_path)
        text_cfg = text_config_from_state(state, base.text)
        n_params = sum(v.numel() for v in state.values() if v.is_floating_point())
        check_fits(f"SONAR text encoder {text_path.name}", n_params, dtype, device)
        if tokenizer.vocab_size != text_cfg.vocab_size:
            raise CheckpointError(
                f"{tok_path.name} gives {tokenizer.vocab_size} token ids (pieces + <pad> + 202 "
                f"languages + 3 control symbols) but {text_path.name} has {text_cfg.vocab_size} "
                "embedding rows: not the tokenizer of this encoder")
        text_encoder = convert_text_checkpoint(state, text_cfg, what=text_path.name)
        del state
        provenance["text_checkpoint"] = {"file": text_path.name, "sha256": sha256_file(text_path),
                                         "n_parameters": count_parameters(text_encoder)}
        provenance["tokenizer_file"] = {"file": tok_path.name, "sha256": sha256_file(tok_path)}
    sources = _speech_sources_from_folder(folder, langs, base)
    if text_encoder is None and not sources:
        raise FileNotFoundError(
            f"{folder}: no SONAR checkpoints: expected {TEXT_CHECKPOINT} + {TOKENIZER_FILE} "
            "and/or speech encoders spenc.v3ap.<iso>.pt / spenc.v5ap.<iso>.pt / spenc.eng.pt")
    provenance["speech_checkpoints"] = {iso: s.path.name for iso, s in sorted(sources.items())}
    return text_encoder, text_cfg, tokenizer, sources, provenance


def estimate_parameters(config: SonarConfig, speech_langs: Sequence[str]) -> int:
    """Exact parameter count of the text encoder plus one speech encoder per language (meta device)."""
    total = meta_parameter_count(build_text_encoder, config.text)
    for iso in speech_langs:
        total += meta_parameter_count(SpeechEncoder, config.speech_for(iso))
    return total


def load_sonar(*, name: str, device: str | None = None, source: str | None = None,
               random: bool = False, dtype: str | torch.dtype | None = None, seed: int = 0,
               langs: Sequence[str] | str | None = None, real_size: bool = False,
               max_speech_encoders: int = 2, **kw: Any) -> SonarAdapter:
    """Factory behind the registry: a folder of the released checkpoints (``source``) or random
    weights (``random=True``: the tiny test model, or with ``real_size=True`` the released
    architecture). ``langs`` restricts the speech encoders (FLORES-200 or ISO codes; for the random
    model, default eng/deu/swh). Float32 unless ``dtype`` says otherwise (CUDA only)."""
    if kw:
        raise TypeError(f"load_sonar got unexpected arguments: {', '.join(sorted(kw))}")
    if random == (source is not None):
        raise ValueError("give exactly one of source=<folder of SONAR checkpoints> or random=True")
    if isinstance(langs, str):
        langs = [x for x in langs.split(",") if x]
    device = pick_device(device)
    resolved = pick_dtype(dtype, device)
    if random:
        tokenizer = NllbTokenizer.tiny()
        config = real_size_random_config() if real_size else tiny_random_config(tokenizer.vocab_size)
        if real_size:
            config = replace(config, text=replace(config.text, vocab_size=tokenizer.vocab_size))
        isos = list(dict.fromkeys(speech_code(x) for x in (langs or TINY_SPEECH_LANGUAGES)))
        check_fits(f"random SONAR ({'real size' if real_size else 'tiny'})",
                   estimate_parameters(config, isos), resolved, device)
        with quiet_transformers():
            text_encoder = _init_random(build_text_encoder(config.text), seed)
        sources = {iso: _SpeechSource(iso, config.speech_for(iso),
                                      seed=zlib.crc32(f"sonar:{seed}:{iso}".encode()))
                   for iso in isos}
        provenance = {"weights": f"random (seed {seed}) for tests/demos only",
                      "random_config": "real size" if real_size else "tiny"}
        return SonarAdapter(name=name, device=device, dtype=resolved, text_encoder=text_encoder,
                            text_cfg=config.text, tokenizer=tokenizer, speech_sources=sources,
                            provenance=provenance, max_speech_encoders=max(max_speech_encoders,
                                                                           len(isos)))
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{source!r} is not a folder; SONAR loads from a folder holding "
                                f"{TEXT_CHECKPOINT}, {TOKENIZER_FILE} and spenc.*.pt files")
    text_encoder, text_cfg, tokenizer, sources, provenance = _load_folder(
        folder, langs, device, resolved, kw)
    return SonarAdapter(name=name, device=device, dtype=resolved, text_encoder=text_encoder,
                        text_cfg=text_cfg, tokenizer=tokenizer, speech_sources=sources,
                        provenance=provenance, max_speech_encoders=max_speech_encoders)


__all__ = [
    "AttentionPooler", "CheckpointError", "NllbTokenizer", "SonarAdapter", "SonarConfig",
    "SpeechEncoder", "SpeechEncoderConfig", "TextEncoderConfig", "build_text_encoder",
    "convert_speech_checkpoint", "convert_text_checkpoint", "load_sonar", "official_state_dict",
    "read_checkpoint", "real_size_random_config", "speech_name_map", "text_name_map",
    "tiny_random_config",
]
