"""The whole build on one small corpus in each layout it reads (FLEURS extracted, FLEURS from the
hub as a snapshot with tar.gz audio, Parquet with audio bytes, a datasets save_to_disk folder), with
tiny random Whisper: the same sentences give the same metric rows whichever layout they come in,
and each run records the files it read."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from core import audio_refs, corpus_hub
from core.store import Store
from precompute.cli import main
from tests import corpus_fixtures as cf

pytestmark = pytest.mark.slow  # four builds of a tiny random model

COMMON = ["--model", "whisper-tiny-random", "--device", "cpu", "--no-umap", "--no-transcribe",
          "--metrics", "svcca,linear_cka", "--n-permutations", "2", "--n-bootstrap", "0",
          "--langs", "eng_Latn,deu_Latn"]


@pytest.fixture(scope="module")
def layouts(tmp_path_factory, corpus_clips) -> dict[str, tuple[list[str], Path | None]]:
    """``precompute build`` corpus arguments of each layout, all holding the same clips (and for
    ``hf:google/fleurs`` the local snapshot the fake hub answers with)."""
    root = tmp_path_factory.mktemp("layouts")
    clips = corpus_clips
    rows = cf.table_rows(clips)
    snapshot = cf.write_fleurs_snapshot(root / "hub" / "snapshots" / "abc", clips)
    return {
        "extracted": (["--corpus", str(cf.write_fleurs_extracted(root / "extracted", clips)),
                       "--corpus-format", "fleurs"], None),
        "hub": (["--corpus", "hf:google/fleurs"], snapshot),
        "parquet": (["--corpus", str(cf.write_parquet(root / "parquet" / "corpus.parquet", rows)),
                     "--corpus-format", "table", "--columns", cf.TABLE_COLUMNS], None),
        "saved": (["--corpus", str(cf.write_saved_dataset(root / "saved", rows)),
                   "--corpus-format", "table", "--columns", cf.TABLE_COLUMNS], None),
    }


def _build(tmp_path: Path, monkeypatch, args: list[str], snapshot: Path | None) -> Path:
    if snapshot is not None:  # hf:google/fleurs answered by a local snapshot, never the network
        def fake_download(repo_id, *, revision, allow_patterns, local_files_only, cache_dir):
            assert repo_id == "google/fleurs" and revision is None
            assert sorted(allow_patterns) == sorted(cf.hub_files())
            return str(snapshot)

        monkeypatch.setattr(corpus_hub, "hub_download", fake_download)
    out = tmp_path / "store.duckdb"
    assert main(["build", *args, *COMMON, "--out", str(out)]) == 0
    audio_refs.clear_caches()
    return out


def _replayed(store: Store) -> int:
    """Speech items the Items page can play again from their recorded source, checksum checked."""
    from core.item_audio import item_audio

    items = store.items("speech").merge(store.item_sources(), on="item_id")
    played = [item_audio(row.text, row.voice, row.duration_s, recording_path=row.path,
                         file_sha256=row.file_sha256).verified for row in items.itertuples()]
    return sum(played)


def _metric_rows(out: Path) -> tuple[pd.DataFrame, dict]:
    with Store.open(out) as store:
        run_id = store.runs().run_id.iloc[0]
        rows = store.metrics(run_id).drop(columns=["run_id"])
        config = store.run(run_id)["config"]
        assert _replayed(store) == 6  # every clip, whether a file, an archive member or a row
    key = [c for c in ("metric", "pairing", "component_a", "component_b", "layer_a", "layer_b",
                       "lang_a", "lang_b", "modality_a", "modality_b", "params")
           if c in rows.columns]
    return rows.sort_values(key).reset_index(drop=True), config


def test_every_layout_gives_the_same_metric_rows(layouts, tmp_path, monkeypatch):
    results = {}
    for name, (args, snapshot) in layouts.items():
        folder = tmp_path / name
        folder.mkdir()
        results[name] = _metric_rows(_build(folder, monkeypatch, args, snapshot))
    reference, _ = results["extracted"]
    assert len(reference) > 0 and set(reference.lang_a) == {"eng_Latn", "deu_Latn"}
    for name, (rows, config) in results.items():
        pd.testing.assert_frame_equal(rows, reference, check_exact=False, rtol=1e-6, atol=1e-9,
                                      obj=f"metric rows from the {name} layout")
        # each run records the files it read, their checksums and row counts
        files = config["corpus_files"]
        assert files and config["corpus_dropped"] == {}
        for entry in files:
            path = Path(entry["path"])
            if path.is_file():
                assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
                assert entry["size"] == path.stat().st_size
        roles = {entry["role"] for entry in files}
        expected = {"extracted": {"tsv", "audio folder"}, "hub": {"tsv", "audio archive"},
                    "parquet": {"table"}, "saved": {"table"}}[name]
        assert roles == expected, (name, json.dumps(files))
        if name in ("parquet", "saved"):
            assert sum(entry["rows"] for entry in files) == 6
