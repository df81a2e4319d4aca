"""Loading a Whisper adapter: the packaged CTranslate2 weights of Whisper base (converted once by
``core.models.ct2_whisper``), an HF id or local directory, or a tiny random model for tests."""

from __future__ import annotations

from pathlib import Path

import torch

from core.device import pick_device
from core.models.common import check_fits, meta_parameter_count, pick_dtype
from core.models.whisper import WhisperAdapter

#: Tiny random Whisper for tests and demos only (its states mean nothing): same vocabulary and audio
#: front end as Whisper base, so the packaged tokenizer fits and no download is needed.
TINY_RANDOM_CONFIG: dict = {
    "d_model": 64,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_ffn_dim": 256,
    "decoder_ffn_dim": 256,
}


def _packaged_tokenizer_and_generation():
    from transformers import WhisperTokenizerFast

    from core.models.ct2_whisper import (
        find_packaged_whisper_base,
        load_ct2_config,
        whisper_generation_config,
    )

    packaged = find_packaged_whisper_base()
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(packaged.tokenizer_json))
    generation = whisper_generation_config(tokenizer, load_ct2_config(packaged.ct2_config_json))
    return tokenizer, generation, packaged


def _load_packaged(cache_dir: Path | None, progress: bool):
    from transformers import (
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizerFast,
    )

    from core.models.cache import read_provenance
    from core.models.ct2_whisper import ensure_whisper_base_converted

    directory = ensure_whisper_base_converted(cache_dir, progress=progress)
    model = WhisperForConditionalGeneration.from_pretrained(
        directory, dtype=torch.float32, local_files_only=True, use_safetensors=True
    )
    tokenizer = WhisperTokenizerFast.from_pretrained(directory, local_files_only=True)
    features = WhisperFeatureExtractor.from_pretrained(directory, local_files_only=True)
    prov = read_provenance(directory)
    source = {
        "weights": "packaged OpenAI Whisper base (MIT), CTranslate2 -> HF conversion",
        "cache_dir": str(directory),
        "source_packages": prov.get("source_packages", {}),
        "parts_sha256": [part.get("sha256") for part in prov.get("parts", [])],
        "cache_dtype": prov.get("dtype"),
    }
    return model, tokenizer, features, source


def _load_pretrained(source: str, dtype: torch.dtype, device: str):
    from transformers import (
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizerFast,
    )

    try:
        from transformers import WhisperConfig

        config = WhisperConfig.from_pretrained(source)
        check_fits(source, meta_parameter_count(WhisperForConditionalGeneration, config),
                   dtype, device)
        model = WhisperForConditionalGeneration.from_pretrained(source, dtype=torch.float32,
                                                                use_safetensors=True)
        tokenizer = WhisperTokenizerFast.from_pretrained(source)
        features = WhisperFeatureExtractor.from_pretrained(source)
    except OSError as error:
        raise OSError(
            f"could not load Whisper model {source!r} from a local directory or the Hugging Face hub "
            f"({' '.join(str(error).split())}). Offline? Use the bundled default 'whisper-base', or pass a local directory "
            "holding config.json, model.safetensors, tokenizer and preprocessor files"
        ) from error
    return model, tokenizer, features, {"weights": f"from_pretrained({source!r})"}


def _build_random(random_config: dict, seed: int):
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    tokenizer, generation, _ = _packaged_tokenizer_and_generation()
    settings = {
        "vocab_size": len(tokenizer),
        "pad_token_id": generation.pad_token_id,
        "bos_token_id": generation.bos_token_id,
        "eos_token_id": generation.eos_token_id,
        "decoder_start_token_id": generation.decoder_start_token_id,
        **random_config,
    }
    config = WhisperConfig(**settings)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = WhisperForConditionalGeneration(config)
    model.generation_config = generation
    features = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    source = {"weights": f"random (seed {seed}) for tests/demos only", "random_config": random_config}
    return model, tokenizer, features, source


def load_whisper(*, name: str, device: str | None = None, source: str | None = None,
                 packaged: bool = False, random: bool = False, random_config: dict | None = None,
                 seed: int = 0, dtype: str | torch.dtype | None = None,
                 final_layer_norm: bool = False, cache_dir: Path | None = None,
                 progress: bool = True) -> WhisperAdapter:
    """Factory behind the registry: packaged CT2 weights, an HF id / local directory, or random
    (``random=True`` uses ``TINY_RANDOM_CONFIG`` unless ``random_config`` is given)."""
    if random and random_config is None:
        random_config = TINY_RANDOM_CONFIG
    chosen = sum([packaged, source is not None, random_config is not None])
    if chosen != 1:
        raise ValueError("give exactly one of packaged=True, source=<HF id or directory>, random_config")
    device = pick_device(device)
    resolved_dtype = pick_dtype(dtype, device)
    if packaged:
        model, tokenizer, features, info = _load_packaged(cache_dir, progress)
    elif random_config is not None:
        model, tokenizer, features, info = _build_random(random_config, seed)
    else:
        model, tokenizer, features, info = _load_pretrained(str(source), resolved_dtype, device)
    return WhisperAdapter(model, tokenizer, features, name=name, device=device, dtype=resolved_dtype,
                          source=info, final_layer_norm=final_layer_norm)
