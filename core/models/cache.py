"""The project's one cache root for converted weights, and the file digest that decides whether a
cached conversion still matches its source (sizes can match while contents differ)."""

from __future__ import annotations

import hashlib
import os
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
