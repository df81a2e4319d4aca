"""A second corpus: the tiny model on real FLORES-200 text (../shared, never bundled) beside its run on
the bundled corpus, lined up by ``report --replicate-with`` on the languages both hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import TINY_STORE_MODEL, TINY_STORE_N_SENTENCES
from core import replication
from core.store import Store
from precompute.cli import main

#: FLORES-200 dev languages the tiny store also holds, and one it does not
FLORES_LANGS = ("eng_Latn", "swh_Latn", "tur_Latn")


@pytest.fixture(scope="module")
def flores_store(shared_data, tiny_store_path, tmp_path_factory) -> Path:
    """The tiny store's build options on FLORES-200 dev text, in a store of its own: a corpus
    whose English differs from the bundled one cannot share a store with it (items are keyed by
    language and sentence id)."""
    corpus = shared_data("data", "flores200", "dev")
    root = tmp_path_factory.mktemp("flores")
    out = root / "flores.duckdb"
    argv = ["build", "--corpus", str(corpus), "--suffix", ".dev", "--langs", ",".join(FLORES_LANGS),
            "--n-sentences", str(TINY_STORE_N_SENTENCES), "--model", TINY_STORE_MODEL,
            "--out", str(out), "--device", "cpu", "--n-permutations", "3", "--n-bootstrap", "5",
            "--no-umap", "--no-transcribe", "--speech-cache", str(root / "speech")]
    assert main(argv) == 0
    return out


def test_the_bundled_and_flores_runs_line_up_on_their_shared_languages(flores_store,
                                                                        tiny_store_path, capsys):
    infos = []
    for path in (tiny_store_path, flores_store):
        with Store.open(path) as store:
            infos += [replication.run_info(run, store.components(run["run_id"]))
                      for run in store.runs().to_dict("records")]
    (group,) = replication.replication_groups(infos)
    assert group.kind == replication.CORPORA and group.model == TINY_STORE_MODEL
    assert group.shared_langs == ("eng_Latn", "swh_Latn")  # ita only bundled, tur only FLORES
    assert group.labels[0].startswith("bundled") and group.labels[1].startswith("flores200/dev")

    assert main(["report", "--store", str(tiny_store_path),
                 "--replicate-with", str(flores_store)]) == 0
    out = capsys.readouterr().out
    assert f"-- replication: {TINY_STORE_MODEL}: 2 runs on different corpora --" in out
    assert "Languages compared (2): eng_Latn, swh_Latn" in out
    block = out[out.index("-- replication:"):]
    # every verdict cell of finding 1 has an entry for both corpora: the cells are lined up
    finding_one = block[block.index("1. Text-speech"):block.index("2. Length")]
    rows = [line for line in finding_one.splitlines() if " raw " in line]
    assert {line.split()[0] for line in rows} >= {"SVCCA", "linear"}
    assert all("missing" not in line for line in rows)
