"""Reading and writing the ``layer_matrices`` table (layer x layer matrices, calibrated best matches).

A matrix is keyed by (run_a, run_b, component_a, component_b, pairing, lang_a, lang_b); its cells
by (layer_a, layer_b, metric). ``precompute matrices`` replaces a matrix set whole (delete, then
insert, in one transaction); the dashboard reads one matrix at a time, with the resamples only
when it draws a difference (they are most of a row's bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.store.connection import StoreConnection
from core.store.tables import (LAYER_MATRIX_COLUMNS, LAYER_MATRIX_KEY, LAYER_MATRIX_REQUIRED,
                               params_as_json, table_frame)
from core.store.vectors import encode_resamples


def _blob(value: Any) -> bytes | None:
    if value is None or isinstance(value, (bytes, bytearray, memoryview)):
        return None if value is None else bytes(value)
    values = np.asarray(value, dtype=np.float64)
    return encode_resamples(values) if values.size else None


class LayerMatrixTables(StoreConnection):
    """The ``layer_matrices`` part of ``Store`` (mixed into it)."""

    def replace_layer_matrices(self, run_a: str, run_b: str, df: pd.DataFrame) -> int:
        """Replace every matrix between ``run_a`` and ``run_b`` (in that order) by ``df``'s rows.

        ``resamples`` may be arrays (encoded here), blobs or None. Returns the rows written.
        """
        frame = table_frame(df.assign(run_a=run_a, run_b=run_b), LAYER_MATRIX_COLUMNS,
                            required=LAYER_MATRIX_REQUIRED)
        frame["resamples"] = [_blob(v) for v in frame["resamples"]]
        params_as_json(frame)
        with self.transaction():
            self._connection().execute("DELETE FROM layer_matrices WHERE run_a = ? AND run_b = ?",
                                       [run_a, run_b])
            self._insert("layer_matrices", frame)
        return len(frame)

    def layer_matrix_sets(self, run_id: str | None = None) -> pd.DataFrame:
        """The matrices a store holds: one row per key (run_a, run_b, component_a, component_b,
        pairing, lang_a, lang_b) with n_langs, its metrics, layer counts and whether it kept its
        resamples; ``run_id`` keeps those with it on either side."""
        where, params = "", []
        if run_id is not None:
            where, params = "WHERE run_a = ? OR run_b = ?", [run_id, run_id]
        keys = ", ".join(LAYER_MATRIX_KEY)
        return self._df(
            f"SELECT {keys}, max(n_langs) AS n_langs, list(DISTINCT metric ORDER BY metric) AS "
            "metrics, count(DISTINCT layer_a) AS n_layers_a, count(DISTINCT layer_b) AS n_layers_b, "
            "bool_and(resamples IS NOT NULL) AS has_resamples "
            f"FROM layer_matrices {where} GROUP BY {keys} ORDER BY {keys}", params)

    def layer_matrices(self, run_a: str, run_b: str | None = None, *,
                       component_a: str | None = None, component_b: str | None = None,
                       pairing: str | None = None, metric: str | None = None,
                       langs: Sequence[str] | None = None, lang_b: str | None = None,
                       with_resamples: bool = False) -> pd.DataFrame:
        """Cells of the matrices between ``run_a`` and ``run_b`` (default: run_a with itself),
        ordered by matrix, metric, layer_a, layer_b; ``langs`` lists the lang_a values to keep
        ('mean' for the means), ``lang_b`` picks one lang_b. ``resamples`` (blobs, ``vectors.decode_resamples``) only when
        ``with_resamples``."""
        where, params = ["run_a = ?", "run_b = ?"], [run_a, run_b or run_a]
        for column, value in (("component_a", component_a), ("component_b", component_b),
                              ("pairing", pairing), ("metric", metric), ("lang_b", lang_b)):
            if value is not None:
                where.append(f"{column} = ?")  # column names are the constants above
                params.append(value)
        if langs is not None:
            where.append("list_contains(?, lang_a)")
            params.append(list(langs))
        columns = ", ".join(c for c in LAYER_MATRIX_COLUMNS if with_resamples or c != "resamples")
        return self._df(
            f"SELECT {columns} FROM layer_matrices WHERE {' AND '.join(where)} "
            "ORDER BY component_a, component_b, pairing, lang_a, lang_b, metric, layer_a, layer_b",
            params)
