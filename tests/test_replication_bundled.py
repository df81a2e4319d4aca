"""The bundled store's whisper-base run in two disjoint halves (``precompute halves``), on the
Replication page and in ``report``. Skips while the store holds no halves; the same code runs on
the tiny store in tests/test_halves.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import replication
from core.store import SchemaMismatchError, Store

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "data" / "crossmodal_lens.duckdb"
APP = ROOT / "dashboard" / "app.py"
#: the bundled store must stay below this (data/README.md)
MAX_STORE_BYTES = 60_000_000


@pytest.fixture(scope="module")
def halves() -> list[str]:
    if not STORE.is_file():
        pytest.skip(f"{STORE} is missing")
    try:
        with Store.open(STORE) as store:
            runs = store.runs()
    except SchemaMismatchError as exc:  # the halves need the store at this code's schema too
        pytest.skip(f"the bundled store cannot be read yet: {exc}")
    parts = [r.run_id for r in runs.itertuples() if replication.is_derived(r.config)]
    if len(parts) < 2:
        pytest.skip("the bundled store holds no halves yet: run `python -m precompute halves "
                    "--store data/crossmodal_lens.duckdb --run whisper-base-9806d61e25f6`")
    return parts


def test_the_bundled_halves_are_small_enough(halves):
    assert STORE.stat().st_size < MAX_STORE_BYTES


def test_the_replication_page_shows_the_bundled_halves(halves, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from dashboard import state

    monkeypatch.setenv(state.STORE_ENV, str(STORE))
    at = AppTest.from_file(str(APP), default_timeout=180).run()
    at.switch_page("views/replication.py").run()
    assert not at.exception and not at.error
    assert "whisper-base: 2 disjoint parts" in at.selectbox(key="replication_group").value
    badges = [m.value for m in at.markdown if "-badge[" in m.value]
    assert sum(b.startswith(":gray-badge[corpora: not applicable]") for b in badges) == 1  # finding 2
    assert sum("(A) part 1 of 2 (seed 0, 100 sentences):" in b for b in badges) == 4
    assert len(at.get("plotly_chart")) == 3
