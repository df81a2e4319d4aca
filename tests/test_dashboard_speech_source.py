"""Pages with speech results say when that speech is synthetic; the Overview counts recorded and
synthesised speech per language (AppTest on the synthetic store, one variant with recordings)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from apptest_support import APP, assert_clean
from dashboard import state
from synthetic_store import LANGS, N_SENTENCES, RUN_ID, TEXT_RUN_ID, write_synthetic_store

TIMEOUT_S = 60
#: what the synthetic store's speech is: espeak-ng, one voice per language, every item
ALL_SYNTHETIC = (f"Speech here is synthetic (espeak-ng 1.51, {len(LANGS)} voices): "
                 f"{len(LANGS) * N_SENTENCES} of {len(LANGS) * N_SENTENCES} speech items; results "
                 "may differ on recorded speech.")
#: pages that show speech results of one run
SPEECH_PAGES = ("views/heatmap.py", "views/findings.py", "views/layer_curves.py",
                "views/projection.py", "views/compare.py")
RECORDED = ("deu_Latn", "spa_Latn")


def _app(path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv(state.STORE_ENV, str(path))
    return AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def synthetic_path(tmp_path_factory) -> Path:
    return write_synthetic_store(tmp_path_factory.mktemp("speech") / "store.duckdb")


@pytest.fixture(scope="module")
def mixed_path(tmp_path_factory) -> Path:
    return write_synthetic_store(tmp_path_factory.mktemp("mixed") / "store.duckdb",
                                 recorded=RECORDED)


def _notices(at: AppTest) -> list[str]:
    return [c.value for c in at.caption if "Speech here is" in c.value]


@pytest.mark.parametrize("page", SPEECH_PAGES)
def test_pages_with_speech_results_say_the_speech_is_synthetic(synthetic_path, monkeypatch, page):
    at = _app(synthetic_path, monkeypatch).run()
    assert_clean(at.switch_page(page).run(), page)
    if page == "views/compare.py":  # it opens on text-text: no speech drawn, nothing to say
        assert _notices(at) == []
        assert_clean(at.radio(key="compare_family").set_value("text-speech").run(), page)
    assert [n.split(" ", 1)[1] for n in _notices(at)] == [ALL_SYNTHETIC]


def test_the_notice_follows_the_languages_shown_and_leaves_text_alone(synthetic_path, monkeypatch):
    at = _app(synthetic_path, monkeypatch).run()
    at.switch_page("views/heatmap.py").run()
    at.sidebar.multiselect(key="langs").set_value(["eng_Latn", "hin_Deva"]).run()
    assert_clean(at, "heatmap, two languages")
    assert "(espeak-ng 1.51, 2 voices): 16 of 16 speech items" in _notices(at)[0]
    at.sidebar.radio(key="pairing").set_value("text-text").run()  # no speech on the chart
    assert _notices(at) == []


def test_a_text_only_run_says_nothing_about_speech(synthetic_path, monkeypatch):
    at = _app(synthetic_path, monkeypatch).run()
    at.sidebar.selectbox(key="run_id").set_value(TEXT_RUN_ID).run()
    for page in ("views/findings.py", "views/layer_curves.py", "views/projection.py"):
        assert_clean(at.switch_page(page).run(), f"{page} (text-only run)")
        assert at.sidebar.selectbox(key="run_id").value == TEXT_RUN_ID
        assert _notices(at) == [], page


def test_overview_counts_synthesised_speech_per_language(synthetic_path, monkeypatch):
    at = assert_clean(_app(synthetic_path, monkeypatch).run(), "overview")
    table = next(d.value for d in at.dataframe if "synthesised" in d.value.columns)
    assert list(table["lang"])[:3] == ["eng_Latn", "deu_Latn", "spa_Latn"]  # resource order
    assert set(table["recorded"]) == {0} and set(table["synthesised"]) == {N_SENTENCES}
    assert table.set_index("lang").loc["deu_Latn", "language"] == "German"
    assert table.set_index("lang").loc["deu_Latn", "synthesised by"] == "espeak-ng 1.51 (de)"


def test_a_store_with_recordings_says_the_split(mixed_path, monkeypatch):
    at = assert_clean(_app(mixed_path, monkeypatch).run(), "overview, mixed store")
    table = next(d.value for d in at.dataframe if "synthesised" in d.value.columns)
    rows = table.set_index("lang")
    for lang in LANGS:
        recorded = N_SENTENCES if lang in RECORDED else 0
        assert (rows.loc[lang, "recorded"], rows.loc[lang, "synthesised"]) == \
            (recorded, N_SENTENCES - recorded), lang
    at.switch_page("views/heatmap.py").run()
    assert at.sidebar.selectbox(key="run_id").value == RUN_ID
    (notice,) = _notices(at)
    synthetic = (len(LANGS) - len(RECORDED)) * N_SENTENCES
    assert f"partly synthetic (espeak-ng 1.51, 4 voices): {synthetic} of {len(LANGS) * N_SENTENCES}"\
        in notice
    assert f"the rest: {len(RECORDED) * N_SENTENCES} recorded (deu_Latn, spa_Latn)" in notice
    at.sidebar.multiselect(key="langs").set_value(list(RECORDED)).run()  # recordings only
    assert_clean(at, "heatmap, recorded languages")
    assert _notices(at) == []


def test_the_tiny_real_store_says_its_espeak_speech_is_synthetic(tiny_store_path, monkeypatch):
    at = _app(tiny_store_path, monkeypatch).run()
    for page in ("views/heatmap.py", "views/findings.py", "views/layer_curves.py"):
        assert_clean(at.switch_page(page).run(), f"{page} (tiny store)")
        (notice,) = _notices(at)
        assert "Speech here is synthetic (espeak-ng " in notice, page
