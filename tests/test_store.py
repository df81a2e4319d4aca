"""Store: round trip of every table, migrations, schema checks, transactions, atomic publishing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from core.models.base import Component, path_points
from core.store import SCHEMA_VERSION, SchemaMismatchError, Store, StoreError, publish_atomically
from core.store import schema as schema_module
from core.store.schema import MIGRATIONS, Migration

REPO_ROOT = Path(__file__).resolve().parents[1]

LANGUAGES = pd.DataFrame({
    "lang": ["deu_Latn", "eng_Latn"], "name": ["German", "English"],
    "resource_level": ["high", "high"], "whisper_hours": [13344.0, 438218.0],
    "level_source": ["whisper paper", "whisper paper"], "espeak_voice": ["de", "en-us"],
})
COMPONENTS = [
    Component("speech_encoder", "speech", 4, "m/encoder",
              path_points([("frontend", ["embed"]), ("encoder", ["block 1", "block 2"])]),
              "encoder"),
    Component("text_decoder", "text", 4, "m/decoder",
              path_points([("frontend", ["embed"]), ("decoder", ["block 1", "block 2"])]),
              "decoder", {"prompt": "<|{lang}|>"}),
]


def _items() -> pd.DataFrame:
    rows = []
    for lang, sentences in (("eng_Latn", ["one", "two", "three"]), ("deu_Latn", ["eins", "zwei", "drei"])):
        for sid, text in enumerate(sentences):
            rows.append({"sentence_id": sid, "lang": lang, "modality": "text", "text": text,
                         "n_tokens": len(text)})
            rows.append({"sentence_id": sid, "lang": lang, "modality": "speech", "text": text,
                         "duration_s": 0.5 + sid, "voice": "espeak-ng 1.51 " + lang[:2]})
    return pd.DataFrame(rows)


def _metrics() -> pd.DataFrame:
    return pd.DataFrame({
        "pairing": ["text-text", "text-speech", "text-text"],
        "component_a": ["text_decoder"] * 3,
        "component_b": ["text_decoder", "speech_encoder", "text_decoder"],
        "layer_a": [0, 1, 1], "layer_b": [0, 1, 1], "depth": [0.0, 0.5, 0.5],
        "lang_a": ["deu_Latn", "eng_Latn", "deu_Latn"], "lang_b": ["eng_Latn", "eng_Latn", "eng_Latn"],
        "modality_a": ["text"] * 3, "modality_b": ["text", "speech", "text"],
        "metric": ["svcca", "svcca", "linear_cka"], "params": [{"k": 2}, {"k": 2}, {}],
        "n_samples": [3, 3, 3], "value": [0.5, 0.25, float("nan")],
        "baseline_mean": [0.1, 0.1, 0.1], "baseline_std": [0.01, 0.02, 0.03],
        "ci_low": [0.4, 0.2, 0.0], "ci_high": [0.6, 0.3, 1.0],
        "length_baseline": [0.05, 0.05, 0.05], "value_residualised": [0.45, 0.2, 0.1],
        "pooling": ["mean"] * 3, "shared_space": [True, False, True],
    })


def _fill(store: Store, rng: np.random.Generator) -> dict:
    """Write every table; return what was written, for comparing."""
    written = {}
    with store.transaction():
        store.add_languages(LANGUAGES)
        item_ids = store.add_items(_items())
        store.add_run("run-1", "whisper-test", {"seed": 0, "langs": ["deu_Latn", "eng_Latn"]},
                      {"python": "3.x"})
        store.add_components("run-1", COMPONENTS)
        items = store.items()
        for dtype in ("float16", "float32"):
            layer = 0 if dtype == "float16" else 1
            for modality, component in (("speech", "speech_encoder"), ("text", "text_decoder")):
                ids = items[items.modality == modality].item_id.tolist()
                vectors = rng.normal(size=(len(ids), 4)).astype(np.float32)
                store.add_activations("run-1", component, layer, ids, vectors, dtype=dtype)
                written[(component, layer)] = (ids, vectors)
        store.add_metrics("run-1", _metrics())
        projections = pd.DataFrame({"component": "text_decoder", "layer": 1,
                                    "item_id": items[items.modality == "text"].item_id,
                                    "method": "umap", "x": np.arange(6.0), "y": -np.arange(6.0),
                                    "params": [{"n_neighbors": 3}] * 6})
        store.add_projections("run-1", projections)
    store.finish_run("run-1")
    written["item_ids"] = item_ids
    return written


def test_round_trip_every_table(tmp_path):
    path = tmp_path / "s.duckdb"
    store = Store.create(path)
    written = _fill(store, np.random.default_rng(0))
    store.close()

    with Store.open(path) as store:
        assert store.read_only
        assert store.schema_version() == SCHEMA_VERSION
        runs = store.runs()
        assert runs.run_id.tolist() == ["run-1"] and runs.status.tolist() == ["complete"]
        run = store.run("run-1")
        assert run["config"] == {"seed": 0, "langs": ["deu_Latn", "eng_Latn"]}
        assert run["versions"] == {"python": "3.x"}

        pd.testing.assert_frame_equal(store.languages(), LANGUAGES, check_dtype=False)

        items = store.items()
        assert sorted(items.item_id) == sorted(written["item_ids"]) == list(range(12))
        expected = _items().sort_values(["lang", "modality", "sentence_id"]).reset_index(drop=True)
        for column in ("sentence_id", "lang", "modality", "text"):
            assert items[column].tolist() == expected[column].tolist()
        speech = store.items("speech")
        assert set(speech.modality) == {"speech"} and len(speech) == 6
        assert speech.duration_s.notna().all() and speech.n_tokens.isna().all()

        components = store.components("run-1")
        assert components.component.tolist() == ["speech_encoder", "text_decoder"]
        assert components.layer_names.iloc[0] == ["embed", "block 1", "block 2"]
        assert components.space.tolist() == ["m/encoder", "m/decoder"]
        assert components.conditioning.iloc[1] == {"prompt": "<|{lang}|>"}
        layers = store.layers("run-1")
        assert layers[layers.component == "text_decoder"].stage.tolist() == \
            ["frontend", "decoder", "decoder"]
        assert layers.depth.tolist() == [0.0, 0.5, 1.0] * 2

        for (component, layer), (ids, vectors) in ((k, v) for k, v in written.items() if k != "item_ids"):
            frame, array = store.activations("run-1", component, layer)
            assert array.dtype == np.float32 and array.shape == (6, 4)
            # rows come back ordered by lang then sentence: match them up through item ids
            order = [ids.index(i) for i in frame.item_id]
            expected_vectors = vectors[order]
            if layer == 0:  # stored as float16: equal after the same rounding, not before
                np.testing.assert_array_equal(array, expected_vectors.astype(np.float16).astype(np.float32))
                assert not np.array_equal(array, expected_vectors)
            else:
                np.testing.assert_array_equal(array, expected_vectors)
            assert list(zip(frame.lang, frame.sentence_id)) == sorted(zip(frame.lang, frame.sentence_id))

        frame, array = store.activations("run-1", "text_decoder", 0, langs=["eng_Latn"])
        assert set(frame.lang) == {"eng_Latn"} and array.shape == (3, 4)
        frame, array = store.activations("run-1", "text_decoder", 5)
        assert frame.empty and array.shape[0] == 0

        metrics = store.metrics("run-1")
        assert len(metrics) == 3
        assert store.metric_names("run-1") == ["linear_cka", "svcca"]
        svcca = store.metrics("run-1", metric="svcca", pairing="text-speech")
        assert svcca.value.tolist() == [0.25] and json.loads(svcca.params.iloc[0]) == {"k": 2}
        assert np.isnan(store.metrics("run-1", metric="linear_cka").value.iloc[0])
        assert len(store.metrics("run-1", layer=1)) == 2
        assert len(store.metrics("run-1", langs=["deu_Latn", "eng_Latn"])) == 3
        assert store.metrics("run-1", langs=["eng_Latn"]).pairing.tolist() == ["text-speech"]
        assert store.metrics("other-run").empty

        projections = store.projections("run-1", component="text_decoder", layer=1)
        assert len(projections) == 6 and set(projections.modality) == {"text"}
        assert sorted(projections.x) == list(np.arange(6.0))
        assert store.projections("run-1", layer=0).empty
        assert store.counts() == {"runs": 1, "languages": 2, "items": 12, "run_items": 0,
                                  "components": 2, "layers": 6, "activations": 24, "metrics": 3,
                                  "projections": 6, "run_languages": 0, "metric_variants": 0,
                                  "item_sources": 0, "layer_matrices": 0}


def test_add_items_continues_ids_and_per_run_measurements(tmp_path):
    with Store.create(tmp_path / "s.duckdb") as store:
        first = store.add_items(_items().iloc[:2])
        second = store.add_items(_items().iloc[2:5])
        assert first == [0, 1] and second == [2, 3, 4]
        store.update_items(pd.DataFrame({"item_id": [1], "voice": ["recording"]}))
        # transcripts, CER and token counts belong to the run whose model measured them
        store.set_run_items("run-a", pd.DataFrame({"item_id": [1, 3], "transcript": ["won", "too"],
                                                   "cer": [0.5, 0.25]}))
        store.set_run_items("run-b", pd.DataFrame({"item_id": [1], "transcript": ["one"]}))
        store.set_run_items("run-a", pd.DataFrame({"item_id": [1], "n_tokens": [7]}))
        a = store.items(run_id="run-a").set_index("item_id")
        b = store.items(run_id="run-b").set_index("item_id")
        assert a.loc[1, "transcript"] == "won" and a.loc[3, "cer"] == 0.25
        assert a.loc[1, "n_tokens"] == 7  # a later call for other columns keeps the transcript
        assert b.loc[1, "transcript"] == "one" and pd.isna(b.loc[3, "cer"])
        assert pd.isna(a.loc[0, "transcript"]) and a.loc[1, "voice"] == "recording"
        assert store.items().transcript.isna().all()
        with pytest.raises(StoreError, match="cannot set"):
            store.update_items(pd.DataFrame({"item_id": [1], "lang": ["x"]}))
        with pytest.raises(StoreError, match="cannot set"):
            store.set_run_items("run-a", pd.DataFrame({"item_id": [1], "voice": ["x"]}))


def test_coordinate_metrics_across_spaces_are_refused(tmp_path):
    with Store.create(tmp_path / "s.duckdb") as store:
        rows = _metrics()
        rows.loc[1, "metric"] = "paired_cosine"  # text-speech across m/decoder and m/encoder
        with pytest.raises(StoreError, match="different representation spaces"):
            store.add_metrics("run-1", rows)
        assert store.counts()["metrics"] == 0
        rows.loc[1, "metric"] = "mutual_knn"  # basis-free: valid across spaces
        store.add_metrics("run-1", rows)
        assert store.counts()["metrics"] == 3


def test_migrations_recorded_and_idempotent(tmp_path):
    path = tmp_path / "s.duckdb"
    Store.create(path).close()
    with Store.open(path, read_only=False) as store:
        migrations = store.migrations()
    assert migrations.id.tolist() == [m.id for m in MIGRATIONS]
    assert migrations.name.tolist() == [m.name for m in MIGRATIONS]
    assert migrations.applied_at.notna().all()
    first_applied = migrations.applied_at.tolist()
    with Store.open(path, read_only=False) as store:  # nothing pending: nothing re-applied
        assert store.migrations().applied_at.tolist() == first_applied


def test_create_refuses_existing_file(tmp_path):
    path = tmp_path / "s.duckdb"
    Store.create(path).close()
    with pytest.raises(StoreError, match="already exists"):
        Store.create(path)


def test_open_missing_file_says_how_to_build(tmp_path):
    with pytest.raises(StoreError, match="precompute build"):
        Store.open(tmp_path / "nothing.duckdb")


def test_read_only_refuses_newer_schema(tmp_path):
    path = tmp_path / "s.duckdb"
    Store.create(path).close()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO _migrations VALUES (?, 'from the future', now())", [SCHEMA_VERSION + 1])
    con.close()
    for read_only in (True, False):
        with pytest.raises(SchemaMismatchError, match="newer than this code"):
            Store.open(path, read_only=read_only)


def test_older_schema_refused_read_only_and_migrated_read_write(tmp_path, monkeypatch):
    path = tmp_path / "s.duckdb"
    monkeypatch.setattr(schema_module, "MIGRATIONS", MIGRATIONS[:1])
    import core.store.migrations as store_module
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:1])
    Store.create(path).close()
    monkeypatch.undo()

    with pytest.raises(SchemaMismatchError, match="precompute migrate"):
        Store.open(path, read_only=True)
    with Store.open(path, read_only=False) as store:  # a writer applies what is pending
        assert store.schema_version() == SCHEMA_VERSION
    with Store.open(path) as store:
        assert store.migrations().id.tolist() == [m.id for m in MIGRATIONS]


def test_pending_migration_is_applied_in_order(tmp_path, monkeypatch):
    path = tmp_path / "s.duckdb"
    Store.create(path).close()
    extra = Migration(SCHEMA_VERSION + 1, "notes table", "CREATE TABLE notes (note VARCHAR);")
    import core.store.migrations as store_module
    monkeypatch.setattr(store_module, "MIGRATIONS", [*MIGRATIONS, extra])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", extra.id)
    with Store.open(path, read_only=False) as store:
        assert store.schema_version() == extra.id
        assert store.migrations().name.tolist()[-1] == "notes table"


def test_open_refuses_non_store_file(tmp_path):
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE x (a INTEGER)")
    con.close()
    with pytest.raises(SchemaMismatchError, match="not a Crossmodal Lens store"):
        Store.open(path)
    with pytest.raises(SchemaMismatchError, match="not a Crossmodal Lens store"):
        Store.open(path, read_only=False)


def test_transaction_rollback_leaves_no_partial_rows(tmp_path):
    path = tmp_path / "s.duckdb"
    with Store.create(path) as store:
        store.add_languages(LANGUAGES)
        with pytest.raises(RuntimeError, match="boom"):
            with store.transaction():
                store.add_items(_items())
                store.add_run("run-1", "m", {}, {})
                store.add_metrics("run-1", _metrics())
                raise RuntimeError("boom")
        counts = store.counts()
        assert counts["items"] == counts["runs"] == counts["metrics"] == 0
        assert counts["languages"] == 2
        # a failing write on its own (duplicate run id) is also all-or-nothing
        store.add_run("run-1", "m", {}, {})
        with pytest.raises(duckdb.ConstraintException):
            store.add_run("run-1", "m", {}, {})
        assert store.counts()["runs"] == 1


def test_write_errors_are_clear(tmp_path):
    with Store.create(tmp_path / "s.duckdb") as store:
        with pytest.raises(StoreError, match="expected an array"):
            store.add_activations("r", "c", 0, [0, 1], np.zeros((3, 4)))
        with pytest.raises(StoreError, match="dtype"):
            store.add_activations("r", "c", 0, [0], np.zeros((1, 4)), dtype="int4")
        with pytest.raises(StoreError, match="missing required columns"):
            store.add_items(pd.DataFrame({"lang": ["x"]}))
        with pytest.raises(StoreError, match="modality"):
            store.add_items(pd.DataFrame({"sentence_id": [0], "lang": ["x"], "modality": ["video"],
                                          "text": ["t"]}))


def test_read_only_store_cannot_write(tmp_path):
    path = tmp_path / "s.duckdb"
    Store.create(path).close()
    with Store.open(path) as store:
        with pytest.raises(duckdb.Error):
            store.add_languages(LANGUAGES)


def _store_with_run(path: Path, run_id: str) -> None:
    with Store.create(path) as store:
        store.add_run(run_id, "m", {}, {})


def test_publish_atomically_keeps_old_readers_working(tmp_path):
    final = tmp_path / "lens.duckdb"
    _store_with_run(final, "old")
    reader = Store.open(final)
    assert reader.runs().run_id.tolist() == ["old"]

    tmp = tmp_path / "lens.duckdb.tmp-1"
    _store_with_run(tmp, "new")
    publish_atomically(tmp, final)

    assert not tmp.exists()
    assert reader.is_stale()
    assert reader.runs().run_id.tolist() == ["old"]  # still reading the old file, unbroken
    # Another process sees the new file at once.
    code = ("from core.store import Store; import sys; "
            "print(Store.open(sys.argv[1]).runs().run_id.tolist())")
    out = subprocess.run([sys.executable, "-c", code, str(final)], cwd=REPO_ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['new']"
    reader.close()
    with Store.open(final) as fresh:  # this process too, once the old store is closed
        assert fresh.runs().run_id.tolist() == ["new"]
        assert not fresh.is_stale()


def test_publish_refuses_open_or_broken_file(tmp_path):
    final = tmp_path / "lens.duckdb"
    _store_with_run(final, "old")
    tmp = tmp_path / "lens.duckdb.tmp-1"
    writer = Store.create(tmp)
    with pytest.raises(StoreError, match="no connection holds open"):
        publish_atomically(tmp, final)
    writer.close()
    broken = tmp_path / "broken.tmp"
    broken.write_bytes(b"not a database")
    with pytest.raises(StoreError, match="cannot publish"):
        publish_atomically(broken, final)
    with Store.open(final) as store:
        assert store.runs().run_id.tolist() == ["old"]


def test_delete_metrics_projections_and_update_config_touch_only_that_run(tmp_path):
    path = tmp_path / "s.duckdb"
    with Store.create(path) as store:
        _fill(store, np.random.default_rng(0))
        store.add_run("run-2", "other", {"seed": 1}, {})
        store.add_metrics("run-2", _metrics().iloc[:2])
        with pytest.raises(RuntimeError, match="boom"):  # inside a failing transaction: undone
            with store.transaction():
                assert store.delete_metrics("run-1") == 3
                raise RuntimeError("boom")
        assert len(store.metrics("run-1")) == 3

        assert store.delete_metrics("run-1") == 3
        assert store.delete_projections("run-1") == 6
        assert store.delete_metrics("run-1") == 0
        store.update_run_config("run-1", {"seed": 7, "recomputed": [{"at": "now"}]})
        with pytest.raises(KeyError, match="no run 'nope'.*run-1, run-2"):
            store.update_run_config("nope", {})

        assert store.metrics("run-1").empty and store.projections("run-1").empty
        assert len(store.metrics("run-2")) == 2
        assert store.run("run-1")["config"] == {"seed": 7, "recomputed": [{"at": "now"}]}
        assert store.run("run-1")["status"] == "complete"
        assert store.run("run-2")["config"] == {"seed": 1}
        assert len(store.activations("run-1", "text_decoder", 1)[0]) == 6  # activations stay


def test_compact_copy_keeps_every_row_and_drops_deleted_space(tmp_path):
    from core.store import compact_copy

    path = tmp_path / "s.duckdb"
    with Store.create(path) as store:
        _fill(store, np.random.default_rng(0))
        big = pd.concat([_metrics()] * 2000, ignore_index=True)
        store.add_metrics("run-1", big)
    with Store.open(path, read_only=False) as store:
        with store.transaction():
            store.delete_metrics("run-1")
            store.add_metrics("run-1", _metrics())
        expected = {name: store.counts()[name] for name in store.counts()}
        items, metrics = store.items(), store.metrics("run-1")
    copy = tmp_path / "compact.duckdb"
    compact_copy(path, copy)
    assert copy.stat().st_size < path.stat().st_size
    with Store.open(copy) as store:  # a current-schema store, readable read-only
        assert store.counts() == expected
        pd.testing.assert_frame_equal(store.items(), items)
        pd.testing.assert_frame_equal(store.metrics("run-1"), metrics)
    with pytest.raises(FileExistsError):
        compact_copy(path, copy)


def test_a_schema_3_store_is_upgraded_with_its_rows_kept(tmp_path, monkeypatch):
    """Migration 4 rebuilds items and activations (new key and dtype check): nothing is lost, old
    speech is voice 0, old intervals are marked percentile, int8 vectors can be added after."""
    import core.store.migrations as store_module

    path = tmp_path / "old.duckdb"
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:3])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 3)
    with Store.create(path) as store:
        store._connection().execute(
            "INSERT INTO items (item_id, sentence_id, lang, modality, text, duration_s, voice) "
            "VALUES (0, 0, 'eng_Latn', 'text', 'hi', NULL, NULL), "
            "(1, 0, 'eng_Latn', 'speech', 'hi', 1.5, 'espeak-ng 1.51 en-us')")
        store._connection().execute(
            "INSERT INTO activations VALUES ('r', 'c', 0, 1, 'float16', 2, ?, 3)",
            [np.array([1.0, -2.0], dtype="<f2").tobytes()])
        store._connection().execute(
            "INSERT INTO metrics (run_id, pairing, component_a, component_b, layer_a, layer_b, depth, "
            "lang_a, lang_b, modality_a, modality_b, metric, n_samples, value) VALUES ('r', "
            "'text-speech', 'a', 'b', 0, 0, 0.0, 'eng_Latn', 'eng_Latn', 'text', 'speech', 'svcca', "
            "60, 0.5)")
    monkeypatch.undo()
    with Store.open(path, read_only=False) as store:
        assert store.schema_version() == SCHEMA_VERSION
        items = store.items(all_voices=True)
        assert sorted(items.item_id) == [0, 1]
        assert (items.voice_rank == 0).all() and len(items) == 2
        frame, vectors = store.activations("r", "c", 0)
        np.testing.assert_array_equal(vectors, [[1.0, -2.0]])
        assert frame.n_positions.tolist() == [3]
        assert store.metrics("r").ci_method.tolist() == ["percentile"]
        store.add_items(pd.DataFrame({"sentence_id": [0], "lang": ["eng_Latn"], "modality": ["speech"],
                                      "text": ["hi"], "voice": ["espeak-ng 1.51 en-us+f3"],
                                      "voice_rank": [1]}))
        assert len(store.items()) == 2 and len(store.items(all_voices=True)) == 3
        second = store.items(all_voices=True).query("voice_rank == 1").item_id.iloc[0]
        store.add_activations("r", "c", 0, [second], np.array([[0.5, 0.25]]), dtype="int8")
        _, primary = store.activations("r", "c", 0)
        _, other = store.activations("r", "c", 0, voice_rank=1)
        assert primary.shape == (1, 2)
        np.testing.assert_allclose(other, [[0.5, 0.25]], atol=0.5 / 254)


def test_int8_vectors_stay_within_half_a_step():
    from core.store.vectors import decode_vectors, encode_vectors

    x = np.random.default_rng(0).standard_normal((50, 384)).astype(np.float32) * 3
    x[0] = 0.0  # an all-zero vector survives
    decoded = decode_vectors(encode_vectors(x, "int8"), "int8", 384)
    step = np.abs(x).max(axis=1, keepdims=True) / 127
    assert (np.abs(decoded - x) <= step / 2 + 1e-6).all()
    assert not decoded[0].any()
    np.testing.assert_array_equal(decode_vectors(encode_vectors(x, "float32"), "float32", 384), x)
    with pytest.raises(ValueError, match="finite"):
        encode_vectors(np.array([[np.inf, 1.0]]), "int8")


def test_parts_are_read_whole_or_by_equal_columns_only(tmp_path):
    """Parts (a build's Parquet files) are read through parameters: a path with a quote in it is
    data, a filter names a known column or is refused, and a workspace reads its parts the same way."""
    from core.store import parts
    from precompute.staging import Workspace

    frame = pd.DataFrame({"layer": [0, 0, 1, 1], "voice_rank": [0, 1, 0, 1],
                          "sentence_id": [5, 5, 5, 5], "value": [1.0, 2.0, 3.0, 4.0]})
    folder = tmp_path / "it's here"
    folder.mkdir()
    path = folder / "part.parquet"
    parts.write_part(frame.set_index("value", drop=False), path)
    pd.testing.assert_frame_equal(parts.read_part(path), frame)
    assert parts.read_part(path, {"layer": 1, "voice_rank": 0}).value.tolist() == [3.0]
    assert parts.read_part(path, {"layer": 2}).empty
    with pytest.raises(ValueError, match="cannot be filtered on 'value'"):
        parts.read_part(path, {"value": 1.0})
    with pytest.raises(ValueError, match="cannot be filtered"):
        parts.read_part(path, {'layer" = 0 OR "layer': 1})

    workspace = Workspace(tmp_path / "lens.duckdb")
    workspace.write_part(frame, "run", "activations", "enc", "eng_Latn")
    assert not list(workspace.job_dir("run").rglob("*.tmp-*"))
    by_filters = workspace.read_part("run", "activations", "enc", "eng_Latn",
                                     filters={"layer": 1, "voice_rank": 1})
    assert by_filters.value.tolist() == [4.0]


def test_copy_store_file_takes_the_write_ahead_log_along(tmp_path):
    from core.store import copy_store_file

    source, target = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    source.write_bytes(b"file")
    copy_store_file(source, target)
    assert target.read_bytes() == b"file" and not (tmp_path / "b.duckdb.wal").exists()
    (tmp_path / "a.duckdb.wal").write_bytes(b"log")
    copy_store_file(source, tmp_path / "c.duckdb")
    assert (tmp_path / "c.duckdb.wal").read_bytes() == b"log"
