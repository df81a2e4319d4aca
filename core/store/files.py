"""Store files and build parts on disk: written whole or not at all, copied with their log.

A reader must never see half a file: a new file is written beside its final path, flushed to disk
(fsync), renamed over it in one step (``os.replace``) and the folder flushed, so a crash at any
moment leaves either the old file or the new one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb

from core.store.errors import StoreError
from core.store.store import Store


def publish_atomically(tmp_path: str | os.PathLike, final_path: str | os.PathLike) -> None:
    """Move a finished (closed) store file over ``final_path`` in one step.

    Readers holding the old file keep reading the old inode; new openers see the whole new file,
    never a half-written one. The file is checked to be a current-schema store before it replaces
    anything.
    """
    tmp, final = Path(tmp_path), Path(final_path)
    wal = wal_path(tmp)
    try:
        if wal.exists():  # fold a leftover write-ahead log into the file first
            con = duckdb.connect(str(tmp))
            con.execute("CHECKPOINT")
            con.close()
        with Store.open(tmp, read_only=True) as check:
            check.counts()
    except (duckdb.Error, StoreError) as exc:
        raise StoreError(f"cannot publish {tmp}: it must be a current-schema store that no connection "
                         f"holds open (close the writing Store first). {exc}") from exc
    fsync_file(tmp)
    stale_wal = wal_path(final)
    if stale_wal.exists():  # a log left by a crashed writer of the old file must not meet the new one
        stale_wal.unlink()
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
    fsync_directory(final.parent)


def compact_copy(src_path: str | os.PathLike, dst_path: str | os.PathLike) -> None:
    """Write a fresh copy of the closed store ``src_path`` to ``dst_path`` (must not exist).

    DuckDB does not give back the space of deleted rows, so a store whose rows were replaced (as
    ``precompute metrics`` does) grows with each rewrite; a copy holds only the live rows.
    """
    src, dst = Path(src_path), Path(dst_path)
    if dst.exists():
        raise FileExistsError(f"{dst} exists; compact_copy writes a new file")
    con = duckdb.connect()
    try:
        con.execute("ATTACH ? AS src (READ_ONLY)", [str(src)])
        con.execute("ATTACH ? AS dst", [str(dst)])
        con.execute("COPY FROM DATABASE src TO dst")
        con.execute("DETACH dst")
        con.execute("DETACH src")
    finally:
        con.close()


def copy_store_file(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy the store file ``source`` to ``target`` byte for byte, with its write-ahead log when it
    has one: committed changes not yet folded into the file travel with it. The caller keeps
    writers away meanwhile (the store's lock, or a Store held open on it)."""
    source, target = Path(source), Path(target)
    shutil.copyfile(source, target)
    wal = wal_path(source)
    if wal.exists():
        shutil.copyfile(wal, wal_path(target))


def wal_path(path: Path) -> Path:
    """Where DuckDB keeps the write-ahead log of the database file ``path``."""
    return path.with_name(path.name + ".wal")


def write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Have ``write`` fill ``<path>.tmp-<pid>``, then flush it and rename it to ``path``: ``path``
    exists only when complete. A failed write leaves no temporary file behind."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def fsync_file(path: Path) -> None:
    """Flush a written file's data to disk (before renaming it into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(directory: Path) -> None:
    """Flush a folder's entries (after a rename in it)."""
    try:
        fsync_file(directory)
    except OSError:  # some filesystems cannot fsync a directory; the rename itself is still atomic
        pass
