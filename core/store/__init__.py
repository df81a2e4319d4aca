"""DuckDB store: the one place in the project that speaks SQL.

The package, by concern:

- ``store``: the ``Store`` class, every query and write of a store file (dashboard reads, precompute
  writes in transactions);
- ``schema``: the tables, as ordered named migrations; ``migrations``: checking a file's schema and
  applying what is pending;
- ``tables``: the columns of each table and how Python values become rows;
- ``vectors``: byte encodings of pooled vectors and bootstrap values (no SQL);
- ``parts``: SQL over a build's Parquet parts (``precompute.staging`` keeps where they are);
- ``files``: store files on disk: atomic publishing, compact copies, copying with the WAL, fsync;
- ``errors``: ``StoreError`` and ``SchemaMismatchError``.

Every query is parameterised; SQL text is built only from constants of this package.
"""

from __future__ import annotations

from core.store.errors import SchemaMismatchError, StoreError
from core.store.files import compact_copy, copy_store_file, publish_atomically
from core.store.schema import SCHEMA_VERSION
from core.store.store import Store
from core.store.writes import ACTIVATION_DTYPES

__all__ = [
    "ACTIVATION_DTYPES",
    "SCHEMA_VERSION",
    "SchemaMismatchError",
    "Store",
    "StoreError",
    "compact_copy",
    "copy_store_file",
    "publish_atomically",
]
