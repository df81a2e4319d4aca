"""Provenance: the software a run was built (or recomputed) with, recorded in its ``versions``."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess

from precompute.config import REPO_ROOT


def collect_versions() -> dict[str, str | None]:
    """Software a run depended on, for reproducing it."""
    import core

    versions: dict[str, str | None] = {"python": platform.python_version(),
                                       "crossmodal_lens": core.__version__}
    for package in ("torch", "transformers", "duckdb", "numpy", "pandas", "umap-learn",
                    "scikit-learn", "librosa"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    try:
        from core.audio import espeak_version

        versions["espeak-ng"] = espeak_version()
    except Exception as exc:  # noqa: BLE001 - a missing espeak must not stop a build of recordings
        versions["espeak-ng"] = f"unavailable ({exc})"
    versions["git_commit"] = _git(["rev-parse", "HEAD"])
    status = _git(["status", "--porcelain"])
    versions["git_dirty"] = None if status is None else str(bool(status))
    return versions


def _git(args: list[str]) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
