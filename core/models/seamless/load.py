"""Loading a SeamlessM4T adapter: an HF id or local directory, or random weights (tiny, or the v2
large architecture for benchmarks)."""

from __future__ import annotations

from typing import Any

import torch

from core.models.common import check_fits, quiet_transformers
from core.models.hub import fit_and_place, load_target, read_config
from core.models.seamless.adapter import SeamlessAdapter
from core.models.seamless.config import (
    build_feature_extractor,
    estimate_parameters,
    model_class,
    real_size_random_config,
    tiny_random_config,
)
from core.models.seamless.tokenizer import SEAMLESS_TEXT_LANGUAGES, build_tiny_tokenizer


def _load_pretrained(source: str, device: str, dtype: torch.dtype):
    config = read_config(source, "Pass a local directory holding config.json, the safetensors, "
                                 "the tokenizer and preprocessor_config.json, or use "
                                 "'seamless-m4t-v2-tiny-random'")
    cls = model_class(config.model_type)
    n_parameters = estimate_parameters(config)
    kwargs = fit_and_place(source, n_parameters, dtype, device, spread=False)
    with quiet_transformers():
        model = cls.from_pretrained(source, **kwargs)
    try:
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(source)
        tokenizer, features = processor.tokenizer, processor.feature_extractor
    except (OSError, ValueError, AttributeError):
        from transformers import AutoTokenizer, SeamlessM4TFeatureExtractor

        tokenizer = AutoTokenizer.from_pretrained(source)
        features = SeamlessM4TFeatureExtractor.from_pretrained(source)
    return model, tokenizer, features, {"weights": f"from_pretrained({source!r})"}, n_parameters


def _build_random(model_type: str, seed: int, device: str, dtype: torch.dtype, real_size: bool):
    tokenizer = build_tiny_tokenizer()
    if real_size:
        config = real_size_random_config()
        if model_type != config.model_type:
            raise ValueError("real_size=True builds the v2 large architecture only")
    else:
        config = tiny_random_config(model_type, vocab_size=len(tokenizer))
    n_parameters = estimate_parameters(config)
    check_fits(f"random {model_type}", n_parameters, dtype, device)
    cls = model_class(model_type)
    with torch.random.fork_rng(devices=[]), quiet_transformers():
        torch.manual_seed(seed)
        model = cls(config)
    lang_ids = {c: int(tokenizer.convert_tokens_to_ids(f"__{c}__")) for c in SEAMLESS_TEXT_LANGUAGES}
    model.generation_config.text_decoder_lang_to_code_id = lang_ids
    model.generation_config.decoder_start_token_id = config.decoder_start_token_id
    source = {"weights": f"random (seed {seed}) for tests/demos only",
              "random_config": "real size (v2 large)" if real_size else "tiny",
              "tokenizer": "character-level, built offline"}
    return model, tokenizer, build_feature_extractor(), source, n_parameters


def load_seamless(*, name: str, device: str | None = None, source: str | None = None,
                  random: bool = False, dtype: str | torch.dtype | None = None, seed: int = 0,
                  model_type: str = "seamless_m4t_v2", real_size: bool = False,
                  **kw: Any) -> SeamlessAdapter:
    """Factory behind the registry: an HF id / local directory (``source``), or random weights.

    ``random=True`` builds a tiny random model (``model_type`` v2 or ``seamless_m4t`` for v1), or
    with ``real_size=True`` the v2 large architecture. Real weights load in bfloat16 on CUDA (with
    ``device_map``) and float32 on CPU unless ``dtype`` says otherwise; the memory is checked first.
    """
    if kw:
        raise TypeError(f"load_seamless got unexpected arguments: {', '.join(sorted(kw))}")
    # tiny random weights stay float32 on CUDA; released ones default to bfloat16
    device, resolved = load_target(source, random, device, dtype, "HF id or directory",
                                   default_cuda=torch.float32 if random else torch.bfloat16)
    if random:
        model, tokenizer, features, info, n_parameters = _build_random(
            model_type, seed, device, resolved, real_size)
    else:
        model, tokenizer, features, info, n_parameters = _load_pretrained(str(source), device,
                                                                          resolved)
    return SeamlessAdapter(model, tokenizer, features, name=name, device=device, dtype=resolved,
                           source=info, n_parameters=n_parameters)
