"""Whisper adapter on the tiny random model (seconds); the CT2 reader/mapping is tested in
test_models_whisper_ct2.py.

Expected values come from an independent path: Hugging Face's own ``output_hidden_states`` and a
hand-written mean, never from the adapter's output itself.
"""
# ruff: noqa: F811 - tiny is whisper_fixtures' fixture, imported to be requested here

from __future__ import annotations

import numpy as np
import pytest
import torch

from core import languages
from core.models.whisper import (
    SPEECH_ENCODER,
    TEXT_DECODER,
    WhisperAdapter,
    resolve_whisper_language,
)
from core.models.whisper_load import TINY_RANDOM_CONFIG, load_whisper
from whisper_fixtures import tiny  # noqa: F401 - a fixture


def _noise(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * 16_000)
    t = np.arange(n) / 16_000
    return (0.1 * rng.standard_normal(n) + 0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# components and shapes


def test_components_describe_both_stacks(tiny):
    comps = {c.name: c for c in tiny.components()}
    assert list(comps) == [SPEECH_ENCODER, TEXT_DECODER]
    assert comps[SPEECH_ENCODER].modality == "speech"
    assert comps[TEXT_DECODER].modality == "text"
    for comp in comps.values():
        assert comp.n_layers == 2 + 1  # embedding + 2 blocks
        assert comp.dim == 64
        assert len(comp.layer_names) == comp.n_layers


def test_speech_states_shape_and_dtype(tiny):
    waves = [_noise(1.0, 0), _noise(2.5, 1), _noise(0.3, 2)]
    states = tiny.pooled_states(SPEECH_ENCODER, waves, ["deu_Latn"] * 3, batch_size=2)
    assert states.shape == (3, 3, 64)
    assert states.dtype == np.float32
    assert np.isfinite(states).all()


def test_text_states_shape_and_dtype(tiny):
    texts = ["Hallo Welt.", "Ein deutlich längerer Satz mit vielen Wörtern.", "Ja."]
    states = tiny.pooled_states(TEXT_DECODER, texts, ["deu_Latn", "deu_Latn", "de"], batch_size=2)
    assert states.shape == (3, 3, 64)
    assert states.dtype == np.float32
    assert np.isfinite(states).all()


def test_empty_input_gives_empty_array(tiny):
    assert tiny.pooled_states(TEXT_DECODER, [], []).shape == (0, 3, 64)


# ------------------------------------------------------------------------------------------------
# pooling only over real positions, compared against HF's own hidden states


def _hf_encoder_states(adapter: WhisperAdapter, wave: np.ndarray) -> list[torch.Tensor]:
    features = adapter.feature_extractor(wave, sampling_rate=16_000, return_tensors="pt").input_features
    with torch.inference_mode():
        out = adapter.model.model.encoder(features, output_hidden_states=True)
    return [h[0] for h in out.hidden_states]


def test_speech_pooling_uses_only_frames_with_audio(tiny):
    wave = _noise(1.1, 3)[:16_001]  # 16001 samples -> ceil(16001 / 320) = 51 real frames
    pooled = tiny.pooled_states(SPEECH_ENCODER, [wave], ["en"])[0]
    hf = _hf_encoder_states(tiny, wave)
    # HF's hidden_states: [conv+pos, block 1 output, LayerNorm(block 2 output)]; we pool raw states.
    for layer in (0, 1):
        expected = hf[layer][:51].double().mean(0).numpy()
        np.testing.assert_allclose(pooled[layer], expected, rtol=1e-4, atol=1e-5)
        assert not np.allclose(pooled[layer], hf[layer][:52].double().mean(0).numpy(), atol=1e-5)
        assert not np.allclose(pooled[layer], hf[layer].double().mean(0).numpy(), atol=1e-3)


def test_final_layer_norm_option_matches_hf_last_hidden_state(tiny):
    wave = _noise(0.8, 4)
    n_frames = int(np.ceil(len(wave) / 320))
    hf = _hf_encoder_states(tiny, wave)
    post_ln = WhisperAdapter(tiny.model, tiny.tokenizer, tiny.feature_extractor, name="t",
                             device="cpu", final_layer_norm=True)
    pooled_post = post_ln.pooled_states(SPEECH_ENCODER, [wave], ["en"])[0]
    pooled_pre = tiny.pooled_states(SPEECH_ENCODER, [wave], ["en"])[0]
    np.testing.assert_allclose(pooled_post[-1], hf[-1][:n_frames].double().mean(0).numpy(),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pooled_post[:-1], pooled_pre[:-1], rtol=1e-6, atol=1e-6)
    assert not np.allclose(pooled_post[-1], pooled_pre[-1], atol=1e-3)
    assert post_ln.info()["final_layer_norm_on_last_layer"] is True


def test_appended_zeros_leave_real_frame_states_unchanged(tiny):
    # Whisper pads with zeros itself, so trailing zeros only change which frames count as real:
    # pooling the padded clip over the original clip's frames gives the original result.
    wave = _noise(0.64, 5)  # 10240 samples = 32 frames exactly
    padded = np.concatenate([wave, np.zeros(16_000, dtype=np.float32)])
    original = tiny.pooled_states(SPEECH_ENCODER, [wave], ["en"])[0]
    hf_padded = _hf_encoder_states(tiny, padded)
    for layer in (0, 1):
        np.testing.assert_allclose(original[layer], hf_padded[layer][:32].double().mean(0).numpy(),
                                   rtol=1e-4, atol=1e-5)
    longer = tiny.pooled_states(SPEECH_ENCODER, [padded], ["en"])[0]
    assert not np.allclose(original, longer, atol=1e-4)  # 82 frames pooled instead of 32


def test_text_pooling_uses_only_sentence_tokens(tiny):
    text, lang = "Guten Morgen, liebe Freunde.", "deu_Latn"
    pooled = tiny.pooled_states(TEXT_DECODER, [text], [lang])[0]
    tok = tiny.tokenizer
    prefix = tok.convert_tokens_to_ids(
        ["<|startoftranscript|>", "<|de|>", "<|transcribe|>", "<|notimestamps|>"]
    )
    sentence = tok.encode(" " + text, add_special_tokens=False)
    ids = torch.tensor([prefix + sentence])
    with torch.inference_mode():
        silence = tiny.feature_extractor(np.zeros(480_000, dtype=np.float32), sampling_rate=16_000,
                                         return_tensors="pt").input_features
        context = tiny.model.model.encoder(silence).last_hidden_state
        out = tiny.model.model.decoder(input_ids=ids, encoder_hidden_states=context,
                                       output_hidden_states=True, use_cache=False)
    for layer in (0, 1):
        expected = out.hidden_states[layer][0, 4:].double().mean(0).numpy()
        np.testing.assert_allclose(pooled[layer], expected, rtol=1e-4, atol=1e-5)
        with_prefix = out.hidden_states[layer][0].double().mean(0).numpy()
        assert not np.allclose(pooled[layer], with_prefix, atol=1e-4)


def test_language_token_changes_text_states(tiny):
    text = "Paris"
    de, fr = tiny.pooled_states(TEXT_DECODER, [text, text], ["deu_Latn", "fra_Latn"])
    assert not np.allclose(de, fr, atol=1e-4)
    same = tiny.pooled_states(TEXT_DECODER, [text], ["de"])[0]
    np.testing.assert_allclose(same, de, rtol=1e-5, atol=1e-6)  # FLORES code == Whisper code


def test_text_context_is_fixed_silence_computed_once(tiny):
    first = tiny.silence_context()
    tiny.pooled_states(TEXT_DECODER, ["eins", "zwei"], ["de", "de"])
    assert tiny.silence_context() is first
    assert first.shape == (1, 1500, 64)


def test_hooks_are_removed_after_use(tiny):
    def hook_counts():
        stacks = (tiny.model.model.encoder, tiny.model.model.decoder)
        return [(len(layer._forward_hooks), len(layer._forward_pre_hooks))
                for stack in stacks for layer in stack.layers]

    before = hook_counts()  # transformers installs its own persistent capture hooks
    tiny.pooled_states(SPEECH_ENCODER, [_noise(0.2, 8)], ["en"])
    tiny.pooled_states(TEXT_DECODER, ["x y"], ["en"])
    assert hook_counts() == before


# ------------------------------------------------------------------------------------------------
# edge cases and clear errors


def test_long_clip_is_truncated_with_warning(tiny):
    wave = _noise(31.0, 9)
    with pytest.warns(UserWarning, match="30 s"):
        long = tiny.pooled_states(SPEECH_ENCODER, [wave], ["en"])
    cut = tiny.pooled_states(SPEECH_ENCODER, [wave[:480_000]], ["en"])
    np.testing.assert_allclose(long, cut, rtol=1e-5, atol=1e-6)


def _sine(hz: float, seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_other_sampling_rates_are_resampled(tiny, monkeypatch):
    """An 8 kHz clip reaches the feature extractor at 16 kHz: twice the samples, the same
    duration and pitch (a 440 Hz sine stays at 440 Hz), so its states match the 16 kHz clip's."""
    seen = []
    extractor = tiny.feature_extractor

    def spy(waveforms, **kwargs):
        seen.extend(np.asarray(w) for w in waveforms)
        return extractor(waveforms, **kwargs)

    monkeypatch.setattr(tiny, "feature_extractor", spy)
    tiny._encoder_cache.clear()
    from_8k = tiny.pooled_states(SPEECH_ENCODER, [_sine(440, 1.0, 8_000)], ["en"],
                                 sampling_rate=8_000)
    (resampled,) = seen
    assert resampled.size == 16_000
    spectrum = np.abs(np.fft.rfft(resampled))
    assert np.fft.rfftfreq(resampled.size, 1 / 16_000)[spectrum.argmax()] == pytest.approx(440, abs=1)
    from_16k = tiny.pooled_states(SPEECH_ENCODER, [_sine(440, 1.0, 16_000)], ["en"])
    np.testing.assert_allclose(from_8k, from_16k, atol=2e-3)
    # not resampling would play the clip an octave up in half the time: far from both
    unresampled = tiny.pooled_states(SPEECH_ENCODER, [_sine(440, 1.0, 8_000)], ["en"])
    assert np.abs(unresampled - from_16k).max() > 10 * np.abs(from_8k - from_16k).max()


def test_unknown_component(tiny):
    with pytest.raises(KeyError, match="speech_encoder, text_decoder"):
        tiny.pooled_states("vision_tower", ["x"], ["en"])


def test_wrong_input_types(tiny):
    with pytest.raises(TypeError, match="reads texts"):
        tiny.pooled_states(TEXT_DECODER, [np.zeros(100, dtype=np.float32)], ["en"])
    with pytest.raises(TypeError, match="reads waveforms"):
        tiny.pooled_states(SPEECH_ENCODER, ["hello"], ["en"])
    with pytest.raises(TypeError, match="wrap it in a list"):
        tiny.pooled_states(TEXT_DECODER, "hello", ["en"])
    with pytest.raises(ValueError, match="mono"):
        tiny.pooled_states(SPEECH_ENCODER, [np.zeros((2, 100), dtype=np.float32)], ["en"])
    with pytest.raises(ValueError, match="one lang per input"):
        tiny.pooled_states(TEXT_DECODER, ["a", "b"], ["en"])


def test_empty_inputs_are_rejected(tiny):
    with pytest.raises(ValueError, match="waveform 0 is empty"):
        tiny.pooled_states(SPEECH_ENCODER, [np.zeros(0, dtype=np.float32)], ["en"])
    with pytest.raises(ValueError, match="text 1 is empty"):
        tiny.pooled_states(TEXT_DECODER, ["a", "  "], ["en", "en"])


def test_unknown_language_lists_known_codes(tiny):
    with pytest.raises(ValueError, match=r"unknown language 'xxx_Latn'.*deu_Latn.*\bde\b"):
        tiny.pooled_states(TEXT_DECODER, ["a"], ["xxx_Latn"])
    # Zulu is a FLORES language Whisper has no token for
    with pytest.raises(ValueError, match="zul_Latn"):
        tiny.pooled_states(TEXT_DECODER, ["a"], ["zul_Latn"])


def test_language_table_targets_real_whisper_tokens(tiny):
    known = set(tiny._whisper_codes)
    assert len(known) == 99  # multilingual Whisper (v1/v2 vocabulary)
    table = {languages.family_code(lang, "whisper") for lang in languages.family_languages("whisper")}
    assert table <= known
    assert resolve_whisper_language("cmn_Hans", known) == "zh"
    assert resolve_whisper_language("ja", known) == "ja"


def test_transcribe_is_greedy_decoding_with_the_language_forced(tiny):
    """One transcript per clip, in order, equal to Hugging Face's own greedy ``generate`` on each
    clip alone with the language and task forced, decoded without special tokens (the tiny
    random model's words are noise, but they are exactly these)."""
    waves, langs = [_noise(0.5, 11), _noise(1.0, 12)], ["deu_Latn", "en"]
    tiny._encoder_cache.clear()
    texts = tiny.transcribe(waves, langs, max_new_tokens=3)
    expected = []
    for wave, code in zip(waves, ("de", "en"), strict=True):
        features = tiny.feature_extractor(wave, sampling_rate=16_000, return_tensors="pt")
        with torch.inference_mode():
            ids = tiny.model.generate(features.input_features, language=code, task="transcribe",
                                      do_sample=False, num_beams=1, max_new_tokens=3)
        assert ids.shape[1] <= 4 + 3  # forced prefix + at most 3 new tokens
        expected.append(tiny.tokenizer.decode(ids[0], skip_special_tokens=True).strip())
    assert texts == expected


def test_random_model_is_deterministic_and_keeps_global_rng(tiny):
    torch.manual_seed(99)
    before = torch.rand(1)
    torch.manual_seed(99)
    other = load_whisper(name="again", device="cpu", random_config=TINY_RANDOM_CONFIG)
    assert torch.equal(torch.rand(1), before)  # loading did not consume the caller's RNG
    for (name, a), (_, b) in zip(tiny.model.state_dict().items(), other.model.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name


def test_info_records_provenance(tiny):
    info = tiny.info()
    assert info["family"] == "whisper" and info["dtype"] == "float32"
    assert "random" in info["weights"]
    assert info["versions"]["transformers"]


def test_loader_needs_exactly_one_source():
    with pytest.raises(ValueError, match="exactly one"):
        load_whisper(name="x", device="cpu")
    with pytest.raises(ValueError, match="only supported on CUDA"):
        load_whisper(name="x", device="cpu", random_config=TINY_RANDOM_CONFIG, dtype="float16")


def test_transcript_token_budget_scales_with_duration_and_respects_limit():
    from core.models.whisper import transcript_token_budget

    short = transcript_token_budget(2.0, limit=444)
    long = transcript_token_budget(10.0, limit=444)
    assert 8 < short < long <= 444
    assert transcript_token_budget(60.0, limit=444) == 444


def test_token_counts_match_the_pooled_sentence_span(tiny):
    counts = tiny.token_counts(["Hello there.", "A much longer sentence than the first one."],
                               ["eng_Latn", "eng_Latn"])
    ids = tiny.tokenizer.encode(" Hello there.", add_special_tokens=False)
    assert counts[0] == len(ids)
    assert counts[1] > counts[0]


def test_transcribe_reuses_the_encoder_pass_of_pooled_states(tiny, monkeypatch):
    waves = [_noise(1.0, 11), _noise(2.0, 12)]
    langs = ["eng_Latn", "eng_Latn"]
    tiny._encoder_cache.clear()
    fresh = tiny.transcribe(waves, langs, max_new_tokens=5)  # encoder computed here

    tiny.pooled_states(SPEECH_ENCODER, waves, langs)
    calls = []
    encoder = tiny.model.model.encoder
    monkeypatch.setattr(encoder, "forward", lambda *a, **k: calls.append(1) or None)
    cached = tiny.transcribe(waves, langs, max_new_tokens=5)
    assert calls == []  # no second encoder pass
    assert cached == fresh


def test_encoder_cache_is_bounded(tiny):
    tiny._encoder_cache.clear()
    old_size = tiny.encoder_cache_size
    tiny.encoder_cache_size = 2
    try:
        tiny.pooled_states(SPEECH_ENCODER, [_noise(0.5, s) for s in range(4)], ["eng_Latn"] * 4)
        assert len(tiny._encoder_cache) == 2
    finally:
        tiny.encoder_cache_size = old_size


def test_language_id_and_token_states_share_one_encoder_pass(tiny, monkeypatch):
    """The live page identifies the language, then inspects every layer of the same clip: one
    30 s encoder pass serves both, and the states equal those of a fresh pass."""
    wave = _noise(1.5, 21)
    tiny._encoder_cache.clear()
    tiny._layer_cache.clear()
    fresh = tiny.token_states(SPEECH_ENCODER, wave, "eng_Latn")
    tiny._encoder_cache.clear()
    tiny._layer_cache.clear()

    encoder = tiny.model.model.encoder
    calls = []
    original = encoder.forward
    monkeypatch.setattr(encoder, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    tiny.language_probabilities(wave)
    again = tiny.token_states(SPEECH_ENCODER, wave, "eng_Latn")
    assert calls == [1]
    for a, b in zip(fresh.layers, again.layers, strict=True):
        np.testing.assert_array_equal(a, b)
    # the cache is bounded: other clips push the first one out
    for seed in range(tiny.layer_cache_size + 1):
        tiny.language_probabilities(_noise(0.5, 100 + seed))
    assert len(tiny._layer_cache) == tiny.layer_cache_size
