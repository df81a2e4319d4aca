"""SALMONN's checkpoint layout: where the released files are, how their names map onto this port,
and loading them (weights only: a checkpoint never runs code).

A released SALMONN is several files: ``salmonn*.pth`` (the trained parts: Q-Former, projection,
LoRA, the two norms, under the official names), the BEATs checkpoint, and the Whisper and Vicuna
folders (or hub ids). ``resolve_files`` finds them, ``convert_official_state`` /
``official_name`` translate the names, ``load_pretrained`` builds the model from them after
checking that it fits (see docs/models/salmonn.md for the folder layout).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from core.models.common import quiet_transformers
from core.models.torch_files import UntrustedCheckpointError, load_checkpoint_file
from core.models.hub import fit_and_place
from core.models.salmonn.beats import BEATs, BEATsConfig, load_beats_state, state_problems
from core.models.salmonn.config import SalmonnConfig, estimate_parameters, qformer_config
from core.models.salmonn.modules import SalmonnModel
from core.models.salmonn.tokenizer import load_llm_tokenizer

WHISPER_HUB_ID = "openai/whisper-large-v2"
#: README: SALMONN-13B v1 uses Vicuna 13B v1.1. The 7B release's Vicuna version is not stated in
#: the repository; 7B checkpoints need ``llm=`` (or a ``vicuna*`` folder next to the checkpoint).
VICUNA_13B_HUB_ID = "lmsys/vicuna-13b-v1.1"

#: checkpoint buffers the official model saves but this port recomputes (never weights)
IGNORED_CHECKPOINT_SUFFIXES = ("embeddings.position_ids", "rotary_emb.inv_freq")

_OFFICIAL_QFORMER = "speech_Qformer.bert."
_OFFICIAL_LLM = "llama_model."


def convert_official_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor],
                                                                     list[str], list[str]]:
    """(tensors under this port's names, ignored buffer names, names that map to nothing).

    ``speech_Qformer.bert.embeddings.LayerNorm`` -> ``qformer.layernorm``; in each layer
    ``attention.self`` / ``crossattention.self`` -> ``attention.attention`` /
    ``crossattention.attention`` (the rest of the Q-Former names are the same);
    ``speech_query_tokens`` -> ``query_tokens``; ``speech_llama_proj`` -> ``proj``;
    ``llama_model.base_model.model.…lora_[AB].default.weight`` -> ``llm.base_model.model.…``;
    ``ln_speech`` and ``ln_audio`` keep their names.
    """
    converted, ignored, unknown = {}, [], []
    for name, tensor in state.items():
        if name.endswith(IGNORED_CHECKPOINT_SUFFIXES):
            ignored.append(name)
            continue
        new = None
        if name == "speech_query_tokens":
            new = "query_tokens"
        elif name.startswith(("ln_speech.", "ln_audio.")):
            new = name
        elif name.startswith("speech_llama_proj."):
            new = "proj." + name.removeprefix("speech_llama_proj.")
        elif name.startswith(_OFFICIAL_QFORMER + "embeddings.LayerNorm."):
            new = "qformer.layernorm." + name.rsplit(".", 1)[1]
        elif name.startswith(_OFFICIAL_QFORMER + "encoder.layer."):
            rest = name.removeprefix(_OFFICIAL_QFORMER)
            rest = rest.replace(".attention.self.", ".attention.attention.")
            rest = rest.replace(".crossattention.self.", ".crossattention.attention.")
            new = "qformer." + rest
        elif name.startswith(_OFFICIAL_LLM) and ".lora_" in name:
            new = "llm." + name.removeprefix(_OFFICIAL_LLM)
        if new is None:
            unknown.append(name)
        else:
            converted[new] = tensor
    return converted, ignored, unknown


def official_name(name: str) -> str:
    """The official checkpoint name of one of this port's trainable parameters (the inverse of
    ``convert_official_state``)."""
    if name == "query_tokens":
        return "speech_query_tokens"
    if name.startswith("proj."):
        return "speech_llama_proj." + name.removeprefix("proj.")
    if name.startswith("qformer.layernorm."):
        return _OFFICIAL_QFORMER + "embeddings.LayerNorm." + name.rsplit(".", 1)[1]
    if name.startswith("qformer."):
        rest = name.removeprefix("qformer.")
        rest = rest.replace(".crossattention.attention.", ".crossattention.self.")
        rest = rest.replace(".attention.attention.", ".attention.self.")
        return _OFFICIAL_QFORMER + rest
    if name.startswith("llm."):
        return _OFFICIAL_LLM + name.removeprefix("llm.")
    return name


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model: the message lists every problem."""


def load_official_state(model: SalmonnModel, state: dict[str, torch.Tensor], what: str) -> dict:
    """Set every trainable SALMONN parameter from an official checkpoint state dict; refuse (listing
    missing, unexpected and wrong-shape names together) unless each is set exactly once with the
    right shape."""
    converted, ignored, unknown = convert_official_state(state)
    own = dict(model.named_parameters())
    expected = {n: own[n] for n in model.trainable_state_names()}
    # problems are listed under the official names (what the user's file holds)
    problems = state_problems({official_name(n): t for n, t in expected.items()},
                               {**{official_name(n): t for n, t in converted.items()},
                                **{n: state[n] for n in unknown}})
    if problems:
        raise CheckpointError(f"{what} does not match the SALMONN model built from the Whisper, "
                              f"BEATs and LLM configurations:\n{problems}")
    with torch.no_grad():
        for name, tensor in converted.items():
            expected[name].copy_(tensor.to(dtype=expected[name].dtype))
    return {"set": len(converted), "ignored_buffers": sorted(ignored)}


def load_tensor_file(path: str | Path, what: str, *, trust: bool = False) -> dict[str, Any]:
    """The file through ``core.models.torch_files`` (memory-mapped, ``weights_only`` plus its short
    allowlist, the same reader SONAR uses): tensors, dicts, lists and plain values only; any other
    pickled object is refused, naming the objects, unless ``trust`` (a full unpickle, which can run
    code: only for files whose source the user trusts)."""
    try:
        return load_checkpoint_file(path, trust=trust)
    except UntrustedCheckpointError as error:
        raise CheckpointError(f"refusing {what} {str(path)!r}: {error}") from error


def _state_of(obj: Any, what: str, key: str = "model") -> dict[str, torch.Tensor]:
    state = obj.get(key, obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not state or \
            not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{what} holds no state dict of tensors (expected a dict with "
                              f"{key!r} -> {{name: tensor}})")
    return state


def _find_one(folder: Path, patterns: Sequence[str], what: str, *, dirs: bool = False) -> Path | None:
    found = sorted({p for pattern in patterns for p in folder.glob(pattern)
                    if (p.is_dir() if dirs else p.is_file())})
    if len(found) > 1:
        raise FileNotFoundError(f"{folder} has several {what} ({', '.join(p.name for p in found)}); "
                                "keep one or pass it explicitly")
    return found[0] if found else None


def resolve_files(source: str | Path, *, whisper: str | None = None, llm: str | None = None,
                  beats: str | None = None) -> dict[str, str]:
    """Where each part comes from (see docs/models/salmonn.md for the folder layout)."""
    path = Path(source).expanduser()
    if path.is_file():
        checkpoint, folder = path, path.parent
    elif path.is_dir():
        folder = path
        checkpoint = _find_one(path, ("salmonn*.pth", "salmonn*.pt"), "SALMONN checkpoints")
        if checkpoint is None:
            raise FileNotFoundError(f"{path} has no salmonn*.pth / salmonn*.pt (the SALMONN "
                                    "checkpoint, e.g. salmonn_v1.pth)")
    else:
        raise FileNotFoundError(f"SALMONN source {str(source)!r} is neither a checkpoint file nor "
                                "a folder")
    beats_path = Path(beats) if beats else _find_one(
        folder, ("BEATs*.pt", "beats*.pt", "BEATs*.pth", "beats*.pth"), "BEATs checkpoints")
    if beats_path is None:
        raise FileNotFoundError(f"no BEATs checkpoint: put BEATs_iter3_plus_AS2M_finetuned_on_AS2M_"
                                f"cpt2.pt in {folder} or pass beats=<path>")
    whisper_src = whisper or _find_one(folder, ("whisper*",), "Whisper folders", dirs=True)
    llm_src = llm or _find_one(folder, ("vicuna*", "llama*", "llm"), "LLM folders", dirs=True)
    return {"checkpoint": str(checkpoint), "beats": str(beats_path),
            "whisper": str(whisper_src) if whisper_src else WHISPER_HUB_ID,
            "llm": str(llm_src) if llm_src else ""}


def load_pretrained(source: str, device: str, dtype: torch.dtype, *, whisper: str | None,
                    llm: str | None, beats: str | None, lora_alpha: int, trust: bool = False):
    """(model, tokenizer, feature extractor, provenance) of a released SALMONN: the configuration
    is read from the checkpoint's shapes and the Whisper and LLM configs, refused before any
    weight is read when it cannot fit ``device``, then every part is loaded and checked."""
    from transformers import (
        AutoConfig,
        LlamaForCausalLM,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperModel,
    )

    files = resolve_files(source, whisper=whisper, llm=llm, beats=beats)
    state = _state_of(load_tensor_file(files["checkpoint"], "SALMONN checkpoint", trust=trust),
                      "SALMONN checkpoint")
    beats_obj = load_tensor_file(files["beats"], "BEATs checkpoint", trust=trust)
    if not isinstance(beats_obj, dict) or not isinstance(beats_obj.get("cfg"), dict):
        raise CheckpointError(f"BEATs checkpoint {files['beats']!r} has no 'cfg' dict (the official "
                              "files hold {'cfg': ..., 'model': ...})")
    beats_cfg = BEATsConfig.from_dict(beats_obj["cfg"])
    beats_state = _state_of(beats_obj, "BEATs checkpoint")
    for key in ("speech_llama_proj.weight", "speech_query_tokens"):
        if key not in state:
            raise CheckpointError(f"{files['checkpoint']!r} has no {key!r}: not a SALMONN checkpoint")
    proj = state["speech_llama_proj.weight"]
    llm_width, q_width = int(proj.shape[0]), int(proj.shape[1])
    if not files["llm"]:
        if llm_width != 5120:
            raise FileNotFoundError(
                f"the checkpoint projects into a {llm_width}-wide LLM; give its Vicuna with "
                "llm=<folder or hub id> or a vicuna* folder next to the checkpoint (only the 13B "
                f"release's Vicuna is known: {VICUNA_13B_HUB_ID})")
        files["llm"] = VICUNA_13B_HUB_ID
    try:
        whisper_config = WhisperConfig.from_pretrained(files["whisper"])
        llm_config = AutoConfig.from_pretrained(files["llm"])
    except OSError as error:
        raise OSError(f"could not read the Whisper ({files['whisper']!r}) or LLM ({files['llm']!r}) "
                      f"config ({error}); offline? download them where the hub is reachable and "
                      "put them next to the checkpoint (docs/models/salmonn.md)") from error
    if int(llm_config.hidden_size) != llm_width:
        raise CheckpointError(f"the checkpoint projects into a {llm_width}-wide LLM, but "
                              f"{files['llm']!r} is {llm_config.hidden_size} wide")
    layers = {int(k.split(".")[4]) for k in state
              if k.startswith(_OFFICIAL_QFORMER + "encoder.layer.")}
    inter = state.get(f"{_OFFICIAL_QFORMER}encoder.layer.0.intermediate_query.dense.weight")
    lora_a = [v for k, v in state.items() if ".lora_A." in k]
    if not layers or inter is None or not lora_a:
        raise CheckpointError(f"{files['checkpoint']!r} lacks the Q-Former layers or the LoRA "
                              "weights of a SALMONN checkpoint")
    targets = tuple(t for t in ("q_proj", "k_proj", "v_proj", "o_proj")
                    if any(f".{t}.lora_A." in k for k in state))
    config = SalmonnConfig(
        whisper=whisper_config, beats=beats_cfg,
        qformer=qformer_config(q_width, max(layers) + 1, int(inter.shape[0]),
                               whisper_config.d_model + beats_cfg.encoder_embed_dim),
        llm=llm_config, lora_rank=int(lora_a[0].shape[0]), lora_alpha=lora_alpha,
        lora_targets=targets, num_query_tokens=int(state["speech_query_tokens"].shape[1]))
    n_parameters = estimate_parameters(config)
    kwargs = fit_and_place(f"SALMONN ({files['checkpoint']})", n_parameters, dtype, device,
                           spread=True)
    with quiet_transformers():
        encoder = WhisperModel.from_pretrained(files["whisper"], dtype=dtype).encoder
        beats_model = BEATs(beats_cfg)
        load_beats_state(beats_model, beats_state, f"BEATs checkpoint {files['beats']!r}")
        base = LlamaForCausalLM.from_pretrained(files["llm"], **kwargs)
        model = SalmonnModel(config, whisper=encoder, beats=beats_model, llm=base)
    loaded = load_official_state(model, state, f"SALMONN checkpoint {files['checkpoint']!r}")
    tokenizer = load_llm_tokenizer(files["llm"])
    features = WhisperFeatureExtractor.from_pretrained(files["whisper"])
    info = {"weights": f"SALMONN checkpoint {files['checkpoint']}", "files": files,
            "n_parameters_estimated": n_parameters, "device_map": kwargs.get("device_map"),
            "checkpoint_tensors_set": loaded["set"], "ignored_buffers": loaded["ignored_buffers"]}
    return model, tokenizer, features, info
