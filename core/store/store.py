"""The ``Store`` class: opening a store file, its schema, and the read API (the dashboard's).

precompute writes one file (runs, items, pooled activations, metrics, projections) through the write
API (``StoreWrites``, ``writes.py``); the dashboard opens it read-only. Every query is parameterised;
SQL text is built only from constants of this package (``tables``). Writers group their inserts with
``with store.transaction():`` so a failure leaves no partial rows.

A DuckDB process shares one database instance per file path: to see a file that ``publish_atomically``
replaced, close every Store on the old file first (``Store.is_stale`` says when that is needed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from core.store import migrations
from core.store.errors import StoreError
from core.store.export import export_query
from core.store.matrices import LayerMatrixTables
from core.store.schema import Migration
from core.store.tables import LANGUAGE_COLUMNS, METRIC_COLUMNS, TABLES, VARIANT_COLUMNS, check_modality
from core.store.vectors import decode_vectors
from core.store.writes import StoreWrites

_ITEM_SELECT = ("i.item_id, i.sentence_id, i.lang, i.modality, i.text, i.duration_s, m.n_tokens, "
                "m.cer, m.transcript, i.voice, i.voice_rank")
#: joins a run's measurements onto items; the run id is the first parameter (NULL: none)
_RUN_ITEMS_JOIN = "LEFT JOIN run_items m ON m.item_id = i.item_id AND m.run_id = ?"


class Store(StoreWrites, LayerMatrixTables):
    """An open store file. Use ``Store.create`` / ``Store.open``, not the constructor."""

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, path: str | os.PathLike) -> Store:
        """A new, empty store with every migration applied; refuses to overwrite a file."""
        path = Path(path)
        if path.exists():
            raise StoreError(f"cannot create store {path}: the file already exists (delete it or "
                             "build into a new path)")
        path.parent.mkdir(parents=True, exist_ok=True)
        store = cls(duckdb.connect(str(path)), path, read_only=False)
        try:
            store._migrate()
        except BaseException:
            store._con.close()
            raise
        return store

    @classmethod
    def open(cls, path: str | os.PathLike, *, read_only: bool = True) -> Store:
        """Open an existing store; writers get pending migrations applied, readers a schema check."""
        path = Path(path)
        if not path.is_file():
            raise StoreError(f"no store at {path}: build one with `python -m precompute build "
                             f"--out {path}`")
        try:
            con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open store {path} ({'read-only' if read_only else 'read-write'}"
                             f"): {exc}") from exc
        store = cls(con, path, read_only)
        try:
            if read_only:
                store._check_schema()
            else:
                store._migrate()
        except BaseException:
            con.close()
            raise
        return store

    # ------------------------------------------------------------------ schema
    def schema_version(self) -> int:
        applied = migrations.applied_migrations(self._connection())
        return max(applied) if applied else 0

    def migrations(self) -> pd.DataFrame:
        """Applied migrations (id, name, applied_at), oldest first."""
        return self._df("SELECT id, name, applied_at FROM _migrations ORDER BY id")

    def _check_schema(self) -> None:
        migrations.check_schema(self._connection(), self.path)

    def _migrate(self) -> list[Migration]:
        """Apply pending migrations in order, each in its own transaction; return those applied."""
        con = self._connection()
        done = []
        for migration in migrations.pending_migrations(con, self.path):
            with self.transaction():
                migrations.apply_migration(con, migration)
            done.append(migration)
        return done

    # ------------------------------------------------------------------ read API
    def runs(self) -> pd.DataFrame:
        """All runs, oldest first; ``config`` and ``versions`` are JSON strings (see ``run``)."""
        return self._df("SELECT run_id, created_at, model, config, versions, status FROM runs "
                        "ORDER BY created_at, run_id")

    def run(self, run_id: str) -> dict[str, Any]:
        """One run with ``config`` and ``versions`` parsed into dicts."""
        row = self._df("SELECT run_id, created_at, model, config, versions, status FROM runs "
                       "WHERE run_id = ?", [run_id])
        if row.empty:
            raise self._unknown_run(run_id)
        record = row.iloc[0].to_dict()
        record["config"] = json.loads(record["config"])
        record["versions"] = json.loads(record["versions"])
        return record

    def languages(self) -> pd.DataFrame:
        return self._df(f"SELECT {', '.join(LANGUAGE_COLUMNS)} FROM languages ORDER BY lang")

    def items(self, modality: str | None = None, *, run_id: str | None = None,
              all_voices: bool = False) -> pd.DataFrame:
        """Items; ``n_tokens``, ``cer`` and ``transcript`` are those of ``run_id`` (NULL without).

        Speech in a language's second voice (``voice_rank`` 1, a voice-change reference) is left
        out unless ``all_voices``: everything else reads one item per (lang, modality, sentence)."""
        sql = f"SELECT {_ITEM_SELECT} FROM items i {_RUN_ITEMS_JOIN}"
        params: list[Any] = [run_id]
        where = [] if all_voices else ["i.voice_rank = 0"]
        if modality is not None:
            check_modality(modality)
            where.append("i.modality = ?")
            params.append(modality)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._df(sql + " ORDER BY i.lang, i.modality, i.voice_rank, i.sentence_id", params)

    def item_sources(self) -> pd.DataFrame:
        """item_id, path, file_sha256, waveform_sha256 of the speech items whose audio source the
        store records (``core.item_audio`` replays an item against them)."""
        return self._df("SELECT item_id, path, file_sha256, waveform_sha256 FROM item_sources "
                        "ORDER BY item_id")

    def components(self, run_id: str) -> pd.DataFrame:
        df = self._df("SELECT component, modality, n_layers, dim, description, layer_names, space, "
                      "conditioning FROM components WHERE run_id = ? ORDER BY rowid", [run_id])
        df["layer_names"] = [json.loads(v) if v is not None else [] for v in df["layer_names"]]
        df["conditioning"] = [json.loads(v) if v is not None else {} for v in df["conditioning"]]
        return df

    def layers(self, run_id: str | None = None) -> pd.DataFrame:
        """Layer points (run_id, component, layer, name, stage, depth, space) of one or all runs."""
        sql = "SELECT run_id, component, layer, name, stage, depth, space FROM layers"
        params: list[Any] = []
        if run_id is not None:
            sql += " WHERE run_id = ?"
            params.append(run_id)
        return self._df(sql + " ORDER BY run_id, component, layer", params)

    def length_adaptation(self, run_id: str) -> pd.DataFrame:
        """Per item, the positions pooled at every point of each component (n_positions), where
        recorded: before/after a length adaptor are its two points' columns."""
        return self._df(
            "SELECT a.component, a.layer, a.item_id, a.n_positions, i.lang, i.sentence_id "
            "FROM activations a JOIN items i ON i.item_id = a.item_id "
            "WHERE a.run_id = ? AND a.n_positions IS NOT NULL AND i.voice_rank = 0 "
            "ORDER BY a.component, a.layer, i.lang, i.sentence_id", [run_id])

    def metric_names(self, run_id: str) -> list[str]:
        rows = self._connection().execute(
            "SELECT DISTINCT metric FROM metrics WHERE run_id = ? ORDER BY metric", [run_id]).fetchall()
        return [r[0] for r in rows]

    def metric_settings(self, run_id: str) -> pd.DataFrame:
        """Each metric's distinct (params, n_samples) in a run, with how many rows use them: what
        the dashboard says a metric was computed with (SVCCA's k, mutual kNN's k and pool size)."""
        return self._df(
            "SELECT metric, CAST(params AS VARCHAR) AS params, n_samples, count(*) AS rows "
            "FROM metrics WHERE run_id = ? GROUP BY ALL ORDER BY metric, n_samples, params",
            [run_id])

    def metrics(self, run_id: str, *, metric: str | None = None, pairing: str | None = None,
                layer: int | None = None, langs: Sequence[str] | None = None,
                with_resamples: bool = False) -> pd.DataFrame:
        """Metric rows of a run with each side's stage and path depth (``stage_a``,
        ``path_depth_a``, ...); ``layer`` matches side a's layer, ``langs`` keeps rows whose two
        languages are both listed. ``resamples`` (bootstrap values, ``vectors.resample_matrix``)
        only when ``with_resamples``: they are most of a row's bytes."""
        where, params = ["x.run_id = ?"], [run_id]
        if metric is not None:
            where.append("x.metric = ?")
            params.append(metric)
        if pairing is not None:
            where.append("x.pairing = ?")
            params.append(pairing)
        if layer is not None:
            where.append("x.layer_a = ?")
            params.append(int(layer))
        if langs is not None:
            where.append("list_contains(?, x.lang_a) AND list_contains(?, x.lang_b)")
            params += [list(langs), list(langs)]
        columns = ", ".join(f"x.{c}" for c in METRIC_COLUMNS
                            if with_resamples or c != "resamples")
        sql = (f"SELECT x.run_id, {columns}, la.stage AS stage_a, lb.stage AS stage_b, "
               "la.depth AS path_depth_a, lb.depth AS path_depth_b FROM metrics x "
               "LEFT JOIN layers la ON la.run_id = x.run_id AND la.component = x.component_a "
               "AND la.layer = x.layer_a "
               "LEFT JOIN layers lb ON lb.run_id = x.run_id AND lb.component = x.component_b "
               "AND lb.layer = x.layer_b "
               f"WHERE {' AND '.join(where)} "
               "ORDER BY x.metric, x.pairing, x.component_a, x.component_b, x.layer_a, x.lang_a, "
               "x.lang_b")
        return self._df(sql, params)

    def activations(self, run_id: str, component: str, layer: int,
                    langs: Sequence[str] | None = None, *,
                    voice_rank: int | None = 0) -> tuple[pd.DataFrame, np.ndarray]:
        """Items and their pooled vectors (float32, one row per item), ordered by lang, voice
        rank, sentence_id; ``voice_rank`` None gives every voice, else that voice's speech only."""
        sql = (f"SELECT {_ITEM_SELECT}, a.n_positions, a.dtype, a.dim, a.vector FROM activations a "
               f"JOIN items i ON i.item_id = a.item_id {_RUN_ITEMS_JOIN} "
               "WHERE a.run_id = ? AND a.component = ? AND a.layer = ?")
        params: list[Any] = [run_id, run_id, component, int(layer)]
        if langs is not None:
            sql += " AND list_contains(?, i.lang)"
            params.append(list(langs))
        if voice_rank is not None:
            sql += " AND i.voice_rank = ?"
            params.append(int(voice_rank))
        df = self._df(sql + " ORDER BY i.lang, i.voice_rank, i.sentence_id", params)
        vectors = _decode_vectors(df)
        items = df.drop(columns=["dtype", "dim", "vector"]).reset_index(drop=True)
        return items, vectors

    def projections(self, run_id: str, component: str | None = None,
                    layer: int | None = None) -> pd.DataFrame:
        """2-D coordinates with the item's lang, sentence_id, modality and text for labelling."""
        where, params = ["p.run_id = ?"], [run_id]
        if component is not None:
            where.append("p.component = ?")
            params.append(component)
        if layer is not None:
            where.append("p.layer = ?")
            params.append(int(layer))
        return self._df(
            "SELECT p.run_id, p.component, p.layer, p.item_id, p.method, p.x, p.y, p.params, "
            "i.lang, i.sentence_id, i.modality, i.text FROM projections p "
            f"JOIN items i ON i.item_id = p.item_id WHERE {' AND '.join(where)} "
            "ORDER BY p.component, p.layer, i.lang, i.modality, i.sentence_id", params)

    def table_columns(self, table: str) -> list[str]:
        """The columns of one of the store's tables (``TABLES``), in table order."""
        if table not in TABLES:
            raise StoreError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
        return [str(r[0]) for r in self._connection().execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position", [table]).fetchall()]

    def export_batches(self, table: str, *, run_id: str | None = None, metric: str | None = None,
                       pairing: str | None = None, batch_rows: int = 65_536
                       ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """A table's rows under the filters as Arrow batches of up to ``batch_rows`` (one in
        memory at a time), with their schema (``core.store.export``); KeyError for an unknown
        run."""
        if run_id is not None:
            self.run(run_id)
        sql, params = export_query(table, self.table_columns(table), run_id=run_id, metric=metric,
                                   pairing=pairing)
        reader = self._connection().sql(sql, params=params).to_arrow_reader(batch_rows)
        return reader.schema, iter(reader)

    def counts(self) -> dict[str, int]:
        """Row count per table (for ``precompute info``)."""
        con = self._connection()
        # Table names come from the constant TABLES, never from input.
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in TABLES}

    def metric_variants(self, run_id: str, variant: str | None = None) -> pd.DataFrame:
        where, params = ["run_id = ?"], [run_id]
        if variant is not None:
            where.append("variant = ?")
            params.append(variant)
        return self._df(f"SELECT {', '.join(VARIANT_COLUMNS)} FROM metric_variants "
                        f"WHERE {' AND '.join(where)} ORDER BY variant, metric, pairing, "
                        "component_a, component_b, layer_a, layer_b, lang_a, lang_b, params", params)

    def run_languages(self, run_id: str) -> pd.DataFrame:
        """lang, resource_level, level_source of a run (empty for runs built before migration 4:
        read ``languages`` then, whose levels come from Whisper's training hours)."""
        return self._df("SELECT lang, resource_level, level_source FROM run_languages "
                        "WHERE run_id = ? ORDER BY lang", [run_id])


def _decode_vectors(df: pd.DataFrame) -> np.ndarray:
    if df.empty:
        return np.zeros((0, 0), dtype=np.float32)
    dtypes, dims = df["dtype"].unique(), df["dim"].unique()
    if len(dtypes) != 1 or len(dims) != 1:
        raise StoreError(f"mixed activation encodings in one layer: dtypes {list(dtypes)}, "
                         f"dims {list(dims)}")
    return decode_vectors(list(df["vector"]), str(dtypes[0]), int(dims[0]))
