"""The project's one cache root for converted weights, and the file digest that decides whether a
cached conversion still matches its source (sizes can match while contents differ)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

CACHE_ENV = "CROSSMODAL_LENS_CACHE"


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
