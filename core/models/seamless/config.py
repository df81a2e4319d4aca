"""SeamlessM4T's architecture numbers: the audio front end, the tiny test model's configuration
and the real-size one (v2 large) for benchmarks, the model class of each ``model_type`` and the
parameter count built on the meta device."""

from __future__ import annotations

from typing import Any

from core.models.common import meta_parameter_count

SAMPLING_RATE = 16_000
#: SeamlessM4TFeatureExtractor: Kaldi fbank, 25 ms window, 10 ms hop, ``center=False`` (hard-coded
#: in its ``_extract_fbank_features``); consecutive ``stride`` frames are then stacked.
FBANK_WINDOW_SAMPLES = 400
FBANK_HOP_SAMPLES = 160

MODEL_TYPES = ("seamless_m4t_v2", "seamless_m4t")


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


def model_class(model_type: str):
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
    return meta_parameter_count(model_class(config.model_type), config)


def build_feature_extractor():
    from transformers import SeamlessM4TFeatureExtractor

    return SeamlessM4TFeatureExtractor(feature_size=80, num_mel_bins=80, sampling_rate=SAMPLING_RATE,
                                       padding_value=0.0, stride=2)

