"""Clips that are not files of their own: a member of a ``.tar.gz`` archive (FLEURS as the hub
stores it) or a row of a Parquet / Arrow table (``datasets`` and other speech corpora).

A corpus names such a clip by a reference string, where other corpora hold a path, so a corpus stays
plain data (it is pickled to Ray workers and hashed into a run's identity):

- ``tar::<archive>::<member>``
- ``table::<file>::<row>::<audio column>::<sampling-rate column, or empty>``

``read_clip`` streams one clip out of its container: an archive is indexed once per process
(``core.gzip_index``: nothing is extracted to disk, and a clip is decompressed from the nearest
checkpoint), an Arrow file is memory-mapped and only the row is copied out, a Parquet file is read
a row group (or a slice of a large one) at a time, the last few kept (``TABLE_CACHE_BYTES``), so
memory never holds a corpus's audio.
"""

from __future__ import annotations

import io
import tarfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

TAR_PREFIX = "tar::"
TABLE_PREFIX = "table::"
_SEP = "::"
#: open archives kept indexed at once (a build reads one language's archive after another)
TAR_CACHE_ARCHIVES = 4
#: Parquet row groups (or slices of a large one) kept decoded, at most this many bytes (the most
#: recently read one always): one language's speech is read a few times, in length order
TABLE_CACHE_BYTES = 24 << 20
#: a Parquet row group whose audio is larger than this is read in slices of SLICE_ROWS rows
ROW_GROUP_CACHE_BYTES = 8 << 20
SLICE_ROWS = 8


class ClipError(ValueError):
    """A clip cannot be read: the message names the container and the member or row."""


# ---------------------------------------------------------------------- references
def is_reference(value: str | None) -> bool:
    """Whether a corpus audio entry names a clip inside a container (not a file of its own)."""
    return value is not None and value.startswith((TAR_PREFIX, TABLE_PREFIX))


def tar_ref(archive: Path | str, member: str) -> str:
    """The reference of ``member`` in ``archive``."""
    if _SEP in member:
        raise ClipError(f"{archive}: member name {member!r} contains {_SEP!r}, which cannot be "
                        "referenced; rename it")
    return f"{TAR_PREFIX}{archive}{_SEP}{member}"


def table_ref(file: Path | str, row: int, audio_column: str, rate_column: str | None = None) -> str:
    """The reference of row ``row`` (0-based, over the whole file) of a Parquet or Arrow file."""
    for column in (audio_column, rate_column or ""):
        if _SEP in column:
            raise ClipError(f"column name {column!r} contains {_SEP!r}; rename the column")
    return f"{TABLE_PREFIX}{file}{_SEP}{int(row)}{_SEP}{audio_column}{_SEP}{rate_column or ''}"


@dataclass(frozen=True)
class TableClip:
    file: Path
    row: int
    audio_column: str
    rate_column: str | None


def parse_table_ref(ref: str) -> TableClip:
    file, row, audio_column, rate_column = ref[len(TABLE_PREFIX):].rsplit(_SEP, 3)
    return TableClip(Path(file), int(row), audio_column, rate_column or None)


def parse_tar_ref(ref: str) -> tuple[Path, str]:
    archive, member = ref[len(TAR_PREFIX):].rsplit(_SEP, 1)
    return Path(archive), member


def container(ref: str) -> Path:
    """The file holding a referenced clip."""
    if ref.startswith(TAR_PREFIX):
        return parse_tar_ref(ref)[0]
    if ref.startswith(TABLE_PREFIX):
        return parse_table_ref(ref).file
    raise ValueError(f"{ref!r} is not a clip reference")


def describe(ref: str) -> str:
    """A reference in words, for messages: ``member x.wav of a.tar.gz``, ``row 3 of f.parquet``."""
    if ref.startswith(TAR_PREFIX):
        archive, member = parse_tar_ref(ref)
        return f"member {member} of {archive}"
    if ref.startswith(TABLE_PREFIX):
        clip = parse_table_ref(ref)
        return f"row {clip.row} (column {clip.audio_column}) of {clip.file}"
    return ref


# ---------------------------------------------------------------------- reading
def read_clip(ref: str) -> bytes | tuple[np.ndarray, int]:
    """A referenced clip: its encoded bytes (wav, flac, ...), or (samples, sampling rate) for a
    table that stores decoded samples. ClipError when it cannot be read."""
    if ref.startswith(TAR_PREFIX):
        archive, member = parse_tar_ref(ref)
        return _archive(archive).read(member)
    if ref.startswith(TABLE_PREFIX):
        return _table_value(parse_table_ref(ref))
    raise ValueError(f"{ref!r} is not a clip reference")


def tar_members(archive: Path | str) -> dict[str, str]:
    """File name -> member name of every regular file in ``archive`` (FLEURS' members sit in a
    ``<split>/`` folder; the TSV names the file only). ClipError for an unreadable archive or two
    members with the same file name."""
    return dict(_archive(Path(archive)).by_name)


class _IndexedArchive:
    """One ``.tar.gz`` opened through a checkpointed gzip reader, its members indexed by name."""

    def __init__(self, path: Path, stamp: tuple[int, int] | None = None) -> None:
        from core.gzip_index import IndexedGzipReader

        self.path = path
        self.stamp = stamp  # size and mtime when opened: a rewritten archive is opened again
        if not path.is_file():
            raise ClipError(f"audio archive {path} does not exist")
        raw = IndexedGzipReader(path) if _is_gzip(path) else path.open("rb")
        try:
            self.tar = tarfile.open(fileobj=raw, mode="r:")
            self.members = {m.name: m for m in self.tar.getmembers() if m.isfile()}
        except (tarfile.TarError, OSError, EOFError) as exc:
            raw.close()
            raise ClipError(f"audio archive {path} is not a readable tar archive: {exc}") from None
        self.raw = raw
        self.by_name: dict[str, str] = {}
        for name in self.members:
            base = PurePosixPath(name).name
            if base in self.by_name:
                raise ClipError(f"audio archive {path} holds {base} twice ({self.by_name[base]} "
                                f"and {name}); the TSV cannot say which is meant")
            self.by_name[base] = name

    def read(self, member: str) -> bytes:
        info = self.members.get(member)
        if info is None:
            raise ClipError(f"audio archive {self.path} has no member {member}")
        try:
            handle = self.tar.extractfile(info)
            data = handle.read() if handle is not None else b""
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ClipError(f"cannot read member {member} of {self.path}: {exc}") from None
        if len(data) != info.size:
            raise ClipError(f"member {member} of {self.path} is cut short ({len(data)} of "
                            f"{info.size} bytes): the archive is truncated")
        return data

    def close(self) -> None:
        self.tar.close()
        self.raw.close()


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


_archives: OrderedDict[Path, _IndexedArchive] = OrderedDict()


def _archive(path: Path) -> _IndexedArchive:
    """The indexed archive at ``path``, opened once per process (least recently used closed);
    reopened when the file changed since."""
    key = path.resolve()
    stamp = _stamp(key)
    cached = _archives.get(key)
    if cached is not None and cached.stamp == stamp:
        _archives.move_to_end(key)
        return cached
    if cached is not None:
        _archives.pop(key).close()
    opened = _IndexedArchive(path, stamp)
    _archives[key] = opened
    while len(_archives) > TAR_CACHE_ARCHIVES:
        _archives.popitem(last=False)[1].close()
    return opened


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


# ---------------------------------------------------------------------- tables
class _Table:
    """A Parquet file (row groups) or Arrow IPC file / stream (record batches): the row counts of
    its pieces, and one piece read on demand."""

    def __init__(self, path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path = path
        self.parquet = None
        self.offsets: list[int] = []   # Arrow stream: byte offset of each record batch message
        try:
            if path.suffix == ".parquet" or _is_parquet(path):
                # streamed column chunks: a slice of a large row group is read without the rest
                self.parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
                counts = [self.parquet.metadata.row_group(i).num_rows
                          for i in range(self.parquet.num_row_groups)]
            else:
                counts = self._index_arrow(pa)
        except (pa.ArrowException, OSError) as exc:
            raise ClipError(f"{path} is not a readable Parquet or Arrow file: {exc}") from None
        self.starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])

    def _index_arrow(self, pa) -> list[int]:
        with pa.memory_map(str(self.path)) as source:
            try:
                reader = pa.ipc.open_file(source)
                self.file_format = True
                return [reader.get_batch(i).num_rows for i in range(reader.num_record_batches)]
            except pa.ArrowInvalid:
                pass
        self.file_format = False
        counts = []
        with pa.memory_map(str(self.path)) as source:
            reader = pa.ipc.open_stream(source)
            self.schema = reader.schema
            while True:
                offset = source.tell()
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                self.offsets.append(offset)
                counts.append(batch.num_rows)
        return counts

    @property
    def n_rows(self) -> int:
        return int(self.starts[-1])

    def piece_of(self, row: int) -> tuple[int, int]:
        if not 0 <= row < self.n_rows:
            raise ClipError(f"{self.path} has {self.n_rows} rows; row {row} does not exist")
        piece = int(np.searchsorted(self.starts, row, side="right") - 1)
        return piece, row - int(self.starts[piece])

    def read_row(self, row: int, columns: tuple[str, ...]) -> dict[str, Any]:
        """One row's ``columns``: from the memory-mapped record batch (Arrow: only that row is
        copied), or from a cached Parquet row group (a large one: a slice of it, read up to
        that slice), so memory stays within ``TABLE_CACHE_BYTES``."""
        import pyarrow as pa

        piece, offset = self.piece_of(row)
        if self.parquet is None:
            with pa.memory_map(str(self.path)) as source:
                if self.file_format:
                    batch = pa.ipc.open_file(source).get_batch(piece)
                else:
                    source.seek(self.offsets[piece])
                    batch = pa.ipc.read_record_batch(pa.ipc.read_message(source), self.schema)
                # copied out of the mapping before it closes
                return batch.slice(offset, 1).select(list(columns)).to_pylist()[0]
        whole = self._group_bytes(piece, columns) <= ROW_GROUP_CACHE_BYTES
        part = 0 if whole else offset // SLICE_ROWS
        key = (self.path, piece, part, columns)
        if key not in _pieces:
            if whole:
                table = self.parquet.read_row_group(piece, columns=list(columns))
            else:
                batches = self.parquet.iter_batches(batch_size=SLICE_ROWS, row_groups=[piece],
                                                    columns=list(columns))
                for _ in range(part + 1):
                    batch = next(batches)
                table = pa.Table.from_batches([batch])
            _pieces[key] = table
            evicted = False
            while len(_pieces) > 1 and sum(t.nbytes for t in _pieces.values()) > TABLE_CACHE_BYTES:
                _pieces.popitem(last=False)
                evicted = True
            if evicted:  # hand the freed buffers back, so the peak does not creep up
                pa.default_memory_pool().release_unused()
        _pieces.move_to_end(key)
        at = offset if whole else offset - part * SLICE_ROWS
        return _pieces[key].slice(at, 1).to_pylist()[0]  # only this row becomes Python objects

    def _group_bytes(self, piece: int, columns: tuple[str, ...]) -> int:
        group = self.parquet.metadata.row_group(piece)
        total = 0
        for i in range(group.num_columns):
            column = group.column(i)
            if column.path_in_schema.split(".")[0] in columns:
                total += column.total_uncompressed_size
        return total


def _is_parquet(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"PAR1"


_tables: OrderedDict[Path, _Table] = OrderedDict()
_pieces: OrderedDict[tuple[Path, int, int, tuple[str, ...]], Any] = OrderedDict()  # pa.Table


def table_rows(path: Path | str) -> int:
    """How many rows a Parquet or Arrow file holds (ClipError when it is unreadable)."""
    return _table(Path(path)).n_rows


def _table(path: Path) -> _Table:
    key = path.resolve()
    if key not in _tables:
        _tables[key] = _Table(path)
        while len(_tables) > 16:
            _tables.popitem(last=False)
    _tables.move_to_end(key)
    return _tables[key]


def _table_value(clip: TableClip) -> bytes | tuple[np.ndarray, int]:
    table = _table(clip.file)
    fixed_rate = clip.rate_column if clip.rate_column and clip.rate_column.isdigit() else None
    columns = tuple(c for c in (clip.audio_column, clip.rate_column) if c and c != fixed_rate)
    try:
        record = table.read_row(clip.row, columns)
    except KeyError as exc:
        raise ClipError(f"{clip.file} has no column {exc}") from None
    rate = fixed_rate or (record.get(clip.rate_column) if clip.rate_column else None)
    return clip_value(record.get(clip.audio_column), rate,
                      where=describe(table_ref(clip.file, clip.row, clip.audio_column,
                                               clip.rate_column)),
                      base=clip.file.parent)


def clip_value(value: Any, rate: Any, *, where: str,
               base: Path | None = None) -> bytes | tuple[np.ndarray, int]:
    """One table cell as audio: encoded bytes (a binary cell, or the ``bytes`` of a ``datasets``
    Audio struct), the bytes of the file a path names (relative to ``base``), or decoded samples
    (a list of numbers, or an Audio struct's ``array``) with their sampling rate."""
    if isinstance(value, dict):  # datasets' Audio: {"bytes", "path"} (or decoded {"array", ...})
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("array") is not None:
            return clip_value(value["array"], value.get("sampling_rate", rate), where=where)
        value = value.get("path")
    if value is None:
        raise ClipError(f"{where}: the audio cell is empty")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        path = Path(value)
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            raise ClipError(f"{where}: audio file {path} does not exist")
        return path.read_bytes()
    samples = np.asarray(value, dtype=np.float32)
    if samples.ndim != 1 or samples.size == 0:
        raise ClipError(f"{where}: audio samples must be a non-empty list of numbers")
    if rate is None:
        raise ClipError(f"{where}: audio is stored as samples; name the column with their "
                        "sampling rate (rate=<column> in --columns) or give it (rate=16000)")
    try:
        rate = int(rate)
    except (TypeError, ValueError):
        raise ClipError(f"{where}: sampling rate {rate!r} is not a number") from None
    if rate <= 0:
        raise ClipError(f"{where}: sampling rate {rate} must be positive")
    return samples, rate


def decode_clip(ref: str) -> np.ndarray:
    """A referenced clip as 16 kHz mono float32 (ClipError naming the container and member or row
    when it does not decode)."""
    from core import audio

    value = read_clip(ref)
    try:
        if isinstance(value, bytes):
            return audio.load_audio(value)
        samples, rate = value
        return audio.to_model_format(samples, rate)
    except ValueError as exc:
        raise ClipError(f"{describe(ref)} does not decode as audio: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def resolved(recording: str) -> str:
    """A recording as an absolute name: a file's resolved path, or the reference with its
    container's resolved path (what a store records as the item's source)."""
    if recording.startswith(TAR_PREFIX):
        archive, member = parse_tar_ref(recording)
        return tar_ref(archive.resolve(), member)
    if recording.startswith(TABLE_PREFIX):
        clip = parse_table_ref(recording)
        return table_ref(clip.file.resolve(), clip.row, clip.audio_column, clip.rate_column)
    return str(Path(recording).resolve())


def clip_sha256(ref: str) -> str:
    """Checksum of a referenced clip as stored: its encoded bytes, or for decoded samples their
    float32 little-endian bytes and sampling rate."""
    import hashlib

    value = read_clip(ref)
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    samples, rate = value
    digest = hashlib.sha256(np.ascontiguousarray(samples, dtype="<f4").tobytes())
    digest.update(str(rate).encode())
    return digest.hexdigest()


def clear_caches() -> None:
    """Close every open archive and drop cached tables (tests, and after a corpus is rewritten)."""
    while _archives:
        _archives.popitem()[1].close()
    _tables.clear()
    _pieces.clear()
