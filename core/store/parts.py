"""SQL over the Parquet parts of a build (``precompute.staging`` keeps where they are).

Parts are plain Parquet files: reading and writing them needs DuckDB but no database, so each
process keeps one in-memory connection for them. File paths and values travel as query parameters;
the only names put into SQL text are column names, checked against ``FILTER_COLUMNS`` and quoted by
``quote_identifier``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

#: columns a read may filter parts on (every part kind keys its rows by some of these)
FILTER_COLUMNS = frozenset({"component", "layer", "lang", "modality", "sentence_id", "voice_rank"})

_READER: duckdb.DuckDBPyConnection | None = None
_READER_LOCK = threading.Lock()
_INHERITED: list[duckdb.DuckDBPyConnection] = []


def _after_fork_in_child() -> None:
    """A forked child must not use or close the parent's connection (closing it there aborts or
    hangs the child): it is kept, untouched, and the child opens its own on first use; the lock
    is new (the parent's may have been held at the fork)."""
    global _READER, _READER_LOCK
    if _READER is not None:
        _INHERITED.append(_READER)
    _READER, _READER_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


@contextlib.contextmanager
def _cursor() -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor of this process's in-memory DuckDB connection (parts are plain Parquet files;
    the connection holds no data). Opening a connection costs ~30 ms, and a build reads
    hundreds of parts (a layer of one language at a time), so one connection is kept per process
    and each call gets its own cursor (safe across threads)."""
    global _READER
    with _READER_LOCK:
        if _READER is None:
            _READER = duckdb.connect()
        cursor = _READER.cursor()
    try:
        yield cursor
    finally:
        cursor.close()


def write_part(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` (index dropped) to ``path`` as Parquet; not atomic by itself (the caller
    writes to a temporary name and renames, ``core.store.files.write_atomically``)."""
    with _cursor() as con:
        con.register("_part", frame.reset_index(drop=True))
        con.execute("COPY _part TO ? (FORMAT parquet)", [str(path)])


def read_part(path: Path, filters: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The rows of the part at ``path`` whose columns equal ``filters`` (``{column: value}``, all
    of them; none: every row), in file order."""
    conditions, params = [], [str(path)]
    for column, value in (filters or {}).items():
        conditions.append(f"{quote_identifier(column)} = ?")
        params.append(value)
    sql = "SELECT * FROM read_parquet(?)"
    with _cursor() as con:
        return con.execute(sql + (" WHERE " + " AND ".join(conditions) if conditions else ""),
                           params).fetchdf()


def quote_identifier(column: str) -> str:
    """``column`` as a quoted SQL name, refused unless it is one of ``FILTER_COLUMNS``."""
    if column not in FILTER_COLUMNS:
        raise ValueError(f"parts cannot be filtered on {column!r}; known columns: "
                         f"{sorted(FILTER_COLUMNS)}")
    return '"' + column.replace('"', '""') + '"'
