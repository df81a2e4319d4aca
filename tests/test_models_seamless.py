"""SeamlessM4T adapter on tiny random v2 and v1 models (seconds, CPU, no hub).

Expected values come from independent paths: the config (layer counts, the adaptor's length
formula), the feature extractor's frame arithmetic, Hugging Face's own ``output_hidden_states``, the
same input encoded alone (padding invariance) and ``pool_token_states`` (pooling).
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import torch

from core.models import common
from core.models import seamless as S
from core.models.seamless import adapter as seamless_adapter
from core.models.base import ModelTooLargeError, UnsupportedLanguageError, pool_token_states

LANG = "deu_Latn"
TEXTS = ["Ja.", "Das ist ein deutlich längerer Satz, der viel mehr Zeichen hat als der erste."]


def _noise(n_samples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / 16_000
    return (0.1 * rng.standard_normal(n_samples) + 0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _conformer_frames(n_samples: int, stride: int = 2) -> int:
    """Independent of the adapter: Kaldi fbank frames (25 ms window, 10 ms hop, no centring),
    then ``stride`` frames stacked (the remainder dropped)."""
    return (1 + (n_samples - 400) // 160) // stride


def _adapted_frames(n_frames: int, config) -> int:
    k, s = config.adaptor_kernel_size, config.adaptor_stride
    return math.floor((n_frames + 2 * (k // 2) - k) / s) + 1


# 16_000 samples -> 49 conformer frames: 49 % 8 = 1 < 4, so the last adapted frame's convolution
# window reaches 3 frames past the end (where padding sits in a batch)
SHORT = 16_000
LONG = 56_000


@pytest.fixture(scope="module")
def v2() -> S.SeamlessAdapter:
    return S.load_seamless(name="seamless-m4t-v2-tiny-random", random=True, device="cpu")


@pytest.fixture(scope="module")
def v1() -> S.SeamlessAdapter:
    return S.load_seamless(name="seamless-m4t-tiny-random", random=True, device="cpu",
                           model_type="seamless_m4t")


def _hook_count(model: torch.nn.Module) -> int:
    """Forward (pre-)hooks that this project installed (transformers keeps its own output-capturing
    hooks installed once it has been asked for hidden states; those are not counted)."""
    return sum(getattr(hook, "__module__", "").startswith("core.")
               for m in model.modules()
               for hook in (*m._forward_hooks.values(), *m._forward_pre_hooks.values()))


# ------------------------------------------------------------------------------------------------
# description


@pytest.mark.parametrize("which", ["v2", "v1"])
def test_components_layer_counts_stages_spaces(which, request):
    adapter = request.getfixturevalue(which)
    cfg = adapter.model.config
    assert cfg.model_type == {"v2": "seamless_m4t_v2", "v1": "seamless_m4t"}[which]
    comps = {c.name: c for c in adapter.components()}
    assert list(comps) == [S.SPEECH_ENCODER, S.TEXT_ENCODER, S.TEXT_DECODER_TEXT,
                           S.TEXT_DECODER_SPEECH]
    assert [c.modality for c in comps.values()] == ["speech", "text", "text", "speech"]
    assert all(c.dim == cfg.hidden_size for c in comps.values())

    speech = comps[S.SPEECH_ENCODER]
    assert speech.n_layers == cfg.speech_encoder_layers + 2
    assert speech.stages == ("frontend", *["encoder"] * cfg.speech_encoder_layers, "length_adaptor")
    assert speech.length_adaptation() == [(cfg.speech_encoder_layers, cfg.speech_encoder_layers + 1)]
    assert speech.layer_space(speech.n_layers - 1) == f"{adapter.name}/speech_encoder_adapted"
    assert {speech.layer_space(i) for i in range(speech.n_layers - 1)} == {speech.space}

    text = comps[S.TEXT_ENCODER]
    assert text.n_layers == cfg.encoder_layers + 1
    assert text.stages == ("frontend", *["encoder"] * cfg.encoder_layers)
    for name in (S.TEXT_DECODER_TEXT, S.TEXT_DECODER_SPEECH):
        dec = comps[name]
        assert dec.n_layers == cfg.decoder_layers + 1
        assert dec.stages == ("frontend", *["decoder"] * cfg.decoder_layers)
        assert {dec.layer_space(i) for i in range(dec.n_layers)} == {f"{adapter.name}/text_decoder"}
        assert dec.conditioning["target_lang_token"] == "__<lang>__"
        assert dec.conditioning["forced_target"] == "the sentence in the input language"
    assert "length adaptor" in comps[S.TEXT_DECODER_SPEECH].conditioning["context"]
    assert comps[S.TEXT_DECODER_TEXT].conditioning["context"] == "text encoder output"
    spaces = {speech.space, text.space, comps[S.TEXT_DECODER_TEXT].space}
    assert len(spaces) == 3
    assert adapter.modality_pairs() == [(S.TEXT_ENCODER, S.SPEECH_ENCODER),
                                        (S.TEXT_DECODER_TEXT, S.TEXT_DECODER_SPEECH)]
    assert adapter.poolings == ("mean",)


def test_depths_run_along_each_modality_path(v2):
    cfg = v2.model.config
    comps = {c.name: c for c in v2.components()}
    for enc, dec, n_enc in ((S.SPEECH_ENCODER, S.TEXT_DECODER_SPEECH, cfg.speech_encoder_layers + 2),
                            (S.TEXT_ENCODER, S.TEXT_DECODER_TEXT, cfg.encoder_layers + 1)):
        depths = comps[enc].depths + comps[dec].depths
        n = n_enc + cfg.decoder_layers + 1
        assert len(depths) == n
        np.testing.assert_allclose(depths, np.arange(n) / (n - 1))
        assert comps[dec].depths[0] > comps[enc].depths[-1]


def test_info_records_provenance(v2):
    info = v2.info()
    cfg = v2.model.config
    assert info["weights"].startswith("random (seed 0)")
    assert info["architecture"]["speech_encoder_layers"] == cfg.speech_encoder_layers
    assert info["architecture"]["adapted_frame_s"] == pytest.approx(
        160 * v2.feature_extractor.stride * cfg.adaptor_stride / 16_000)
    assert info["n_parameters"] == sum(p.numel() for p in v2.model.parameters())
    assert set(info["conditioning"]) == {c.name for c in v2.components()}


# ------------------------------------------------------------------------------------------------
# length adaptor


def test_lengths_before_and_after_the_adaptor_are_recorded_per_item(v2):
    cfg = v2.model.config
    sizes = [SHORT, 9_000, LONG, 1_200]
    ext = v2.extract(S.SPEECH_ENCODER, [_noise(n, i) for i, n in enumerate(sizes)], [LANG] * 4,
                     batch_size=4)
    before = np.array([_conformer_frames(n) for n in sizes])
    after = np.array([_adapted_frames(f, cfg) for f in before])
    assert ext.n_positions.shape == (4, cfg.speech_encoder_layers + 2)
    for col in range(cfg.speech_encoder_layers + 1):
        np.testing.assert_array_equal(ext.n_positions[:, col], before)
    np.testing.assert_array_equal(ext.n_positions[:, -1], after)
    assert np.all(np.abs(after - before / cfg.adaptor_stride) <= 1)
    # the formula is the length the adaptor really outputs for a clip alone
    for n in (SHORT, 1_200):
        ts = v2.token_states(S.SPEECH_ENCODER, _noise(n, 0), LANG)
        assert ts.layers[-1].shape[0] == _adapted_frames(_conformer_frames(n), cfg)
        assert ts.layers[0].shape[0] == _conformer_frames(n)


def test_frame_times(v2):
    cfg = v2.model.config
    ts = v2.token_states(S.SPEECH_ENCODER, _noise(LONG, 0), LANG)
    frame_s = 160 * v2.feature_extractor.stride / 16_000
    np.testing.assert_allclose(ts.times_s[0], np.arange(_conformer_frames(LONG)) * frame_s)
    adapted = ts.times_s[-1]
    np.testing.assert_allclose(np.diff(adapted[1:]), cfg.adaptor_stride * frame_s)
    assert adapted[0] == 0.0 and np.all(adapted < LONG / 16_000)
    assert ts.labels[0][:3] == ["0", "1", "2"]


# ------------------------------------------------------------------------------------------------
# padding never changes a pooled vector


@pytest.mark.parametrize("which", ["v2", "v1"])
def test_speech_padding_does_not_change_pooled_vectors(which, request):
    adapter = request.getfixturevalue(which)
    short, long = _noise(SHORT, 1), _noise(LONG, 2)
    alone = adapter.pooled_states(S.SPEECH_ENCODER, [short], [LANG])
    batched = adapter.pooled_states(S.SPEECH_ENCODER, [long, short], [LANG, LANG], batch_size=2)
    np.testing.assert_allclose(batched[1], alone[0], atol=1e-5, rtol=0)
    target = [TEXTS[1]]
    alone = adapter.pooled_states(S.TEXT_DECODER_SPEECH, [short], [LANG], targets=target)
    batched = adapter.pooled_states(S.TEXT_DECODER_SPEECH, [long, short], [LANG, LANG],
                                    batch_size=2, targets=[TEXTS[0], TEXTS[1]])
    np.testing.assert_allclose(batched[1], alone[0], atol=1e-5, rtol=0)


def test_the_padding_case_is_real_without_the_adaptor_hooks(v2, monkeypatch):
    """Guards the test above: without zeroing padded frames before the adaptor's convolutions, the
    short clip's adapted state does change when batched (so the test above can fail)."""
    monkeypatch.setattr(seamless_adapter, "zero_adaptor_padding",
                        lambda *a, **k: contextlib.nullcontext())
    short, long = _noise(SHORT, 1), _noise(LONG, 2)
    alone = v2.pooled_states(S.SPEECH_ENCODER, [short], [LANG])
    batched = v2.pooled_states(S.SPEECH_ENCODER, [long, short], [LANG, LANG], batch_size=2)
    np.testing.assert_allclose(batched[1, :-1], alone[0, :-1], atol=1e-5, rtol=0)
    assert np.abs(batched[1, -1] - alone[0, -1]).max() > 1e-3


@pytest.mark.parametrize("component", [S.TEXT_ENCODER, S.TEXT_DECODER_TEXT])
def test_text_padding_does_not_change_pooled_vectors(v2, component):
    alone = v2.pooled_states(component, TEXTS[:1], [LANG])
    batched = v2.pooled_states(component, TEXTS[::-1], ["eng_Latn", LANG], batch_size=2)
    np.testing.assert_allclose(batched[1], alone[0], atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------------
# token states, pooling, independent references


@pytest.mark.parametrize("which", ["v2", "v1"])
@pytest.mark.parametrize("component", [S.SPEECH_ENCODER, S.TEXT_ENCODER, S.TEXT_DECODER_TEXT,
                                       S.TEXT_DECODER_SPEECH])
def test_pooled_equals_pooling_the_token_states(which, component, request):
    adapter = request.getfixturevalue(which)
    comp = adapter.component(component)
    item = _noise(SHORT, 3) if comp.modality == "speech" else TEXTS[1]
    kwargs = {"target": TEXTS[1]} if component == S.TEXT_DECODER_SPEECH else {}
    ts = adapter.token_states(component, item, LANG, **kwargs)
    assert ts.n_layers == comp.n_layers
    assert [layer.shape[1] for layer in ts.layers] == [comp.dim] * comp.n_layers
    ext = adapter.extract(component, [item], [LANG],
                          **({"targets": [TEXTS[1]]} if kwargs else {}))
    np.testing.assert_allclose(ext.pooled[0], pool_token_states(ts), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(ext.n_positions[0], [m.sum() for m in ts.pooled_mask])


def test_text_positions_pool_only_sentence_tokens(v2):
    sentence = v2.tokenizer.encode(TEXTS[1], add_special_tokens=False)
    enc = v2.token_states(S.TEXT_ENCODER, TEXTS[1], LANG)
    assert enc.labels[0] == ["__deu__", *v2.tokenizer.convert_ids_to_tokens(sentence), "</s>"]
    assert enc.pooled_mask[0].tolist() == [False] + [True] * len(sentence) + [False]
    dec = v2.token_states(S.TEXT_DECODER_TEXT, TEXTS[1], LANG)
    assert dec.labels[0] == ["</s>", "__deu__", *v2.tokenizer.convert_ids_to_tokens(sentence)]
    assert dec.pooled_mask[0].tolist() == [False, False] + [True] * len(sentence)
    assert v2.token_counts(TEXTS, [LANG, LANG]) == [
        len(v2.tokenizer.encode(t, add_special_tokens=False)) for t in TEXTS]


def test_states_match_hugging_face_hidden_states(v2):
    """Conformer points: HF's hidden_states[:-1] (HF drops the last conformer layer and returns the
    adapted output last); text encoder: HF's, whose last one is after the final layer_norm."""
    wave = _noise(SHORT, 4)
    ts = v2.token_states(S.SPEECH_ENCODER, wave, LANG)
    features = v2.feature_extractor([wave], sampling_rate=16_000, return_tensors="pt")
    with torch.inference_mode():
        out = v2.model.speech_encoder(input_features=features.input_features,
                                      attention_mask=features.attention_mask,
                                      output_hidden_states=True)
    hf = out.hidden_states
    assert len(hf) == v2.model.config.speech_encoder_layers + 1  # one conformer layer missing
    for k in range(len(hf) - 1):
        np.testing.assert_allclose(ts.layers[k], hf[k][0].numpy(), atol=1e-5)
    np.testing.assert_allclose(ts.layers[-1], out.last_hidden_state[0].numpy(), atol=1e-5)

    enc = v2.token_states(S.TEXT_ENCODER, TEXTS[0], LANG)
    ids = v2.tokenizer(TEXTS[0], src_lang="deu", return_tensors="pt").input_ids
    with torch.inference_mode():
        out = v2.model.text_encoder(input_ids=ids, output_hidden_states=True)
        last = v2.model.text_encoder.layer_norm(torch.from_numpy(enc.layers[-1])).numpy()
    for k in range(len(out.hidden_states) - 1):
        np.testing.assert_allclose(enc.layers[k], out.hidden_states[k][0].numpy(), atol=1e-5)
    np.testing.assert_allclose(last, out.hidden_states[-1][0].numpy(), atol=1e-5)


def test_decoder_context_matters_and_embeddings_do_not(v2):
    """Same forced target: the decoder embedding point is identical for text and speech context,
    the decoder layers are not."""
    text = v2.pooled_states(S.TEXT_DECODER_TEXT, TEXTS[:1], [LANG])
    speech = v2.pooled_states(S.TEXT_DECODER_SPEECH, [_noise(SHORT, 5)], [LANG], targets=TEXTS[:1])
    np.testing.assert_allclose(text[0, 0], speech[0, 0], atol=1e-6)
    assert np.abs(text[0, -1] - speech[0, -1]).max() > 1e-3


def test_speech_decoder_without_targets_uses_the_models_transcript(v2):
    waves = [_noise(SHORT, 6), _noise(9_000, 7)]
    ext = v2.extract(S.TEXT_DECODER_SPEECH, waves, [LANG, LANG], batch_size=2)
    assert np.all(ext.n_positions >= 1)
    ids = v2._generate_ids(waves, [LANG, LANG], min_new_tokens=1)
    np.testing.assert_array_equal(ext.n_positions[:, 0], [len(r) for r in ids])
    texts = v2.transcribe(waves, [LANG, LANG], max_new_tokens=4)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


# ------------------------------------------------------------------------------------------------
# hooks, seeds, languages, loading


def test_hooks_are_removed_after_extraction_and_after_an_error(v2, monkeypatch):
    assert _hook_count(v2.model) == 0
    short, long = _noise(SHORT, 1), _noise(LONG, 2)
    v2.extract(S.SPEECH_ENCODER, [long, short], [LANG, LANG], batch_size=2)
    v2.extract(S.TEXT_DECODER_TEXT, TEXTS, [LANG, LANG], batch_size=2)
    assert _hook_count(v2.model) == 0

    seen = []

    def boom(*args, **kwargs):
        seen.append(_hook_count(v2.model))
        raise RuntimeError("boom inside the forward")

    layer = v2.model.speech_encoder.encoder.layers[1]
    monkeypatch.setattr(layer, "forward", boom)
    with pytest.raises(RuntimeError, match="boom"):
        v2.extract(S.SPEECH_ENCODER, [long, short], [LANG, LANG], batch_size=2)
    monkeypatch.setattr(v2.model.text_decoder.layers[0], "forward", boom)
    with pytest.raises(RuntimeError, match="boom"):
        v2.extract(S.TEXT_DECODER_TEXT, TEXTS, [LANG, LANG])
    # the hooks were there while the forward ran (conformer layers + adaptor LayerNorms; decoder)
    cfg = v2.model.config
    assert seen == [cfg.speech_encoder_layers + 1 + 2, cfg.decoder_layers + 1]
    assert _hook_count(v2.model) == 0


def test_language_mapping_and_refusal(v2):
    known = list(S.SEAMLESS_TEXT_LANGUAGES)
    assert S.seamless_language("deu_Latn", known) == "deu"
    assert S.seamless_language("zho_Hans", known) == "cmn"
    assert S.seamless_language("cmn_Hans", known) == "cmn"
    assert S.seamless_language("zho_Hant", known) == "cmn_Hant"
    assert S.seamless_language("cmn", known) == "cmn"
    assert v2.supports_language("swh_Latn") and v2.supports_language("yue_Hant")
    assert not v2.supports_language("xyz_Latn")
    for comp, item in ((S.TEXT_ENCODER, "Hallo"), (S.SPEECH_ENCODER, _noise(SHORT, 0))):
        with pytest.raises(UnsupportedLanguageError, match=r"xyz_Latn.*eng"):
            v2.extract(comp, [item], ["xyz_Latn"])
    with pytest.raises(UnsupportedLanguageError, match="xyz_Latn"):
        v2.token_counts(["Hallo"], ["xyz_Latn"])


def test_bad_inputs_are_refused(v2):
    with pytest.raises(ValueError, match="last"):
        v2.extract(S.TEXT_ENCODER, ["Hallo"], [LANG], pooling="last")
    with pytest.raises(ValueError, match="targets"):
        v2.extract(S.TEXT_ENCODER, ["Hallo"], [LANG], targets=["Hallo"])
    with pytest.raises(ValueError, match="one target"):
        v2.extract(S.TEXT_DECODER_SPEECH, [_noise(SHORT, 0)], [LANG], targets=["a", "b"])
    with pytest.raises(ValueError, match="samples"):
        v2.extract(S.SPEECH_ENCODER, [_noise(300, 0)], [LANG])
    with pytest.raises(TypeError):
        v2.extract(S.SPEECH_ENCODER, ["not audio"], [LANG])


def test_registry_short_name_loads_the_tiny_model():
    from core.models.registry import load_model

    adapter = load_model("seamless-m4t-v2-tiny-random", device="cpu")
    assert isinstance(adapter, S.SeamlessAdapter)
    assert adapter.model.config.model_type == "seamless_m4t_v2"


def test_memory_is_checked_from_the_config_before_loading(tmp_path, monkeypatch):
    config = S.real_size_random_config()
    n = S.estimate_parameters(config)
    # the model card of facebook/seamless-m4t-v2-large gives 2.3 B parameters
    assert round(n / 1e9, 1) == 2.3
    config.save_pretrained(tmp_path)  # a local "checkpoint" holding only the real-size config
    monkeypatch.setattr(common, "available_memory_bytes", lambda device: 2**30)
    with pytest.raises(ModelTooLargeError, match=f"{n / 1e9:.2f} B parameters"):
        S.load_seamless(name="big", source=str(tmp_path), device="cpu")
    with pytest.raises(ModelTooLargeError):
        S.load_seamless(name="big", random=True, real_size=True, device="cpu")
