"""Registry routing: short names, HF ids / local directories to families, clear errors.

Nothing is downloaded: ``from_pretrained`` is replaced by fakes that build the tiny random model.
"""

from __future__ import annotations

import json

import pytest

import core.models.whisper_load as whisper_module
from core.models import available_models, load_model
from core.models.registry import families
from core.models.whisper import WhisperAdapter
from core.models.whisper_load import TINY_RANDOM_CONFIG


def test_short_names_and_families_are_registered():
    assert {"whisper-base", "whisper-tiny-random"} <= set(available_models())
    assert "whisper" in families()


def test_tiny_random_short_name_loads_offline():
    adapter = load_model("whisper-tiny-random", device="cpu")
    assert isinstance(adapter, WhisperAdapter)
    assert adapter.name == "whisper-tiny-random"
    assert adapter.component("speech_encoder").dim == TINY_RANDOM_CONFIG["d_model"]


def test_whisper_base_short_name_uses_packaged_weights(monkeypatch):
    calls = []

    def fake_packaged(cache_dir, progress):
        calls.append(cache_dir)
        return whisper_module._build_random(TINY_RANDOM_CONFIG, seed=0)

    monkeypatch.setattr(whisper_module, "_load_packaged", fake_packaged)
    adapter = load_model("whisper-base", device="cpu")
    assert calls == [None] and adapter.name == "whisper-base"


@pytest.fixture
def fake_hub(monkeypatch):
    """Replace transformers' from_pretrained for Whisper with offline fakes; record what was asked."""
    import transformers

    requested: list[tuple[str, str]] = []
    model, tokenizer, features, _ = whisper_module._build_random(TINY_RANDOM_CONFIG, seed=0)

    def fake(kind, value):
        def from_pretrained(cls, source, *args, **kwargs):
            requested.append((kind, str(source)))
            return value
        return classmethod(from_pretrained)

    monkeypatch.setattr(transformers.WhisperForConditionalGeneration, "from_pretrained",
                        fake("model", model))
    monkeypatch.setattr(transformers.WhisperTokenizerFast, "from_pretrained", fake("tokenizer", tokenizer))
    monkeypatch.setattr(transformers.WhisperFeatureExtractor, "from_pretrained",
                        fake("features", features))
    monkeypatch.setattr(transformers.WhisperConfig, "from_pretrained", fake("config", model.config))
    return requested


def test_a_whisper_checkpoint_too_large_for_the_machine_is_refused_before_its_weights_load(
        fake_hub, monkeypatch):
    from core.models import common
    from core.models.base import ModelTooLargeError

    monkeypatch.setattr(common, "available_memory_bytes", lambda device: 1024)
    with pytest.raises(ModelTooLargeError, match=r"openai/whisper-small has \d+\.\d M parameters.*needs about"):
        load_model("openai/whisper-small", device="cpu")
    assert [kind for kind, _ in fake_hub] == ["config"]  # the weights were never asked for


def test_hf_id_routes_to_whisper_family(fake_hub):
    adapter = load_model("openai/whisper-small", device="cpu")
    assert isinstance(adapter, WhisperAdapter)
    assert adapter.name == "openai/whisper-small"
    assert ("model", "openai/whisper-small") in fake_hub
    assert "openai/whisper-small" in adapter.info()["weights"]


def test_local_whisper_directory_routes_to_family(fake_hub, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    adapter = load_model(str(tmp_path), device="cpu")
    assert isinstance(adapter, WhisperAdapter)
    assert ("model", str(tmp_path)) in fake_hub


def test_local_directory_of_another_model_type_is_rejected(tmp_path):
    directory = tmp_path / "my-whisper-lookalike"  # the name alone must not decide
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(KeyError, match=r"'llava' model.*no adapter.*whisper"):
        load_model(str(directory), device="cpu")


def test_unknown_name_lists_short_names_and_families():
    with pytest.raises(KeyError, match=r"(?s)unknown model 'bert-base'.*whisper-base.*Families.*whisper"):
        load_model("bert-base", device="cpu")


def test_offline_hub_failure_gives_actionable_error(monkeypatch):
    import transformers

    def offline(cls, source, *args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(transformers.WhisperForConditionalGeneration, "from_pretrained",
                        classmethod(offline))
    with pytest.raises(OSError, match=r"openai/whisper-tiny.*Offline\? Use the bundled default "
                                      r"'whisper-base'"):
        load_model("openai/whisper-tiny", device="cpu")


def test_the_registry_is_a_declarative_table_resolved_lazily():
    """Every short name names a family, every family's factory resolves, and importing the
    registry imports no adapter module (no torch, no cycle with the adapters)."""
    import subprocess
    import sys

    from core.models import registry

    family_names = {f.name for f in registry.FAMILIES}
    assert {s.family for s in registry.SHORT_NAMES} <= family_names
    for fam in registry.FAMILIES:
        assert callable(fam.load_factory()), fam.factory
    assert {"seamless-m4t-v2-tiny-random", "qwen2-audio-tiny-random", "multilingual-e5-small"} \
        <= set(available_models())
    code = ("import sys, core.models.registry as r; r.available_models(); "
            "print(sorted(m for m in sys.modules if m.startswith('core.models.') or m == 'torch'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['core.models.base', 'core.models.registry']"


def test_hub_id_of_an_unsupported_architecture_names_its_model_type(monkeypatch):
    import transformers

    class FakeConfig:
        model_type = "llava"

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained",
                        classmethod(lambda cls, name, **kw: FakeConfig()))
    with pytest.raises(KeyError, match=r"(?s)'someone/llava-7b' is a 'llava' model.*"
                                       r"supported model_type values: .*qwen2_audio.*whisper"):
        load_model("someone/llava-7b", device="cpu")


@pytest.mark.parametrize("model_type, family", [("seamless_m4t_v2", "seamless_m4t"),
                                                ("seamless_m4t", "seamless_m4t"),
                                                ("qwen2_audio", "qwen2_audio"), ("bert", "e5"),
                                                ("whisper", "whisper")])
def test_local_directories_route_by_model_type(tmp_path, model_type, family):
    from core.models import registry

    (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type}))
    fam, kwargs = registry.resolve(str(tmp_path))
    assert fam.name == family and kwargs == {"source": str(tmp_path)}


def test_a_model_too_large_for_this_machine_says_what_it_needs_before_loading():
    import torch

    from core.models.base import ModelTooLargeError
    from core.models.common import check_fits

    with pytest.raises(ModelTooLargeError, match=r"8\.40 B parameters.*about 19\.6 GiB.*only "
                                                 r"4\.0 GiB is free"):
        check_fits("Qwen/Qwen2-Audio-7B-Instruct", 8_397_094_912, torch.bfloat16, "cuda",
                   available=4 * 2**30)
    check_fits("tiny", 1_000, torch.float32, "cpu", available=4 * 2**30)  # fits: no error


@pytest.mark.parametrize("marker, family", [("spenc.v3ap.eng.pt", "sonar"),
                                            ("salmonn_v1.pth", "salmonn")])
def test_official_checkpoint_folders_route_by_their_files(tmp_path, marker, family):
    from core.models import registry

    (tmp_path / marker).write_bytes(b"")
    fam, kwargs = registry.resolve(str(tmp_path))
    assert fam.name == family and kwargs == {"source": str(tmp_path)}
