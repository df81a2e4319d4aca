"""The notebook API (core/api.py): docs/api.md's worked example runs on the bundled store, the
frames are the Store's (the dashboard's reads) filtered as asked, the findings are
``core.verdicts.evaluate``'s, and bad names fail with a message listing what exists."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from core import verdicts
from core.api import PAIRINGS, VERDICT_TABLE_COLUMNS, LensError, open_lens, run_verdicts
from core.store import Store

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "data" / "crossmodal_lens.duckdb"
WHISPER = "whisper-base"


@pytest.fixture(scope="module")
def lens():
    with open_lens(BUNDLED) as opened:
        yield opened


def python_blocks(markdown: str) -> list[str]:
    """The fenced ```python blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


@pytest.mark.slow  # about 8 s: the findings of a 20-language run
def test_docs_api_example_runs_on_the_bundled_store(monkeypatch, capsys):
    blocks = python_blocks((ROOT / "docs" / "api.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/api.md", "exec"), namespace)  # noqa: S102 - our own docs
    printed = capsys.readouterr().out
    assert "stored " in printed and "recomputed " in printed
    assert "has no layer 12 (speech_encoder: 0..6)" in printed
    assert namespace["vectors"].dtype == np.float32


def test_runs_by_id_or_model_and_unknown_runs_listed(lens):
    runs = lens.runs()
    run_id = str(runs[runs.model == WHISPER].run_id.iloc[0])
    assert lens.run(WHISPER)["run_id"] == lens.run(run_id)["run_id"] == run_id
    with pytest.raises(LensError, match=r"no run 'whisper-tiny'.*runs: .*whisper-base"):
        lens.components("whisper-tiny")


def test_metrics_filters_match_what_was_asked(lens):
    langs = ["eng_Latn", "fra_Latn", "zho_Hans"]
    rows = lens.metrics(WHISPER, metric="linear_cka", pairing="speech-speech", layer=3,
                        langs=langs, component="speech_encoder")
    assert len(rows) and set(rows.metric) == {"linear_cka"}
    assert set(rows.pairing) == {"speech-speech"} and set(rows.layer_a) == {3}
    assert set(rows.lang_a) | set(rows.lang_b) <= set(langs)
    assert ((rows.component_a == "speech_encoder") | (rows.component_b == "speech_encoder")).all()
    pair = lens.metrics(WHISPER, metric="svcca", component=("text_decoder", "speech_encoder"))
    assert len(pair) and set(zip(pair.component_a, pair.component_b)) == {
        ("text_decoder", "speech_encoder")}
    # the same rows as the Store's own read (the dashboard's), no resamples unless asked
    with Store.open(BUNDLED) as store:
        direct = store.metrics(lens.run(WHISPER)["run_id"], metric="linear_cka",
                               pairing="speech-speech", layer=3, langs=langs)
    assert len(direct) == len(rows) and "resamples" not in rows
    assert "resamples" in lens.metrics(WHISPER, metric="svcca", layer=0, resamples=True)


@pytest.mark.parametrize(("call", "message"), [
    (lambda lens: lens.metrics(WHISPER, metric="cosine"),
     r"no metric 'cosine'; metrics: cka_debiased, .*svcca"),
    (lambda lens: lens.metrics(WHISPER, pairing="text-audio"),
     r"no pairing 'text-audio'; pairings: " + ", ".join(PAIRINGS)),
    (lambda lens: lens.metrics(WHISPER, component="encoder"),
     r"no component 'encoder'; components: speech_encoder, text_decoder"),
    (lambda lens: lens.metrics(WHISPER, layer=7), r"no layer 7 \(speech_encoder: 0..6, "),
    (lambda lens: lens.metrics(WHISPER, langs="en"), r"no language 'en' .*eng_Latn"),
    (lambda lens: lens.activations(WHISPER, "speech_encoder", -1), r"no layer -1"),
    (lambda lens: lens.activations(WHISPER, "text_decoder", 2, ["eng_Latn", "xho_Latn"]),
     r"no language 'xho_Latn'"),
    (lambda lens: lens.activations("multilingual-e5-small", "text_encoder", 3),
     r"--no-store-activations"),
    (lambda lens: lens.items("video"), r"modalities: text, speech"),
    (lambda lens: lens.metric_variants(WHISPER, "k"), r"variants: svcca_k, length_matched"),
    (lambda lens: lens.findings(WHISPER, metric="svcca_k"), r"no metric 'svcca_k'"),
    (lambda lens: lens.projections(WHISPER, "speech_encoder", 9), r"no layer 9"),
])
def test_bad_names_say_what_exists(lens, call, message):
    with pytest.raises(LensError, match=message):
        call(lens)


def test_a_missing_store_lists_the_stores_beside_it(tmp_path):
    (tmp_path / "mine.duckdb").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"no store at .*other\.duckdb; stores in .*: "
                                                r"mine\.duckdb"):
        open_lens(tmp_path / "other.duckdb")
    with pytest.raises(FileNotFoundError, match=r"stores in .*: none"):
        open_lens(tmp_path / "missing" / "x.duckdb")


def test_activations_decoded_and_aligned_by_sentence(lens):
    items, vectors = lens.activations(WHISPER, "text_decoder", 4, ["deu_Latn", "eng_Latn"])
    assert vectors.dtype == np.float32 and vectors.shape == (len(items), 512)
    assert np.isfinite(vectors).all() and (np.abs(vectors).max(axis=1) > 0).all()
    assert list(items.lang.unique()) == ["deu_Latn", "eng_Latn"]
    by_lang = [group.sentence_id.to_numpy() for _, group in items.groupby("lang")]
    np.testing.assert_array_equal(by_lang[0], by_lang[1])
    second, _ = lens.activations(WHISPER, "speech_encoder", 0, voice_rank=1)
    assert set(second.voice_rank) == {1}


@pytest.mark.slow  # about 10 s: the findings evaluated twice
def test_findings_are_the_verdicts_of_the_dashboard_and_report(lens):
    found = lens.findings(WHISPER)
    with Store.open(BUNDLED) as store:
        direct = run_verdicts(store, lens.run(WHISPER)["run_id"])
    assert list(found.finding) == [v.id for v in direct] == [1, 2, 3, 4]
    assert list(found.headline) == [v.headline for v in direct]
    table = lens.verdict_table(WHISPER)
    assert list(table.columns) == VERDICT_TABLE_COLUMNS
    for verdict in direct:
        cells = table[table.finding == verdict.id]
        assert len(cells) == len(verdict.cells)
        assert set(cells.headline) <= {verdict.headline}
    assert set(table.control) <= set(verdicts.CONTROLS)
    assert lens.verdicts(WHISPER) is lens.verdicts(WHISPER)  # evaluated once while open
