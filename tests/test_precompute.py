"""precompute: pair bookkeeping, the build pipeline (with a fake model whose answers are known), crash
safety, and the CLI end to end on the tiny random Whisper store."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import core.corpus
from core.models import registry
from core.models.base import Component, Extraction, ModelAdapter, TokenStates, path_points
from core.store import SCHEMA_VERSION, Store
from precompute import measure
from precompute.cli import main
from precompute.config import BuildConfig, load_corpus
from precompute.pairs import align_layers, metric_pairs, projection_groups
from tests.conftest import (
    STUDY_STORE_MODELS,
    TINY_STORE_LANGS,
    TINY_STORE_MODEL,
    TINY_STORE_N_SENTENCES,
    study_run,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------- pairs and layer alignment
def _comp(name: str, modality: str, n_layers: int, dim: int, space: str) -> Component:
    stage = "encoder" if modality == "speech" else "decoder"
    return Component(name, modality, dim, space,
                     path_points([(stage, [f"{name} {i}" for i in range(n_layers)])]), name)


SPEECH = _comp("speech_encoder", "speech", 3, 8, "m/shared")
TEXT = _comp("text_decoder", "text", 3, 8, "m/shared")


def test_align_equal_depths_is_identity():
    assert align_layers(4, 4) == [(0, 0, 0.0), (1, 1, 1 / 3), (2, 2, 2 / 3), (3, 3, 1.0)]


def test_align_different_depths_by_relative_depth():
    # 3 layers against 7: depths 0, 0.5, 1 -> layers 0, 3, 6 of the deeper stack
    assert align_layers(3, 7) == [(0, 0, 0.0), (1, 3, 0.5), (2, 6, 1.0)]
    assert align_layers(7, 3) == [(0, 0, 0.0), (3, 1, 0.5), (6, 2, 1.0)]
    # 4 against 13: depth 1/3 -> layer 4, 2/3 -> layer 8
    assert [b for _, b, _ in align_layers(4, 13)] == [0, 4, 8, 12]
    assert align_layers(1, 5) == [(0, 0, 0.0)]
    with pytest.raises(ValueError):
        align_layers(0, 3)


def test_metric_pairs_cover_the_study_pairings():
    langs = ["eng_Latn", "deu_Latn", "yor_Latn"]
    pairs = metric_pairs([SPEECH, TEXT], langs)
    by_pairing: dict[str, list] = {}
    for p in pairs:
        by_pairing.setdefault(p.pairing, []).append(p)
    # same modality: 3 unordered language pairs x 3 layers, lang_a < lang_b
    for pairing, comp in (("text-text", "text_decoder"), ("speech-speech", "speech_encoder")):
        rows = by_pairing[pairing]
        assert len(rows) == 9
        assert all(p.a.lang < p.b.lang and p.a.component == p.b.component == comp for p in rows)
        assert all(p.a.layer == p.b.layer for p in rows)
    # text-speech: all ordered language pairs including same-language, text on side a
    rows = by_pairing["text-speech"]
    assert len(rows) == 9 * 3
    assert {(p.a.lang, p.b.lang) for p in rows} == {(a, b) for a in langs for b in langs}
    assert all(p.a.component == "text_decoder" and p.b.component == "speech_encoder" for p in rows)
    assert all(p.modality_a == "text" and p.modality_b == "speech" for p in rows)
    keys = [(p.a.key, p.b.key) for p in pairs]
    assert len(set(keys)) == len(keys)


def test_metric_pairs_text_only_model():
    pairs = metric_pairs([TEXT], ["eng_Latn", "deu_Latn"])
    assert {p.pairing for p in pairs} == {"text-text"} and len(pairs) == 3


def test_metric_pairs_record_whether_the_two_points_share_a_space():
    assert all(p.shared_space for p in metric_pairs([SPEECH, TEXT], ["eng_Latn", "deu_Latn"]))
    other = _comp("text_decoder", "text", 3, 8, "m/decoder")
    pairs = metric_pairs([SPEECH, other], ["eng_Latn", "deu_Latn"])
    assert {p.shared_space for p in pairs if p.pairing == "text-speech"} == {False}
    assert {p.shared_space for p in pairs if p.pairing != "text-speech"} == {True}


def test_metric_pairs_follow_the_adapters_modality_pairs():
    second = _comp("text_encoder", "text", 2, 8, "m/text_encoder")
    pairs = metric_pairs([SPEECH, TEXT, second], ["eng_Latn"],
                         modality_pairs=[("text_decoder", "speech_encoder")])
    assert {(p.a.component, p.b.component) for p in pairs if p.pairing == "text-speech"} == \
        {("text_decoder", "speech_encoder")}
    with pytest.raises(ValueError, match="must be \\(text, speech\\)"):
        metric_pairs([SPEECH, TEXT], ["eng_Latn"], modality_pairs=[("speech_encoder", "text_decoder")])


def test_length_adaptor_before_and_after_meet_the_same_text_layer():
    from core.models.base import LayerPoint

    speech = Component("speech_encoder", "speech", 8, "m/speech",
                       (*path_points([("frontend", ["in"]), ("encoder", [f"b{i}" for i in range(8)])]),
                        LayerPoint("adapted", "length_adaptor", 1.0)), "s")
    text = _comp("text_encoder", "text", 3, 8, "m/text")
    assert speech.length_adaptation() == [(8, 9)]
    pairs = metric_pairs([speech, text], ["eng_Latn"])
    text_speech = {(p.a.layer, p.b.layer) for p in pairs if p.pairing == "text-speech"}
    assert {(2, 8), (2, 9)} <= text_speech  # plain align_layers(3, 10) skips layer 8
    assert (2, 8) not in {(a, b) for a, b, _ in align_layers(3, 10)}


def test_projection_groups_joint_when_spaces_match():
    assert projection_groups([SPEECH, TEXT]) == [[("text_decoder", i), ("speech_encoder", i)]
                                                  for i in range(3)]


def test_projection_groups_separate_across_spaces_or_where_depths_leave_layers():
    for other in (_comp("text_decoder", "text", 3, 16, "m/shared"),
                  _comp("text_decoder", "text", 3, 8, "m/decoder")):
        groups = projection_groups([SPEECH, other])
        assert sorted(groups) == sorted([[("speech_encoder", i)] for i in range(3)]
                                        + [[("text_decoder", i)] for i in range(3)])
    deep_speech = _comp("speech_encoder", "speech", 5, 8, "m/shared")
    groups = projection_groups([deep_speech, TEXT])
    assert [g for g in groups if len(g) == 2] == [[("text_decoder", 0), ("speech_encoder", 0)],
                                                  [("text_decoder", 1), ("speech_encoder", 2)],
                                                  [("text_decoder", 2), ("speech_encoder", 4)]]
    assert sorted(g[0] for g in groups if len(g) == 1) == [("speech_encoder", 1), ("speech_encoder", 3)]


# ---------------------------------------------------------------------- a fake model with known answers
# Sentences written for this test. The fake model only looks them up; their content does not matter.
FAKE_CORPUS = {
    "eng_Latn": ["The cat sleeps on the warm windowsill.", "We walked to the station in the rain.",
                 "My brother repairs old bicycles.", "The soup needs a little more salt.",
                 "The children laughed at the red balloon.", "She reads the newspaper every morning."],
    "deu_Latn": ["Die Katze schläft auf der warmen Fensterbank.", "Wir gingen im Regen zum Bahnhof.",
                 "Mein Bruder repariert alte Fahrräder.", "Die Suppe braucht etwas mehr Salz.",
                 "Die Kinder lachten über den roten Ballon.", "Sie liest jeden Morgen die Zeitung."],
    "swh_Latn": ["Paka analala kwenye dirisha lenye joto.", "Tulitembea hadi stesheni mvua ikinyesha.",
                 "Kaka yangu anatengeneza baiskeli za zamani.", "Supu inahitaji chumvi kidogo zaidi.",
                 "Watoto walicheka puto jekundu.", "Yeye husoma gazeti kila asubuhi."],
}
FAKE_LANGS = list(FAKE_CORPUS)
N_FAKE = 6
SAMPLES_PER_POSITION = 1600  # fake clip of sentence p is (p + 1) * 1600 samples long


class FakeAdapter(ModelAdapter):
    """States = sentence vector + language noise that fades with depth, the same for text and speech.

    So at matching depths a sentence's text and speech states are identical (text-speech, same
    language: paired cosine 1, retrieval 1), and cross-language similarity rises with depth. Speech has
    5 layers and text 3, so the build must align speech layers 0, 2, 4 with text layers 0, 1, 2.
    """

    def __init__(self, name: str = "fake-model", device: str | None = None):
        self.name, self.device = name, "cpu"
        rng = np.random.default_rng(0)
        self.sentence = rng.normal(size=(N_FAKE, 8))
        self.noise = {lang: 3 * rng.normal(size=(N_FAKE, 8)) for lang in FAKE_LANGS}
        self.position = {(lang, text): i for lang, texts in FAKE_CORPUS.items()
                         for i, text in enumerate(texts)}
        self.calls: list[tuple[str, int]] = []

    #: both components write into one space, as an LLM fed text or speech does
    space = "fake/shared"

    def components(self) -> list[Component]:
        return [Component("speech_encoder", "speech", 8, self.space,
                          path_points([("encoder", tuple("abcde"))]), "fake speech"),
                Component("text_decoder", "text", 8, self.space,
                          path_points([("decoder", tuple("xyz"))]), "fake text")]

    def state(self, lang: str, position: int, n_layers: int) -> np.ndarray:
        return np.stack([self.sentence[position] + (1 - layer / (n_layers - 1)) * self.noise[lang][position]
                         for layer in range(n_layers)])

    def extract(self, component, inputs, langs, *, sampling_rate=16_000, batch_size=8,
                pooling="mean"):
        comp = self.component(component)
        self.calls.append((component, len(inputs)))
        if comp.modality == "text":
            positions = [self.position[(lang, text)] for text, lang in zip(inputs, langs)]
        else:
            positions = [len(wave) // SAMPLES_PER_POSITION - 1 for wave in inputs]
        pooled = np.stack([self.state(lang, p, comp.n_layers)
                           for lang, p in zip(langs, positions)]).astype(np.float32)
        counts = np.repeat(np.asarray(positions)[:, None] + 1, comp.n_layers, axis=1)
        return Extraction(pooled, counts)

    def token_states(self, component, item, lang, *, sampling_rate=16_000) -> TokenStates:
        raise NotImplementedError

    def supports_language(self, lang):
        return lang in FAKE_CORPUS

    def transcribe(self, waveforms, langs, *, sampling_rate=16_000, batch_size=8, max_new_tokens=None):
        # perfect English, nothing elsewhere
        return [FAKE_CORPUS[lang][len(w) // SAMPLES_PER_POSITION - 1] if lang == "eng_Latn" else ""
                for w, lang in zip(waveforms, langs)]

    def token_counts(self, texts, langs):
        return [len(t.split()) for t in texts]


def _fake_speech(corpus, lang, position, *, cache_dir=None, voice_rank=0):
    # the second voice is quieter: same length (the fake model reads position from it)
    return np.full((position + 1) * SAMPLES_PER_POSITION, 0.1 / (1 + voice_rank), dtype=np.float32)


@pytest.fixture
def fake_setup(tmp_path, monkeypatch):
    """A line-aligned corpus directory, fake speech, and ``fake-model`` in the registry."""
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    for lang, texts in FAKE_CORPUS.items():
        (corpus_dir / f"{lang}.dev").write_text("\n".join(texts) + "\n", encoding="utf-8")
    _fake_registry(monkeypatch)
    return corpus_dir


def _fake_registry(monkeypatch) -> None:
    monkeypatch.setattr(core.corpus, "speech_waveform", _fake_speech)
    monkeypatch.setattr(registry, "FAMILIES",
                        (*registry.FAMILIES, registry.Family("fake", (), FakeAdapter, "fake")))
    monkeypatch.setattr(registry, "SHORT_NAMES",
                        (*registry.SHORT_NAMES, registry.ShortName("fake-model", "fake")))


def _fake_argv(corpus_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["build", "--corpus", str(corpus_dir), "--langs", ",".join(FAKE_LANGS),
            "--model", "fake-model", "--out", str(out), "--n-permutations", "4", "--n-bootstrap", "6",
            "--umap-n-neighbors", "5", *extra]


@pytest.mark.slow
def test_build_with_fake_model_stores_what_the_model_said(fake_setup, tmp_path):
    out = tmp_path / "fake.duckdb"
    assert main(_fake_argv(fake_setup, out, "--activation-dtype", "float32")) == 0
    fake = FakeAdapter()
    with Store.open(out) as store:
        (run_id,) = store.runs().run_id
        run = store.run(run_id)
        assert run["status"] == "complete"
        config = run["config"]
        assert config["langs"] == FAKE_LANGS and config["n_permutations"] == 4
        assert config["command_line"][:3] == ["build", "--corpus", str(fake_setup)]
        assert config["text_length_unit"] == "tokens" and config["transcribed"]
        assert config["pooling"] == "mean"
        assert config["components"]["text_decoder"]["space"] == FakeAdapter.space
        assert {"python", "torch", "duckdb", "numpy", "espeak-ng", "git_commit"} <= set(run["versions"])

        # items: transcripts and CER from the model, token counts from the model
        speech = store.items("speech", run_id=run_id).set_index(["lang", "sentence_id"])
        assert (speech.loc["eng_Latn", "cer"] == 0).all()
        assert (speech.loc["deu_Latn", "cer"] == 1).all()
        assert speech.loc[("eng_Latn", 2), "transcript"] == FAKE_CORPUS["eng_Latn"][2]
        assert speech.loc[("deu_Latn", 3), "duration_s"] == pytest.approx(4 * SAMPLES_PER_POSITION / 16_000)
        text = store.items("text", run_id=run_id).set_index(["lang", "sentence_id"])
        assert text.loc[("eng_Latn", 1), "n_tokens"] == len(FAKE_CORPUS["eng_Latn"][1].split())

        # activations: each item's stored vector is the model's state for that very sentence
        for component, layer, n_layers in (("speech_encoder", 3, 5), ("text_decoder", 1, 3)):
            items, vectors = store.activations(run_id, component, layer)
            assert len(items) == 18
            expected = np.stack([fake.state(lang, sid, n_layers)[layer]
                                 for lang, sid in zip(items.lang, items.sentence_id)])
            np.testing.assert_allclose(vectors, expected, rtol=1e-6)
            # pooled positions recorded per item (the fake pools p + 1 positions for sentence p)
            np.testing.assert_array_equal(items.n_positions, items.sentence_id + 1)
        layers = store.layers(run_id)
        assert layers[layers.component == "speech_encoder"].stage.tolist() == ["encoder"] * 5
        assert layers.depth.between(0, 1).all()

        # metrics: layers aligned by depth, and the answers the construction implies
        metrics = store.metrics(run_id, metric="paired_cosine")
        text_speech = metrics[metrics.pairing == "text-speech"]
        assert sorted(set(zip(text_speech.layer_a, text_speech.layer_b, text_speech.depth))) == \
            [(0, 0, 0.0), (1, 2, 0.5), (2, 4, 1.0)]
        same_lang = text_speech[text_speech.lang_a == text_speech.lang_b]
        np.testing.assert_allclose(same_lang.value, 1.0, atol=1e-9)
        other = text_speech[(text_speech.lang_a != text_speech.lang_b) & (text_speech.layer_a == 0)]
        assert (other.value < 0.9).all()
        retrieval = store.metrics(run_id, metric="retrieval", pairing="text-speech")
        np.testing.assert_allclose(retrieval[retrieval.lang_a == retrieval.lang_b].value, 1.0)
        text_text = store.metrics(run_id, metric="paired_cosine", pairing="text-text")
        by_layer = text_text.groupby("layer_a").value.mean()
        assert by_layer[0] < by_layer[1] < by_layer[2] == pytest.approx(1.0)
        speech_pairs = store.metrics(run_id, pairing="speech-speech")
        assert sorted(speech_pairs.layer_a.unique()) == [0, 1, 2, 3, 4]
        cross = speech_pairs[speech_pairs.lang_a != speech_pairs.lang_b]
        assert (cross.lang_a < cross.lang_b).all()
        # all three languages have a second espeak-ng voice in the table: each gets a voice-change
        # row per layer and metric (same language, first voice vs second)
        voice = speech_pairs[speech_pairs.lang_a == speech_pairs.lang_b]
        assert set(voice.lang_a) == {"eng_Latn", "deu_Latn", "swh_Latn"}
        assert len(voice) == 3 * 5 * speech_pairs.metric.nunique()
        with_voices = store.items("speech", all_voices=True)
        second = with_voices[with_voices.voice_rank == 1]
        assert sorted(set(second.lang)) == ["deu_Latn", "eng_Latn", "swh_Latn"]
        assert len(second) == 3 * 6
        assert second.voice.str.endswith("+f3").all()
        assert not store.items("speech").voice_rank.any()
        # the fake family publishes no per-language amounts: Whisper's levels, labelled a proxy
        levels = store.run_languages(run_id)
        assert levels.lang.tolist() == sorted(FAKE_LANGS)
        assert levels.level_source.str.startswith("proxy: fake-model").all()
        n_pairs = 3 * 3 + 5 * (3 + 3) + 3 * 9  # text-text, speech-speech (+ 3 voice pairs), text-speech
        assert len(store.metrics(run_id)) == n_pairs * 6
        assert set(store.metrics(run_id).pooling) == {"mean"}
        assert store.metrics(run_id).shared_space.all()
        assert store.metrics(run_id).length_baseline.notna().any()
        # bootstrap values stored per row, intervals centred on the value
        rows = store.metrics(run_id, metric="svcca", with_resamples=True)
        assert rows.resamples.notna().all() and set(rows.ci_method) == {"bootstrap_se"}
        finite = rows[rows.ci_low.notna()]
        assert ((finite.ci_low <= finite.value) & (finite.value <= finite.ci_high)).all()
        # SVCCA at the k the 6 sentences allow (k < n / 2), for the pairs findings read
        variants = store.metric_variants(run_id)
        assert set(variants.variant) == {"svcca_k"}  # 6 sentences: too few to length-match
        assert {json.loads(p)["k"] for p in variants.params} == {2}
        assert not ((variants.pairing == "text-speech") & (variants.lang_a != variants.lang_b)).any()

        # projections: joint text+speech maps at matching depths, speech-only for the others
        projections = store.projections(run_id)
        assert len(projections) == 3 * 36 + 2 * 18
        joint = projections[(projections.component == "speech_encoder") & (projections.layer == 2)]
        assert json.loads(joint.params.iloc[0])["joint"] == ["text_decoder:1", "speech_encoder:2"]
        assert set(projections[projections.layer == 3].modality) == {"speech"}
        assert np.isfinite(projections[["x", "y"]].to_numpy()).all()


def test_build_records_every_model_as_its_own_run(fake_setup, tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "SHORT_NAMES",
                        (*registry.SHORT_NAMES, registry.ShortName("fake-model-2", "fake")))
    out = tmp_path / "two.duckdb"
    assert main(_fake_argv(fake_setup, out, "--model", "fake-model-2", "--no-umap",
                           "--metrics", "svcca,paired_cosine")) == 0
    with Store.open(out) as store:
        runs = store.runs()
        assert runs.model.tolist() == ["fake-model", "fake-model-2"]
        first_id, second_id = runs.run_id
        # transcripts are per run: each model's own
        for run_id in (first_id, second_id):
            speech = store.items("speech", run_id=run_id)
            assert speech.transcript.notna().all()
        assert store.items("speech").transcript.isna().all()  # no run named: no measurement
        assert store.metric_names(runs.run_id.iloc[1]) == ["paired_cosine", "svcca"]
        assert store.counts()["projections"] == 0
        assert store.counts()["items"] == 36 + 3 * 6  # shared by both runs (with second voices)


@pytest.mark.slow
def test_crash_mid_build_keeps_the_old_store(fake_setup, tmp_path, monkeypatch):
    out = tmp_path / "lens.duckdb"
    assert main(_fake_argv(fake_setup, out, "--no-umap", "--metrics", "svcca")) == 0
    with Store.open(out) as store:
        old_runs = store.runs().run_id.tolist()

    reader = Store.open(out)  # a dashboard holding the old file open
    reached = []

    def crash(*args, **kwargs):
        reached.append(True)
        raise RuntimeError("simulated crash after activations and metrics were written")

    monkeypatch.setattr(measure, "compute_projections", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(_fake_argv(fake_setup, out, "--metrics", "svcca"))
    assert reached  # it crashed mid-build, not before starting
    assert reader.runs().run_id.tolist() == old_runs
    reader.close()
    with Store.open(out) as store:
        assert store.runs().run_id.tolist() == old_runs
        assert store.runs().status.tolist() == ["complete"]
    # no temp store; the finished parts wait in lens.duckdb.parts/ for a rerun to resume from
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "lens.duckdb", "lens.duckdb.parts"]
    monkeypatch.undo()
    _fake_registry(monkeypatch)
    assert main(_fake_argv(fake_setup, out, "--metrics", "svcca")) == 0  # resumes, then publishes
    with Store.open(out) as store:
        assert store.runs().run_id.tolist()[0] == old_runs[0] and len(store.runs()) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "lens.duckdb"]


@pytest.mark.slow
def test_sigterm_mid_build_removes_the_temp_file(tmp_path):
    out = tmp_path / "killed.duckdb"
    argv = [sys.executable, "-m", "precompute", "build", "--langs", "eng_Latn", "--n-sentences", "4",
            "--model", "whisper-tiny-random", "--out", str(out), "--speech-cache", str(tmp_path / "c")]
    process = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("killed.duckdb.parts/*/items/*.parquet")):
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "the build never wrote a part"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    # 143 (SystemExit from our handler), or 1 when DuckDB turned the signal into "Query interrupted"
    assert process.wait(timeout=60) != 0
    process.stderr.close()
    # no store, no temp file (store or part): only the finished parts, for a rerun to resume from
    assert not out.exists() and not list(tmp_path.rglob("*.tmp-*"))
    assert {p.name for p in tmp_path.glob("killed.duckdb*")} <= {"killed.duckdb.parts"}


def test_build_errors_are_clear(fake_setup, tmp_path, capsys):
    out = tmp_path / "x.duckdb"
    assert main(_fake_argv(fake_setup, out, "--metrics", "svcca,nonsense")) == 1
    assert "unknown metric(s) ['nonsense']" in capsys.readouterr().err
    assert main(["build", "--corpus", str(fake_setup), "--langs", "eng_Latn,klingon",
                 "--model", "fake-model", "--out", str(out)]) == 1
    assert "klingon" in capsys.readouterr().err
    assert main(["build", "--corpus", str(tmp_path / "missing"), "--model", "fake-model",
                 "--out", str(out)]) == 1
    assert "neither 'bundled' nor a directory" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob("*.tmp-*"))


def test_load_corpus_reads_a_flores_directory_with_its_suffix(shared_data):
    config = BuildConfig(models=("m",), corpus=str(shared_data("data", "flores200", "dev")),
                         langs=("eng_Latn", "deu_Latn"), n_sentences=3)
    corpus = load_corpus(config)
    assert corpus.langs == ["eng_Latn", "deu_Latn"] and corpus.sentence_ids == [0, 1, 2]
    assert all(len(corpus.texts[lang]) == 3 and all(corpus.texts[lang]) for lang in corpus.langs)
    with pytest.raises(FileNotFoundError, match=r"\.devtest"):
        load_corpus(BuildConfig(models=("m",), corpus=config.corpus, suffix=".devtest"))


def test_language_without_voice_or_recordings_is_a_clear_error(tmp_path, capsys):
    corpus_dir = tmp_path / "corpus"
    corpus_dir.mkdir()
    for lang in ("eng_Latn", "yor_Latn"):  # the language table has no espeak-ng voice for Yoruba
        (corpus_dir / f"{lang}.dev").write_text("One line.\nTwo lines.\n", encoding="utf-8")
    out = tmp_path / "x.duckdb"
    argv = ["build", "--corpus", str(corpus_dir), "--model", "whisper-tiny-random", "--out", str(out),
            "--speech-cache", str(tmp_path / "cache")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "cannot make speech for yor_Latn" in err and "--langs" in err
    assert not out.exists() and not list(tmp_path.glob("*.tmp-*"))


def test_report_and_info_on_missing_store_fail_cleanly(tmp_path, capsys):
    for command in ("report", "info"):
        assert main([command, "--store", str(tmp_path / "none.duckdb")]) == 1
        err = capsys.readouterr().err
        assert "no store at" in err and "precompute build" in err and "Traceback" not in err


def test_migrate_command_brings_an_old_store_up_to_date(tmp_path, monkeypatch, capsys):
    import core.store.migrations as store_module
    from core.store.schema import MIGRATIONS, SCHEMA_VERSION

    path = tmp_path / "old.duckdb"
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:1])
    Store.create(path).close()
    monkeypatch.undo()
    assert main(["info", "--store", str(path)]) == 1
    assert "precompute migrate" in capsys.readouterr().err
    assert main(["migrate", "--store", str(path)]) == 0
    assert f"schema version {SCHEMA_VERSION}" in capsys.readouterr().out
    assert main(["info", "--store", str(path)]) == 0


# ---------------------------------------------------------------------- the tiny random Whisper store
def test_tiny_store_end_to_end(tiny_store_path):
    n_items = len(TINY_STORE_LANGS) * TINY_STORE_N_SENTENCES
    with Store.open(tiny_store_path) as store:
        runs = store.runs()
        assert runs.model.tolist() == [TINY_STORE_MODEL] and runs.status.tolist() == ["complete"]
        run_id = runs.run_id.iloc[0]
        assert store.languages().lang.tolist() == sorted(TINY_STORE_LANGS)
        assert set(store.languages().resource_level) == {"high", "medium", "low"}
        components = store.components(run_id)
        assert components.component.tolist() == ["speech_encoder", "text_decoder"]
        n_layers = int(components.n_layers.iloc[0])
        speech = store.items("speech", run_id=run_id)
        assert len(speech) == n_items and speech.duration_s.gt(0.5).all()
        assert speech.transcript.notna().all() and speech.cer.notna().all()
        assert speech.voice.str.startswith("espeak-ng").all()
        levels = store.run_languages(run_id)  # Whisper brings its own levels
        assert set(levels.resource_level) == {"high", "medium", "low"}
        assert levels.level_source.str.startswith("this model's training data").all()
        items, vectors = store.activations(run_id, "speech_encoder", n_layers - 1)
        assert vectors.shape == (n_items, int(components.dim.iloc[0])) and np.isfinite(vectors).all()
        metrics = store.metrics(run_id)
        # Whisper's encoder and decoder streams are different spaces: text-speech pairs get no
        # paired cosine or retrieval, the other pairings every metric
        n_metrics = len(store.metric_names(run_id))
        with_voices = store.items("speech", all_voices=True)
        n_second = with_voices[with_voices.voice_rank == 1].lang.nunique()  # voice-change pairs
        assert len(metrics) == (3 + 3 + n_second) * n_layers * n_metrics \
            + 9 * n_layers * (n_metrics - 2)
        text_speech = metrics[metrics.pairing == "text-speech"]
        assert not text_speech.shared_space.any()
        assert set(text_speech.metric) == {"svcca", "linear_cka", "cka_debiased", "mutual_knn"}
        assert metrics.ci_low.notna().any() and metrics.baseline_mean.notna().any()
        assert set(metrics.stage_a.dropna()) >= {"frontend", "decoder"}
        projections = store.projections(run_id)
        assert len(projections) == 2 * n_items * n_layers
        assert set(projections.modality) == {"text", "speech"}
        assert projections.groupby(["component", "layer"]).modality.nunique().eq(1).all()


def test_info_prints_runs_schema_and_counts(tiny_store_path, capsys):
    assert main(["info", "--store", str(tiny_store_path)]) == 0
    out = capsys.readouterr().out
    assert f"schema version: {SCHEMA_VERSION}" in out
    assert f"model={TINY_STORE_MODEL}" in out and "status=complete" in out
    # text, speech, and speech in a second voice (all three tiny-store languages have one)
    n_items = 3 * len(TINY_STORE_LANGS) * TINY_STORE_N_SENTENCES
    assert f"items={n_items}" in out and "languages (3): eng_Latn, ita_Latn, swh_Latn" in out


def test_report_prints_findings(tiny_store_path, capsys):
    from core import findings
    with Store.open(tiny_store_path) as store:
        run_id = store.runs().run_id.iloc[0]
    assert main(["report", "--store", str(tiny_store_path)]) == 0
    out = capsys.readouterr().out
    assert f"== {run_id} ==" in out
    for title in findings._TITLES.values():
        assert title in out
    # six sentences are below the minimum evidence: nothing is decided, and the report says why
    assert out.count("NOT ENOUGH DATA") == 4
    assert f"only {TINY_STORE_N_SENTENCES} sentences" in out
    assert main(["report", "--store", str(tiny_store_path), "--run", "no-such-run"]) == 1
    assert "no run 'no-such-run'" in capsys.readouterr().err


def test_activations_frame_matches_pandas_types(tiny_store_path):
    with Store.open(tiny_store_path) as store:
        run_id = store.runs().run_id.iloc[0]
        items, _ = store.activations(run_id, "text_decoder", 0, langs=["swh_Latn"])
    assert isinstance(items, pd.DataFrame) and set(items.lang) == {"swh_Latn"}
    assert items.sentence_id.tolist() == sorted(items.sentence_id)


# ---------------------------------------------------------------------- precompute metrics (recompute)
METRIC_KEYS = ["pairing", "component_a", "component_b", "layer_a", "layer_b", "lang_a", "lang_b",
               "metric"]
METRIC_VALUES = ["value", "baseline_mean", "baseline_std", "ci_low", "ci_high", "length_baseline",
                 "value_residualised"]


@pytest.fixture
def tiny_copy(tiny_store_path, tmp_path) -> Path:
    """A private copy of the session's tiny store, which recompute may replace."""
    path = tmp_path / "tiny.duckdb"
    shutil.copyfile(tiny_store_path, path)
    return path


def _snapshot(path: Path) -> tuple[str, dict, pd.DataFrame, pd.DataFrame]:
    with Store.open(path) as store:
        (run_id,) = store.runs().run_id
        return run_id, store.run(run_id), store.metrics(run_id), store.projections(run_id)


def _matched(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    merged = old.merge(new, on=METRIC_KEYS, suffixes=("", "_new"), validate="one_to_one")
    assert len(merged) == len(old) == len(new)
    return merged


def test_recompute_with_defaults_reproduces_the_build(tiny_copy, tmp_path, capsys):
    run_id, run, metrics, projections = _snapshot(tiny_copy)
    assert main(["metrics", "--store", str(tiny_copy)]) == 0
    assert f"recomputed {run_id} in {tiny_copy}: {len(metrics)} metric rows" in capsys.readouterr().out
    _, new_run, new_metrics, new_projections = _snapshot(tiny_copy)

    merged = _matched(metrics, new_metrics)
    for column in METRIC_VALUES:
        np.testing.assert_allclose(merged[f"{column}_new"], merged[column], rtol=0, atol=1e-9,
                                   err_msg=column)
    assert (merged.n_samples_new == merged.n_samples).all()
    assert [json.loads(p) for p in merged.params_new] == [json.loads(p) for p in merged.params]
    assert merged.ci_low.notna().any() and merged.baseline_mean.notna().any()

    keys = ["component", "layer", "item_id"]
    pd.testing.assert_frame_equal(new_projections.sort_values(keys).reset_index(drop=True),
                                  projections.sort_values(keys).reset_index(drop=True),
                                  check_exact=False, atol=1e-6)

    config, new_config = run["config"], new_run["config"]
    (entry,) = new_config["recomputed"]
    assert entry["recomputed"] == ["metrics", "projections"]
    assert entry["command_line"] == ["metrics", "--store", str(tiny_copy)]
    assert {"git_commit", "numpy", "torch"} <= set(entry["versions"])
    for name in ("n_permutations", "n_bootstrap", "seed", "metrics", "umap_n_neighbors",
                 "umap_min_dist", "text_length_unit"):
        assert entry["settings"][name] == config[name]
    assert {k: v for k, v in new_config.items() if k != "recomputed"} == config
    assert new_run["versions"] == run["versions"]  # the build's, kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.duckdb"]  # no temp files


def test_recompute_with_new_settings_replaces_rows_and_records_them(tiny_copy):
    run_id, run, metrics, projections = _snapshot(tiny_copy)
    assert run["config"]["n_permutations"] == 3 and run["config"]["metrics"] is None
    argv = ["metrics", "--store", str(tiny_copy), "--run", run_id, "--metrics", "svcca",
            "--n-permutations", "2", "--no-umap"]
    assert main(argv) == 0
    _, new_run, new_metrics, new_projections = _snapshot(tiny_copy)

    assert set(new_metrics.metric) == {"svcca"}
    merged = _matched(metrics[metrics.metric == "svcca"], new_metrics)
    np.testing.assert_allclose(merged.value_new, merged.value, atol=1e-9)  # not drawn: unchanged
    np.testing.assert_allclose(merged.ci_low_new, merged.ci_low, atol=1e-9)  # same bootstrap draws
    assert not np.allclose(merged.baseline_mean_new, merged.baseline_mean, equal_nan=True)
    pd.testing.assert_frame_equal(new_projections, projections)  # --no-umap keeps the maps

    config = new_run["config"]
    assert config["metrics"] == ["svcca"] and config["n_permutations"] == 2
    assert config["n_bootstrap"] == run["config"]["n_bootstrap"] == 5
    (entry,) = config["recomputed"]
    assert entry["recomputed"] == ["metrics"] and entry["command_line"] == argv
    assert entry["settings"]["metrics"] == ["svcca"] and entry["settings"]["n_permutations"] == 2
    assert "umap_n_neighbors" not in entry["settings"]


@pytest.mark.parametrize("crash_at", ["compute_metrics", "update_run_config"])
def test_crash_mid_recompute_leaves_the_store_untouched(tiny_copy, tmp_path, monkeypatch, crash_at):
    before = tiny_copy.read_bytes()
    temp_files_at_crash = []

    def crash(*args, **kwargs):
        temp_files_at_crash.extend(tmp_path.glob("tiny.duckdb.tmp-*"))
        raise RuntimeError("simulated crash")

    if crash_at == "compute_metrics":
        monkeypatch.setattr(measure, "compute_metrics", crash)
    else:  # after the old rows were deleted and the new ones written, in the copy
        monkeypatch.setattr(Store, "update_run_config", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(["metrics", "--store", str(tiny_copy), "--no-umap"])
    assert temp_files_at_crash  # it crashed while working on the copy
    assert tiny_copy.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.duckdb"]


def test_recompute_errors_are_clear(tiny_copy, tmp_path, capsys):
    before = tiny_copy.read_bytes()
    run_id = _snapshot(tiny_copy)[0]
    assert main(["metrics", "--store", str(tiny_copy), "--run", "no-such-run"]) == 1
    err = capsys.readouterr().err
    assert "no run 'no-such-run'" in err and run_id in err and "Traceback" not in err
    assert main(["metrics", "--store", str(tiny_copy), "--metrics", "svcca,nonsense"]) == 1
    assert "unknown metric(s) ['nonsense']" in capsys.readouterr().err
    assert tiny_copy.read_bytes() == before

    bare = tmp_path / "bare.duckdb"
    with Store.create(bare) as store:
        store.add_run("empty-run", "m", {}, {})
        store.add_components("empty-run", [TEXT])
        store.finish_run("empty-run")
    assert main(["metrics", "--store", str(bare)]) == 1
    assert "run 'empty-run'" in (err := capsys.readouterr().err) and "no stored activations" in err
    assert main(["metrics", "--store", str(tmp_path / "none.duckdb")]) == 1
    assert "no store at" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare.duckdb", "tiny.duckdb"]


# ---------------------------------------------------------------------- every family end to end
@pytest.mark.parametrize("model", STUDY_STORE_MODELS)
def test_every_family_runs_the_whole_pipeline(model, study_store_path):
    """Tiny random configs of the real architectures through `precompute build` (one store, one
    run each): layer points with their stages, lengths before/after length adaptation, metrics
    only where defined."""
    with Store.open(study_store_path) as store:
        run_id = study_run(store, model)
        assert store.run(run_id)["status"] == "complete"
        config = store.run(run_id)["config"]
        components = store.components(run_id)
        layers = store.layers(run_id)
        metrics = store.metrics(run_id)
        assert set(layers.component) == set(components.component)
        assert layers.groupby("component").size().to_dict() == \
            dict(zip(components.component, components.n_layers))
        assert config["components"].keys() == set(components.component)
        # coordinate-wise metrics exist exactly where the two points share a space
        space = {(r.component, r.layer): r.space for r in layers.itertuples()}
        same = [space[(r.component_a, r.layer_a)] == space[(r.component_b, r.layer_b)]
                for r in metrics.itertuples()]
        assert metrics.shared_space.tolist() == same
        coordinate = metrics.metric.isin(["paired_cosine", "retrieval"])
        assert metrics[coordinate].shared_space.all()
        assert (~metrics[~coordinate].shared_space).any() or metrics.shared_space.all()
        if components.modality.eq("speech").any():
            pairs = {tuple(p) for p in config["modality_pairs"]}
            measured = set(zip(*[metrics[metrics.pairing == "text-speech"][c]
                                 for c in ("component_a", "component_b")]))
            assert measured == pairs
        else:
            assert set(metrics.pairing) == {"text-text"}
        # length adaptation: its after point pools over fewer positions than its before point
        reducing = layers.stage.isin(["length_adaptor", "pooler"])
        first = reducing & ~reducing.shift(fill_value=False) \
            & (layers.component == layers.component.shift())
        adapted = layers[first]  # the "after" point of each length-reducing stage
        lengths = store.length_adaptation(run_id)
        for point in adapted.itertuples():
            own = lengths[lengths.component == point.component].pivot(
                index="item_id", columns="layer", values="n_positions")
            assert (own[point.layer] < own[point.layer - 1]).all()
        assert store.projections(run_id).groupby(["component", "layer"]).ngroups >= \
            len(layers) - metrics[metrics.shared_space & (metrics.pairing == "text-speech")] \
            .groupby(["component_a", "layer_a"]).ngroups


def test_a_language_the_model_lacks_is_refused_or_skipped(fake_setup, tmp_path, monkeypatch):
    monkeypatch.setattr(FakeAdapter, "supports_language", lambda self, lang: lang != "swh_Latn")
    out = tmp_path / "langs.duckdb"
    assert main(_fake_argv(fake_setup, out, "--no-umap", "--metrics", "svcca")) == 1
    assert not out.exists()
    assert main(_fake_argv(fake_setup, out, "--no-umap", "--metrics", "svcca",
                           "--unsupported-langs", "skip")) == 0
    with Store.open(out) as store:
        (run_id,) = store.runs().run_id
        config = store.run(run_id)["config"]
        assert config["skipped_langs"] == ["swh_Latn"]
        metrics = store.metrics(run_id)
        assert "swh_Latn" not in set(metrics.lang_a) | set(metrics.lang_b)
        assert store.activations(run_id, "text_decoder", 0, langs=["swh_Latn"])[0].empty


def test_last_token_pooling_is_recorded_and_refused_where_unsupported(fake_setup, tmp_path,
                                                                       capsys):
    out = tmp_path / "last.duckdb"
    assert main(_fake_argv(fake_setup, out, "--no-umap", "--pooling", "last")) == 1
    assert "supports pooling ['mean'], not 'last'" in capsys.readouterr().err


def test_a_run_without_stored_activations_keeps_its_metrics_and_refuses_recompute(
        fake_setup, tmp_path, capsys):
    out = tmp_path / "small.duckdb"
    assert main(_fake_argv(fake_setup, out, "--no-umap", "--metrics", "svcca",
                           "--no-store-activations")) == 0
    with Store.open(out) as store:
        run_id = store.runs().run_id.iloc[0]
        assert store.counts()["activations"] == 0
        assert not store.metrics(run_id).empty and store.run(run_id)["config"]["store_activations"] is False
    capsys.readouterr()
    assert main(["metrics", "--store", str(out)]) == 1
    assert "no stored activations" in capsys.readouterr().err


def test_recompute_in_worker_processes_gives_the_same_rows(tiny_copy, tmp_path, monkeypatch):
    """`metrics --workers 2`: the metric groups computed in two processes that read the layers
    from the store give the rows one process gives (metrics and metric variants)."""
    from precompute import recompute as recompute_module

    serial = tmp_path / "serial.duckdb"
    shutil.copyfile(tiny_copy, serial)
    assert main(["metrics", "--store", str(serial), "--no-umap"]) == 0
    dispatched = []
    real = recompute_module.in_processes
    monkeypatch.setattr(recompute_module, "in_processes",
                        lambda *args, **kw: dispatched.append(len(args[1])) or real(*args, **kw))
    assert main(["metrics", "--store", str(tiny_copy), "--no-umap", "--workers", "2"]) == 0
    assert dispatched and dispatched[0] > 1  # the groups really went to processes
    with Store.open(serial) as one, Store.open(tiny_copy) as two:
        (run_id,) = one.runs().run_id
        merged = _matched(one.metrics(run_id), two.metrics(run_id))
        for column in METRIC_VALUES:
            np.testing.assert_array_equal(merged[f"{column}_new"], merged[column], err_msg=column)
        keys = ["variant", "pairing", "component_a", "component_b", "layer_a", "layer_b",
                "lang_a", "lang_b", "metric", "params"]
        a, b = one.metric_variants(run_id), two.metric_variants(run_id)
        assert len(a) == len(b) > 0
        pd.testing.assert_frame_equal(a.sort_values(keys).reset_index(drop=True),
                                      b.sort_values(keys).reset_index(drop=True))
        assert two.run(run_id)["config"]["recomputed"][-1]["command_line"][-2:] == ["--workers",
                                                                                     "2"]
