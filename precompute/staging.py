"""Where a build keeps what it has finished: ``<out>.parts/``, one folder per run being built.

Layout (all beside the store ``<out>``; nothing here is read by the dashboard)::

    <out>.parts/<run_id>/job.json                     the run's plan: config, components, languages
    <out>.parts/<run_id>/items/<lang>.parquet         the language's items (text, speech duration, voice)
    <out>.parts/<run_id>/tokens/<lang>.parquet        text token counts by the run's tokenizer
    <out>.parts/<run_id>/transcripts/<lang>.parquet   transcript + CER per clip
    <out>.parts/<run_id>/activations/<component>/<lang>.parquet   pooled vectors, every layer
    <out>.parts/<run_id>/metrics/<group>.parquet      one metric group (pairing, components, layer)
    <out>.parts/<run_id>/projections/<group>.parquet  one UMAP map

Every part is written to ``<part>.tmp-<pid>`` and renamed into place (after fsync), so a part that
exists is complete: SIGKILL at any moment loses at most the part being written, and a rerun redoes
exactly the parts that are missing. Parts are keyed by (lang, modality, sentence_id), never by
item id, so shards computed in different processes (``--shard I/N``, Ray tasks) need no
coordination; item ids are given when a run is published into the store (``publish.publish_job``),
which takes the store's lock (``store_lock``) so two writers are serialised, and removes the run's
folder once the store holds it. Reading and writing the Parquet files themselves is
``core.store.parts`` (the SQL); this module knows where they are, their job file and the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from core.store import parts
from core.store.files import write_atomically

log = logging.getLogger("precompute")

JOB_FILE = "job.json"


def parts_root(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def lock_path(out: Path) -> Path:
    return out.with_name(out.name + ".lock")


class Workspace:
    """The parts of the runs being built into one store."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.root = parts_root(self.out)

    def job_dir(self, run_id: str) -> Path:
        return self.root / run_id

    def part(self, run_id: str, *names: str) -> Path:
        *folders, last = names
        return self.job_dir(run_id).joinpath(*folders, f"{last}.parquet")

    def has(self, run_id: str, *names: str) -> bool:
        return self.part(run_id, *names).is_file()

    def job_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / JOB_FILE).is_file())

    def read_job(self, run_id: str) -> dict[str, Any] | None:
        path = self.job_dir(run_id) / JOB_FILE
        if not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def write_job(self, run_id: str, job: dict[str, Any]) -> dict[str, Any]:
        """Record the run's plan once; a plan already there wins (it must describe the same run)."""
        existing = self.read_job(run_id)
        if existing is not None:
            if existing.get("key") != job.get("key"):
                raise RuntimeError(f"{self.job_dir(run_id)} holds another configuration "
                                   f"(key {existing.get('key')} != {job.get('key')}); delete it")
            return existing
        path = self.job_dir(run_id) / JOB_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps(job, sort_keys=True, indent=1).encode("utf-8")
        write_atomically(path, lambda tmp: tmp.write_bytes(data))
        return job

    def write_part(self, frame: pd.DataFrame, run_id: str, *names: str) -> Path:
        """Write ``frame`` as one Parquet part, atomically (it exists only when complete)."""
        path = self.part(run_id, *names)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomically(path, lambda tmp: parts.write_part(frame, tmp))

    def read_part(self, run_id: str, *names: str,
                  filters: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """The part's rows whose columns equal ``filters`` (e.g. ``{"layer": 3, "voice_rank": 0}``;
        none: every row)."""
        return parts.read_part(self.part(run_id, *names), filters)

    def remove_stale_temp_parts(self) -> None:
        """Delete half-written parts (``*.tmp-<pid>``) of processes that were killed."""
        if not self.root.is_dir():
            return
        _remove_if_writer_gone(self.root.rglob("*.tmp-*"))

    def remove_job(self, run_id: str) -> None:
        shutil.rmtree(self.job_dir(run_id), ignore_errors=True)
        with contextlib.suppress(OSError):
            self.root.rmdir()  # only when no other run is being built


@contextlib.contextmanager
def store_lock(out: Path, *, wait: bool = True) -> Iterator[None]:
    """Exclusive lock of the store ``out`` while a writer publishes into it (``<out>.lock``, flock).

    Writers are serialised: a second one waits (saying so) and then works on the store the first
    published, so neither loses the other's runs; ``wait=False`` refuses instead. The holder
    removes the lock file before releasing it, and a waiter that wakes on a removed file tries
    again, so no file is left behind and no two writers ever hold the lock. flock needs a
    filesystem that supports it (local disks, NFSv4, Lustre mounted with flock).
    """
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    said = False
    while True:
        handle = path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(path)
            if not wait:
                handle.close()
                raise RuntimeError(f"another writer ({holder}) is publishing into {out}; try again "
                                   "when it is done") from None
            if not said:
                log.info("waiting for %s: another writer (%s) is publishing", path, holder)
                said = True
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(handle.fileno()).st_ino:
            break
        handle.close()  # the holder removed this file as it finished: take the new one
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        with contextlib.suppress(OSError):
            fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def remove_stale_temp_files(out: Path) -> None:
    """Delete ``<out>.tmp-<pid>`` files of writers that are gone (call with the lock held)."""
    _remove_if_writer_gone(out.parent.glob(f"{out.name}.tmp-*"))


def _remove_if_writer_gone(paths: Iterable[Path]) -> None:
    """Unlink each ``<name>.tmp-<pid>[.<suffix>]`` whose writer process no longer exists (never
    this process's own)."""
    for path in paths:
        pid_text = path.name.rsplit(".tmp-", 1)[1].split(".")[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not _alive(int(pid_text)):
            log.info("removing %s, left by a writer that was killed", path)
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown pid"
    except OSError:
        return "unknown pid"
