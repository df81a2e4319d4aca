"""Shared fixtures. Keep each fixture small and documented; others may append theirs below."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The hub is unreachable here: never wait on it (registry look-ups read the local cache only).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: The tiny store: one language per resource level, a few bundled sentences, tiny random Whisper.
TINY_STORE_LANGS = ("eng_Latn", "ita_Latn", "swh_Latn")
TINY_STORE_N_SENTENCES = 6
TINY_STORE_MODEL = "whisper-tiny-random"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: uses the real Whisper base weights or a real browser (still part of the "
        "default run)")


def tiny_build_argv(out: Path, speech_cache: Path, *extra: str) -> list[str]:
    """``python -m precompute`` arguments for the tiny store (cheap nulls, short transcripts)."""
    return ["build", "--corpus", "bundled", "--langs", ",".join(TINY_STORE_LANGS),
            "--n-sentences", str(TINY_STORE_N_SENTENCES), "--model", TINY_STORE_MODEL,
            "--out", str(out), "--device", "cpu", "--n-permutations", "3", "--n-bootstrap", "5",
            "--max-transcript-tokens", "8", "--speech-cache", str(speech_cache), *extra]


@pytest.fixture(scope="session")
def tiny_store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real store built once per session by ``precompute build`` (3 languages x 6 sentences, tiny
    random Whisper, every metric, UMAP). Read-only use only: open it with ``Store.open(path)``."""
    from precompute.cli import main

    root = tmp_path_factory.mktemp("tiny_store")
    out = root / "tiny.duckdb"
    code = main(tiny_build_argv(out, root / "speech_cache"))
    if code != 0 or not out.is_file():
        raise RuntimeError(f"building the tiny store failed (exit status {code}); run the build "
                           "command in tests/conftest.py:tiny_build_argv by hand to see why")
    return out


@pytest.fixture(scope="module")
def one_thread():
    """Small linear-algebra problems run fastest on one thread, and far faster on a busy shared
    machine; use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)
