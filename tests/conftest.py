"""Shared fixtures. Keep each fixture small and documented; others may append theirs below."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from core.models.registry import SHORT_NAMES

# The hub is unreachable here: never wait on it (registry look-ups read the local cache only).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: The tiny store: one language per resource level, a few bundled sentences, tiny random Whisper.
TINY_STORE_LANGS = ("eng_Latn", "ita_Latn", "swh_Latn")
TINY_STORE_N_SENTENCES = 6
TINY_STORE_MODEL = "whisper-tiny-random"


#: The folder beside the project root with golden vectors and real FLORES-200 / FLEURS data; a
#: fresh clone may not have it, so a test reaches it through the ``shared_data`` fixture (which
#: skips); only code that adds an optional extra when it exists reads this path directly.
SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_data() -> Callable[..., Path]:
    """``shared_data("data", "flores200")``: that path under ``../shared``, or skip the test
    naming what is missing (the folder is optional: golden vectors, real FLORES/FLEURS data)."""

    def path(*parts: str) -> Path:
        where = SHARED_DIR.joinpath(*parts)
        if not where.exists():
            pytest.skip(f"../shared/{'/'.join(parts)} is not available ({where} is missing: golden "
                        "vectors and real FLORES/FLEURS data live beside the project root)")
        return where

    return path


def tiny_random_models() -> list[str]:
    """Every registry short name with ``random: True``: one tiny random configuration per family
    (seconds to load), in the registry's order."""
    return [short.name for short in SHORT_NAMES if short.kwargs.get("random")]


#: Session fixtures that run a whole ``precompute build``: a test that needs one is slow (pytest.ini)
STORE_BUILDING_FIXTURES = ("tiny_store_path", "study_store_path")


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that needs a store built by ``precompute build``, so ``-m "not
    slow"`` never waits for one."""
    for item in items:
        if any(name in STORE_BUILDING_FIXTURES for name in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


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


#: Tiny random configs of every other family, built together into one store (one run each).
STUDY_STORE_MODELS = tuple(name for name in tiny_random_models() if name != TINY_STORE_MODEL)


@pytest.fixture(scope="session")
def study_store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `precompute build` over 2 languages x 4 sentences with every model of
    ``STUDY_STORE_MODELS`` (the whole pipeline per family, and a store to show side by side in
    the dashboard). Read-only use only."""
    from precompute.cli import main

    root = tmp_path_factory.mktemp("study_store")
    out = root / "study.duckdb"
    argv = ["build", "--corpus", "bundled", "--langs", "eng_Latn,deu_Latn", "--n-sentences", "4",
            "--out", str(out), "--device", "cpu", "--n-permutations", "2", "--n-bootstrap", "3",
            "--max-transcript-tokens", "6", "--umap-n-neighbors", "3",
            "--speech-cache", str(root / "speech")]
    for model in STUDY_STORE_MODELS:
        argv += ["--model", model]
    code = main(argv)
    if code != 0 or not out.is_file():
        raise RuntimeError(f"building the study store failed (exit status {code}); run "
                           f"`python -m precompute {' '.join(argv)}` by hand to see why")
    return out


def study_run(store, model: str) -> str:
    """The run id of ``model`` in the study store."""
    runs = store.runs()
    return str(runs[runs.model == model].run_id.iloc[0])


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


@pytest.fixture(scope="session")
def corpus_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, int], bytes]:
    """WAV bytes of the sentences in tests/corpus_fixtures.py (espeak-ng speech), made once per
    session for the corpus-layout tests: (FLEURS locale, sentence id) -> bytes."""
    from tests.corpus_fixtures import all_clips

    return all_clips(tmp_path_factory.mktemp("corpus_clips"))
