"""SONAR's architecture numbers: the text and speech encoder configurations of the release (from
the official configs, see docs/models/sonar.md), the tiny test model's, and the audio front end's."""

from __future__ import annotations

from dataclasses import dataclass, replace

SAMPLING_RATE = 16_000
#: Kaldi fbank: 25 ms window, 10 ms hop; fairseq2's w2v-BERT frontend stacks 2 frames
FBANK_WINDOW_SAMPLES = 400
FBANK_HOP_SAMPLES = 160

#: languages of the tiny random model (tests): English has the shallower pooler, as in the release
TINY_SPEECH_LANGUAGES = ("eng", "deu", "swh")


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
