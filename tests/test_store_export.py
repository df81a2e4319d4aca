"""Results leave a store without SQL: ``precompute export`` (core.store.export) and the items'
audio sources (``item_sources``, ``precompute item-sources``)."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from core import audio, item_audio
from core.languages import languages_frame
from core.store import Store, StoreError
from core.store.export import export_query
from core.store.tables import TABLES
from precompute.cli import main
from precompute.item_sources import backfill_item_sources
from synthetic_store import RUN_ID, write_synthetic_store


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return write_synthetic_store(tmp_path_factory.mktemp("export") / "store.duckdb")


def _export(store_path, out, *args: str) -> int:
    return main(["export", "--store", str(store_path), "--out", str(out), *args])


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_writes_the_rows_the_store_api_reads(store_path, tmp_path, fmt):
    out = tmp_path / f"metrics.{fmt}"
    assert _export(store_path, out, "--table", "metrics", "--run", RUN_ID, "--metric", "svcca",
                   "--pairing", "text-speech", "--format", fmt) == 0
    written = pd.read_parquet(out) if fmt == "parquet" else pd.read_csv(out)
    with Store.open(store_path) as store:
        expected = store.metrics(RUN_ID, metric="svcca", pairing="text-speech")
    assert len(written) == len(expected) > 0
    assert set(written["metric"]) == {"svcca"} and set(written["pairing"]) == {"text-speech"}
    key = ["component_a", "layer_a", "lang_a", "lang_b"]
    merged = written.merge(expected[[*key, "value"]], on=key, suffixes=("", "_api"))
    assert len(merged) == len(expected)
    assert (merged["value"] - merged["value_api"]).abs().max() < 1e-12
    if fmt == "csv":  # bytes as hex text
        assert written["resamples"].dropna().str.fullmatch("[0-9a-f]+").all()


def test_items_of_a_run_carry_its_measurements(store_path, tmp_path):
    out = tmp_path / "items.parquet"
    assert _export(store_path, out, "--table", "items", "--run", RUN_ID) == 0
    written = pd.read_parquet(out)
    with Store.open(store_path) as store:
        expected = store.items(run_id=RUN_ID, all_voices=True)
    assert len(written) == len(expected)
    assert written["cer"].notna().sum() == expected["cer"].notna().sum() > 0


def test_every_table_exports(store_path, tmp_path):
    with Store.open(store_path) as store:
        counts = store.counts()
    for table in TABLES:
        out = tmp_path / f"{table}.parquet"
        assert _export(store_path, out, "--table", table) == 0, table
        assert len(pd.read_parquet(out)) == counts[table], table


def test_bad_export_requests_are_one_line_errors_and_write_nothing(store_path, tmp_path, capsys):
    out = tmp_path / "x.csv"
    assert _export(store_path, out, "--table", "items", "--metric", "svcca") == 1
    assert "has no metric column" in capsys.readouterr().err
    assert _export(store_path, out, "--table", "metrics", "--run", "nope") == 1
    assert "no run 'nope'" in capsys.readouterr().err
    assert _export(store_path, out, "--table", "secrets") == 2
    assert not out.exists() and not list(tmp_path.glob("x.csv.tmp-*"))
    with pytest.raises(StoreError, match="unknown table"):
        export_query("items; DROP TABLE runs", ["run_id"])


def test_item_sources_round_trip_and_refuse_rows_without_a_checksum(tmp_path):
    path = write_synthetic_store(tmp_path / "s.duckdb")
    with Store.open(path, read_only=False) as store:
        speech = store.items("speech")
        ids = speech["item_id"].head(2).tolist()
        store.set_item_sources(pd.DataFrame({"item_id": ids, "path": ["/a.wav", None],
                                             "file_sha256": ["ab", None],
                                             "waveform_sha256": ["cd", "ef"]}))
        with pytest.raises(StoreError, match="waveform_sha256"):
            store.set_item_sources(pd.DataFrame({"item_id": [ids[0]], "path": ["/b.wav"]}))
        sources = store.item_sources()
    assert sources["item_id"].tolist() == ids
    assert sources["path"].iloc[0] == "/a.wav" and pd.isna(sources["path"].iloc[1])


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng missing")
def test_backfill_records_matching_syntheses_once(tmp_path, monkeypatch):
    """Of four speech items: two at their true synthesis length get checksums, one with another
    length and one recording are counted and left without; a second run adds nothing."""
    monkeypatch.setenv(audio.CACHE_ENV, str(tmp_path / "cache"))
    texts = ["The river was quiet.", "A bridge over the water.", "Snow fell all night."]
    waves = [audio.synthesize(text, "en") for text in texts[:2]]
    voice = f"espeak-ng {audio.espeak_version()} en"
    path = tmp_path / "s.duckdb"
    with Store.create(path) as store:
        store.add_languages(languages_frame(["eng_Latn"]))
        ids = store.add_items(pd.DataFrame({
            "sentence_id": [0, 1, 2, 3], "lang": "eng_Latn", "modality": "speech",
            "text": [*texts, "Recorded."], "voice": [voice, voice, voice, "recording"],
            "duration_s": [audio.duration_s(waves[0]), audio.duration_s(waves[1]), 9.0, 1.0]}))
    done = backfill_item_sources(path, progress=False)
    assert (done.added, done.differing, done.recordings) == (2, 1, 1)
    with Store.open(path) as store:
        sources = store.item_sources()
    assert sources["item_id"].tolist() == ids[:2]
    assert sources["waveform_sha256"].tolist() == [item_audio.waveform_sha256(w) for w in waves]
    again = backfill_item_sources(path, progress=False)
    assert again.added == 0 and again.already == 2
