"""What a released SONAR file may hold besides its weights, and what loading it is judged to cost.

Every file is written here with ``torch.save``: the weights of the tiny random model under the
official names (sonar_fixtures), next to plain metadata, the bookkeeping objects fairseq
checkpoints carry, an object whose unpickling runs code of this module (``_record``, so a test sees
whether it ran), or a large optimizer state and tensors the conversion drops.
"""
# ruff: noqa: F811 - tiny is sonar_fixtures' fixture, imported to be requested here

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from core.models import common, load_model
from core.models import sonar as S
from core.models.base import ModelTooLargeError
from core.models.torch_files import TRUST_ENV, load_checkpoint_file
from sonar_fixtures import fairseq1_speech_names, official_speech, tiny  # noqa: F401 - tiny: a fixture

pytestmark = pytest.mark.usefixtures("one_thread")

#: what unpickling ``_RunsCodeWhenLoaded`` did
RAN: list[str] = []


def _record(message: str) -> str:
    RAN.append(message)
    return message


class _RunsCodeWhenLoaded:
    """Unpickled, it calls ``_record``: any function a pickle names would be called the same way."""

    def __reduce__(self):
        return (_record, ("code from the file ran",))


def _floats(tensors) -> int:
    return sum(t.numel() for t in tensors if t.is_floating_point())


def _text_state(tiny) -> dict:
    return S.official_state_dict(tiny.text_encoder, S.text_name_map(tiny.text_cfg))


# ------------------------------------------------------------------------------------------------
# what a file may hold


def test_plain_containers_and_metadata_beside_the_weights_load(tiny, tmp_path):
    state, _ = official_speech(tiny, "deu")
    path = tmp_path / "spenc.v3ap.deu.pt"
    # fairseq2's model file ({"model", "model_key", "fs2"}) and fairseq's plain metadata
    torch.save({"model": state, "model_key": "model", "fs2": True,
                "cfg": {"lr": 1e-3, "betas": (0.9, 0.98), "langs": ["deu"], "seed": None},
                "optimizer_history": [{"num_updates": 3, "lr_scheduler_state": {"best": 1.5}}]},
               path)
    assert S.read_checkpoint(path).keys() == state.keys()


def test_the_allowed_bookkeeping_objects_load_without_the_opt_in(tiny, tmp_path):
    """fairseq's ``args`` (argparse.Namespace), numbers saved as numpy scalars, and the
    ``embed_tokens`` module SONAR's fairseq-layout text loader reads."""
    text = _text_state(tiny)
    path = tmp_path / S.TEXT_CHECKPOINT
    embed = torch.nn.Embedding(*text["encoder_frontend.embed.weight"].shape)
    torch.save({"model": text, "args": argparse.Namespace(arch="transformer", lr=[0.001]),
                "extra_state": {"best": np.float64(2.5), "epoch": np.int64(3),
                                "fp16": np.bool_(False), "scale": np.float32(0.5)},
                "embed_tokens": embed}, path)
    assert S.read_checkpoint(path).keys() == text.keys()
    held = load_checkpoint_file(path)
    assert held["args"] == argparse.Namespace(arch="transformer", lr=[0.001])
    assert held["extra_state"] == {"best": 2.5, "epoch": 3, "fp16": False, "scale": 0.5}
    assert isinstance(held["embed_tokens"], torch.nn.Embedding)
    torch.testing.assert_close(held["embed_tokens"].weight, embed.weight, rtol=0, atol=0)


def test_an_unknown_object_is_refused_by_name_and_loads_only_with_the_opt_in(tmp_path):
    path = tmp_path / "spenc.v3ap.deu.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "args": argparse.Namespace(lr=1.0),
                "hook": _RunsCodeWhenLoaded()}, path)
    RAN.clear()
    with pytest.raises(S.CheckpointError) as refused:
        S.read_checkpoint(path)
    message = str(refused.value)
    assert f"{__name__}._record" in message  # the global the file names
    assert "argparse" not in message  # allowed objects are not blamed
    assert "trust_checkpoint=True" in message and f"{TRUST_ENV}=1" in message
    assert "arbitrary code" in message
    assert RAN == []  # refused before anything ran
    assert list(S.read_checkpoint(path, trust=True)) == ["w"]
    assert RAN == ["code from the file ran"]  # which is what trusting a file means


def test_numpy_arrays_and_string_scalars_stay_refused(tmp_path):
    """Only numeric numpy scalars are allowed, not arrays (``_reconstruct``) or other dtypes."""
    for i, value in enumerate((np.zeros(3), np.str_("x"))):
        path = tmp_path / f"{i}.pt"
        torch.save({"model": {"w": torch.zeros(2)}, "x": value}, path)
        with pytest.raises(S.CheckpointError, match=TRUST_ENV):
            S.read_checkpoint(path)


def test_the_opt_in_reaches_the_folder_loader_the_lazy_speech_load_and_provenance(
        tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(S.NllbTokenizer, "from_sentencepiece", classmethod(lambda cls, p: cls.tiny()))
    monkeypatch.delenv(TRUST_ENV, raising=False)
    (tmp_path / S.TOKENIZER_FILE).write_bytes(b"stand-in")
    torch.save({"model": _text_state(tiny), "hook": _RunsCodeWhenLoaded()},
               tmp_path / S.TEXT_CHECKPOINT)
    state, _ = official_speech(tiny, "deu")
    torch.save({"model": state, "hook": _RunsCodeWhenLoaded()}, tmp_path / "spenc.v3ap.deu.pt")
    with pytest.raises(S.CheckpointError, match=f"{TRUST_ENV}=1"):
        load_model(str(tmp_path), device="cpu")
    adapter = load_model(str(tmp_path), device="cpu", trust_checkpoint=True)
    assert adapter.info()["checkpoint_reading"].startswith("trusted")
    adapter.speech_encoder("deu")  # read on first use, under the same opt-in
    # the environment variable is the route for `precompute build`
    monkeypatch.setenv(TRUST_ENV, "1")
    adapter = load_model(str(tmp_path), device="cpu")
    adapter.speech_encoder("deu")
    assert adapter.info()["checkpoint_reading"].startswith("trusted")


def test_without_the_opt_in_the_provenance_says_weights_only(tiny, tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    state, _ = official_speech(tiny, "deu")
    torch.save({"model": state}, tmp_path / "spenc.v3ap.deu.pt")
    reading = load_model(str(tmp_path), device="cpu").info()["checkpoint_reading"]
    assert reading.startswith("weights_only=True")


# ------------------------------------------------------------------------------------------------
# the memory check


def _speech_file_with_optimizer(tiny, path) -> int:
    """A fairseq-layout speech file like the released ones: the weights, tensors the conversion
    drops (``pos_conv``, here twice the model's size) and an Adam state at the top level. Returns
    the number of floating values the model takes."""
    state, module = official_speech(tiny, "deu")
    weights = _floats(module.state_dict().values())
    fs1 = fairseq1_speech_names(state)
    fs1["encoder.w2v_model.encoder.pos_conv.0.weight_v"] = torch.zeros(2 * weights)
    fs1["encoder.w2v_model.encoder.pos_conv.0.weight_g"] = torch.zeros(1)
    fs1["encoder.w2v_model.encoder.pos_conv.0.bias"] = torch.zeros(1)
    adam = {"state": {i: {"step": 10, "exp_avg": torch.zeros_like(v), "exp_avg_sq": torch.zeros_like(v)}
                      for i, v in enumerate(state.values()) if v.is_floating_point()},
            "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.98), "params": list(range(len(state)))}]}
    torch.save({"model": fs1, "last_optimizer_state": adam,
                "optimizer_history": [{"optimizer_name": "Adam", "num_updates": 10}]}, path)
    return weights


def test_the_parameter_counts_take_only_the_mapped_tensors(tiny, tmp_path):
    path = tmp_path / "spenc.v3ap.deu.pt"
    weights = _speech_file_with_optimizer(tiny, path)
    loaded = S.read_checkpoint(path)
    assert not any("exp_avg" in k for k in loaded)  # the optimizer state is left in the file
    cfg = S.speech_config_from_state(loaded, tiny.speech_encoder("deu").cfg)
    assert S.speech_parameter_count(loaded, cfg) == weights
    assert _floats(loaded.values()) > 3 * weights  # what counting the whole state gave
    # text, fairseq layout: the position table's _float_tensor and version keys are dropped
    fs1_text = {k.removeprefix("encoder.").replace("self_attn.output_proj", "self_attn.out_proj")
                .replace("ffn.inner_proj", "fc1").replace("ffn.output_proj", "fc2")
                .replace("ffn_layer_norm", "final_layer_norm"): v for k, v in _text_state(tiny).items()}
    fs1_text["embed_tokens.weight"] = fs1_text.pop("encoder_frontend.embed.weight")
    n_text = _floats(fs1_text.values())
    fs1_text["embed_positions._float_tensor"] = torch.zeros(5 * n_text)
    fs1_text["version"] = torch.tensor([3.0])
    assert S.text_parameter_count(fs1_text, tiny.text_cfg) == n_text


def test_the_memory_check_judges_a_speech_file_by_the_model_it_holds(tiny, tmp_path, monkeypatch):
    weights = _speech_file_with_optimizer(tiny, tmp_path / "spenc.v3ap.deu.pt")
    need = common.required_memory_bytes(weights, torch.float32)
    monkeypatch.setattr(common, "available_memory_bytes", lambda device: need)
    load_model(str(tmp_path), device="cpu").speech_encoder("deu")  # exactly enough: loads
    monkeypatch.setattr(common, "available_memory_bytes", lambda device: need - 1)
    with pytest.raises(ModelTooLargeError, match="spenc.v3ap.deu.pt"):
        load_model(str(tmp_path), device="cpu").speech_encoder("deu")
