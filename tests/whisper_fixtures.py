"""What the Whisper tests share: the tiny random Whisper adapter, loaded once per test module. Test
files import the ``tiny`` fixture by name (pytest finds it there)."""

from __future__ import annotations

import pytest

from core.models.whisper import WhisperAdapter
from core.models.whisper_load import TINY_RANDOM_CONFIG, load_whisper


@pytest.fixture(scope="module")
def tiny() -> WhisperAdapter:
    """The tiny random Whisper on the CPU (seconds to load)."""
    return load_whisper(name="whisper-tiny-random", device="cpu", random_config=TINY_RANDOM_CONFIG)
