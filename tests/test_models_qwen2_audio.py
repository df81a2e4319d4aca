"""Qwen2-Audio adapter on a tiny random model of the real architecture (no download).

Real weights cannot be loaded here (no hub); the tiny model has the real front end (128 mel bins,
3000 mel frames, 1500 encoder positions) and the real tokenizer class over a byte-level vocabulary.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.models import common
from core.models.base import (
    ModelTooLargeError,
    UnsupportedLanguageError,
    shares_space,
)
from core.models.qwen2_audio import (
    AUDIO_ENCODER,
    DOCUMENTED_SPEECH_LANGUAGES,
    LLM_SPEECH,
    LLM_TEXT,
    Qwen2AudioAdapter,
    encoder_lengths,
    estimate_parameters,
    load_qwen2_audio,
    mel_frame_count,
    real_size_random_config,
)

pytestmark = pytest.mark.usefixtures("one_thread")

NAME = "qwen2-audio-tiny-random"
SHORT_TEXT = "Hello world."
LONG_TEXT = "The quick brown fox jumps over the lazy dog, and then it runs far away again."


def _wave(n_samples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(n_samples)).astype(np.float32)


#: 0.5 s and 2.5 s: 50 / 250 mel frames -> 25 / 125 encoder frames -> 12 / 62 audio tokens
SHORT_WAVE = _wave(8_000, 1)
LONG_WAVE = _wave(40_000, 2)


@pytest.fixture(scope="module")
def adapter() -> Qwen2AudioAdapter:
    return load_qwen2_audio(name=NAME, random=True, device="cpu")


def _hooks(model: torch.nn.Module) -> dict[str, tuple[int, int]]:
    """Hook counts per module (transformers installs its own output-capturing hooks on the first
    ``output_hidden_states`` call, so compare before/after rather than expecting none)."""
    return {name: (len(m._forward_hooks), len(m._forward_pre_hooks))
            for name, m in model.named_modules()}


# ---- description


def test_components_follow_the_config(adapter):
    config = adapter.model.config
    n_enc, n_llm = config.audio_config.encoder_layers, config.text_config.num_hidden_layers
    assert (n_enc, n_llm) == (2, 2)
    assert [c.name for c in adapter.components()] == [AUDIO_ENCODER, LLM_SPEECH, LLM_TEXT]
    enc, speech, text = adapter.components()
    assert (enc.modality, speech.modality, text.modality) == ("speech", "speech", "text")
    assert enc.n_layers == n_enc + 2 and enc.dim == config.audio_config.d_model
    assert speech.n_layers == text.n_layers == n_llm + 1
    assert speech.dim == text.dim == config.text_config.hidden_size
    assert enc.stages == ("frontend", *["encoder"] * n_enc, "length_adaptor")
    assert speech.stages == ("projector", *["llm"] * n_llm)
    assert text.stages == ("frontend", *["llm"] * n_llm)
    assert enc.length_adaptation() == [(n_enc, n_enc + 1)]
    assert speech.conditioning == text.conditioning
    assert "nothing is generated" in speech.conditioning["generation"] or \
        "no assistant reply" in speech.conditioning["generation"]
    assert adapter.modality_pairs() == [(LLM_TEXT, LLM_SPEECH)]
    assert adapter.poolings == ("mean", "last")


def test_depths_run_along_one_speech_path(adapter):
    enc, speech, text = adapter.components()
    path = enc.depths + speech.depths
    n = len(path)
    assert np.allclose(path, [i / (n - 1) for i in range(n)])
    assert min(speech.depths) > max(enc.depths)
    assert np.allclose(text.depths, np.linspace(0, 1, text.n_layers))


def test_llm_text_and_llm_speech_share_one_space(adapter):
    enc, speech, text = adapter.components()
    for layer in range(text.n_layers):
        assert shares_space(text, layer, speech, layer)
        assert text.layer_space(layer) == f"{NAME}/llm"
    assert not any(shares_space(enc, i, speech, j)
                   for i in range(enc.n_layers) for j in range(speech.n_layers))
    assert enc.layer_space(0) == f"{NAME}/audio_encoder"


def test_info_records_provenance(adapter):
    info = adapter.info()
    assert info["dtype"] == "float32" and info["family"] == "qwen2_audio"
    assert "random (seed 0)" in info["weights"]
    assert info["architecture"]["encoder_layers"] == 2 and info["architecture"]["llm_layers"] == 2
    assert "{CONTENT}" in info["template"]["template"]
    assert info["architecture"]["n_parameters"] == estimate_parameters(adapter.model.config)


# ---- prompts: the model's own chat template and processor


def test_speech_prompt_is_what_the_processor_builds(adapter):
    conversation = [{"role": "user", "content": [{"type": "audio", "audio": SHORT_WAVE},
                                                 {"type": "text", "text": adapter.instruction}]}]
    rendered = adapter.processor.apply_chat_template(conversation, add_generation_prompt=True,
                                                     tokenize=False)
    assert rendered == adapter.speech_prompt()
    for wave in (SHORT_WAVE, LONG_WAVE, _wave(16_001, 3)):
        processed = adapter.processor(text=[rendered], audio=[wave], return_tensors="pt",
                                      sampling_rate=16_000)
        n_tokens = int((processed["input_ids"] == adapter.audio_token_id).sum())
        assert n_tokens == encoder_lengths(mel_frame_count(wave.size))[1]
        ids, _, audio_mask = adapter.speech_ids([n_tokens])
        assert torch.equal(ids, processed["input_ids"])
        assert torch.equal(audio_mask, processed["input_ids"] == adapter.audio_token_id)


def test_text_prompt_is_the_chat_template_with_the_sentence(adapter):
    conversation = [{"role": "user", "content": [{"type": "text", "text": SHORT_TEXT},
                                                 {"type": "text", "text": "\n" + adapter.instruction}]}]
    rendered = adapter.processor.apply_chat_template(conversation, add_generation_prompt=True,
                                                     tokenize=False)
    assert rendered == adapter.text_prompt(SHORT_TEXT)
    ids, attention, sentence = adapter.text_ids([SHORT_TEXT])
    assert adapter.tokenizer.decode(ids[0]) == rendered
    assert adapter.tokenizer.decode(ids[0][sentence[0]]) == SHORT_TEXT
    assert attention.all()


def test_llm_speech_states_equal_the_models_own_forward(adapter):
    processed = adapter.processor(text=[adapter.speech_prompt()], audio=[SHORT_WAVE],
                                  return_tensors="pt", sampling_rate=16_000)
    with torch.inference_mode():
        out = adapter.model.model(**processed, output_hidden_states=True, use_cache=False)
        states = adapter.token_states(LLM_SPEECH, SHORT_WAVE, "eng_Latn")
        for layer in range(states.n_layers - 1):
            np.testing.assert_allclose(states.layers[layer], out.hidden_states[layer][0].numpy(),
                                       atol=1e-5)
        last = adapter.language_model.norm(torch.from_numpy(states.layers[-1]))
        np.testing.assert_allclose(last.numpy(), out.last_hidden_state[0].numpy(), atol=1e-5)


# ---- lengths


def test_positions_before_and_after_the_pooling(adapter):
    assert encoder_lengths(mel_frame_count(8_000)) == (25, 12)
    assert encoder_lengths(mel_frame_count(40_000)) == (125, 62)
    assert encoder_lengths(mel_frame_count(16_001)) == (51, 25)
    extraction = adapter.extract(AUDIO_ENCODER, [SHORT_WAVE, LONG_WAVE], ["eng_Latn", "deu_Latn"])
    assert extraction.n_positions.tolist() == [[25, 25, 25, 12], [125, 125, 125, 62]]
    speech = adapter.extract(LLM_SPEECH, [SHORT_WAVE, LONG_WAVE], ["eng_Latn", "deu_Latn"])
    assert speech.n_positions.tolist() == [[12] * 3, [62] * 3]
    text = adapter.extract(LLM_TEXT, ["Grüße", SHORT_TEXT], ["deu_Latn", "eng_Latn"])
    # byte-level tokenizer: one token per UTF-8 byte
    assert text.n_positions.tolist() == [[7] * 3, [12] * 3]
    assert adapter.token_counts(["Grüße", SHORT_TEXT], ["deu_Latn", "eng_Latn"]) == [7, 12]


def test_long_clips_are_cut_at_30_s_and_tiny_clips_refused(adapter):
    with pytest.warns(UserWarning, match="30 s"):
        extraction = adapter.extract(AUDIO_ENCODER, [_wave(31 * 16_000, 4)], ["eng_Latn"])
    assert extraction.n_positions.tolist() == [[1500, 1500, 1500, 750]]
    with pytest.raises(ValueError, match="at least"):
        adapter.extract(LLM_SPEECH, [_wave(300, 5)], ["eng_Latn"])


# ---- pooling


@pytest.mark.parametrize("component,item", [(LLM_SPEECH, LONG_WAVE), (LLM_TEXT, LONG_TEXT)])
def test_last_pooling_is_the_last_content_position(adapter, component, item):
    states = adapter.token_states(component, item, "eng_Latn")
    last = adapter.pooled_states(component, [item], ["eng_Latn"], pooling="last")[0]
    mean = adapter.pooled_states(component, [item], ["eng_Latn"], pooling="mean")[0]
    for layer, (hidden, mask) in enumerate(zip(states.layers, states.pooled_mask, strict=True)):
        index = int(np.flatnonzero(mask)[-1])
        # the content span ends before the template's suffix: the last position is not pooled
        assert index < len(mask) - 1 and not mask[index + 1:].any()
        np.testing.assert_allclose(last[layer], hidden[index], atol=1e-5)
        assert not np.allclose(last[layer], mean[layer], atol=1e-4)


def test_token_states_labels_times_and_masks(adapter):
    enc = adapter.token_states(AUDIO_ENCODER, SHORT_WAVE, "eng_Latn")
    assert [layer.shape for layer in enc.layers] == [(25, 32)] * 3 + [(12, 32)]
    np.testing.assert_allclose(np.diff(enc.times_s[0]), 0.02)
    np.testing.assert_allclose(np.diff(enc.times_s[-1]), 0.04)
    assert all(mask.all() for mask in enc.pooled_mask)
    speech = adapter.token_states(LLM_SPEECH, SHORT_WAVE, "eng_Latn")
    mask = speech.pooled_mask[0]
    assert int(mask.sum()) == 12
    assert all(label == "<|AUDIO|>" for label, m in zip(speech.labels[0], mask) if m)
    assert np.isnan(speech.times_s[0][~mask]).all()
    np.testing.assert_allclose(speech.times_s[0][mask], np.arange(12) * 0.04)
    text = adapter.token_states(LLM_TEXT, SHORT_TEXT, "eng_Latn")
    assert "".join(text.labels[0]) == adapter.text_prompt(SHORT_TEXT)
    assert "".join(np.array(text.labels[0])[text.pooled_mask[0]]) == SHORT_TEXT
    assert text.times_s[0] is None


def test_the_instruction_after_the_content_cannot_change_pooled_states(adapter):
    other = Qwen2AudioAdapter(adapter.model, adapter.processor, name=NAME, device="cpu",
                              instruction="Translate this into French, please.")
    assert other.text_prompt(SHORT_TEXT) != adapter.text_prompt(SHORT_TEXT)
    for component, item in ((LLM_TEXT, SHORT_TEXT), (LLM_SPEECH, SHORT_WAVE)):
        np.testing.assert_allclose(other.pooled_states(component, [item], ["eng_Latn"]),
                                   adapter.pooled_states(component, [item], ["eng_Latn"]),
                                   atol=1e-6)


# ---- hooks, seeds, languages


def test_hooks_are_removed_also_after_a_failure(adapter, monkeypatch):
    before = _hooks(adapter.model)
    adapter.extract(LLM_SPEECH, [SHORT_WAVE], ["eng_Latn"])
    adapter.extract(AUDIO_ENCODER, [SHORT_WAVE], ["eng_Latn"])
    adapter.token_states(LLM_TEXT, SHORT_TEXT, "eng_Latn")
    assert _hooks(adapter.model) == before

    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(adapter.language_model.layers[-1], "forward", broken)
    with pytest.raises(RuntimeError, match="boom"):
        adapter.extract(LLM_TEXT, [SHORT_TEXT], ["eng_Latn"])
    assert _hooks(adapter.model) == before


def test_unknown_languages_are_refused(adapter):
    assert adapter.supports_language("deu_Latn") and adapter.supports_language("yue_Hant")
    assert set(DOCUMENTED_SPEECH_LANGUAGES) >= {"eng_Latn", "zho_Hans", "deu_Latn"}
    assert not adapter.supports_language("xxx_Xxxx")
    with pytest.raises(UnsupportedLanguageError, match="xxx_Xxxx"):
        adapter.extract(LLM_TEXT, [SHORT_TEXT], ["xxx_Xxxx"])
    with pytest.raises(UnsupportedLanguageError):
        adapter.extract(LLM_SPEECH, [SHORT_WAVE], ["xxx_Xxxx"])
    with pytest.raises(UnsupportedLanguageError):
        adapter.token_states(AUDIO_ENCODER, SHORT_WAVE, "xxx_Xxxx")
    with pytest.raises(UnsupportedLanguageError):
        adapter.token_counts([SHORT_TEXT], ["xxx_Xxxx"])


def test_inputs_and_poolings_are_checked(adapter):
    with pytest.raises(TypeError):
        adapter.extract(LLM_TEXT, [SHORT_WAVE], ["eng_Latn"])
    with pytest.raises(TypeError):
        adapter.extract(LLM_SPEECH, [SHORT_TEXT], ["eng_Latn"])
    with pytest.raises(ValueError, match="pooling"):
        adapter.extract(LLM_TEXT, [SHORT_TEXT], ["eng_Latn"], pooling="max")
    with pytest.raises(ValueError, match="exactly one"):
        load_qwen2_audio(name=NAME, random=True, source="Qwen/Qwen2-Audio-7B-Instruct")
    empty = adapter.extract(LLM_TEXT, [], [])
    assert empty.pooled.shape == (0, 3, 48)


# ---- sizes and memory


def test_parameter_estimate_is_exact_for_the_tiny_and_the_real_architecture(adapter):
    from transformers import Qwen2AudioForConditionalGeneration

    assert estimate_parameters(adapter.model.config) == common.count_parameters(adapter.model)
    config = real_size_random_config()
    with torch.device("meta"):
        real = Qwen2AudioForConditionalGeneration(config)
    n = common.count_parameters(real)
    assert estimate_parameters(config) == n
    assert 8.3e9 < n < 8.5e9   # the model card's 8.4 B
    assert (config.audio_config.encoder_layers, config.text_config.num_hidden_layers) == (32, 32)


def test_a_model_too_large_is_refused_before_loading(tmp_path, monkeypatch):
    real_size_random_config().save_pretrained(tmp_path)
    monkeypatch.setattr(common, "available_memory_bytes", lambda _device: 8 * 2**30)
    with pytest.raises(ModelTooLargeError, match="GiB"):
        load_qwen2_audio(name="qwen2-audio-7b-instruct", source=str(tmp_path), device="cpu")


def test_from_pretrained_loading_reads_a_saved_model_directory(adapter, tmp_path):
    """The real-weights path (AutoConfig, size check, from_pretrained, AutoProcessor) on a saved
    copy of the tiny model: same states as the model it was saved from."""
    adapter.model.save_pretrained(tmp_path)
    adapter.processor.save_pretrained(tmp_path)
    loaded = load_qwen2_audio(name="saved", source=str(tmp_path), device="cpu")
    assert loaded.info()["weights"] == f"from_pretrained({str(tmp_path)!r})"
    assert loaded.info()["n_parameters_estimated"] == common.count_parameters(adapter.model)
    for component, item in ((LLM_TEXT, SHORT_TEXT), (LLM_SPEECH, SHORT_WAVE)):
        np.testing.assert_allclose(loaded.pooled_states(component, [item], ["eng_Latn"]),
                                   adapter.pooled_states(component, [item], ["eng_Latn"]),
                                   atol=1e-6)
