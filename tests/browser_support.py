"""What every browser test module shares: skipping where Chromium or playwright is missing, and the
store its server serves (the test's own, or $CROSSMODAL_LENS_BROWSER_STORE, e.g. the bundled store
to refresh docs/screenshots)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import pytest

from devtools.dashboard_server import CHROMIUM, serve_dashboard

#: names a store that replaces each browser test's own
BROWSER_STORE_ENV = "CROSSMODAL_LENS_BROWSER_STORE"


def require_browser() -> ModuleType:
    """Skip the calling test module (at import) where Chromium or playwright is missing; else
    playwright's sync API."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
    return pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed (pip install playwright)")


def chosen_store(default: Callable[[], Path]) -> Path:
    """$CROSSMODAL_LENS_BROWSER_STORE, else ``default()`` (built only when no store is named)."""
    chosen = os.environ.get(BROWSER_STORE_ENV)
    return Path(chosen) if chosen else default()


@contextmanager
def served(default: Callable[[], Path]) -> Iterator[str]:
    """The URL of a `streamlit run` server on ``chosen_store(default)``, for a module fixture."""
    with serve_dashboard(chosen_store(default)) as url:
        yield url
