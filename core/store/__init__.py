"""DuckDB store: the one place in the project that speaks SQL.

precompute writes one file (runs, items, pooled activations, metrics, projections); the dashboard opens
it read-only. Every query is parameterised; SQL text is built only from constants in this module.
Writers group their inserts with ``with store.transaction():`` so a failure leaves no partial rows.

A DuckDB process shares one database instance per file path: to see a file that ``publish_atomically``
replaced, close every Store on the old file first (``Store.is_stale`` says when that is needed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from core.models.base import Component
from core.store.schema import MIGRATIONS, MIGRATIONS_TABLE_SQL, SCHEMA_VERSION, Migration
from core.store.vectors import VECTOR_DTYPES, decode_vectors, encode_vectors

__all__ = [
    "ACTIVATION_DTYPES",
    "SCHEMA_VERSION",
    "SchemaMismatchError",
    "Store",
    "StoreError",
    "publish_atomically",
]

ACTIVATION_DTYPES = VECTOR_DTYPES

_LANGUAGE_COLUMNS = ["lang", "name", "resource_level", "whisper_hours", "level_source", "espeak_voice"]
_ITEM_COLUMNS = ["sentence_id", "lang", "modality", "text", "duration_s", "voice", "voice_rank"]
_ITEM_UPDATABLE = ["duration_s", "voice"]
#: measurements that depend on the run's model (tokenizer, ASR): stored per run in run_items
_RUN_ITEM_COLUMNS = ["n_tokens", "transcript", "cer"]
_METRIC_COLUMNS = ["pairing", "component_a", "component_b", "layer_a", "layer_b", "depth", "lang_a",
                   "lang_b", "modality_a", "modality_b", "metric", "params", "n_samples", "value",
                   "baseline_mean", "baseline_std", "ci_low", "ci_high", "length_baseline",
                   "value_residualised", "pooling", "shared_space", "ci_method", "resamples"]
_METRIC_REQUIRED = ["pairing", "component_a", "component_b", "layer_a", "layer_b", "depth", "lang_a",
                    "lang_b", "modality_a", "modality_b", "metric", "n_samples", "pooling",
                    "shared_space"]
#: metrics that compare coordinates, defined only between points of one representation space
_SPACE_DEPENDENT_METRICS = ("paired_cosine", "retrieval")
_PROJECTION_COLUMNS = ["component", "layer", "item_id", "method", "x", "y", "params"]
_TABLES = ["runs", "languages", "items", "run_items", "run_languages", "components", "layers",
           "activations", "metrics", "metric_variants", "projections"]
_RUN_LANGUAGE_COLUMNS = ["lang", "resource_level", "level_source"]
_VARIANT_COLUMNS = ["variant", "pairing", "component_a", "component_b", "layer_a", "layer_b", "depth",
                    "lang_a", "lang_b", "metric", "params", "n_samples", "value", "baseline_mean",
                    "baseline_std"]
_ITEM_SELECT = ("i.item_id, i.sentence_id, i.lang, i.modality, i.text, i.duration_s, m.n_tokens, "
                "m.cer, m.transcript, i.voice, i.voice_rank")
#: joins a run's measurements onto items; the run id is the first parameter (NULL: none)
_RUN_ITEMS_JOIN = "LEFT JOIN run_items m ON m.item_id = i.item_id AND m.run_id = ?"


class StoreError(RuntimeError):
    """A store file cannot be used as asked (missing, not a store, wrong arguments)."""


class SchemaMismatchError(StoreError):
    """The file's schema differs from the one this code was written for."""


class Store:
    """An open store file. Use ``Store.create`` / ``Store.open``, not the constructor."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, path: Path, read_only: bool):
        self._con = connection
        self.path = path
        self.read_only = read_only
        self._in_transaction = False
        self._file_identity = _file_identity(path)

    # ------------------------------------------------------------------ opening and closing
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

    def close(self) -> None:
        """Checkpoint (writers) and close; safe to call twice."""
        if self._con is None:
            return
        try:
            if not self.read_only:
                self._con.execute("CHECKPOINT")
        finally:
            self._con.close()
            self._con = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def is_stale(self) -> bool:
        """True when the file at ``path`` was replaced (or removed) since this store opened it."""
        return _file_identity(self.path) != self._file_identity

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """All writes inside commit together or not at all; nested uses join the outer one."""
        if self._in_transaction:
            yield self
            return
        con = self._connection()
        con.begin()
        self._in_transaction = True
        try:
            yield self
        except BaseException:
            con.rollback()
            raise
        else:
            con.commit()
        finally:
            self._in_transaction = False

    # ------------------------------------------------------------------ schema
    def schema_version(self) -> int:
        applied = self._applied_migrations()
        return max(applied) if applied else 0

    def migrations(self) -> pd.DataFrame:
        """Applied migrations (id, name, applied_at), oldest first."""
        return self._df("SELECT id, name, applied_at FROM _migrations ORDER BY id")

    def _applied_migrations(self) -> dict[int, str]:
        con = self._connection()
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", ["_migrations"]
        ).fetchall()[0][0]
        if not exists:
            return {}
        return dict(con.execute("SELECT id, name FROM _migrations ORDER BY id").fetchall())

    def _has_tables(self) -> bool:
        return self._connection().execute(
            "SELECT count(*) FROM information_schema.tables").fetchall()[0][0] > 0

    def _check_schema(self) -> None:
        applied = self._applied_migrations()
        if not applied:
            raise SchemaMismatchError(
                f"{self.path} is not a Crossmodal Lens store (no _migrations table); rebuild it with "
                f"`python -m precompute build --out {self.path}`")
        _check_known(self.path, applied)
        version = max(applied)
        if version < SCHEMA_VERSION:
            raise SchemaMismatchError(
                f"store {self.path} has schema version {version}, older than this code's "
                f"{SCHEMA_VERSION}: run `python -m precompute migrate --store {self.path}` or rebuild "
                "it with `python -m precompute build`")

    def _migrate(self) -> list[Migration]:
        """Apply pending migrations in order, each in its own transaction; return those applied."""
        con = self._connection()
        applied = self._applied_migrations()
        if not applied and self._has_tables():
            raise SchemaMismatchError(
                f"{self.path} is not a Crossmodal Lens store (tables but no _migrations); refusing to "
                "migrate it: build a new store with `python -m precompute build`")
        con.execute(MIGRATIONS_TABLE_SQL)
        _check_known(self.path, applied)
        done = []
        for migration in MIGRATIONS:
            if migration.id in applied:
                continue
            with self.transaction():
                con.execute(migration.sql)
                con.execute("INSERT INTO _migrations (id, name, applied_at) VALUES (?, ?, ?)",
                            [migration.id, migration.name, _now()])
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
            raise KeyError(f"no run {run_id!r} in {self.path} (runs: {', '.join(self.runs().run_id)})")
        record = row.iloc[0].to_dict()
        record["config"] = json.loads(record["config"])
        record["versions"] = json.loads(record["versions"])
        return record

    def languages(self) -> pd.DataFrame:
        return self._df(f"SELECT {', '.join(_LANGUAGE_COLUMNS)} FROM languages ORDER BY lang")

    def items(self, modality: str | None = None, *, run_id: str | None = None,
              all_voices: bool = False) -> pd.DataFrame:
        """Items; ``n_tokens``, ``cer`` and ``transcript`` are those of ``run_id`` (NULL without).

        Speech in a language's second voice (``voice_rank`` 1, a voice-change reference) is left
        out unless ``all_voices``: everything else reads one item per (lang, modality, sentence)."""
        sql = f"SELECT {_ITEM_SELECT} FROM items i {_RUN_ITEMS_JOIN}"
        params: list[Any] = [run_id]
        where = [] if all_voices else ["i.voice_rank = 0"]
        if modality is not None:
            _check_modality(modality)
            where.append("i.modality = ?")
            params.append(modality)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._df(sql + " ORDER BY i.lang, i.modality, i.voice_rank, i.sentence_id", params)

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
        columns = ", ".join(f"x.{c}" for c in _METRIC_COLUMNS
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

    def counts(self) -> dict[str, int]:
        """Row count per table (for ``precompute info``)."""
        con = self._connection()
        # Table names come from the constant _TABLES, never from input.
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in _TABLES}

    # ------------------------------------------------------------------ write API
    def add_languages(self, df: pd.DataFrame) -> None:
        """Insert or replace language rows (keyed by ``lang``)."""
        frame = _frame(df, _LANGUAGE_COLUMNS, required=["lang", "name"])
        with self.transaction():
            self._insert("languages", frame, or_replace=True)

    def add_items(self, df: pd.DataFrame) -> list[int]:
        """Insert items, returning the new item ids in row order."""
        frame = _frame(df, _ITEM_COLUMNS, required=["sentence_id", "lang", "modality", "text"])
        frame["voice_rank"] = pd.to_numeric(frame["voice_rank"]).fillna(0).astype("int64")
        for modality in frame["modality"].unique():
            _check_modality(modality)
        with self.transaction():
            start = self._connection().execute(
                "SELECT coalesce(max(item_id), -1) + 1 FROM items").fetchall()[0][0]
            ids = list(range(start, start + len(frame)))
            frame.insert(0, "item_id", ids)
            self._insert("items", frame)
        return ids

    def update_items(self, df: pd.DataFrame) -> None:
        """Set per-item measurements (transcript, cer, n_tokens...) on existing items by item_id."""
        if "item_id" not in df.columns:
            raise StoreError("update_items needs an item_id column")
        columns = [c for c in df.columns if c != "item_id"]
        unknown = sorted(set(columns) - set(_ITEM_UPDATABLE))
        if unknown:
            raise StoreError(f"update_items cannot set {unknown}; updatable: {_ITEM_UPDATABLE}")
        if not columns or df.empty:
            return
        frame = df[["item_id", *columns]].reset_index(drop=True)
        assignments = ", ".join(f"{c} = u.{c}" for c in columns)  # names checked against constants
        with self.transaction():
            con = self._connection()
            con.register("_incoming", frame)
            try:
                con.execute(f"UPDATE items SET {assignments} FROM _incoming u "
                            "WHERE items.item_id = u.item_id")
            finally:
                con.unregister("_incoming")

    def add_run(self, run_id: str, model: str, config: dict, versions: dict) -> None:
        """Start a run (status 'running' until ``finish_run``)."""
        with self.transaction():
            self._connection().execute(
                "INSERT INTO runs (run_id, created_at, model, config, versions, status) "
                "VALUES (?, ?, ?, ?, ?, 'running')",
                [run_id, _now(), model, _to_json(config), _to_json(versions)])

    def add_components(self, run_id: str, components: Iterable[Component]) -> None:
        """Components with their layer points (stage, depth, space) and conditioning."""
        components = list(components)
        rows = [(run_id, c.name, c.modality, c.n_layers, c.dim, c.description,
                 json.dumps(list(c.layer_names)), c.space, _to_json(c.conditioning))
                for c in components]
        points = [(run_id, c.name, i, p.name, p.stage, float(p.depth), c.layer_space(i))
                  for c in components for i, p in enumerate(c.layers)]
        with self.transaction():
            con = self._connection()
            con.executemany(
                "INSERT INTO components (run_id, component, modality, n_layers, dim, description, "
                "layer_names, space, conditioning) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            con.executemany(
                "INSERT INTO layers (run_id, component, layer, name, stage, depth, space) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", points)

    def set_run_items(self, run_id: str, df: pd.DataFrame) -> None:
        """Insert or replace a run's per-item measurements (item_id + n_tokens/transcript/cer).

        Columns not given keep their stored value."""
        if "item_id" not in df.columns:
            raise StoreError("set_run_items needs an item_id column")
        columns = [c for c in df.columns if c != "item_id"]
        unknown = sorted(set(columns) - set(_RUN_ITEM_COLUMNS))
        if unknown:
            raise StoreError(f"set_run_items cannot set {unknown}; per-run: {_RUN_ITEM_COLUMNS}")
        if not columns or df.empty:
            return
        frame = df[["item_id", *columns]].reset_index(drop=True).copy()
        frame.insert(0, "run_id", run_id)
        names = ", ".join(frame.columns)  # checked against constants
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
        with self.transaction():
            con = self._connection()
            con.register("_incoming", frame)
            try:
                con.execute(f"INSERT INTO run_items ({names}) SELECT {names} FROM _incoming "
                            f"ON CONFLICT (run_id, item_id) DO UPDATE SET {updates}")
            finally:
                con.unregister("_incoming")

    def add_activations(self, run_id: str, component: str, layer: int, item_ids: Sequence[int],
                        array: np.ndarray, dtype: str = "float16",
                        n_positions: Sequence[int] | None = None) -> None:
        """Store one layer's pooled vectors, one row of ``array`` (n_items, dim) per item id, with
        the number of positions each was pooled over when known."""
        if dtype not in ACTIVATION_DTYPES:
            raise StoreError(f"activation dtype must be one of {ACTIVATION_DTYPES}, got {dtype!r}")
        array = np.asarray(array)
        if array.ndim != 2 or array.shape[0] != len(item_ids):
            raise StoreError(f"activations for {component} layer {layer}: expected an array "
                             f"({len(item_ids)}, dim), got shape {array.shape}")
        frame = pd.DataFrame({
            "run_id": run_id, "component": component, "layer": int(layer),
            "item_id": np.asarray(item_ids, dtype=np.int64), "dtype": dtype,
            "dim": array.shape[1],
            "vector": encode_vectors(array, dtype),
            "n_positions": (pd.array(np.asarray(n_positions, dtype=np.int64)) if n_positions
                            is not None else pd.array([None] * len(item_ids), dtype="Int64")),
        })
        with self.transaction():
            self._insert("activations", frame)

    def add_activation_parts(self, run_id: str, paths: Sequence[str | os.PathLike]) -> int:
        """Pooled vectors from Parquet parts (``precompute.staging``: component, layer, lang,
        modality, sentence_id, voice_rank, dtype, dim, vector, n_positions), matched to items by
        (lang, modality, sentence_id, voice_rank) inside DuckDB (no vector passes through Python).
        Every part row must match an item; returns the rows added."""
        files = [str(p) for p in paths]
        if not files:
            return 0
        con = self._connection()
        with self.transaction():
            expected = con.execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchall()[0][0]
            added = con.execute(
                "INSERT INTO activations (run_id, component, layer, item_id, dtype, dim, vector, "
                "n_positions) SELECT ?, p.component, p.layer, i.item_id, p.dtype, p.dim, p.vector, "
                "p.n_positions FROM read_parquet(?) p JOIN items i ON i.lang = p.lang "
                "AND i.modality = p.modality AND i.sentence_id = p.sentence_id "
                "AND i.voice_rank = p.voice_rank",
                [run_id, files]).fetchall()[0][0]
            if added != expected:
                raise StoreError(f"activation parts of {run_id}: {expected - added} of {expected} "
                                 "rows name no stored item")
        return int(added)

    def add_metrics(self, run_id: str, df: pd.DataFrame) -> None:
        """Metric rows; coordinate-wise metrics (paired cosine, retrieval) between points of
        different representation spaces are refused: they are not defined there."""
        frame = _frame(df, _METRIC_COLUMNS, required=_METRIC_REQUIRED)
        across = frame[frame["metric"].isin(_SPACE_DEPENDENT_METRICS)
                       & ~frame["shared_space"].astype(bool)]
        if not across.empty:
            first = across.iloc[0]
            raise StoreError(
                f"refusing {len(across)} {sorted(set(across.metric))} rows between different "
                f"representation spaces (e.g. {first.component_a} layer {first.layer_a} vs "
                f"{first.component_b} layer {first.layer_b}): coordinate-wise metrics are only "
                "defined within one space")
        frame["params"] = [_to_json(p) if not isinstance(p, str) and p is not None else p
                           for p in frame["params"]]
        frame.insert(0, "run_id", run_id)
        with self.transaction():
            self._insert("metrics", frame)

    def add_metric_variants(self, run_id: str, df: pd.DataFrame) -> None:
        """Rows of ``metric_variants`` (SVCCA at other k, length-matched values)."""
        frame = _frame(df, _VARIANT_COLUMNS, required=_VARIANT_COLUMNS[:12])
        frame["params"] = [_to_json(p) if not isinstance(p, str) and p is not None else p
                           for p in frame["params"]]
        frame.insert(0, "run_id", run_id)
        with self.transaction():
            self._insert("metric_variants", frame)

    def metric_variants(self, run_id: str, variant: str | None = None) -> pd.DataFrame:
        where, params = ["run_id = ?"], [run_id]
        if variant is not None:
            where.append("variant = ?")
            params.append(variant)
        return self._df(f"SELECT {', '.join(_VARIANT_COLUMNS)} FROM metric_variants "
                        f"WHERE {' AND '.join(where)} ORDER BY variant, metric, pairing, "
                        "component_a, component_b, layer_a, layer_b, lang_a, lang_b, params", params)

    def set_run_languages(self, run_id: str, df: pd.DataFrame) -> None:
        """The resource level this run reads per language, with its source."""
        frame = _frame(df, _RUN_LANGUAGE_COLUMNS, required=_RUN_LANGUAGE_COLUMNS)
        frame.insert(0, "run_id", run_id)
        with self.transaction():
            self._connection().execute("DELETE FROM run_languages WHERE run_id = ?", [run_id])
            self._insert("run_languages", frame)

    def run_languages(self, run_id: str) -> pd.DataFrame:
        """lang, resource_level, level_source of a run (empty for runs built before migration 4:
        read ``languages`` then, whose levels come from Whisper's training hours)."""
        return self._df("SELECT lang, resource_level, level_source FROM run_languages "
                        "WHERE run_id = ? ORDER BY lang", [run_id])

    def add_projections(self, run_id: str, df: pd.DataFrame) -> None:
        frame = _frame(df, _PROJECTION_COLUMNS,
                       required=["component", "layer", "item_id", "method", "x", "y"])
        frame["params"] = [_to_json(p) if not isinstance(p, str) and p is not None else p
                           for p in frame["params"]]
        frame.insert(0, "run_id", run_id)
        with self.transaction():
            self._insert("projections", frame)

    def update_run_config(self, run_id: str, config: dict) -> None:
        """Replace a run's config (``precompute metrics`` records what it recomputed there)."""
        with self.transaction():
            updated = self._connection().execute(
                "UPDATE runs SET config = ? WHERE run_id = ? RETURNING run_id",
                [_to_json(config), run_id]).fetchall()
        if not updated:
            raise KeyError(f"no run {run_id!r} in {self.path} (runs: {', '.join(self.runs().run_id)})")

    def delete_metrics(self, run_id: str) -> int:
        """Remove every metric row of a run (before writing recomputed ones); returns how many."""
        with self.transaction():
            self._connection().execute("DELETE FROM metric_variants WHERE run_id = ?", [run_id])
            return self._connection().execute(
                "DELETE FROM metrics WHERE run_id = ?", [run_id]).fetchall()[0][0]

    def delete_projections(self, run_id: str) -> int:
        """Remove every projection row of a run (before writing recomputed ones); returns how many."""
        with self.transaction():
            return self._connection().execute(
                "DELETE FROM projections WHERE run_id = ?", [run_id]).fetchall()[0][0]

    def finish_run(self, run_id: str) -> None:
        with self.transaction():
            updated = self._connection().execute(
                "UPDATE runs SET status = 'complete' WHERE run_id = ? RETURNING run_id",
                [run_id]).fetchall()
        if not updated:
            raise KeyError(f"no run {run_id!r} to finish")

    # ------------------------------------------------------------------ helpers
    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise StoreError(f"store {self.path} is closed")
        return self._con

    def _df(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        return self._connection().execute(sql, list(params or [])).fetchdf()

    def _insert(self, table: str, frame: pd.DataFrame, *, or_replace: bool = False) -> None:
        if frame.empty:
            return
        con = self._connection()
        columns = ", ".join(frame.columns)  # checked against the constant column lists
        verb = "INSERT OR REPLACE INTO" if or_replace else "INSERT INTO"
        con.register("_incoming", frame)
        try:
            con.execute(f"{verb} {table} ({columns}) SELECT {columns} FROM _incoming")
        finally:
            con.unregister("_incoming")


def publish_atomically(tmp_path: str | os.PathLike, final_path: str | os.PathLike) -> None:
    """Move a finished (closed) store file over ``final_path`` in one step.

    Readers holding the old file keep reading the old inode; new openers see the whole new file,
    never a half-written one. The file is checked to be a current-schema store before it replaces
    anything.
    """
    tmp, final = Path(tmp_path), Path(final_path)
    wal = tmp.with_name(tmp.name + ".wal")
    try:
        if wal.exists():  # fold a leftover write-ahead log into the file first
            con = duckdb.connect(str(tmp))
            con.execute("CHECKPOINT")
            con.close()
        with Store.open(tmp, read_only=True) as check:
            check.counts()
    except (duckdb.Error, StoreError) as exc:
        raise StoreError(f"cannot publish {tmp}: it must be a current-schema store that no connection "
                         f"holds open (close the writing Store first). {exc}") from exc
    _fsync(tmp)
    stale_wal = final.with_name(final.name + ".wal")
    if stale_wal.exists():  # a log left by a crashed writer of the old file must not meet the new one
        stale_wal.unlink()
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
    _fsync_directory(final.parent)


def compact_copy(src_path: str | os.PathLike, dst_path: str | os.PathLike) -> None:
    """Write a fresh copy of the closed store ``src_path`` to ``dst_path`` (must not exist).

    DuckDB does not give back the space of deleted rows, so a store whose rows were replaced (as
    ``precompute metrics`` does) grows with each rewrite; a copy holds only the live rows.
    """
    src, dst = Path(src_path), Path(dst_path)
    if dst.exists():
        raise FileExistsError(f"{dst} exists; compact_copy writes a new file")
    con = duckdb.connect()
    try:
        con.execute("ATTACH ? AS src (READ_ONLY)", [str(src)])
        con.execute("ATTACH ? AS dst", [str(dst)])
        con.execute("COPY FROM DATABASE src TO dst")
        con.execute("DETACH dst")
        con.execute("DETACH src")
    finally:
        con.close()


# ---------------------------------------------------------------------- module helpers
def _check_known(path: Path, applied: dict[int, str]) -> None:
    known = {m.id: m.name for m in MIGRATIONS}
    newer = sorted(set(applied) - set(known))
    if newer:
        raise SchemaMismatchError(
            f"store {path} has schema version {max(applied)}, newer than this code's {SCHEMA_VERSION}: "
            "update Crossmodal Lens, or rebuild the store with this version "
            "(`python -m precompute build`)")
    renamed = [i for i in applied if applied[i] != known[i]]
    if renamed:
        raise SchemaMismatchError(
            f"store {path} was migrated by different code (migration {renamed[0]} is "
            f"{applied[renamed[0]]!r} there, {known[renamed[0]]!r} here): rebuild it with "
            "`python -m precompute build`")


def _check_modality(modality: str) -> None:
    if modality not in ("text", "speech"):
        raise StoreError(f"modality must be 'text' or 'speech', got {modality!r}")


def _frame(df: pd.DataFrame, columns: list[str], *, required: list[str]) -> pd.DataFrame:
    """The known columns of ``df`` in table order, missing optional ones as NULL."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise StoreError(f"missing required columns {missing}; got {list(df.columns)}")
    frame = pd.DataFrame(index=range(len(df)))
    for column in columns:
        frame[column] = df[column].to_numpy() if column in df.columns else None
    return frame


def _decode_vectors(df: pd.DataFrame) -> np.ndarray:
    if df.empty:
        return np.zeros((0, 0), dtype=np.float32)
    dtypes, dims = df["dtype"].unique(), df["dim"].unique()
    if len(dtypes) != 1 or len(dims) != 1:
        raise StoreError(f"mixed activation encodings in one layer: dtypes {list(dtypes)}, "
                         f"dims {list(dims)}")
    return decode_vectors(list(df["vector"]), str(dtypes[0]), int(dims[0]))


def _to_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (Path, datetime)):
        return str(value)
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON: {value!r}")


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    try:
        _fsync(directory)
    except OSError:  # some filesystems cannot fsync a directory; the rename itself is still atomic
        pass
