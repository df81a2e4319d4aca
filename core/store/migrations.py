"""Which migrations a store file holds, whether this code can read it, and applying what is pending.

``schema.py`` lists the migrations; this module compares a file's ``_migrations`` table with that
list. It runs its SQL on the connection it is given and leaves transactions to the caller
(``Store`` applies each migration in a transaction of its own).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from core.store.errors import SchemaMismatchError
from core.store.schema import MIGRATIONS, MIGRATIONS_TABLE_SQL, SCHEMA_VERSION, Migration
from core.store.tables import utc_now


def applied_migrations(con: duckdb.DuckDBPyConnection) -> dict[int, str]:
    """``{id: name}`` of the migrations recorded in the file (empty when it has no ``_migrations``)."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", ["_migrations"]
    ).fetchall()[0][0]
    if not exists:
        return {}
    return dict(con.execute("SELECT id, name FROM _migrations ORDER BY id").fetchall())


def check_schema(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse (SchemaMismatchError, saying what to do) a file a reader of this code cannot read."""
    applied = applied_migrations(con)
    if not applied:
        raise SchemaMismatchError(
            f"{path} is not a Crossmodal Lens store (no _migrations table); rebuild it with "
            f"`python -m precompute build --out {path}`")
    check_known(path, applied)
    version = max(applied)
    if version < SCHEMA_VERSION:
        raise SchemaMismatchError(
            f"store {path} has schema version {version}, older than this code's "
            f"{SCHEMA_VERSION}: run `python -m precompute migrate --store {path}` or rebuild "
            "it with `python -m precompute build`")


def pending_migrations(con: duckdb.DuckDBPyConnection, path: Path) -> list[Migration]:
    """The migrations a writer must apply, in order; creates ``_migrations`` in a new file and
    refuses a file that is not a store or was migrated by other code."""
    applied = applied_migrations(con)
    if not applied and _has_tables(con):
        raise SchemaMismatchError(
            f"{path} is not a Crossmodal Lens store (tables but no _migrations); refusing to "
            "migrate it: build a new store with `python -m precompute build`")
    con.execute(MIGRATIONS_TABLE_SQL)
    check_known(path, applied)
    return [migration for migration in MIGRATIONS if migration.id not in applied]


def apply_migration(con: duckdb.DuckDBPyConnection, migration: Migration) -> None:
    """Run one migration's SQL and record it (call inside a transaction)."""
    con.execute(migration.sql)
    con.execute("INSERT INTO _migrations (id, name, applied_at) VALUES (?, ?, ?)",
                [migration.id, migration.name, utc_now()])


def check_known(path: Path, applied: dict[int, str]) -> None:
    """Refuse a file migrated past this code's schema, or by code whose migrations differ."""
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


def _has_tables(con: duckdb.DuckDBPyConnection) -> bool:
    return con.execute("SELECT count(*) FROM information_schema.tables").fetchall()[0][0] > 0
