"""SALMONN adapter on a tiny random model of the real architecture (no download).

Real weights cannot be loaded here (no hub, no released files); the tiny model keeps the real
front ends (Whisper: 80 mel bins, 3000 mel frames, 1500 positions; BEATs: 128-bin Kaldi fbank,
16 x 16 patches) and the official window settings, so every length formula is the released one.
The loader is tested on checkpoints this file writes in the official layout (names written out
below from bytedance/SALMONN models/salmonn.py, LAVIS Qformer.py and peft's LoRA naming).
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
from core.models.salmonn.beats import fbank_frame_count, kaldi_fbank
from core.models.salmonn.config import pad_to_minimum
from core.models.salmonn import (
    BEATS_ENCODER,
    LLM_SPEECH,
    LLM_TEXT,
    QFORMER,
    WHISPER_ENCODER,
    CheckpointError,
    SalmonnAdapter,
    estimate_parameters,
    load_salmonn,
    real_size_random_config,
    speech_lengths,
)

pytestmark = pytest.mark.usefixtures("one_thread")

NAME = "salmonn-tiny-random"
SHORT_TEXT = "Hello world."
LONG_TEXT = "The quick brown fox jumps over the lazy dog, and then it runs far away again."
SPEECH = (WHISPER_ENCODER, BEATS_ENCODER, QFORMER, LLM_SPEECH)


def _wave(n_samples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(n_samples)).astype(np.float32)


#: 1.2 s and 2.5 s
SHORT_WAVE = _wave(19_200, 1)
LONG_WAVE = _wave(40_000, 2)


@pytest.fixture(scope="module")
def adapter() -> SalmonnAdapter:
    return load_salmonn(name=NAME, random=True, device="cpu")


def _hooks(model: torch.nn.Module) -> dict[str, tuple[int, int]]:
    return {name: (len(m._forward_hooks), len(m._forward_pre_hooks))
            for name, m in model.named_modules()}


# ---- description


def test_components_follow_the_config(adapter):
    c = adapter.config
    n_w, n_b, n_q, n_llm = (c.whisper.encoder_layers, c.beats.encoder_layers,
                            c.qformer.num_hidden_layers, c.llm.num_hidden_layers)
    assert (n_w, n_b, n_q, n_llm) == (2, 2, 2, 2)
    assert [x.name for x in adapter.components()] == [WHISPER_ENCODER, BEATS_ENCODER, QFORMER,
                                                      LLM_SPEECH, LLM_TEXT]
    whisper, beats, qformer, speech, text = adapter.components()
    assert [x.modality for x in adapter.components()] == ["speech"] * 4 + ["text"]
    assert whisper.stages == ("frontend", *["encoder"] * (n_w + 1))
    assert beats.stages == ("frontend", *["encoder"] * (n_b + 1))
    assert qformer.stages == ("encoder", *["length_adaptor"] * n_q)
    assert qformer.length_adaptation() == [(0, 1)]
    assert speech.stages == ("projector", *["llm"] * n_llm)
    assert text.stages == ("frontend", *["llm"] * n_llm)
    assert (whisper.dim, beats.dim, qformer.dim) == (32, 32, 128)
    assert speech.dim == text.dim == c.llm.hidden_size == 48
    assert speech.conditioning == text.conditioning
    assert speech.conditioning["template"] == \
        "<s>USER: <Speech>{CONTENT}</Speech> Repeat the content exactly.\nASSISTANT:"
    assert adapter.modality_pairs() == [(LLM_TEXT, LLM_SPEECH)]
    assert adapter.poolings == ("mean", "last")


def test_depths_run_along_one_speech_path(adapter):
    whisper, beats, qformer, speech, text = adapter.components()
    path = whisper.depths + qformer.depths + speech.depths
    n = len(path)
    np.testing.assert_allclose(path, [i / (n - 1) for i in range(n)])
    # BEATs runs beside Whisper: the same depth span, ending where the two streams are fused
    assert beats.depths[0] == 0.0 and beats.depths[-1] == pytest.approx(whisper.depths[-1])
    assert min(qformer.depths) > max(beats.depths)
    np.testing.assert_allclose(text.depths, np.linspace(0, 1, text.n_layers))


def test_spaces(adapter):
    whisper, beats, qformer, speech, text = adapter.components()
    for layer in range(text.n_layers):
        assert shares_space(text, layer, speech, layer) and text.layer_space(layer) == f"{NAME}/llm"
    others = (whisper, beats, qformer)
    assert {x.layer_space(0) for x in others} == {f"{NAME}/whisper_encoder",
                                                  f"{NAME}/beats_encoder", f"{NAME}/qformer"}
    assert not any(shares_space(a, 0, speech, 0) for a in others)


def test_info_records_provenance(adapter):
    info = adapter.info()
    assert info["family"] == "salmonn" and "random (seed 0)" in info["weights"]
    arch = info["architecture"]
    assert (arch["window_frames"], arch["window_stride_frames"], arch["queries_per_window"]) == \
        (17, 17, 1)
    assert arch["lora"] == {"rank": 8, "alpha": 32, "dropout": 0.1, "targets": ["q_proj", "v_proj"]}
    assert arch["n_parameters"] == estimate_parameters(adapter.config)
    assert info["versions"]["peft"] != "not installed"


# ---- lengths


def test_length_formulas():
    config = real_size_random_config()
    assert config.window == (17, 17)
    # (E whisper frames, B BEATs tokens, F fused frames in windows, W windows, L windows given)
    cases = {16_000: (50, 48, 50, 3, 88), 19_200: (60, 56, 60, 4, 88),
             40_000: (125, 120, 125, 8, 88), 16_001: (51, 48, 51, 3, 88),
             480_000: (1500, 1496, 1496, 88, 88)}
    for n, expected in cases.items():
        got = speech_lengths(n, config)
        assert (got.whisper_frames, got.beats_tokens, got.fused_frames, got.windows,
                got.total_windows) == expected, n
    assert fbank_frame_count(16_000) == 98 and fbank_frame_count(399) == 0


def test_positions_before_and_after_the_windows(adapter):
    waves, langs = [_wave(8_000, 3), LONG_WAVE], ["eng_Latn", "deu_Latn"]
    got = {name: adapter.extract(name, waves, langs).n_positions.tolist() for name in SPEECH}
    # the 0.5 s clip is padded to 1 s, as the official code does
    assert got[WHISPER_ENCODER] == [[50] * 4, [125] * 4]
    assert got[BEATS_ENCODER] == [[48] * 4, [120] * 4]
    assert got[QFORMER] == [[50, 3, 3], [125, 8, 8]]
    assert got[LLM_SPEECH] == [[3] * 3, [8] * 3]
    text = adapter.extract(LLM_TEXT, ["Grüße", SHORT_TEXT], ["deu_Latn", "eng_Latn"])
    # Metaspace mark + one token per character, UTF-8 bytes for the characters not in the vocab
    assert text.n_positions.tolist() == [[8] * 3, [13] * 3]
    assert adapter.token_counts(["Grüße", SHORT_TEXT], ["deu_Latn", "eng_Latn"]) == [8, 13]


def test_long_clips_are_cut_at_30_s(adapter):
    with pytest.warns(UserWarning, match="30 s"):
        extraction = adapter.extract(QFORMER, [_wave(31 * 16_000, 4)], ["eng_Latn"])
    assert extraction.n_positions.tolist() == [[1496, 88, 88]]


def test_a_clip_under_1_s_is_padded_with_silence_to_exactly_1_s():
    """The ``salmonn`` branch's choice (``prepare_one_sample``), not the v1 release's."""
    half = _wave(8_000, 5)
    padded = pad_to_minimum(half)
    assert padded.dtype == half.dtype and padded.shape == (16_000,)
    np.testing.assert_array_equal(padded[:8_000], half)
    np.testing.assert_array_equal(padded[8_000:], np.zeros(8_000, dtype=np.float32))
    assert pad_to_minimum(SHORT_WAVE) is SHORT_WAVE
    assert pad_to_minimum(_wave(16_000, 6)).size == 16_000


@pytest.mark.parametrize("component", [BEATS_ENCODER, WHISPER_ENCODER, LLM_SPEECH])
def test_a_short_clip_is_read_as_the_clip_padded_to_1_s(adapter, component):
    """Every state of a 0.5 s clip equals that of the clip with 0.5 s of silence appended by hand
    (BEATs would give 24 tokens, all different, for the clip unpadded)."""
    half = _wave(8_000, 5)
    by_hand = np.concatenate([half, np.zeros(8_000, dtype=np.float32)])
    assert adapter.extract(component, [half], ["eng_Latn"]).n_positions.tolist() == \
        adapter.extract(component, [by_hand], ["eng_Latn"]).n_positions.tolist()
    np.testing.assert_array_equal(adapter.pooled_states(component, [half], ["eng_Latn"]),
                                  adapter.pooled_states(component, [by_hand], ["eng_Latn"]))


def test_the_llm_is_given_all_88_windows_in_the_official_prompt(adapter):
    states = adapter.token_states(LLM_SPEECH, SHORT_WAVE, "eng_Latn")
    labels, mask = states.labels[0], states.pooled_mask[0]
    windows = [i for i, label in enumerate(labels) if label.startswith("<window")]
    assert len(windows) == 88 and windows == list(range(windows[0], windows[0] + 88))
    assert mask.sum() == 4 and mask[windows[:4]].all()
    before = adapter.tokenizer.decode(adapter._before_ids)
    after = adapter.tokenizer.decode(adapter._after_ids)
    assert (before, after) == ("USER: <Speech>", "</Speech> Repeat the content exactly.\nASSISTANT:")
    assert labels[0] == "<s>" and windows[0] == 1 + len(adapter._before_ids)
    np.testing.assert_allclose(states.times_s[0][windows[:3]], [0.0, 0.34, 0.68])
    ids, attention, sentence = adapter.text_ids([SHORT_TEXT])
    assert adapter.tokenizer.decode(ids[0][sentence[0]]) == SHORT_TEXT
    start = int(sentence[0].nonzero()[0, 0])
    assert ids[0][:start].tolist() == [adapter.tokenizer.bos_token_id, *adapter._before_ids]
    assert attention.all()


# ---- pooling


@pytest.mark.parametrize("component,item", [(LLM_SPEECH, LONG_WAVE), (LLM_TEXT, LONG_TEXT)])
def test_last_pooling_is_the_last_content_position(adapter, component, item):
    states = adapter.token_states(component, item, "eng_Latn")
    last = adapter.pooled_states(component, [item], ["eng_Latn"], pooling="last")[0]
    mean = adapter.pooled_states(component, [item], ["eng_Latn"], pooling="mean")[0]
    for layer, (hidden, mask) in enumerate(zip(states.layers, states.pooled_mask, strict=True)):
        index = int(np.flatnonzero(mask)[-1])
        assert index < len(mask) - 1 and not mask[index + 1:].any()
        np.testing.assert_allclose(last[layer], hidden[index], atol=1e-5)
        assert not np.allclose(last[layer], mean[layer], atol=1e-4)


def test_the_instruction_after_the_content_cannot_change_pooled_states(adapter):
    other = SalmonnAdapter(adapter.model, adapter.tokenizer, adapter.feature_extractor, name=NAME,
                           device="cpu", instruction="Translate this into German, please.")
    assert other.conditioning()["template"] != adapter.conditioning()["template"]
    for component, item in ((LLM_TEXT, SHORT_TEXT), (LLM_SPEECH, SHORT_WAVE)):
        np.testing.assert_allclose(other.pooled_states(component, [item], ["eng_Latn"]),
                                   adapter.pooled_states(component, [item], ["eng_Latn"]),
                                   atol=1e-6)


def test_the_projector_point_is_the_llm_input_and_states_follow_the_model(adapter):
    """Point 0 of llm_speech is the projection of the final Q-Former output, and the last LLM
    point passed through the final norm is the LLM's own output."""
    with torch.inference_mode():
        q = adapter.token_states(QFORMER, SHORT_WAVE, "eng_Latn")
        speech = adapter.token_states(LLM_SPEECH, SHORT_WAVE, "eng_Latn")
        projected = adapter.model.proj(torch.from_numpy(q.layers[-1])).numpy()
        np.testing.assert_allclose(speech.layers[0][speech.pooled_mask[0]],
                                   projected[q.pooled_mask[-1]], atol=1e-5)
        ids, attention, _ = adapter.text_ids([SHORT_TEXT])
        out = adapter.model.llm(input_ids=ids, attention_mask=attention, output_hidden_states=True)
        text = adapter.token_states(LLM_TEXT, SHORT_TEXT, "eng_Latn")
        for layer in range(text.n_layers - 1):
            np.testing.assert_allclose(text.layers[layer], out.hidden_states[layer][0], atol=1e-5)


# ---- LoRA, hooks, seeds, languages


def test_the_lora_adapters_are_active(adapter):
    lora = [n for n, _ in adapter.model.llm.named_parameters() if ".lora_" in n]
    assert len(lora) == 2 * 2 * 2  # A and B, q_proj and v_proj, 2 layers
    assert all(".q_proj." in n or ".v_proj." in n for n in lora)
    with_lora = adapter.pooled_states(LLM_TEXT, [SHORT_TEXT], ["eng_Latn"])
    with adapter.model.llm.disable_adapter():
        without = adapter.pooled_states(LLM_TEXT, [SHORT_TEXT], ["eng_Latn"])
    np.testing.assert_array_equal(with_lora[:, 0], without[:, 0])   # embeddings: no LoRA there
    assert not np.allclose(with_lora[:, 1:], without[:, 1:], atol=1e-4)
    np.testing.assert_array_equal(adapter.pooled_states(LLM_TEXT, [SHORT_TEXT], ["eng_Latn"]),
                                  with_lora)


def test_hooks_are_removed_also_after_a_failure(adapter, monkeypatch):
    before = _hooks(adapter.model)
    for component in SPEECH:
        adapter.extract(component, [SHORT_WAVE], ["eng_Latn"])
        adapter.token_states(component, SHORT_WAVE, "eng_Latn")
    adapter.token_states(LLM_TEXT, SHORT_TEXT, "eng_Latn")
    assert _hooks(adapter.model) == before

    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    for module in (adapter.model.llm_model.layers[-1], adapter.model.beats.layers[-1],
                   adapter.model.qformer.encoder.layer[-1]):
        monkeypatch.setattr(module, "forward", broken)
    for component, item in ((LLM_TEXT, SHORT_TEXT), (BEATS_ENCODER, SHORT_WAVE),
                            (QFORMER, SHORT_WAVE)):
        with pytest.raises(RuntimeError, match="boom"):
            adapter.extract(component, [item], ["eng_Latn"])
    assert _hooks(adapter.model) == before


def test_unknown_languages_and_bad_inputs_are_refused(adapter):
    assert adapter.supports_language("deu_Latn") and adapter.documented_language("eng_Latn")
    assert not adapter.supports_language("xxx_Xxxx")
    with pytest.raises(UnsupportedLanguageError, match="xxx_Xxxx"):
        adapter.extract(LLM_TEXT, [SHORT_TEXT], ["xxx_Xxxx"])
    with pytest.raises(UnsupportedLanguageError):
        adapter.token_states(QFORMER, SHORT_WAVE, "xxx_Xxxx")
    with pytest.raises(TypeError):
        adapter.extract(LLM_SPEECH, [SHORT_TEXT], ["eng_Latn"])
    with pytest.raises(ValueError, match="pooling"):
        adapter.extract(LLM_TEXT, [SHORT_TEXT], ["eng_Latn"], pooling="max")
    with pytest.raises(ValueError, match="exactly one"):
        load_salmonn(name=NAME, random=True, source="somewhere")
    assert adapter.extract(QFORMER, [], []).pooled.shape == (0, 3, 128)


# ---- BEATs front end


def test_kaldi_fbank_shape_and_pitch():
    t = np.arange(16_000) / 16_000
    tone = (0.3 * np.sin(2 * np.pi * 1_000 * t)).astype(np.float32)
    fbank = kaldi_fbank(tone)
    assert fbank.shape == (98, 128)
    # the loudest band is the Kaldi mel band centred nearest 1 kHz
    mel = lambda f: 1127 * np.log(1 + f / 700)
    centres = mel(20) + (np.arange(128) + 1) * (mel(8000) - mel(20)) / 129
    assert abs(int(np.median(fbank.argmax(axis=1))) - int(np.abs(centres - mel(1000)).argmin())) <= 1


# ---- sizes


def test_parameter_estimate_is_exact_and_the_real_sizes(adapter):
    assert estimate_parameters(adapter.config) == common.count_parameters(adapter.model)
    n_7b = estimate_parameters(real_size_random_config("7b"))
    assert 7.3e9 < n_7b < 7.6e9   # Vicuna 7B 6.74 B + Whisper encoder 0.64 B + BEATs + Q-Former


# ---- the loader on checkpoints in the official layout


def _official_salmonn_state(model) -> dict[str, torch.Tensor]:
    """The trainable tensors under the names the official SALMONN checkpoint uses."""
    out = {"speech_query_tokens": model.query_tokens,
           "speech_llama_proj.weight": model.proj.weight, "speech_llama_proj.bias": model.proj.bias,
           "ln_speech.weight": model.ln_speech.weight, "ln_speech.bias": model.ln_speech.bias,
           "ln_audio.weight": model.ln_audio.weight, "ln_audio.bias": model.ln_audio.bias,
           "speech_Qformer.bert.embeddings.LayerNorm.weight": model.qformer.layernorm.weight,
           "speech_Qformer.bert.embeddings.LayerNorm.bias": model.qformer.layernorm.bias,
           # a buffer the official model saves (BertEmbeddings.position_ids)
           "speech_Qformer.bert.embeddings.position_ids": torch.arange(512)[None]}
    for i, layer in enumerate(model.qformer.encoder.layer):
        p = f"speech_Qformer.bert.encoder.layer.{i}."
        parts = {
            "attention.self.query": layer.attention.attention.query,
            "attention.self.key": layer.attention.attention.key,
            "attention.self.value": layer.attention.attention.value,
            "attention.output.dense": layer.attention.output.dense,
            "attention.output.LayerNorm": layer.attention.output.LayerNorm,
            "crossattention.self.query": layer.crossattention.attention.query,
            "crossattention.self.key": layer.crossattention.attention.key,
            "crossattention.self.value": layer.crossattention.attention.value,
            "crossattention.output.dense": layer.crossattention.output.dense,
            "crossattention.output.LayerNorm": layer.crossattention.output.LayerNorm,
            "intermediate_query.dense": layer.intermediate_query.dense,
            "output_query.dense": layer.output_query.dense,
            "output_query.LayerNorm": layer.output_query.LayerNorm,
        }
        for part, module in parts.items():
            out[p + part + ".weight"], out[p + part + ".bias"] = module.weight, module.bias
    n_llm = model.config.llm.num_hidden_layers
    for i in range(n_llm):
        attn = model.llm_model.layers[i].self_attn
        for proj in ("q_proj", "v_proj"):
            module = getattr(attn, proj)
            for ab in ("A", "B"):
                key = f"llama_model.base_model.model.model.layers.{i}.self_attn.{proj}.lora_{ab}." \
                      "default.weight"
                out[key] = getattr(module, f"lora_{ab}")["default"].weight
        out[f"llama_model.base_model.model.model.layers.{i}.self_attn.rotary_emb.inv_freq"] = \
            torch.ones(6)
    return {k: v.detach().clone() for k, v in out.items()}


class _NotATensor:
    pass


@pytest.fixture(scope="module")
def official_folder(adapter, tmp_path_factory):
    """A folder in the documented layout, holding the tiny model's weights as the official files."""
    from transformers import LlamaForCausalLM, WhisperModel

    root = tmp_path_factory.mktemp("salmonn_official")
    model = adapter.model
    torch.save({"model": _official_salmonn_state(model)}, root / "salmonn_tiny.pth")
    torch.save({"cfg": adapter.config.beats.to_dict(), "model": model.beats.state_dict()},
               root / "BEATs_tiny.pt")
    whisper = WhisperModel(adapter.config.whisper)
    whisper.encoder.load_state_dict(model.whisper.state_dict())
    whisper.save_pretrained(root / "whisper")
    adapter.feature_extractor.save_pretrained(root / "whisper")
    base = {k.replace("base_layer.", ""): v for k, v in model.llm.base_model.model.state_dict().items()
            if ".lora_" not in k}
    llm = LlamaForCausalLM(adapter.config.llm)
    llm.load_state_dict(base)
    llm.save_pretrained(root / "vicuna")
    adapter.tokenizer.save_pretrained(root / "vicuna")
    return root


def test_official_checkpoints_reproduce_the_writer_models_states(adapter, official_folder):
    from core.models.registry import load_model

    loaded = load_model(str(official_folder), device="cpu")   # the registry's folder route
    assert isinstance(loaded, SalmonnAdapter)
    assert loaded.info()["ignored_buffers"] == [
        "llama_model.base_model.model.model.layers.0.self_attn.rotary_emb.inv_freq",
        "llama_model.base_model.model.model.layers.1.self_attn.rotary_emb.inv_freq",
        "speech_Qformer.bert.embeddings.position_ids"]
    assert loaded.info()["checkpoint_tensors_set"] == len(adapter.model.trainable_state_names())
    for component in (*SPEECH, LLM_TEXT):
        item = SHORT_TEXT if component == LLM_TEXT else SHORT_WAVE
        np.testing.assert_allclose(loaded.pooled_states(component, [item], ["eng_Latn"]),
                                   adapter.pooled_states(component, [item], ["eng_Latn"]),
                                   atol=1e-5, err_msg=component)


def _rewrite(folder, tmp_path, change) -> str:
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    state = torch.load(target / "salmonn_tiny.pth", weights_only=True)["model"]
    change(state)
    torch.save({"model": state}, target / "salmonn_tiny.pth")
    return str(target)


@pytest.mark.parametrize("change,message", [
    (lambda s: s.pop("speech_Qformer.bert.encoder.layer.1.output_query.dense.weight"),
     r"missing \(1\):\n    speech_Qformer.bert.encoder.layer.1.output_query.dense.weight"),
    (lambda s: s.__setitem__("speech_Qformer.bert.encoder.layer.0.extra.weight", torch.ones(2)),
     r"unexpected \(1\):\n    speech_Qformer.bert.encoder.layer.0.extra.weight"),
    (lambda s: s.__setitem__("speech_llama_proj.bias", torch.ones(7)),
     r"wrong shape \(1\):\n    speech_llama_proj.bias: checkpoint \(7,\), model \(48,\)"),
])
def test_a_checkpoint_that_does_not_fit_is_refused_clearly(official_folder, tmp_path, change,
                                                           message):
    with pytest.raises(CheckpointError, match=message):
        load_salmonn(name="bad", source=_rewrite(official_folder, tmp_path, change), device="cpu")


def test_a_pickle_with_objects_is_refused(official_folder, tmp_path):
    folder = _rewrite(official_folder, tmp_path, lambda s: None)
    state = torch.load(f"{folder}/salmonn_tiny.pth", weights_only=True)
    torch.save({**state, "trainer": _NotATensor()}, f"{folder}/salmonn_tiny.pth")
    with pytest.raises(CheckpointError, match="refusing SALMONN checkpoint"):
        load_salmonn(name="bad", source=folder, device="cpu")


def test_a_model_too_large_is_refused_before_loading(official_folder, monkeypatch):
    monkeypatch.setattr(common, "available_memory_bytes", lambda _device: 1024)
    with pytest.raises(ModelTooLargeError, match="GiB"):
        load_salmonn(name="salmonn", source=str(official_folder), device="cpu")


# ---- the whole pipeline


def test_the_whole_pipeline_runs(study_store_path):
    from core.store import Store
    from tests.conftest import study_run

    with Store.open(study_store_path) as store:
        run_id = study_run(store, NAME)
        components = store.components(run_id)
        assert set(components.component) == {WHISPER_ENCODER, BEATS_ENCODER, QFORMER, LLM_SPEECH,
                                              LLM_TEXT}
        cosine = store.metrics(run_id, metric="paired_cosine", pairing="text-speech")
        assert not cosine.empty
        assert set(zip(cosine.component_a, cosine.component_b)) == {(LLM_TEXT, LLM_SPEECH)}
        lengths = store.length_adaptation(run_id)
        q = lengths[lengths.component == QFORMER].pivot(index="item_id", columns="layer",
                                                        values="n_positions")
        assert (q[1] < q[0]).all()


def test_a_pickle_with_objects_loads_when_trusted(official_folder, tmp_path):
    """The opt-in SONAR has reaches SALMONN too: the refused file above loads with
    ``trust_checkpoint=True`` (the extra object is ignored, the weights are the same)."""
    folder = _rewrite(official_folder, tmp_path, lambda s: None)
    state = torch.load(f"{folder}/salmonn_tiny.pth", weights_only=True)
    torch.save({**state, "trainer": _NotATensor()}, f"{folder}/salmonn_tiny.pth")
    trusted = load_salmonn(name="trusted", source=folder, device="cpu", trust_checkpoint=True)
    plain = load_salmonn(name="plain", source=str(official_folder), device="cpu")
    for (name, a), (_, b) in zip(trusted.model.state_dict().items(),
                                 plain.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
