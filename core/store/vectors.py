"""Byte encodings of the store's blobs: pooled vectors and metric rows' bootstrap values (no SQL).

Pooled vectors are ``float16``/``float32`` little-endian, or ``int8`` with a per-vector scale: the
blob is the float32 scale s = max|x| / 127 followed by round(x / s) as int8[dim]. int8 keeps every
vector within half a quantisation step (s / 2) per coordinate, enough for neighbour search and for
the metrics (the build computes its metrics from the decoded int8 values, so ``precompute metrics``
on a store reproduces them); it quarters the size of float32.

A metric row's bootstrap values (one per resample, NaN where a resample was unusable) are stored as
uint8 codes between the row's smallest and largest value: the blob is float32 low, float32 high,
uint32 count, then one byte per value (255 marks NaN, codes 0..254 span [low, high]). The error is at
most (high - low) / 508 per value: far below the spread that intervals are read from.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

VECTOR_DTYPES = ("float16", "float32", "int8")
_SCALE = np.dtype("<f4")
_NAN_CODE = 255
_LEVELS = 254


def encode_vectors(array: np.ndarray, dtype: str) -> list[bytes]:
    """One blob per row of ``array`` (n, dim) in the store's ``dtype`` encoding."""
    if dtype not in VECTOR_DTYPES:
        raise ValueError(f"vector dtype must be one of {VECTOR_DTYPES}, got {dtype!r}")
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D array (n, dim), got shape {array.shape}")
    if dtype != "int8":
        encoded = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<"))
        row = encoded.shape[1] * encoded.itemsize
        buffer = encoded.tobytes()
        return [buffer[i * row:(i + 1) * row] for i in range(len(array))]
    if not np.isfinite(array).all():
        raise ValueError("int8 vectors must be finite")
    scale = np.abs(array).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    codes = np.clip(np.rint(array / scale[:, None]), -127, 127).astype(np.int8)
    scales = scale.astype(_SCALE)
    return [scales[i].tobytes() + codes[i].tobytes() for i in range(len(array))]


def decode_vectors(blobs: Sequence[bytes], dtype: str, dim: int) -> np.ndarray:
    """float32 (n, dim) from blobs of one encoding."""
    if dtype not in VECTOR_DTYPES:
        raise ValueError(f"vector dtype must be one of {VECTOR_DTYPES}, got {dtype!r}")
    n = len(blobs)
    if n == 0:
        return np.zeros((0, dim), dtype=np.float32)
    joined = b"".join(blobs)
    if dtype != "int8":
        flat = np.frombuffer(joined, dtype=np.dtype(dtype).newbyteorder("<"))
        return flat.reshape(n, dim).astype(np.float32)
    width = _SCALE.itemsize + dim
    if len(joined) != n * width:
        raise ValueError(f"int8 vectors of dim {dim} take {width} bytes each; got {len(joined)} "
                         f"bytes for {n} vectors")
    raw = np.frombuffer(joined, dtype=np.uint8).reshape(n, width)
    scales = raw[:, :_SCALE.itemsize].copy().view(_SCALE).reshape(n)
    codes = raw[:, _SCALE.itemsize:].copy().view(np.int8).astype(np.float32)
    return codes * scales[:, None].astype(np.float32)


def encode_resamples(values: np.ndarray) -> bytes | None:
    """A row's bootstrap values as one blob (None when there are none)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return None
    finite = np.isfinite(values)
    low = float(values[finite].min()) if finite.any() else 0.0
    high = float(values[finite].max()) if finite.any() else 0.0
    span = high - low
    codes = np.full(values.size, _NAN_CODE, dtype=np.uint8)
    if span > 0:
        codes[finite] = np.rint((values[finite] - low) / span * _LEVELS).astype(np.uint8)
    else:
        codes[finite] = 0
    header = np.array([low, high], dtype=_SCALE).tobytes() + np.uint32(values.size).tobytes()
    return header + codes.tobytes()


def decode_resamples(blob: bytes | None) -> np.ndarray:
    """The bootstrap values of one row (float64, NaN where unusable; empty for None)."""
    if blob is None:
        return np.empty(0)
    low, high = np.frombuffer(blob[:8], dtype=_SCALE).astype(np.float64)
    count = int(np.frombuffer(blob[8:12], dtype=np.uint32)[0])
    codes = np.frombuffer(blob[12:], dtype=np.uint8)
    if codes.size != count:
        raise ValueError(f"resample blob says {count} values but holds {codes.size}")
    values = low + codes.astype(np.float64) / _LEVELS * (high - low)
    values[codes == _NAN_CODE] = np.nan
    return values


def resample_matrix(blobs: Sequence[bytes | None]) -> np.ndarray:
    """(rows, resamples) of several rows' bootstrap values; rows without any are all NaN."""
    decoded = [decode_resamples(b) for b in blobs]
    width = max((len(d) for d in decoded), default=0)
    out = np.full((len(decoded), width), np.nan)
    for i, values in enumerate(decoded):
        out[i, :len(values)] = values
    return out


def bootstrap_matrix(frame) -> np.ndarray | None:
    """(rows, B) bootstrap values of metric rows read ``with_resamples`` (None when a row has none
    or rows differ in B): what joint intervals over those rows need."""
    if "resamples" not in frame or len(frame) == 0:
        return None
    blobs = [as_blob(b) for b in frame["resamples"]]
    if any(b is None for b in blobs):
        return None
    decoded = [decode_resamples(b) for b in blobs]
    if len({len(d) for d in decoded}) != 1:
        return None
    return np.stack(decoded)


def as_blob(value) -> bytes | None:
    """A BLOB cell as bytes; None for NULL however pandas spells it (None, NaN, pd.NA)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return None if value is None or pd.isna(value) else bytes(value)
