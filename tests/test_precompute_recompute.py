"""precompute metrics: recomputing a stored run's metrics (and projections) from its stored
activations, in place, crash-safe, in one process or several."""
# ruff: noqa: F811 - fake_setup is precompute_helpers' fixture, imported to be requested here

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.store import Store
from precompute import measure
from precompute.cli import main
from precompute_helpers import TEXT, fake_argv, fake_setup  # noqa: F401 - a fixture


METRIC_KEYS = ["pairing", "component_a", "component_b", "layer_a", "layer_b", "lang_a", "lang_b",
               "metric"]


METRIC_VALUES = ["value", "baseline_mean", "baseline_std", "ci_low", "ci_high", "length_baseline",
                 "value_residualised"]


@pytest.fixture
def tiny_copy(tiny_store_path, tmp_path) -> Path:
    """A private copy of the session's tiny store, which recompute may replace."""
    path = tmp_path / "tiny.duckdb"
    shutil.copyfile(tiny_store_path, path)
    return path


def _snapshot(path: Path) -> tuple[str, dict, pd.DataFrame, pd.DataFrame]:
    with Store.open(path) as store:
        (run_id,) = store.runs().run_id
        return run_id, store.run(run_id), store.metrics(run_id), store.projections(run_id)


def _matched(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    merged = old.merge(new, on=METRIC_KEYS, suffixes=("", "_new"), validate="one_to_one")
    assert len(merged) == len(old) == len(new)
    return merged


def test_recompute_with_defaults_reproduces_the_build(tiny_copy, tmp_path, capsys):
    run_id, run, metrics, projections = _snapshot(tiny_copy)
    assert main(["metrics", "--store", str(tiny_copy)]) == 0
    assert f"recomputed {run_id} in {tiny_copy}: {len(metrics)} metric rows" in capsys.readouterr().out
    _, new_run, new_metrics, new_projections = _snapshot(tiny_copy)

    merged = _matched(metrics, new_metrics)
    for column in METRIC_VALUES:
        np.testing.assert_allclose(merged[f"{column}_new"], merged[column], rtol=0, atol=1e-9,
                                   err_msg=column)
    assert (merged.n_samples_new == merged.n_samples).all()
    assert [json.loads(p) for p in merged.params_new] == [json.loads(p) for p in merged.params]
    assert merged.ci_low.notna().any() and merged.baseline_mean.notna().any()

    keys = ["component", "layer", "item_id"]
    pd.testing.assert_frame_equal(new_projections.sort_values(keys).reset_index(drop=True),
                                  projections.sort_values(keys).reset_index(drop=True),
                                  check_exact=False, atol=1e-6)

    config, new_config = run["config"], new_run["config"]
    (entry,) = new_config["recomputed"]
    assert entry["recomputed"] == ["metrics", "projections"]
    assert entry["command_line"] == ["metrics", "--store", str(tiny_copy)]
    assert {"git_commit", "numpy", "torch"} <= set(entry["versions"])
    for name in ("n_permutations", "n_bootstrap", "seed", "metrics", "umap_n_neighbors",
                 "umap_min_dist", "text_length_unit"):
        assert entry["settings"][name] == config[name]
    assert {k: v for k, v in new_config.items() if k != "recomputed"} == config
    assert new_run["versions"] == run["versions"]  # the build's, kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.duckdb"]  # no temp files


def test_recompute_with_new_settings_replaces_rows_and_records_them(tiny_copy):
    run_id, run, metrics, projections = _snapshot(tiny_copy)
    assert run["config"]["n_permutations"] == 3 and run["config"]["metrics"] is None
    argv = ["metrics", "--store", str(tiny_copy), "--run", run_id, "--metrics", "svcca",
            "--n-permutations", "2", "--no-umap"]
    assert main(argv) == 0
    _, new_run, new_metrics, new_projections = _snapshot(tiny_copy)

    assert set(new_metrics.metric) == {"svcca"}
    merged = _matched(metrics[metrics.metric == "svcca"], new_metrics)
    np.testing.assert_allclose(merged.value_new, merged.value, atol=1e-9)  # not drawn: unchanged
    np.testing.assert_allclose(merged.ci_low_new, merged.ci_low, atol=1e-9)  # same bootstrap draws
    assert not np.allclose(merged.baseline_mean_new, merged.baseline_mean, equal_nan=True)
    pd.testing.assert_frame_equal(new_projections, projections)  # --no-umap keeps the maps

    config = new_run["config"]
    assert config["metrics"] == ["svcca"] and config["n_permutations"] == 2
    assert config["n_bootstrap"] == run["config"]["n_bootstrap"] == 5
    (entry,) = config["recomputed"]
    assert entry["recomputed"] == ["metrics"] and entry["command_line"] == argv
    assert entry["settings"]["metrics"] == ["svcca"] and entry["settings"]["n_permutations"] == 2
    assert "umap_n_neighbors" not in entry["settings"]


@pytest.mark.parametrize("crash_at", ["compute_metrics", "update_run_config"])
def test_crash_mid_recompute_leaves_the_store_untouched(tiny_copy, tmp_path, monkeypatch, crash_at):
    before = tiny_copy.read_bytes()
    temp_files_at_crash = []

    def crash(*args, **kwargs):
        temp_files_at_crash.extend(tmp_path.glob("tiny.duckdb.tmp-*"))
        raise RuntimeError("simulated crash")

    if crash_at == "compute_metrics":
        monkeypatch.setattr(measure, "compute_metrics", crash)
    else:  # after the old rows were deleted and the new ones written, in the copy
        monkeypatch.setattr(Store, "update_run_config", crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(["metrics", "--store", str(tiny_copy), "--no-umap"])
    assert temp_files_at_crash  # it crashed while working on the copy
    assert tiny_copy.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.duckdb"]


def test_recompute_errors_are_clear(tiny_copy, tmp_path, capsys):
    before = tiny_copy.read_bytes()
    run_id = _snapshot(tiny_copy)[0]
    assert main(["metrics", "--store", str(tiny_copy), "--run", "no-such-run"]) == 1
    err = capsys.readouterr().err
    assert "no run 'no-such-run'" in err and run_id in err and "Traceback" not in err
    assert main(["metrics", "--store", str(tiny_copy), "--metrics", "svcca,nonsense"]) == 1
    assert "unknown metric(s) ['nonsense']" in capsys.readouterr().err
    assert tiny_copy.read_bytes() == before

    bare = tmp_path / "bare.duckdb"
    with Store.create(bare) as store:
        store.add_run("empty-run", "m", {}, {})
        store.add_components("empty-run", [TEXT])
        store.finish_run("empty-run")
    assert main(["metrics", "--store", str(bare)]) == 1
    assert "run 'empty-run'" in (err := capsys.readouterr().err) and "no stored activations" in err
    assert main(["metrics", "--store", str(tmp_path / "none.duckdb")]) == 1
    assert "no store at" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare.duckdb", "tiny.duckdb"]


def test_a_run_without_stored_activations_keeps_its_metrics_and_refuses_recompute(
        fake_setup, tmp_path, capsys):
    out = tmp_path / "small.duckdb"
    assert main(fake_argv(fake_setup, out, "--no-umap", "--metrics", "svcca",
                          "--no-store-activations")) == 0
    with Store.open(out) as store:
        run_id = store.runs().run_id.iloc[0]
        assert store.counts()["activations"] == 0
        assert not store.metrics(run_id).empty and store.run(run_id)["config"]["store_activations"] is False
    capsys.readouterr()
    assert main(["metrics", "--store", str(out)]) == 1
    assert "no stored activations" in capsys.readouterr().err


def test_recompute_in_worker_processes_gives_the_same_rows(tiny_copy, tmp_path, monkeypatch):
    """`metrics --workers 2`: the metric groups computed in two processes that read the layers
    from the store give the rows one process gives (metrics and metric variants)."""
    from precompute import recompute as recompute_module

    serial = tmp_path / "serial.duckdb"
    shutil.copyfile(tiny_copy, serial)
    assert main(["metrics", "--store", str(serial), "--no-umap"]) == 0
    dispatched = []
    real = recompute_module.in_processes
    monkeypatch.setattr(recompute_module, "in_processes",
                        lambda *args, **kw: dispatched.append(len(args[1])) or real(*args, **kw))
    assert main(["metrics", "--store", str(tiny_copy), "--no-umap", "--workers", "2"]) == 0
    assert dispatched and dispatched[0] > 1  # the groups really went to processes
    with Store.open(serial) as one, Store.open(tiny_copy) as two:
        (run_id,) = one.runs().run_id
        merged = _matched(one.metrics(run_id), two.metrics(run_id))
        for column in METRIC_VALUES:
            np.testing.assert_array_equal(merged[f"{column}_new"], merged[column], err_msg=column)
        keys = ["variant", "pairing", "component_a", "component_b", "layer_a", "layer_b",
                "lang_a", "lang_b", "metric", "params"]
        a, b = one.metric_variants(run_id), two.metric_variants(run_id)
        assert len(a) == len(b) > 0
        pd.testing.assert_frame_equal(a.sort_values(keys).reset_index(drop=True),
                                      b.sort_values(keys).reset_index(drop=True))
        assert two.run(run_id)["config"]["recomputed"][-1]["command_line"][-2:] == ["--workers",
                                                                                     "2"]
