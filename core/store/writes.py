"""The write API of ``Store`` (precompute): every method writes in a transaction.

Rows arrive as DataFrames whose columns are checked against the table's column list (``tables``);
vectors and parts go from their files into DuckDB without passing through Python row by row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from core.metrics.similarity import NEEDS_SHARED_SPACE
from core.models.base import Component
from core.store.connection import StoreConnection
from core.store.errors import StoreError
from core.store.tables import (ITEM_COLUMNS, ITEM_SOURCE_COLUMNS, ITEM_UPDATABLE,
                               LANGUAGE_COLUMNS, METRIC_COLUMNS, METRIC_REQUIRED, PROJECTION_COLUMNS, RUN_ITEM_COLUMNS,
                               RUN_LANGUAGE_COLUMNS, VARIANT_COLUMNS, check_modality,
                               params_as_json, per_item_columns, table_frame, to_json,
                               utc_now)
from core.store.vectors import VECTOR_DTYPES, encode_vectors

ACTIVATION_DTYPES = VECTOR_DTYPES


class StoreWrites(StoreConnection):
    """Inserts, updates and deletes; ``Store`` adds opening and the read API."""

    def add_languages(self, df: pd.DataFrame) -> None:
        """Insert or replace language rows (keyed by ``lang``)."""
        frame = table_frame(df, LANGUAGE_COLUMNS, required=["lang", "name"])
        with self.transaction():
            self._insert("languages", frame, or_replace=True)

    def add_items(self, df: pd.DataFrame) -> list[int]:
        """Insert items, returning the new item ids in row order."""
        frame = table_frame(df, ITEM_COLUMNS, required=["sentence_id", "lang", "modality", "text"])
        frame["voice_rank"] = pd.to_numeric(frame["voice_rank"]).fillna(0).astype("int64")
        for modality in frame["modality"].unique():
            check_modality(modality)
        with self.transaction():
            start = self._connection().execute(
                "SELECT coalesce(max(item_id), -1) + 1 FROM items").fetchall()[0][0]
            ids = list(range(start, start + len(frame)))
            frame.insert(0, "item_id", ids)
            self._insert("items", frame)
        return ids

    def update_items(self, df: pd.DataFrame) -> None:
        """Set per-item measurements (transcript, cer, n_tokens...) on existing items by item_id."""
        columns = per_item_columns(df, ITEM_UPDATABLE, writer="update_items", kind="updatable")
        if not columns or df.empty:
            return
        frame = df[["item_id", *columns]].reset_index(drop=True)
        assignments = ", ".join(f"{c} = u.{c}" for c in columns)  # names checked against constants
        with self.transaction():
            self._execute_with_incoming(frame, f"UPDATE items SET {assignments} FROM _incoming u "
                                               "WHERE items.item_id = u.item_id")

    def add_run(self, run_id: str, model: str, config: dict, versions: dict) -> None:
        """Start a run (status 'running' until ``finish_run``)."""
        with self.transaction():
            self._connection().execute(
                "INSERT INTO runs (run_id, created_at, model, config, versions, status) "
                "VALUES (?, ?, ?, ?, ?, 'running')",
                [run_id, utc_now(), model, to_json(config), to_json(versions)])

    def add_components(self, run_id: str, components: Iterable[Component]) -> None:
        """Components with their layer points (stage, depth, space) and conditioning."""
        components = list(components)
        rows = [(run_id, c.name, c.modality, c.n_layers, c.dim, c.description,
                 json.dumps(list(c.layer_names)), c.space, to_json(c.conditioning))
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
        columns = per_item_columns(df, RUN_ITEM_COLUMNS, writer="set_run_items", kind="per-run")
        if not columns or df.empty:
            return
        frame = df[["item_id", *columns]].reset_index(drop=True).copy()
        frame.insert(0, "run_id", run_id)
        names = ", ".join(frame.columns)  # checked against constants
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
        with self.transaction():
            self._execute_with_incoming(frame, f"INSERT INTO run_items ({names}) SELECT {names} "
                                               "FROM _incoming ON CONFLICT (run_id, item_id) "
                                               f"DO UPDATE SET {updates}")

    def set_item_sources(self, df: pd.DataFrame) -> None:
        """Insert or replace where speech items' audio came from: item_id + waveform_sha256 and,
        for recordings, path and file_sha256 (``item_sources``)."""
        columns = per_item_columns(df, ITEM_SOURCE_COLUMNS, writer="set_item_sources",
                                   kind="item sources")
        if df.empty:
            return
        if "waveform_sha256" not in columns or df["waveform_sha256"].isna().any():
            raise StoreError("set_item_sources needs a waveform_sha256 for every item")
        frame = table_frame(df, ["item_id", *ITEM_SOURCE_COLUMNS], required=["item_id"])
        with self.transaction():
            self._execute_with_incoming(frame, "INSERT OR REPLACE INTO item_sources (item_id, "
                                               "path, file_sha256, waveform_sha256) SELECT "
                                               "item_id, path, file_sha256, waveform_sha256 "
                                               "FROM _incoming")

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
        frame = table_frame(df, METRIC_COLUMNS, required=METRIC_REQUIRED)
        across = frame[frame["metric"].isin(sorted(NEEDS_SHARED_SPACE))
                       & ~frame["shared_space"].astype(bool)]
        if not across.empty:
            first = across.iloc[0]
            raise StoreError(
                f"refusing {len(across)} {sorted(set(across.metric))} rows between different "
                f"representation spaces (e.g. {first.component_a} layer {first.layer_a} vs "
                f"{first.component_b} layer {first.layer_b}): coordinate-wise metrics are only "
                "defined within one space")
        params_as_json(frame)
        frame.insert(0, "run_id", run_id)
        with self.transaction():
            self._insert("metrics", frame)

    def add_metric_variants(self, run_id: str, df: pd.DataFrame) -> None:
        """Rows of ``metric_variants`` (SVCCA at other k, length-matched values)."""
        frame = table_frame(df, VARIANT_COLUMNS, required=VARIANT_COLUMNS[:12])
        params_as_json(frame)
        frame.insert(0, "run_id", run_id)
        with self.transaction():
            self._insert("metric_variants", frame)

    def set_run_languages(self, run_id: str, df: pd.DataFrame) -> None:
        """The resource level this run reads per language, with its source."""
        frame = table_frame(df, RUN_LANGUAGE_COLUMNS, required=RUN_LANGUAGE_COLUMNS)
        frame.insert(0, "run_id", run_id)
        with self.transaction():
            self._connection().execute("DELETE FROM run_languages WHERE run_id = ?", [run_id])
            self._insert("run_languages", frame)

    def add_projections(self, run_id: str, df: pd.DataFrame) -> None:
        frame = table_frame(df, PROJECTION_COLUMNS,
                       required=["component", "layer", "item_id", "method", "x", "y"])
        params_as_json(frame)
        frame.insert(0, "run_id", run_id)
        with self.transaction():
            self._insert("projections", frame)

    def update_run_config(self, run_id: str, config: dict) -> None:
        """Replace a run's config (``precompute metrics`` records what it recomputed there)."""
        with self.transaction():
            updated = self._connection().execute(
                "UPDATE runs SET config = ? WHERE run_id = ? RETURNING run_id",
                [to_json(config), run_id]).fetchall()
        if not updated:
            raise self._unknown_run(run_id)

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
            raise self._unknown_run(run_id)
