"""Any table of a store, filtered by run, metric and pairing, into Parquet or CSV: results leave
the store without SQL (``python -m precompute export``).

``export_query`` builds the one statement (table names checked against ``TABLES``, filter values
as parameters); ``Store.export_batches`` runs it and streams Arrow record batches;
``write_batches`` writes them to a file atomically (a ``.tmp-<pid>`` file renamed into place), one
batch in memory at a time. CSV cannot hold bytes, so BLOB columns (pooled vectors, bootstrap
values) become hex text there; Parquet keeps them binary.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from core.store.errors import StoreError
from core.store.tables import TABLES

FORMATS = ("parquet", "csv")
#: the filters export takes, and the column each one reads
FILTERS = {"run_id": "run_id", "metric": "metric", "pairing": "pairing"}
#: items exported for one run carry that run's measurements (as ``Store.items(run_id=...)``)
_ITEMS_OF_RUN = ("SELECT i.*, m.n_tokens, m.transcript, m.cer FROM items i "
                 "LEFT JOIN run_items m ON m.item_id = i.item_id AND m.run_id = ?")
#: each table's row order in an export (so two exports of one store are the same file)
ORDER = {
    "runs": "created_at, run_id", "languages": "lang", "items": "item_id",
    "run_items": "run_id, item_id", "run_languages": "run_id, lang",
    "components": "run_id, component", "layers": "run_id, component, layer",
    "activations": "run_id, component, layer, item_id",
    "metrics": "run_id, pairing, metric, component_a, component_b, layer_a, layer_b, lang_a, "
               "lang_b, params",
    "metric_variants": "run_id, variant, pairing, metric, component_a, component_b, layer_a, "
                       "layer_b, lang_a, lang_b, params",
    "projections": "run_id, component, layer, method, item_id",
    "item_sources": "item_id",
    "layer_matrices": "run_a, run_b, component_a, component_b, pairing, lang_a, lang_b, metric, "
                      "layer_a, layer_b",
}
#: tables with a run on each side: ``--run`` keeps the rows with that run on either side
TWO_RUN_TABLES = ("layer_matrices",)


def export_query(table: str, columns: Sequence[str], *, run_id: str | None = None,
                 metric: str | None = None, pairing: str | None = None) -> tuple[str, list[Any]]:
    """SQL and parameters selecting ``table``'s rows under the given filters. ``columns`` are the
    table's (to refuse a filter it has no column for, with a message naming the table). ``items``
    with a run: every item, with that run's token counts, transcripts and CER."""
    if table not in TABLES:
        raise StoreError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
    asked = {"run_id": run_id, "metric": metric, "pairing": pairing}
    order = ORDER[table]
    if table == "items" and run_id is not None:
        sql, params, where = _ITEMS_OF_RUN, [run_id], []
        asked["run_id"] = None
        order = "i.item_id"
    else:
        sql, params, where = f"SELECT * FROM {table}", [], []
    if table in TWO_RUN_TABLES and run_id is not None:
        where.append("(run_a = ? OR run_b = ?)")
        params += [run_id, run_id]
        asked["run_id"] = None
    for name, value in asked.items():
        if value is None:
            continue
        if FILTERS[name] not in columns:
            raise StoreError(f"table {table} has no {FILTERS[name]} column, so --"
                             f"{name.replace('_id', '')} cannot filter it")
        where.append(f"{FILTERS[name]} = ?")
        params.append(value)
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + f" ORDER BY {order}", params


def csv_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Binary columns as hex text (CSV has no bytes); everything else unchanged."""
    columns, names = [], []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            column = pa.array([None if v is None else v.hex() for v in column.to_pylist()],
                              type=pa.string())
        columns.append(column)
        names.append(name)
    return pa.RecordBatch.from_arrays(columns, names=names)


def write_batches(batches: Iterable[pa.RecordBatch], schema: pa.Schema, path: str | Path,
                  fmt: str) -> int:
    """Write ``batches`` to ``path`` as ``fmt`` (parquet or csv); returns the rows written. The
    file appears whole or not at all."""
    if fmt not in FORMATS:
        raise StoreError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    path = Path(path)
    if path.is_dir():
        raise StoreError(f"{path} is a directory; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    rows = 0
    try:
        if fmt == "parquet":
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                for batch in batches:
                    writer.write_batch(batch)
                    rows += batch.num_rows
        else:
            csv_schema = csv_ready(pa.RecordBatch.from_pylist([], schema=schema)).schema
            with pa_csv.CSVWriter(tmp, csv_schema) as writer:
                for batch in batches:
                    writer.write_batch(csv_ready(batch))
                    rows += batch.num_rows
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return rows

