"""precompute build's inputs: the corpus directory, languages, metrics and pooling are checked before
anything is built, and clear errors name what is wrong."""
# ruff: noqa: F811 - fake_setup is precompute_helpers' fixture, imported to be requested here

from __future__ import annotations

import pytest

from core.store import Store
from precompute.cli import main
from precompute.config import BuildConfig, load_corpus
from precompute_helpers import FakeAdapter, fake_argv, fake_setup  # noqa: F401 - a fixture


def test_build_errors_are_clear(fake_setup, tmp_path, capsys):
    out = tmp_path / "x.duckdb"
    assert main(fake_argv(fake_setup, out, "--metrics", "svcca,nonsense")) == 1
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


def test_a_language_the_model_lacks_is_refused_or_skipped(fake_setup, tmp_path, monkeypatch):
    monkeypatch.setattr(FakeAdapter, "supports_language", lambda self, lang: lang != "swh_Latn")
    out = tmp_path / "langs.duckdb"
    assert main(fake_argv(fake_setup, out, "--no-umap", "--metrics", "svcca")) == 1
    assert not out.exists()
    assert main(fake_argv(fake_setup, out, "--no-umap", "--metrics", "svcca",
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
    assert main(fake_argv(fake_setup, out, "--no-umap", "--pooling", "last")) == 1
    assert "supports pooling ['mean'], not 'last'" in capsys.readouterr().err
