"""Take it with you: every table as CSV and Parquet, every chart's data as CSV, every chart as SVG
or PNG from its toolbar's camera button.

Pages call ``table(frame, key=...)`` in place of ``st.dataframe`` and ``chart(figure, key=...)`` in
place of ``st.plotly_chart``; both draw the element, then a small "Download" popover under it. The
files are made only when a button is clicked (Streamlit's deferred ``data`` callables), so a page
pays nothing for downloads nobody takes.

Images need no server-side renderer (kaleido is not a dependency): Plotly.js draws SVG or PNG in
the browser through the toolbar's camera button, whose format ``toImageButtonOptions`` sets. Plotly
has one such button, so the popover picks which format it saves (SVG by default: vector, for
papers). The pure functions (``csv_bytes``, ``parquet_bytes``, ``figure_frame``, ``chart_config``)
are tested in tests/test_downloads.py.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.charts.common import CLICK_TARGETS

IMAGE_FORMATS = {"svg": "SVG (vector)", "png": "PNG (2x)"}
#: columns of a figure's data frame, in order, where its traces have them
FIGURE_FIELDS = ("x", "y", "z", "text", "customdata", "hovertext")


def file_stem(name: str) -> str:
    """A file name stem from a chart or table name: letters, digits, ``-`` and ``_`` only."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")
    return stem or "table"


def exportable(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` that CSV and Parquet can both hold: list/dict/array cells as JSON text,
    bytes as hex, the index left out (it is the row order only)."""
    out = frame.reset_index(drop=True).copy()
    for column in out.columns:
        if out[column].dtype != object:
            continue
        values = out[column]
        if values.map(lambda v: isinstance(v, (bytes, bytearray, memoryview))).any():
            out[column] = values.map(lambda v: bytes(v).hex() if v is not None else None)
        elif values.map(lambda v: isinstance(v, (list, tuple, dict, np.ndarray))).any():
            out[column] = values.map(_json_cell)
        elif not values.map(lambda v: v is None or isinstance(v, str)).all():
            out[column] = values.map(lambda v: None if v is None else str(v))
    out.columns = [str(c) for c in out.columns]
    return out


def _json_cell(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return json.dumps(value, default=str)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """UTF-8 CSV with a header, no index."""
    return exportable(frame).to_csv(index=False).encode("utf-8")


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    """Parquet (pyarrow, zstd), no index."""
    buffer = io.BytesIO()
    exportable(frame).to_parquet(buffer, index=False, compression="zstd")
    return buffer.getvalue()


def figure_frame(figure: go.Figure) -> pd.DataFrame:
    """The numbers a chart draws, one row per point: ``trace`` (its position), ``name``, ``type``,
    and whichever of x, y, z, text, customdata, hovertext it has. A heatmap's z matrix becomes one
    row per cell, with its x and y labels. Traces drawn only to be clicked are left out."""
    frames = []
    for position, trace in enumerate(figure.data):
        if getattr(trace, "meta", None) == CLICK_TARGETS:  # repeats the cells under it
            continue
        columns: dict[str, Any] = {}
        z = getattr(trace, "z", None)
        if z is not None and np.ndim(z) == 2:
            matrix = np.asarray(z, dtype=object)
            rows, cols = matrix.shape
            xs = _labels(getattr(trace, "x", None), cols)
            ys = _labels(getattr(trace, "y", None), rows)
            columns = {"x": np.tile(xs, rows), "y": np.repeat(ys, cols), "z": matrix.ravel()}
            for field in ("text", "customdata", "hovertext"):
                value = getattr(trace, field, None)
                if value is not None and np.shape(value)[:2] == (rows, cols):
                    columns[field] = [_cell(v) for v in np.asarray(value, dtype=object)
                                      .reshape(rows * cols, -1)]
        else:
            length = max((len(v) for f in FIGURE_FIELDS
                          if (v := _array(getattr(trace, f, None))) is not None), default=0)
            for field in FIGURE_FIELDS:
                value = _array(getattr(trace, field, None))
                if value is not None and len(value) == length:
                    columns[field] = [_cell(v) for v in value]
        if not columns:
            continue
        frame = pd.DataFrame(columns)
        frame.insert(0, "type", trace.type)
        frame.insert(0, "name", getattr(trace, "name", None))
        frame.insert(0, "trace", position)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["trace", "name", "type"])
    return pd.concat(frames, ignore_index=True)


def _labels(values: Any, n: int) -> np.ndarray:
    if values is None or len(values) != n:
        return np.arange(n)
    return np.asarray(values, dtype=object)


def _array(value: Any) -> list | None:
    if value is None or isinstance(value, (str, bytes)) or np.ndim(value) == 0:
        return None
    return list(value)


def _cell(value: Any) -> Any:
    """A plain value: sequences (customdata rows) as JSON text."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return json.dumps([_cell(v) for v in value], default=str) if len(value) != 1 \
            else _cell(value[0])
    if isinstance(value, np.generic):
        return value.item()
    return value


def chart_config(image_format: str, name: str) -> dict[str, Any]:
    """Plotly config: the toolbar's camera saves ``image_format`` (svg or png) as ``name``."""
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image format {image_format!r} is not one of {sorted(IMAGE_FORMATS)}")
    return {"displaylogo": False,
            "toImageButtonOptions": {"format": image_format, "filename": file_stem(name),
                                     "scale": 2 if image_format == "png" else 1}}


# --------------------------------------------------------------------------------- the wiring

def _lazy(make: Callable[[pd.DataFrame], bytes], frame: pd.DataFrame) -> Callable[[], bytes]:
    return lambda: make(frame)


def _chart_data(figure: go.Figure, data: pd.DataFrame | None) -> Callable[[], bytes]:
    return lambda: csv_bytes(data if data is not None else figure_frame(figure))


def table(frame: pd.DataFrame, *, key: str, name: str | None = None, container: Any = None,
          **kwargs: Any) -> Any:
    """``st.dataframe(frame, **kwargs)`` (in ``container``), then CSV and Parquet buttons of
    ``frame`` under it; returns what ``st.dataframe`` returns (the selection, with ``on_select``)."""
    container = container if container is not None else st
    shown = container.dataframe(frame, key=key, **kwargs)
    stem = file_stem(name or key)
    with container.popover("Download table", icon=":material/download:", width="content"):
        st.download_button("CSV", _lazy(csv_bytes, frame), file_name=f"{stem}.csv",
                           mime="text/csv", key=f"{key}__csv", on_click="ignore",
                           icon=":material/table:")
        st.download_button("Parquet", _lazy(parquet_bytes, frame), file_name=f"{stem}.parquet",
                           mime="application/vnd.apache.parquet", key=f"{key}__parquet",
                           on_click="ignore", icon=":material/database:")
    return shown


def chart(figure: go.Figure, *, key: str, name: str | None = None, data: pd.DataFrame | None = None,
          container: Any = None, **kwargs: Any) -> Any:
    """``st.plotly_chart(figure, **kwargs)`` whose toolbar camera saves SVG or PNG (chosen in the
    popover under it, with the chart's data as CSV: ``data``, else ``figure_frame(figure)``);
    returns what ``st.plotly_chart`` returns (the selection, with ``on_select``)."""
    container = container if container is not None else st
    format_key = f"{key}__image"
    image_format = st.session_state.get(format_key, "svg")
    if image_format not in IMAGE_FORMATS:
        image_format = st.session_state[format_key] = "svg"
    stem = file_stem(name or key)
    shown = container.plotly_chart(figure, key=key, config=chart_config(image_format, stem),
                                   **kwargs)
    with container.popover("Download chart", icon=":material/download:", width="content"):
        st.radio("The toolbar's camera saves", list(IMAGE_FORMATS), key=format_key,
                 format_func=IMAGE_FORMATS.get, horizontal=True,
                 help="Drawn by your browser (Plotly.js): hover the chart, click the camera.")
        st.download_button("Chart data (CSV)", _chart_data(figure, data),
                           file_name=f"{stem}.csv", mime="text/csv", key=f"{key}__csv",
                           on_click="ignore", icon=":material/table:")
    return shown
