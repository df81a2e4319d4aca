"""The project's one cache root for converted weights, the file digest that decides whether a
cached conversion still matches its source (sizes can match while contents differ), and the
provenance file every conversion writes beside its weights (what it was made from, by which
converter version, when)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

CACHE_ENV = "CROSSMODAL_LENS_CACHE"
PROVENANCE_FILE = "provenance.json"


def cache_root() -> Path:
    """``$CROSSMODAL_LENS_CACHE``, else ``~/.cache/crossmodal-lens``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "crossmodal-lens"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def publish_converted(final: Path, write: Callable[[Path], None],
                      is_current: Callable[[Path], bool]) -> Path:
    """Convert into a temporary sibling of ``final`` with ``write(tmp)``, then rename it into place.

    Readers only ever see a complete cache: an interrupted conversion leaves only a temporary
    folder, which is removed. An existing (stale) ``final`` is moved aside first; if another
    process published a valid cache meanwhile (``is_current(final)``), its result is kept.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        write(tmp)
        _fsync_tree(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is ordinary user data
        if final.exists():
            stale = Path(tempfile.mkdtemp(prefix=f".{final.name}.stale-", dir=final.parent))
            with contextlib.suppress(FileNotFoundError):  # another process may have removed it
                os.replace(final, stale / final.name)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:
            if not is_current(final):  # lost a race to a valid cache: fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        if path.is_file():
            path.chmod(0o644)  # some writers (safetensors) create private files
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def write_provenance(target: Path, provenance: dict, started: float) -> dict:
    """Write ``provenance`` (stamped with the time now and the seconds since ``started``, a
    ``time.perf_counter()`` reading) as the converted folder's provenance file; returns it."""
    provenance = {**provenance, "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "convert_seconds": round(time.perf_counter() - started, 2)}
    (target / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2), encoding="utf-8")
    return provenance


def read_provenance(directory: Path) -> dict:
    """The provenance JSON of a converted cache ({} when absent or unreadable)."""
    try:
        return json.loads((Path(directory) / PROVENANCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
