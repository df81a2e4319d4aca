"""SALMONN's tokenizers and audio preprocessing: Vicuna's tokenizer as the loader reads it, and
the offline stand-ins of the tiny random model.

Real checkpoints bring their own tokenizer (Vicuna's, ``load_llm_tokenizer``) and feature
extractor (Whisper's); the tiny random model gets the same classes over a small vocabulary, so
every code path is the real one.
"""

from __future__ import annotations

from core.models.common import quiet_transformers
from core.models.speech_llm import SAMPLING_RATE


def load_llm_tokenizer(source: str):
    """Vicuna's tokenizer from a folder or hub id, as transformers 5 reads it (a folder with only
    ``tokenizer.model`` is converted with the ``sentencepiece`` package). Its ids for SALMONN's
    prompt pieces are the official slow tokenizer's (``core.models.salmonn.prompt``)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source)


def build_offline_tokenizer():
    """The real ``LlamaTokenizer`` class (Metaspace, byte fallback) over a small vocabulary built
    with no download: <unk> <s> </s>, the 256 byte tokens, the Metaspace mark and printable ASCII."""
    from transformers import LlamaTokenizer

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for char in "\u2581" + "".join(chr(c) for c in range(33, 127)):
        vocab.setdefault(char, len(vocab))
    with quiet_transformers():
        return LlamaTokenizer(vocab=vocab, merges=[])


def build_feature_extractor(num_mel_bins: int = 80):
    """Whisper's feature extractor with the real settings (30 s windows, hop 160)."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=num_mel_bins, sampling_rate=SAMPLING_RATE,
                                   hop_length=160, chunk_length=30)
