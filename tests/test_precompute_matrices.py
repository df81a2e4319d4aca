"""``python -m precompute matrices`` end to end on a copy of the tiny store (tiny random Whisper),
plus a tiny random e5 run added without activations (extracted again for the matrices)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.metrics import similarity as sim
from core.store import Store
from precompute.cli import main
from tests.conftest import TINY_STORE_LANGS, TINY_STORE_N_SENTENCES


@pytest.fixture(scope="module")
def matrix_store(tiny_store_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny store plus an e5-tiny-random run without stored activations, with the Whisper run's
    own matrices and its matrices against e5 (one command)."""
    root = tmp_path_factory.mktemp("matrices")
    out = root / "tiny.duckdb"
    shutil.copy(tiny_store_path, out)
    assert main(["build", "--corpus", "bundled", "--langs", ",".join(TINY_STORE_LANGS),
                 "--n-sentences", str(TINY_STORE_N_SENTENCES), "--model", "e5-tiny-random",
                 "--out", str(out), "--device", "cpu", "--n-permutations", "1",
                 "--n-bootstrap", "5", "--metrics", "linear_cka", "--no-umap",
                 "--no-store-activations"]) == 0
    with Store.open(out) as store:
        runs = store.runs().set_index("model").run_id
    # the Whisper run's own matrices (it stores activations; e5 does not) and Whisper x e5
    assert main(["matrices", "--store", str(out), "--run", runs["whisper-tiny-random"],
                 "--against", runs["e5-tiny-random"], "--n-permutations", "7",
                 "--device", "cpu"]) == 0
    return out


def _runs(store: Store) -> tuple[str, str]:
    runs = store.runs().set_index("model").run_id
    return runs["whisper-tiny-random"], runs["e5-tiny-random"]


def test_a_runs_own_matrices_per_language_and_mean(matrix_store: Path):
    with Store.open(matrix_store) as store:
        whisper, e5 = _runs(store)
        sets = store.layer_matrix_sets(whisper)
        own = sets[sets.run_b == whisper]
        speech = own[own.pairing == "text-speech"]
        assert sorted(speech.lang_a) == sorted([*TINY_STORE_LANGS, "mean"])
        assert speech.set_index("lang_a").loc["mean", "n_langs"] == len(TINY_STORE_LANGS)
        across = own[own.pairing == "text-text"]
        # each language with the pivot (eng_Latn), and their mean
        assert sorted(zip(across.lang_a, across.lang_b)) == [
            ("eng_Latn", "ita_Latn"), ("eng_Latn", "swh_Latn"), ("mean", "mean")]
        components = store.components(whisper).set_index("component")
        cells = store.layer_matrices(whisper, component_a="text_decoder",
                                     component_b="speech_encoder", metric="linear_cka",
                                     langs=["ita_Latn"])
        assert len(cells) == components.n_layers.prod()
        # a cell is the reference metric on the stored activations
        text_items, text = store.activations(whisper, "text_decoder", 1, ["ita_Latn"])
        speech_items, speech_states = store.activations(whisper, "speech_encoder", 2, ["ita_Latn"])
        assert (text_items.sentence_id.values == speech_items.sentence_id.values).all()
        cell = cells[(cells.layer_a == 1) & (cells.layer_b == 2)].iloc[0]
        assert cell.value == pytest.approx(sim.linear_cka(text, speech_states), abs=1e-6)
        assert cell.ci_low <= cell.value <= cell.ci_high
        # one best match per row and per column, calibrated p-values >= 1 / (P + 1)
        assert (cells.groupby("layer_a").row_best.sum() == 1).all()
        assert (cells.groupby("layer_b").col_best.sum() == 1).all()
        assert (cells.row_p >= 1 / 8 - 1e-12).all() and (cells.n_permutations == 7).all()
        # the mean matrix is the mean of the languages' values
        every = store.layer_matrices(whisper, component_a="text_decoder", pairing="text-speech",
                                     metric="linear_cka")
        means = every[every.lang_a == "mean"].set_index(["layer_a", "layer_b"]).value
        per_lang = every[every.lang_a != "mean"].groupby(["layer_a", "layer_b"]).value.mean()
        assert np.allclose(means.sort_index(), per_lang.sort_index())
        blobs = store.layer_matrices(whisper, langs=["mean"], with_resamples=True).resamples
        assert blobs.notna().all()


def test_matrices_against_a_run_without_activations_reextract_its_texts(matrix_store: Path):
    with Store.open(matrix_store) as store:
        whisper, e5 = _runs(store)
        sets = store.layer_matrix_sets(e5)
        between = sets[(sets.run_a == whisper) & (sets.run_b == e5)]
        assert set(zip(between.component_a, between.component_b, between.pairing)) == {
            ("text_decoder", "text_encoder", "text-text"),
            ("speech_encoder", "text_encoder", "speech-text")}
        cells = store.layer_matrices(whisper, e5, component_a="text_decoder", metric="linear_cka",
                                     langs=["mean"])
        n_e5 = int(store.components(e5).n_layers.iloc[0])
        assert cells.layer_b.nunique() == n_e5 and cells.value.notna().all()
        # the e5 run's own matrices are not computed by default: it stored no activations
        assert sets[(sets.run_a == e5) & (sets.run_b == e5)].empty


def test_rerun_replaces_and_errors_are_one_line(matrix_store: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture):
    copy = tmp_path / "again.duckdb"
    shutil.copy(matrix_store, copy)
    with Store.open(copy) as store:
        whisper, _ = _runs(store)
        before = len(store.layer_matrices(whisper))
        between = len(store.layer_matrices(whisper, _runs(store)[1]))
    assert main(["matrices", "--store", str(copy), "--run", whisper, "--n-permutations", "3",
                 "--mean-resamples-only", "--per-language", "text-speech", "--device", "cpu"]) == 0
    with Store.open(copy) as store:
        rows = store.layer_matrices(whisper, with_resamples=True)
        assert 0 < len(rows) < before and (rows.n_permutations == 3).all()  # replaced, not added
        assert len(store.layer_matrices(whisper, _runs(store)[1])) == between  # other sets kept
        assert rows[rows.lang_a != "mean"].resamples.isna().all()
        assert rows[rows.lang_a == "mean"].resamples.notna().all()
        # --per-language text-speech: the cross-language sets keep only their mean
        assert set(rows[rows.pairing != "text-speech"].lang_a) == {"mean"}
        assert set(rows[rows.pairing == "text-speech"].lang_a) == {*TINY_STORE_LANGS, "mean"}
    # --per-language none: every set keeps only its mean; an unknown pairing is refused
    assert main(["matrices", "--store", str(copy), "--run", whisper, "--n-permutations", "3",
                 "--per-language", "none", "--device", "cpu"]) == 0
    with Store.open(copy) as store:
        assert set(store.layer_matrices(whisper).lang_a) == {"mean"}
    assert main(["matrices", "--store", str(copy), "--run", whisper,
                 "--per-language", "text-speach"]) == 2
    assert "unknown pairing text-speach" in capsys.readouterr().err
    assert main(["matrices", "--store", str(copy), "--run", "nope"]) == 1
    assert "nope" in capsys.readouterr().err
    assert main(["matrices", "--store", str(copy), "--run", whisper, "--pivot", "fra_Latn"]) == 1
    assert "pivot" in capsys.readouterr().err


def test_the_python_api_reads_the_matrices_the_store_holds(matrix_store: Path):
    """``Lens.layer_matrices`` is the Store's read with names checked: the same cells, a model name
    for a run, and an unknown metric or a run pair without matrices listed."""
    from core.api import LensError, open_lens

    with Store.open(matrix_store) as store:
        whisper, e5 = _runs(store)
        expected = store.layer_matrices(whisper, e5, metric="linear_cka", langs=["mean"])
    with open_lens(matrix_store) as lens:
        cells = lens.layer_matrices("whisper-tiny-random", "e5-tiny-random", metric="linear_cka",
                                    lang="mean")
        pd.testing.assert_frame_equal(cells, expected.reset_index(drop=True))
        assert set(lens.layer_matrix_sets(e5).run_b) == {e5}
        with pytest.raises(LensError, match="no metric 'nope'; metric: .*linear_cka"):
            lens.layer_matrices(whisper, e5, metric="nope")
        with pytest.raises(LensError, match=f"no layer x layer matrices between {e5} and {e5}"):
            lens.layer_matrices(e5)


def test_export_writes_the_matrices_of_a_run_on_either_side(matrix_store: Path, tmp_path: Path):
    """``precompute export --table layer_matrices --run R`` keeps the rows with R as run_a or
    run_b (the table has a run on each side, no run_id)."""
    with Store.open(matrix_store) as store:
        whisper, e5 = _runs(store)
        own, between = len(store.layer_matrices(whisper)), len(store.layer_matrices(whisper, e5))
    out = tmp_path / "matrices.parquet"
    assert main(["export", "--store", str(matrix_store), "--table", "layer_matrices",
                 "--run", e5, "--out", str(out)]) == 0
    written = pd.read_parquet(out)
    assert len(written) == between and set(written.run_b) == {e5}
    assert main(["export", "--store", str(matrix_store), "--table", "layer_matrices",
                 "--run", whisper, "--out", str(out)]) == 0
    assert len(pd.read_parquet(out)) == own + between
