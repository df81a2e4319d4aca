"""``load_sonar``: a SONAR adapter from a folder of the released checkpoints, or with random
weights (the tiny test model or the released architecture)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from core.models.cache import sha256_file
from core.models.hub import load_target
from core.models.common import (
    check_fits, count_parameters, meta_parameter_count, quiet_transformers,
)
from core.models.sonar.adapter import SonarAdapter, SpeechSource
from core.models.sonar.checkpoint import (
    SPEECH_CHECKPOINT,
    TEXT_CHECKPOINT,
    TOKENIZER_FILE,
    CheckpointError,
    convert_text_checkpoint,
    read_checkpoint,
    speech_code,
    speech_config_from_state,
    text_config_from_state,
    text_parameter_count,
)
from core.models.sonar.config import (
    TINY_SPEECH_LANGUAGES,
    SonarConfig,
    real_size_random_config,
    tiny_random_config,
)
from core.models.sonar.modules import SpeechEncoder, build_text_encoder, init_random
from core.models.sonar.tokenizer import NllbTokenizer
from core.models.torch_files import TRUST_ENV, trusted_by_environment


def _speech_sources_from_folder(folder: Path, langs: Sequence[str] | None, base: SonarConfig,
                                trust: bool) -> dict[str, SpeechSource]:
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
        state = read_checkpoint(path, trust=trust)  # memory-mapped: only the shapes are read here
        sources[iso] = SpeechSource(iso, speech_config_from_state(state, base.speech_for(iso)), path,
                                    trusted=trust)
        del state
    return sources


def _load_folder(folder: Path, langs, device: str, dtype: torch.dtype, trust: bool):
    base = real_size_random_config()
    text_path = folder / TEXT_CHECKPOINT
    if not text_path.exists():
        candidates = sorted(p for p in folder.glob("*.pt")
                            if "text" in p.name and "encoder" in p.name)
        text_path = candidates[0] if candidates else None
    provenance: dict[str, Any] = {
        "weights": str(folder),
        "checkpoint_reading": (f"trusted: full unpickling (trust_checkpoint / {TRUST_ENV})"
                               if trust else "weights_only=True plus the allowlisted objects")}
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
        state = read_checkpoint(text_path, trust=trust)
        text_cfg = text_config_from_state(state, base.text)
        n_params = text_parameter_count(state, text_cfg)
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
    sources = _speech_sources_from_folder(folder, langs, base, trust)
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
               max_speech_encoders: int = 2, trust_checkpoint: bool = False,
               **kw: Any) -> SonarAdapter:
    """Factory behind the registry: a folder of the released checkpoints (``source``) or random
    weights (``random=True``: the tiny test model, or with ``real_size=True`` the released
    architecture). ``langs`` restricts the speech encoders (FLORES-200 or ISO codes; for the random
    model, default eng/deu/swh). Float32 unless ``dtype`` says otherwise (CUDA only).

    Checkpoints are read with ``weights_only=True`` plus a short allowlist
    (``core.models.torch_files``); ``trust_checkpoint=True`` (or the environment variable
    ``CROSSMODAL_LENS_TRUST_CHECKPOINTS=1``, which reaches ``precompute build``) reads them as
    full pickles instead, which can run arbitrary code: only for files whose source you trust."""
    if kw:
        raise TypeError(f"load_sonar got unexpected arguments: {', '.join(sorted(kw))}")
    if isinstance(langs, str):
        langs = [x for x in langs.split(",") if x]
    device, resolved = load_target(source, random, device, dtype, "folder of SONAR checkpoints",
                                   default_cuda=torch.float32)
    if random:
        tokenizer = NllbTokenizer.tiny()
        config = real_size_random_config() if real_size else tiny_random_config(tokenizer.vocab_size)
        if real_size:
            config = replace(config, text=replace(config.text, vocab_size=tokenizer.vocab_size))
        isos = list(dict.fromkeys(speech_code(x) for x in (langs or TINY_SPEECH_LANGUAGES)))
        check_fits(f"random SONAR ({'real size' if real_size else 'tiny'})",
                   estimate_parameters(config, isos), resolved, device)
        with quiet_transformers():
            text_encoder = init_random(build_text_encoder(config.text), seed)
        sources = {iso: SpeechSource(iso, config.speech_for(iso),
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
        folder, langs, device, resolved, trust_checkpoint or trusted_by_environment())
    return SonarAdapter(name=name, device=device, dtype=resolved, text_encoder=text_encoder,
                        text_cfg=text_cfg, tokenizer=tokenizer, speech_sources=sources,
                        provenance=provenance, max_speech_encoders=max_speech_encoders)
