"""SONAR port on its tiny random configuration (seconds, CPU, no hub, no fairseq2).

Expected values come from independent paths: the configuration (layer counts), the fbank frame
arithmetic, checkpoints this file writes in the official fairseq2 layout (and in the fairseq layout,
renamed here by a table transcribed separately from sonar_speech/handler.py), the same input
encoded alone (padding invariance) and ``pool_token_states`` (pooling). What a released file may
hold and the memory check from a file: tests/test_models_sonar_files.py.
"""
# ruff: noqa: F811 - tiny is sonar_fixtures' fixture, imported to be requested here

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.models import load_model
from core.models import sonar as S
from core.models.base import UnsupportedLanguageError, pool_token_states
from sonar_fixtures import fairseq1_speech_names, official_speech, tiny  # noqa: F401 - tiny: a fixture

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = ["Ja.", "Das ist ein deutlich längerer Satz, der viel mehr Zeichen hat als der erste."]


def _noise(n_samples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / 16_000
    return (0.1 * rng.standard_normal(n_samples) + 0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _frames(n_samples: int, stride: int = 2) -> int:
    """Kaldi fbank frames (25 ms window, 10 ms hop, no centring), then ``stride`` stacked."""
    return (1 + (n_samples - 400) // 160) // stride


# ------------------------------------------------------------------------------------------------
# description


def test_components_layer_counts_stages_spaces_depths(tiny):
    comps = {c.name: c for c in tiny.components()}
    assert list(comps) == [S.TEXT_ENCODER, S.SPEECH_ENCODER]
    text, speech = comps[S.TEXT_ENCODER], comps[S.SPEECH_ENCODER]
    cfg = S.tiny_random_config(tiny.tokenizer.vocab_size)
    assert text.n_layers == 1 + cfg.text.num_layers + 1
    pooler_points = max(cfg.speech.pooler_layers, cfg.english_pooler_layers)
    assert tiny.n_pooler_points == pooler_points == 2
    assert speech.n_layers == 1 + cfg.speech.num_layers + pooler_points + 1
    assert text.stages == ("frontend", *["encoder"] * cfg.text.num_layers, "pooler")
    assert speech.stages == ("frontend", *["encoder"] * cfg.speech.num_layers,
                             *["pooler"] * (pooler_points + 1))
    name = tiny.name
    assert [text.layer_space(i) for i in range(text.n_layers)] == \
        [f"{name}/text_encoder"] * (text.n_layers - 1) + [f"{name}/sentence"]
    assert [speech.layer_space(i) for i in range(speech.n_layers)] == \
        [f"{name}/speech_encoder"] * (1 + cfg.speech.num_layers) \
        + [f"{name}/speech_pooler"] * pooler_points + [f"{name}/sentence"]
    for comp in (text, speech):
        assert comp.depths[0] == 0.0 and comp.depths[-1] == 1.0
        assert list(comp.depths) == sorted(comp.depths)
    assert text.dim == speech.dim == cfg.text.model_dim
    # length adaptation: the last conformer point before, the first pooler point after
    assert speech.length_adaptation() == [(cfg.speech.num_layers, cfg.speech.num_layers + 1)]
    assert tiny.modality_pairs() == [(S.TEXT_ENCODER, S.SPEECH_ENCODER)]
    assert tiny.poolings == ("mean",)


def test_only_the_sentence_points_share_a_space_in_the_measured_pairs(tiny):
    from precompute.pairs import metric_pairs

    comps = tiny.components()
    text, speech = comps
    pairs = [p for p in metric_pairs(comps, ["eng_Latn", "deu_Latn"], tiny.modality_pairs())
             if p.pairing == "text-speech"]
    shared = {(p.a.layer, p.b.layer) for p in pairs if p.shared_space}
    assert shared == {(text.n_layers - 1, speech.n_layers - 1)}
    real = S.real_size_random_config()
    # the released depths: 26 text points, 24 conformer + 6 pooler + 3 more speech points
    assert real.text.num_layers == real.speech.num_layers == 24
    assert (real.speech.pooler_layers, real.english_pooler_layers) == (6, 3)


def test_pooler_depth_per_language_maps_to_the_same_relative_depth(tiny):
    info = tiny.info()["speech_encoders"]
    assert info["eng"]["pooler_layers"] == 1 and info["deu"]["pooler_layers"] == 2
    assert info["eng"]["pooler_points"] == [1, 1] and info["deu"]["pooler_points"] == [1, 2]
    wave = _noise(16_000, 0)
    eng = tiny.token_states(S.SPEECH_ENCODER, wave, "eng_Latn")
    deu = tiny.token_states(S.SPEECH_ENCODER, wave, "deu_Latn")
    k = tiny.component(S.SPEECH_ENCODER).n_layers
    np.testing.assert_array_equal(eng.layers[k - 3], eng.layers[k - 2])  # one layer, shown twice
    assert not np.allclose(deu.layers[k - 3], deu.layers[k - 2])
    # each language has its own encoder: different weights, different states from the frontend on
    assert not np.allclose(eng.layers[0], deu.layers[0])


# ------------------------------------------------------------------------------------------------
# states


def test_n_positions_frames_before_the_pooler_one_after(tiny):
    waves = [_noise(16_000, 0), _noise(40_000, 1)]
    out = tiny.extract(S.SPEECH_ENCODER, waves, ["eng_Latn", "deu_Latn"])
    comp = tiny.component(S.SPEECH_ENCODER)
    _, after = comp.length_adaptation()[0]
    for row, wave in enumerate(waves):
        assert (out.n_positions[row, :after] == _frames(wave.size)).all()
        assert (out.n_positions[row, after:] == 1).all()
    text = tiny.extract(S.TEXT_ENCODER, TEXTS, ["deu_Latn"] * 2)
    counts = tiny.token_counts(TEXTS, ["deu_Latn"] * 2)
    assert (text.n_positions[:, :-1] == np.array(counts)[:, None]).all()
    assert (text.n_positions[:, -1] == 1).all()


def test_padding_invariance_with_mixed_languages(tiny):
    short, long = _noise(16_000, 0), _noise(56_000, 1)
    alone = tiny.extract(S.SPEECH_ENCODER, [short], ["swh_Latn"])
    mixed = tiny.extract(S.SPEECH_ENCODER, [long, short, long], ["eng_Latn", "swh_Latn", "swh_Latn"])
    np.testing.assert_allclose(mixed.pooled[1], alone.pooled[0], atol=2e-5, rtol=1e-4)
    np.testing.assert_array_equal(mixed.n_positions[1], alone.n_positions[0])
    text_alone = tiny.extract(S.TEXT_ENCODER, TEXTS[:1], ["deu_Latn"])
    text_batch = tiny.extract(S.TEXT_ENCODER, [TEXTS[1], TEXTS[0]], ["eng_Latn", "deu_Latn"])
    np.testing.assert_allclose(text_batch.pooled[1], text_alone.pooled[0], atol=2e-5, rtol=1e-4)


def test_pooled_equals_pooling_the_token_states(tiny):
    for comp, item, lang in ((S.TEXT_ENCODER, TEXTS[1], "deu_Latn"),
                             (S.SPEECH_ENCODER, _noise(20_000, 3), "deu_Latn")):
        tokens = tiny.token_states(comp, item, lang)
        pooled = tiny.extract(comp, [item], [lang])
        np.testing.assert_allclose(pool_token_states(tokens), pooled.pooled[0], atol=2e-5, rtol=1e-4)
        np.testing.assert_array_equal([int(m.sum()) for m in tokens.pooled_mask],
                                      pooled.n_positions[0])
    tokens = tiny.token_states(S.TEXT_ENCODER, TEXTS[0], "deu_Latn")
    assert tokens.labels[0][0] == "__deu_Latn__" and tokens.labels[0][-1] == "</s>"
    assert not tokens.pooled_mask[0][0] and not tokens.pooled_mask[0][-1]
    assert tokens.labels[-1] == ["<sentence>"]


def test_text_sentence_embedding_is_the_mean_over_all_tokens_of_the_final_layer_norm(tiny):
    """SONAR pools the LayerNorm'd output over every token, language token and </s> included."""
    tokens = tiny.token_states(S.TEXT_ENCODER, TEXTS[1], "deu_Latn")
    enc = tiny.text_encoder
    last = torch.from_numpy(tokens.layers[-2])
    expected = enc.layer_norm(last).mean(dim=0).detach().numpy()
    np.testing.assert_allclose(tokens.layers[-1][0], expected, atol=1e-5, rtol=1e-4)


def test_language_token_ids_follow_the_card_order(tiny):
    tok = tiny.tokenizer
    assert tok.lang_id("ace_Arab") == tok.n_pieces + 1
    assert tok.lang_id("pes_Arab") == tok.n_pieces + 1 + S.TEXT_LANGUAGES.index("pes_Arab") \
        == tok.n_pieces + 1 + 52  # the card lists pes_Arab after fao_Latn, not alphabetically
    assert tok.lang_id("cmn_Hans") == tok.lang_id("zho_Hans")
    assert tok.vocab_size == tok.n_pieces + 1 + 202 + 3
    assert len(S.TEXT_LANGUAGES) == len(set(S.TEXT_LANGUAGES)) == 202


def test_unsupported_languages_are_refused_with_the_missing_file(tiny):
    assert tiny.supports_language("deu_Latn") and not tiny.supports_language("fra_Latn")
    with pytest.raises(UnsupportedLanguageError, match=r"spenc\.v3ap\.fra\.pt"):
        tiny.extract(S.SPEECH_ENCODER, [_noise(16_000, 0)], ["fra_Latn"])
    with pytest.raises(UnsupportedLanguageError, match=r"spenc\.v5ap\.cmn\.pt"):
        tiny.extract(S.SPEECH_ENCODER, [_noise(16_000, 0)], ["zho_Hans"])
    with pytest.raises(UnsupportedLanguageError, match="xxx_Zzzz"):
        tiny.extract(S.TEXT_ENCODER, ["Hello."], ["xxx_Zzzz"])
    # the text encoder knows French: only the speech side lacks it
    assert tiny.extract(S.TEXT_ENCODER, ["Bonjour."], ["fra_Latn"]).pooled.shape[0] == 1


# ------------------------------------------------------------------------------------------------
# checkpoints


def _speech_features(n_samples=24_000, seed=5):
    from transformers import SeamlessM4TFeatureExtractor

    fe = SeamlessM4TFeatureExtractor(feature_size=80, num_mel_bins=80, sampling_rate=16_000,
                                     padding_value=0.0, stride=2)
    out = fe([_noise(n_samples, seed)], sampling_rate=16_000, return_tensors="pt",
             return_attention_mask=True)
    return out.input_features, out.attention_mask.bool()


def _speech_outputs(module, features, mask):
    with torch.inference_mode():
        recorded, queries, sentence = module(features, mask)
    return [*recorded, *queries, sentence]


@pytest.mark.parametrize("layout", ["fairseq2", "fairseq"])
def test_speech_checkpoint_round_trip_gives_identical_states(tiny, tmp_path, layout):
    state, source = official_speech(tiny, "deu")
    if layout == "fairseq":
        state = fairseq1_speech_names(state)
    path = tmp_path / "spenc.v3ap.deu.pt"
    torch.save({"model": state, "cfg": {"note": "fairseq2 checkpoints carry plain metadata"}}, path)
    loaded = S.read_checkpoint(path)
    cfg = S.speech_config_from_state(loaded, S.SpeechEncoderConfig(
        pooler_heads=source.cfg.pooler_heads))
    assert cfg == source.cfg  # every shape-derived number read back
    module = S.convert_speech_checkpoint(loaded, cfg).eval()
    features, mask = _speech_features()
    for ours, theirs in zip(_speech_outputs(module, features, mask),
                            _speech_outputs(source, features, mask), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_text_checkpoint_round_trip_gives_identical_states(tiny, tmp_path):
    cfg = tiny.text_cfg
    state = S.official_state_dict(tiny.text_encoder, S.text_name_map(cfg))
    assert "encoder.layers.0.self_attn.output_proj.weight" in state and "layer_norm.weight" in state
    path = tmp_path / "sonar_text_encoder.pt"
    torch.save({"model": state}, path)
    loaded = S.read_checkpoint(path)
    assert S.text_config_from_state(loaded, cfg) == cfg
    module = S.convert_text_checkpoint(loaded, cfg).eval()
    ids = torch.tensor([[tiny.tokenizer.lang_id("eng_Latn"), 5, 9, 1, 7, 3]])  # 1 = <unk>
    with torch.inference_mode():
        a = module(inputs_embeds=module.embed_tokens(ids)).last_hidden_state
        b = tiny.text_encoder(inputs_embeds=tiny.text_encoder.embed_tokens(ids)).last_hidden_state
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_fairseq_text_layout_reorders_the_special_embedding_rows(tiny):
    cfg = tiny.text_cfg
    state = S.official_state_dict(tiny.text_encoder, S.text_name_map(cfg))
    fs1 = {k.removeprefix("encoder.").replace("self_attn.output_proj", "self_attn.out_proj")
           .replace("ffn.inner_proj", "fc1").replace("ffn.output_proj", "fc2")
           .replace("ffn_layer_norm", "final_layer_norm"): v for k, v in state.items()}
    embed = fs1.pop("encoder_frontend.embed.weight")
    fairseq_rows = embed.clone()
    # fairseq dictionary order (BOS, PAD, EOS, UNK) from the tokenizer's (PAD, UNK, BOS, EOS)
    fairseq_rows[[0, 1, 2, 3]] = embed[[2, 0, 3, 1]]
    fs1["embed_tokens.weight"] = fairseq_rows
    module = S.convert_text_checkpoint(fs1, cfg)
    torch.testing.assert_close(module.embed_tokens.weight, embed, rtol=0, atol=0)


def test_missing_extra_and_wrong_shape_tensors_fail_with_their_names(tiny):
    state, source = official_speech(tiny, "eng")
    cfg = source.cfg
    missing = dict(state)
    del missing["encoder.layers.1.self_attn.sdpa.u_bias"]
    with pytest.raises(S.CheckpointError, match=r"missing: encoder\.layers\.1\.self_attn\.sdpa\.u_bias"):
        S.convert_speech_checkpoint(missing, cfg)
    extra = {**state, "encoder_pooler.decoder.layers.7.ffn.inner_proj.weight": torch.zeros(2)}
    with pytest.raises(S.CheckpointError, match=r"unexpected: encoder_pooler\.decoder\.layers\.7"):
        S.convert_speech_checkpoint(extra, cfg)
    wrong = {**state, "encoder_pooler.projection_out.weight": torch.zeros(3, 3)}
    with pytest.raises(S.CheckpointError, match=r"wrong shape: encoder_pooler\.projection_out\.weight"):
        S.convert_speech_checkpoint(wrong, cfg)
    # a six-layer pooler checkpoint does not fit a three-layer English architecture, and says so
    deu, _ = official_speech(tiny, "deu")
    with pytest.raises(S.CheckpointError, match=r"unexpected: encoder_pooler\.decoder\.layers\.1\."):
        S.convert_speech_checkpoint(deu, cfg)
    text = S.official_state_dict(tiny.text_encoder, S.text_name_map(tiny.text_cfg))
    del text["layer_norm.bias"]
    with pytest.raises(S.CheckpointError, match=r"missing: layer_norm\.bias"):
        S.convert_text_checkpoint(text, tiny.text_cfg)


def test_a_folder_of_speech_checkpoints_loads_lazily_through_the_registry(tiny, tmp_path):
    for iso, file in (("eng", "spenc.eng.pt"), ("deu", "spenc.v3ap.deu.pt")):
        state, _ = official_speech(tiny, iso)
        torch.save({"model": state}, tmp_path / file)
    # the pooler's head count is in no shape: the folder loader takes the release's (16)
    adapter = load_model(str(tmp_path), device="cpu")
    assert isinstance(adapter, S.SonarAdapter)
    assert adapter.speech_languages() == ["deu", "eng"] and adapter.text_encoder is None
    assert [c.name for c in adapter.components()] == [S.SPEECH_ENCODER]
    assert adapter.n_pooler_points == 2  # deu's two layers; English's one shown twice
    assert adapter.info()["speech_encoders"]["eng"]["sha256"] == "not loaded yet"
    adapter.speech_encoder("eng")
    assert len(adapter.info()["speech_encoders"]["eng"]["sha256"]) == 64
    assert not adapter.supports_language("swh_Latn")


def test_the_pipeline_builds_a_store_with_cosine_only_at_the_sentence_embeddings(
        study_store_path):
    from core.store import Store
    from tests.conftest import study_run

    store = Store.open(study_store_path)
    run_id = study_run(store, "sonar-tiny-random")
    cosine = store.metrics(run_id, metric="paired_cosine", pairing="text-speech")
    adapter = S.load_sonar(name="sonar-tiny-random", random=True, device="cpu")
    text, speech = adapter.components()
    assert not cosine.empty
    assert set(zip(cosine.layer_a, cosine.layer_b)) == {(text.n_layers - 1, speech.n_layers - 1)}
    layers = store.layers(run_id)
    assert set(layers.component) == {S.TEXT_ENCODER, S.SPEECH_ENCODER}


def test_a_full_folder_loads_text_and_speech_with_provenance(tiny, tmp_path, monkeypatch):
    """The folder path end to end; the SentencePiece file is stood in for by the tiny tokenizer
    (``sentencepiece`` is not a project requirement), everything else is read from disk."""
    torch.save({"model": S.official_state_dict(tiny.text_encoder, S.text_name_map(tiny.text_cfg))},
               tmp_path / S.TEXT_CHECKPOINT)
    (tmp_path / S.TOKENIZER_FILE).write_bytes(b"stand-in")
    state, _ = official_speech(tiny, "swh")
    torch.save({"model": state}, tmp_path / "spenc.v3ap.swh.pt")
    monkeypatch.setattr(S.NllbTokenizer, "from_sentencepiece", classmethod(lambda cls, p: cls.tiny()))
    adapter = load_model(str(tmp_path), device="cpu")
    assert [c.name for c in adapter.components()] == [S.TEXT_ENCODER, S.SPEECH_ENCODER]
    info = adapter.info()
    assert info["text_checkpoint"]["file"] == S.TEXT_CHECKPOINT
    assert len(info["text_checkpoint"]["sha256"]) == 64
    assert info["architecture"]["text"]["num_layers"] == tiny.text_cfg.num_layers
    assert adapter.supports_language("swh_Latn") and not adapter.supports_language("eng_Latn")
    # the text encoder's weights came through the file: its embedding point is the tiny model's
    # (the head count, which no shape shows, is the release's 16 here, so later layers differ)
    ours = adapter.token_states(S.TEXT_ENCODER, TEXTS[0], "swh_Latn").layers[0]
    np.testing.assert_array_equal(ours, tiny.token_states(S.TEXT_ENCODER, TEXTS[0], "swh_Latn").layers[0])
    # a tokenizer of another size is refused
    monkeypatch.setattr(S.NllbTokenizer, "from_sentencepiece", classmethod(
        lambda cls, p: cls(10, lambda t: [3], str, "wrong")))
    with pytest.raises(S.CheckpointError, match="embedding rows"):
        load_model(str(tmp_path), device="cpu")
