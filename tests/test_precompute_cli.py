"""The precompute CLI's store commands: info, report, migrate, and their errors on a missing store."""

from __future__ import annotations

from core.store import SCHEMA_VERSION, Store
from precompute.cli import main
from tests.conftest import TINY_STORE_LANGS, TINY_STORE_MODEL, TINY_STORE_N_SENTENCES


def test_report_and_info_on_missing_store_fail_cleanly(tmp_path, capsys):
    for command in ("report", "info"):
        assert main([command, "--store", str(tmp_path / "none.duckdb")]) == 1
        err = capsys.readouterr().err
        assert "no store at" in err and "precompute build" in err and "Traceback" not in err


def test_migrate_command_brings_an_old_store_up_to_date(tmp_path, monkeypatch, capsys):
    import core.store.migrations as store_module
    from core.store.schema import MIGRATIONS, SCHEMA_VERSION

    path = tmp_path / "old.duckdb"
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:1])
    Store.create(path).close()
    monkeypatch.undo()
    assert main(["info", "--store", str(path)]) == 1
    assert "precompute migrate" in capsys.readouterr().err
    assert main(["migrate", "--store", str(path)]) == 0
    assert f"schema version {SCHEMA_VERSION}" in capsys.readouterr().out
    assert main(["info", "--store", str(path)]) == 0


def test_info_prints_runs_schema_and_counts(tiny_store_path, capsys):
    assert main(["info", "--store", str(tiny_store_path)]) == 0
    out = capsys.readouterr().out
    assert f"schema version: {SCHEMA_VERSION}" in out
    assert f"model={TINY_STORE_MODEL}" in out and "status=complete" in out
    # text, speech, and speech in a second voice (all three tiny-store languages have one)
    n_items = 3 * len(TINY_STORE_LANGS) * TINY_STORE_N_SENTENCES
    assert f"items={n_items}" in out and "languages (3): eng_Latn, ita_Latn, swh_Latn" in out


def test_report_prints_findings(tiny_store_path, capsys):
    from core import findings
    with Store.open(tiny_store_path) as store:
        run_id = store.runs().run_id.iloc[0]
    assert main(["report", "--store", str(tiny_store_path)]) == 0
    out = capsys.readouterr().out
    assert f"== {run_id} ==" in out
    for title in findings.TITLES.values():
        assert title in out
    # six sentences are below the minimum evidence: nothing is decided, and the report says why;
    # a Whisper has no length-reducing stage, so finding 2 cannot apply, whatever the data
    assert out.count("NOT ENOUGH DATA") == 3
    assert "2. Length adaptation narrows the modality gap: NOT APPLICABLE" in out
    assert f"only {TINY_STORE_N_SENTENCES} sentences" in out
    # one table per decidable finding, every stored metric in it, intervals labelled for what
    # they cover
    assert out.count("95% interval, sentence resampling within this corpus") == 3
    for name in ("SVCCA", "linear CKA", "debiased CKA", "mutual kNN"):
        assert name in out
    assert "length-residualised" in out and "voice reference" in out
    assert main(["report", "--store", str(tiny_store_path), "--metric", "linear_cka"]) == 0
    assert "linear CKA, raw: Same-sentence text-speech linear_cka" in capsys.readouterr().out
    assert main(["report", "--store", str(tiny_store_path), "--run", "no-such-run"]) == 1
    assert "no run 'no-such-run'" in capsys.readouterr().err
