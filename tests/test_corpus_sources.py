"""The corpus sources beyond line-aligned text: FLEURS as the hub stores it (clips streamed from the
tar.gz, nothing extracted), FLEURS from the hub (fetch only what is needed; offline, a message
saying what to download), Parquet / Arrow corpora (column mapping, language labels), and every kind
of bad input failing with a message naming the file and row, or skipped and counted when asked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core import audio_refs, corpus_hub, languages
from core.corpus import speech_waveform
from core.corpus_fleurs import load_fleurs
from core.corpus_table import TableColumns, TableSpec, load_table_corpus, parse_columns, read_spec
from precompute.config import BuildConfig, BuildError, load_corpus
from tests import corpus_fixtures as cf

SPEC = TableSpec(parse_columns(cf.TABLE_COLUMNS))


@pytest.fixture
def clips(corpus_clips) -> dict[tuple[str, int], bytes]:
    return corpus_clips


@pytest.fixture(autouse=True)
def _fresh_archives():
    audio_refs.clear_caches()
    yield
    audio_refs.clear_caches()


def _files(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ---------------------------------------------------------------------- FLEURS as the hub stores it
def test_snapshot_streams_clips_from_the_archive(tmp_path, clips):
    extracted = load_fleurs(cf.write_fleurs_extracted(tmp_path / "ext", clips))
    snapshot = cf.write_fleurs_snapshot(tmp_path / "snap", clips)
    before = _files(tmp_path)
    hub = load_fleurs(snapshot, split="test")
    assert hub.langs == extracted.langs == ["eng_Latn", "deu_Latn"]
    assert hub.sentence_ids == extracted.sentence_ids == [11, 12, 14]
    assert hub.texts == extracted.texts
    assert all(audio_refs.is_reference(p) for p in hub.audio_paths["deu_Latn"])
    for lang in hub.langs:
        for position in (2, 0, 1):  # out of archive order
            assert np.array_equal(speech_waveform(hub, lang, position),
                                  speech_waveform(extracted, lang, position))
    assert _files(tmp_path) == before  # nothing extracted, nothing cached on disk
    # the snapshot's data/ folder may also be given directly; "validation" is the hub's "dev"
    assert load_fleurs(snapshot / "data").texts == hub.texts
    with pytest.raises(FileNotFoundError, match="dev.tsv"):
        load_fleurs(snapshot, split="validation")


def test_snapshot_records_tsvs_and_archives(tmp_path, clips):
    import hashlib

    hub = load_fleurs(cf.write_fleurs_snapshot(tmp_path / "snap", clips))
    by_role = {}
    for entry in hub.files:
        by_role.setdefault(entry.role, []).append(entry)
        data = open(entry.path, "rb").read()
        assert entry.sha256 == hashlib.sha256(data).hexdigest() and entry.size == len(data)
    assert [e.rows for e in by_role["tsv"]] == [3, 3]
    assert [e.rows for e in by_role["audio archive"]] == [3, 3]


def test_missing_member_names_the_tsv_line_or_is_skipped(tmp_path, clips):
    snapshot = cf.write_fleurs_snapshot(tmp_path / "snap", clips)
    archive = snapshot / "data" / "de_de" / "audio" / "test.tar.gz"
    cf.write_tar_gz(archive, {f"test/{sid}.wav": clips[("de_de", sid)] for sid in (11, 14)})
    with pytest.raises(FileNotFoundError, match=r"de_de/test.tsv:2 names 12.wav, which .*"
                                                r"test.tar.gz does not hold"):
        load_fleurs(snapshot)
    skipped = load_fleurs(snapshot, missing_audio="skip")
    assert skipped.sentence_ids == [11, 14]
    assert skipped.dropped == {"audio file listed in the TSV is absent": [12]}


def test_unreadable_archives_name_the_archive(tmp_path, clips):
    snapshot = cf.write_fleurs_snapshot(tmp_path / "snap", clips)
    archive = snapshot / "data" / "de_de" / "audio" / "test.tar.gz"
    whole = archive.read_bytes()
    archive.write_bytes(whole[: len(whole) // 2])  # truncated download
    with pytest.raises(ValueError, match=r"audio archive .*de_de/audio/test.tar.gz is not a "
                                         "readable tar archive"):
        load_fleurs(snapshot)
    archive.write_bytes(b"not an archive at all" * 10)
    audio_refs.clear_caches()
    with pytest.raises(ValueError, match="is not a readable tar archive"):
        load_fleurs(snapshot)


def test_corrupt_member_is_refused_naming_it_or_skipped(tmp_path, clips):
    snapshot = cf.write_fleurs_snapshot(tmp_path / "snap", clips)
    members = {f"test/{sid}.wav": clips[("de_de", sid)] for sid in (11, 12, 14)}
    members["test/12.wav"] = b"RIFF\x00\x00 this is not a wav file at all"
    cf.write_tar_gz(snapshot / "data" / "de_de" / "audio" / "test.tar.gz", members)
    out = tmp_path / "never.duckdb"
    config = BuildConfig(models=("m",), corpus=str(snapshot), corpus_format="fleurs", out=out)
    with pytest.raises(BuildError, match=r"member test/12.wav of .*test.tar.gz.*\(deu_Latn, "
                                         r"sentence 12\).*--bad-audio skip"):
        load_corpus(config)
    kept = load_corpus(BuildConfig(models=("m",), corpus=str(snapshot), corpus_format="fleurs",
                                   out=out, bad_audio="skip"))
    assert kept.sentence_ids == [11, 14] and kept.dropped == {"audio does not read": [12]}
    assert not out.exists()


# ---------------------------------------------------------------------- FLEURS from the hub
def test_hub_fetches_only_the_chosen_languages_and_split(tmp_path, clips, monkeypatch):
    snapshot = cf.write_fleurs_snapshot(tmp_path / "snap", clips)
    calls = []

    def fake_download(repo_id, *, revision, allow_patterns, local_files_only, cache_dir):
        calls.append((repo_id, revision, sorted(allow_patterns), local_files_only))
        return str(snapshot)

    monkeypatch.setattr(corpus_hub, "hub_download", fake_download)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    corpus = load_corpus(BuildConfig(models=("m",), corpus="hf:google/fleurs@v1",
                                     langs=("deu_Latn",), split="test"))
    assert corpus.langs == ["deu_Latn"] and len(corpus) == 3
    assert calls == [("google/fleurs", "v1", ["data/de_de/audio/test.tar.gz",
                                              "data/de_de/test.tsv"], False)]


def test_hub_offline_fails_at_once_saying_what_to_download(monkeypatch, tmp_path):
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline_cache_miss(repo_id, *, revision, allow_patterns, local_files_only, cache_dir):
        assert local_files_only  # offline: the hub is never asked
        raise LocalEntryNotFoundError("not in cache")

    monkeypatch.setattr(corpus_hub, "hub_download", offline_cache_miss)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = BuildConfig(models=("m",), corpus="hf:google/fleurs", langs=("eng_Latn", "swh_Latn"),
                         split="dev")
    with pytest.raises(FileNotFoundError) as error:
        load_corpus(config)
    message = str(error.value)
    assert "HF_HUB_OFFLINE is set" in message
    assert ("hf download google/fleurs data/en_us/dev.tsv data/en_us/audio/dev.tar.gz "
            "data/sw_ke/dev.tsv data/sw_ke/audio/dev.tar.gz --repo-type dataset") in message
    assert "--corpus-format fleurs" in message
    with pytest.raises(ValueError, match="name the languages to fetch with --langs"):
        load_corpus(BuildConfig(models=("m",), corpus="hf:google/fleurs"))
    with pytest.raises(KeyError, match="FLEURS has no 'abc_Latn'"):
        load_corpus(BuildConfig(models=("m",), corpus="hf:google/fleurs", langs=("abc_Latn",)))


def test_hub_snapshot_lacking_files_is_reported(monkeypatch, tmp_path):
    monkeypatch.setattr(corpus_hub, "hub_download", lambda *a, **k: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="the snapshot .* lacks them"):
        load_corpus(BuildConfig(models=("m",), corpus="hf:google/fleurs", langs=("eng_Latn",)))


# ---------------------------------------------------------------------- Parquet from the hub
def _hub_repo(root, clips):
    """A dataset repository as ``push_to_hub`` lays it out, with a second split beside the one
    read and a file that is not a table."""
    rows = cf.table_rows(clips)
    cf.write_parquet(root / "data" / "test-00000-of-00001.parquet", rows)
    cf.write_parquet(root / "data" / "train-00000-of-00001.parquet", rows[:2])
    (root / "README.md").write_text("a dataset card")
    return root


def _fake_snapshot(repo, into, calls):
    """``hub_download`` as the hub answers: the repository's files that ``allow_patterns``
    match (fnmatch, as huggingface_hub filters), copied into a snapshot folder."""
    import fnmatch
    import shutil

    def download(repo_id, *, revision, allow_patterns, local_files_only, cache_dir):
        calls.append((repo_id, revision, local_files_only))
        for path in repo.rglob("*"):
            name = path.relative_to(repo).as_posix()
            if path.is_file() and any(fnmatch.fnmatch(name, p) for p in allow_patterns):
                (into / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, into / name)
        return str(into)

    return download


def test_a_parquet_dataset_on_the_hub_reads_as_its_local_copy(tmp_path, clips, monkeypatch):
    repo = _hub_repo(tmp_path / "repo", clips)
    snapshot, calls = tmp_path / "snapshot", []
    monkeypatch.setattr(corpus_hub, "hub_download", _fake_snapshot(repo, snapshot, calls))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    config = BuildConfig(models=("m",), corpus="hf:someone/speech@v2", corpus_format="table",
                         columns=cf.TABLE_COLUMNS, split="test")
    corpus = load_corpus(config)
    assert calls == [("someone/speech", "v2", False)]
    assert sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*.parquet")) == \
        ["data/test-00000-of-00001.parquet"]  # the other split and the card stay on the hub
    local = load_table_corpus(repo / "data" / "test-00000-of-00001.parquet", SPEC)
    assert corpus.langs == local.langs and corpus.sentence_ids == local.sentence_ids
    assert corpus.texts == local.texts
    assert np.array_equal(speech_waveform(corpus, corpus.langs[0], 0),
                          speech_waveform(local, local.langs[0], 0))


def test_a_hub_table_with_a_folder_per_language_fetches_only_the_chosen_ones(tmp_path, clips,
                                                                           monkeypatch):
    """FLEURS' Parquet conversion: ``<locale>/<split>/0000.parquet``, the language read from the
    folder (``lang=@path``): --langs picks the folders fetched."""
    rows = cf.table_rows(clips)
    repo = tmp_path / "repo"
    chosen = sorted({row["locale"] for row in rows})  # en_us, de_de
    for locale in [*chosen, "sw_ke"]:  # Swahili's folder (English rows) is not asked for
        for split in ("test", "train"):
            cf.write_parquet(repo / locale / split / "0000.parquet",
                             [{k: v for k, v in row.items() if k != "locale"} for row in rows
                              if row["locale"] == (locale if locale != "sw_ke" else "en_us")])
    snapshot, calls = tmp_path / "snapshot", []
    monkeypatch.setattr(corpus_hub, "hub_download", _fake_snapshot(repo, snapshot, calls))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    langs = tuple(languages.from_corpus_code(locale) for locale in chosen)
    columns = "id=sentence,lang=@path,text=transcription,audio=audio"
    corpus = load_corpus(BuildConfig(models=("m",), corpus="hf:google/fleurs@refs/convert/parquet",
                                     corpus_format="table", columns=columns, split="test",
                                     langs=langs))
    assert calls == [("google/fleurs", "refs/convert/parquet", False)]
    assert sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*.parquet")) == \
        [f"{locale}/test/0000.parquet" for locale in chosen]  # not the third, nor train
    assert sorted(corpus.langs) == sorted(langs) and len(corpus) == 3
    local = load_table_corpus(repo, TableSpec(parse_columns(columns)), split="test",
                              langs=list(langs))
    assert corpus.texts == local.texts and corpus.sentence_ids == local.sentence_ids


@pytest.mark.parametrize("split, path, fetched", [
    ("test", "data/test-00000-of-00002.parquet", True),      # push_to_hub
    ("test", "test-00000-of-00001.arrow", True),
    ("test", "en_us/test/0000.parquet", True),               # the hub's Parquet conversion
    ("test", "default/partial-test/0000.parquet", False),
    ("test", "test.parquet", True),
    ("test", "data/train-00000-of-00001.parquet", False),
    ("test", "data/test-00000-of-00001.csv", False),
    ("dev", "data/validation-00000-of-00001.parquet", True),  # dev is validation too
    ("validation", "x/dev/0000.parquet", True),
    ("dev", "data/test-00000-of-00001.parquet", False),
])
def test_table_patterns_fetch_one_split_in_the_hub_layouts(split, path, fetched):
    import fnmatch

    assert any(fnmatch.fnmatch(path, p) for p in corpus_hub.table_patterns(split)) == fetched


@pytest.mark.parametrize("path, fetched", [
    ("de_de/test/0000.parquet", True),
    ("de/test-00000-of-00001.parquet", True),
    ("data/deu_Latn/test.parquet", True),
    ("de_de/sub/test/0000.parquet", True),
    ("en_us/test/0000.parquet", False),
    ("de_de/train/0000.parquet", False),
    ("test/0000.parquet", False),  # no language folder: not the asked language's
])
def test_table_patterns_with_language_folders_fetch_only_those(path, fetched):
    import fnmatch

    folders = languages.corpus_labels("deu_Latn")
    assert any(fnmatch.fnmatch(path, p) for p in corpus_hub.table_patterns("test", folders)) \
        == fetched


def test_a_hub_table_offline_or_without_tables_says_what_to_download(tmp_path, monkeypatch):
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline_cache_miss(repo_id, *, revision, allow_patterns, local_files_only, cache_dir):
        assert local_files_only
        raise LocalEntryNotFoundError("not in cache")

    monkeypatch.setattr(corpus_hub, "hub_download", offline_cache_miss)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = BuildConfig(models=("m",), corpus="hf:someone/speech", corpus_format="table",
                         columns=cf.TABLE_COLUMNS, split="dev")
    with pytest.raises(FileNotFoundError) as error:
        load_corpus(config)
    message = str(error.value)
    assert "split 'dev' of someone/speech" in message and "HF_HUB_OFFLINE is set" in message
    assert "hf download someone/speech --repo-type dataset --include 'dev-*.parquet'" in message
    assert "--corpus <folder> --corpus-format table" in message
    (tmp_path / "README.md").write_text("no tables here")
    monkeypatch.setattr(corpus_hub, "hub_download", lambda *a, **k: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="holds no Parquet or Arrow file of split 'dev'"):
        load_corpus(config)


# ---------------------------------------------------------------------- Parquet / Arrow
def test_parquet_arrow_and_saved_folders_read_alike(tmp_path, clips):
    rows = cf.table_rows(clips)
    reference = load_fleurs(cf.write_fleurs_extracted(tmp_path / "ext", clips))
    corpora = [load_table_corpus(cf.write_parquet(tmp_path / "p" / "c.parquet", rows), SPEC),
               load_table_corpus(cf.write_saved_dataset(tmp_path / "saved", rows), SPEC),
               load_table_corpus(cf.write_saved_dataset_dict(tmp_path / "dict", rows), SPEC,
                                 split="test")]
    for corpus in corpora:
        assert corpus.langs == reference.langs and corpus.sentence_ids == reference.sentence_ids
        assert corpus.texts == reference.texts
        for lang in corpus.langs:
            assert np.array_equal(speech_waveform(corpus, lang, 1),
                                  speech_waveform(reference, lang, 1))
        assert [f.role for f in corpus.files] == ["table"] and corpus.files[0].rows == 6
    with pytest.raises(FileNotFoundError, match="without split 'train'"):
        load_table_corpus(tmp_path / "dict", SPEC, split="train")


def test_table_audio_as_samples_paths_and_languages_from_folders(tmp_path, clips):
    import io

    import soundfile as sf

    rows = []
    for row in cf.table_rows(clips):
        samples, rate = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32")
        path = tmp_path / "clips" / f"{row['locale']}-{row['sentence']}.wav"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(row["audio"]["bytes"])
        rows.append({**row, "samples": samples.tolist(), "rate": rate,
                     "file": f"clips/{path.name}"})
    table = cf.write_parquet(tmp_path / "t.parquet", rows)
    by_bytes = load_table_corpus(table, SPEC)
    for columns in ("audio=samples,rate=rate", "audio=samples,rate=16000", "audio=file"):
        other = load_table_corpus(table, TableSpec(parse_columns(cf.TABLE_COLUMNS + "," + columns)))
        assert np.allclose(speech_waveform(other, "eng_Latn", 2),
                           speech_waveform(by_bytes, "eng_Latn", 2), atol=1e-6)
    text_only = load_table_corpus(table, TableSpec(parse_columns(cf.TABLE_COLUMNS + ",audio=")))
    assert text_only.audio_paths["eng_Latn"] == [None, None, None]
    # FLEURS converted to Parquet: one folder per locale, no language column
    for locale in cf.SENTENCES:
        cf.write_parquet(tmp_path / "conv" / locale / "test" / "0000.parquet",
                         [r for r in rows if r["locale"] == locale])
    by_path = load_table_corpus(tmp_path / "conv", TableSpec(parse_columns(
        "id=sentence,lang=@path,text=transcription")), split="test")
    assert by_path.texts == by_bytes.texts


def test_config_file_maps_columns_and_language_labels(tmp_path, clips):
    rows = [{**r, "locale": {"en_us": "English", "de_de": "German"}[r["locale"]]}
            for r in cf.table_rows(clips)]
    table = cf.write_parquet(tmp_path / "t.parquet", rows)
    with pytest.raises(ValueError, match=r"unknown language labels English, German.*langs table"):
        load_table_corpus(table, SPEC)
    toml = tmp_path / "corpus.toml"
    toml.write_text('[columns]\nid = "sentence"\nlang = "locale"\ntext = "transcription"\n'
                    '[langs]\nEnglish = "eng_Latn"\nGerman = "deu_Latn"\n', encoding="utf-8")
    spec = read_spec(toml)
    assert spec.columns == TableColumns("sentence", "locale", "transcription", "audio", None)
    corpus = load_table_corpus(table, spec, langs=["German", "eng_Latn"])
    assert corpus.langs == ["deu_Latn", "eng_Latn"]
    as_json = tmp_path / "corpus.json"
    as_json.write_text(json.dumps({"columns": {"id": "sentence"}, "langs": {}}), encoding="utf-8")
    assert read_spec(as_json, columns="text=transcription").columns.text == "transcription"
    as_json.write_text(json.dumps({"colums": {}}), encoding="utf-8")
    with pytest.raises(ValueError, match="expected tables 'columns' and 'langs'"):
        read_spec(as_json)
    with pytest.raises(ValueError, match="'speaker=x' is not <key>=<column>"):
        parse_columns("speaker=x")


def test_table_bad_input_names_file_and_row(tmp_path, clips):
    rows = cf.table_rows(clips)
    table = cf.write_parquet(tmp_path / "t.parquet", rows)
    with pytest.raises(ValueError, match=r"t.parquet has no column text, sound \(it has sentence, "
                                         r"locale, transcription, audio\).*--columns"):
        load_table_corpus(table, TableSpec(parse_columns("id=sentence,lang=locale,audio=sound")))
    # no sentence id shared by the languages
    shifted = [{**r, "sentence": r["sentence"] + (100 if r["locale"] == "de_de" else 0)}
               for r in rows]
    with pytest.raises(ValueError, match=r"no sentence id is shared by all of eng_Latn, deu_Latn "
                                         r"\(eng_Latn: 3 ids, deu_Latn: 3 ids\)"):
        load_table_corpus(cf.write_parquet(tmp_path / "s.parquet", shifted), SPEC)
    # an empty text cell
    blank = [dict(r) for r in rows]
    blank[4]["transcription"] = "  "
    with pytest.raises(ValueError, match=r"b.parquet row 4: text '  ' is not a non-empty string"):
        load_table_corpus(cf.write_parquet(tmp_path / "b.parquet", blank), SPEC)
    # audio bytes that do not decode: refused naming the row, or skipped and counted
    broken = [dict(r) for r in rows]
    broken[4] = {**broken[4], "audio": {"bytes": b"\x00\x01 not audio", "path": None}}
    path = cf.write_parquet(tmp_path / "u.parquet", broken)
    config = dict(models=("m",), corpus=str(path), corpus_format="table",
                  columns=cf.TABLE_COLUMNS, out=tmp_path / "never.duckdb")
    with pytest.raises(BuildError, match=r"row 4 \(column audio\) of .*u.parquet does not decode"
                                         r".*\(deu_Latn, sentence 12\)"):
        load_corpus(BuildConfig(**config))
    kept = load_corpus(BuildConfig(**config, bad_audio="skip"))
    assert kept.sentence_ids == [11, 14] and kept.dropped == {"audio does not read": [12]}
    with pytest.raises(ValueError, match="not a readable Parquet or Arrow file"):
        (tmp_path / "junk.parquet").write_bytes(b"PAR1 but nothing else")
        load_table_corpus(tmp_path / "junk.parquet", SPEC)
    with pytest.raises(ValueError, match="--columns and --corpus-config describe a Parquet"):
        BuildConfig(models=("m",), corpus=str(path), columns="id=x")


def test_string_ids_are_numbered_stably(tmp_path, clips):
    rows = [{**r, "sentence": f"s{r['sentence']}"} for r in cf.table_rows(clips)]
    corpus = load_table_corpus(cf.write_parquet(tmp_path / "t.parquet", rows), SPEC)
    assert corpus.sentence_ids == [0, 1, 2]
    assert corpus.texts["eng_Latn"][0] == cf.SENTENCES["en_us"][0][1]


def test_large_parquet_row_groups_are_read_in_slices(tmp_path, monkeypatch):
    """A row group over the cache limit is read slice by slice (memory bounded), rows still right
    in any order, from Parquet and from an Arrow stream alike."""
    rows = [{"id": i, "lang": "en", "text": f"s{i}", "audio": bytes([i % 251]) * (100 + i)}
            for i in range(70)]
    parquet = cf.write_parquet(tmp_path / "big.parquet", rows, row_group_size=70)
    arrow = cf.write_saved_dataset(tmp_path / "saved", rows, batch_rows=70)
    monkeypatch.setattr(audio_refs, "ROW_GROUP_CACHE_BYTES", 1_000)
    monkeypatch.setattr(audio_refs, "SLICE_ROWS", 8)
    order = np.random.default_rng(0).permutation(70)
    for file in (parquet, arrow / "data-00000-of-00001.arrow"):
        for row in order:
            assert audio_refs.read_clip(audio_refs.table_ref(file, int(row), "audio")) \
                == rows[row]["audio"]
    with pytest.raises(audio_refs.ClipError, match="has 70 rows; row 70 does not exist"):
        audio_refs.read_clip(audio_refs.table_ref(parquet, 70, "audio"))


def test_corpus_language_labels_resolve_through_the_tables():
    from core.languages import from_corpus_code, unknown_corpus_codes

    assert [from_corpus_code(c) for c in ("deu_Latn", "de_de", "DE", "cmn_Hans", "sw")] == \
        ["deu_Latn", "deu_Latn", "deu_Latn", "zho_Hans", "swh_Latn"]
    assert from_corpus_code("zh", {"zh": "zho_Hant"}) == "zho_Hant"  # the corpus's table first
    assert unknown_corpus_codes(["zh", "xx", "en", "English"]) == ["English", "xx", "zh"]


def test_hub_offline_with_the_real_client_and_an_empty_cache(tmp_path, monkeypatch):
    """huggingface_hub itself, offline, on an empty cache: the same message, without a network
    call (local_files_only)."""
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"HF_HUB_OFFLINE is set.*hf download google/fleurs "
                                                r"data/de_de/test.tsv"):
        corpus_hub.fetch_fleurs("hf:google/fleurs", ["deu_Latn"], "test", cache_dir=tmp_path)
    assert not any(tmp_path.rglob("*.tar.gz"))


def test_hub_table_offline_with_the_real_client_and_an_empty_cache(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"HF_HUB_OFFLINE is set.*hf download "
                                                r"someone/speech --repo-type dataset"):
        corpus_hub.fetch_table("hf:someone/speech", "test", cache_dir=tmp_path)
    assert not any(tmp_path.rglob("*.parquet"))


def test_bad_table_input_stops_the_build_with_one_line_and_writes_nothing(tmp_path, clips,
                                                                           capsys):
    from precompute.cli import main

    rows = cf.table_rows(clips)
    rows[1] = {**rows[1], "audio": {"bytes": b"garbage", "path": None}}
    table = cf.write_parquet(tmp_path / "corpus" / "t.parquet", rows)
    before = _files(tmp_path)
    argv = ["build", "--corpus", str(table), "--corpus-format", "table", "--columns",
            cf.TABLE_COLUMNS, "--model", "whisper-tiny-random", "--out", str(tmp_path / "s.duckdb")]
    assert main(argv) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "row 1 (column audio) of" in error[0] and "t.parquet" in error[0]
    assert main([*argv[:6], "id=sentence,lang=locale,text=words", *argv[7:]]) == 1
    assert "has no column words" in capsys.readouterr().err
    assert _files(tmp_path) == before


def test_stored_items_replay_from_archive_members_and_table_rows(tmp_path, clips):
    """What the Items page plays for a recording inside an archive or table: the clip, checked
    against the checksum the build stored; refused (not raised) when it changed or is gone."""
    from core.item_audio import file_sha256, item_audio

    hub = load_fleurs(cf.write_fleurs_snapshot(tmp_path / "snap", clips))
    table = load_table_corpus(cf.write_parquet(tmp_path / "t.parquet", cf.table_rows(clips)), SPEC)
    for corpus in (hub, table):
        ref = audio_refs.resolved(corpus.audio_paths["deu_Latn"][1])
        wave = speech_waveform(corpus, "deu_Latn", 1)
        played = item_audio("", "recording", len(wave) / 16_000, recording_path=ref,
                            file_sha256=file_sha256(ref))
        assert played.verified and np.array_equal(played.waveform, wave)
        refused = item_audio("", "recording", None, recording_path=ref, file_sha256="0" * 64)
        assert refused.waveform is None and "checksum differs" in refused.message
    audio_refs.clear_caches()
    (tmp_path / "t.parquet").unlink()
    gone = item_audio("", "recording", None, recording_path=audio_refs.resolved(
        table.audio_paths["eng_Latn"][0]))
    assert gone.waveform is None and "the recording is not there" in gone.message
