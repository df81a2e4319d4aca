"""One open store file's DuckDB connection: closing, transactions, and the queries under the API.

``StoreConnection`` is the base of ``Store`` (``store.py``) through ``StoreWrites`` (``writes.py``):
it holds what both the read and the write API run on. Open files with ``Store.open`` /
``Store.create``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import duckdb
import pandas as pd

from core.store.errors import StoreError


class StoreConnection:
    """The connection to one store file and the transaction state of its writer."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, path: Path, read_only: bool):
        self._con = connection
        self.path = path
        self.read_only = read_only
        self._in_transaction = False
        self._file_identity = _file_identity(path)

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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def is_stale(self) -> bool:
        """True when the file at ``path`` was replaced (or removed) since this store opened it."""
        return _file_identity(self.path) != self._file_identity

    @contextmanager
    def transaction(self) -> Iterator[Self]:
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

    # ------------------------------------------------------------------ queries under the API
    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise StoreError(f"store {self.path} is closed")
        return self._con

    def _df(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        return self._connection().execute(sql, list(params or [])).fetchdf()

    def _insert(self, table: str, frame: pd.DataFrame, *, or_replace: bool = False) -> None:
        if frame.empty:
            return
        columns = ", ".join(frame.columns)  # checked against the constant column lists
        verb = "INSERT OR REPLACE INTO" if or_replace else "INSERT INTO"
        self._execute_with_incoming(frame, f"{verb} {table} ({columns}) "
                                           f"SELECT {columns} FROM _incoming")

    def _execute_with_incoming(self, frame: pd.DataFrame, sql: str) -> None:
        """Run ``sql`` with ``frame`` readable as the table ``_incoming`` (DuckDB scans the
        DataFrame in place: no row passes through Python)."""
        con = self._connection()
        con.register("_incoming", frame)
        try:
            con.execute(sql)
        finally:
            con.unregister("_incoming")

    def _unknown_run(self, run_id: str) -> KeyError:
        """The error for a run id the file does not hold, listing those it does."""
        run_ids = self._df("SELECT run_id FROM runs ORDER BY created_at, run_id").run_id
        return KeyError(f"no run {run_id!r} in {self.path} (runs: {', '.join(run_ids)})")


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns
