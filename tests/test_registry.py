"""Registry routing: short names, HF ids / local directories to families, clear errors.

Nothing is downloaded: ``from_pretrained`` is replaced by fakes that build the tiny random model.
"""

from __future__ import annotations

import json

import pytest

import core.models.whisper as whisper_module
from core.models import available_models, load_model
from core.models.registry import families
from core.models.whisper import TINY_RANDOM_CONFIG, WhisperAdapter


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
    return requested


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
