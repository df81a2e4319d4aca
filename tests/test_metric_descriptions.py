"""Every metric is described in words, and the words follow the declarations they restate:
invariances from ``similarity.INVARIANCES``, one representation space from ``NEEDS_SHARED_SPACE``,
chance levels that the metrics themselves give on unrelated data."""

from __future__ import annotations

import numpy as np
import pytest

from core.metrics import descriptions as d
from core.metrics import similarity as sim


@pytest.mark.parametrize("metric", sim.METRIC_NAMES)
def test_every_metric_has_an_entry_whose_help_names_its_invariances(metric):
    assert metric in d.METRIC_INFO, f"{metric} has no MetricInfo entry"
    text = d.metric_help(metric)
    assert d.METRIC_INFO[metric].label in text and "Range" in text
    for name in sim.INVARIANCES[metric]:
        assert d.INVARIANCE_TEXT[name] in text, f"{metric}'s help omits {name}"
    for name in set(d.INVARIANCE_TEXT) - sim.INVARIANCES[metric]:
        assert d.INVARIANCE_TEXT[name] not in text, f"{metric}'s help claims {name}"
    shared = metric in sim.NEEDS_SHARED_SPACE
    assert (d.SHARED_SPACE_TEXT in text) == shared and (d.ANY_SPACE_TEXT in text) != shared


def test_an_invariance_without_words_is_an_error_not_a_silent_gap(monkeypatch):
    monkeypatch.setitem(sim.INVARIANCES, "svcca", sim.INVARIANCES["svcca"] | {"translation"})
    with pytest.raises(ValueError):
        d.invariance_text("svcca")


def test_parameters_are_said_for_the_metrics_that_have_them():
    assert "k:" in d.metric_help("svcca") and "as k nears n" in d.metric_help("svcca").lower()
    knn = d.metric_help("mutual_knn")
    assert "k:" in knn and "N:" in knn and "falls as N grows" in knn
    assert "two directions" in d.metric_help("retrieval") and "P@1" in d.metric_help("retrieval")
    assert "In this run: k = 20, n = 200 sentences." in d.metric_help(
        "svcca", d.settings_text("svcca", [('{"k": 20, "variance": null}', 200)]))


def test_display_names_and_unknown_ids():
    assert [d.display_name(m) for m in sim.METRIC_NAMES] == [
        "SVCCA", "linear CKA", "debiased CKA", "mutual kNN", "retrieval P@1", "paired cosine"]
    assert d.display_name("new_metric") == "new_metric"
    assert d.metric_line("new_metric") == "new_metric"
    assert "no description" in d.metric_help("new_metric")


def test_settings_text_reads_store_params_and_gives_ranges():
    assert d.settings_text("mutual_knn", [('{"k": 10}', 200)]) == "k = 10, N = 200 sentences"
    assert d.settings_text("svcca", [({"k": 6}, 64), ({"k": 12}, 123), ({"k": 9}, 95)]) \
        == "k = 6-12, n = 64-123 sentences"
    assert d.settings_text("retrieval", [('{"direction": "mean"}', 200)]) \
        == "N = 200 sentences, direction: mean of a→b and b→a"
    assert d.settings_text("linear_cka", [("{}", None)]) == ""


@pytest.mark.parametrize("metric", ["mutual_knn", "retrieval"])
def test_stated_chance_levels_are_what_unrelated_data_score(metric):
    """k/(N - 1) and 1/N: the mean over many independent pairs of random data is near them."""
    rng = np.random.default_rng(0)
    n, params = 60, ({"k": 6} if metric == "mutual_knn" else {})
    values = [sim.compute_metric(metric, rng.standard_normal((n, 8)), rng.standard_normal((n, 8)),
                                 **params) for _ in range(300)]
    expected = d.chance_level(metric, params, n)
    assert expected == pytest.approx(6 / 59 if metric == "mutual_knn" else 1 / 60)
    assert np.mean(values) == pytest.approx(expected, rel=0.15)


def test_metric_line_names_range_and_chance():
    line = d.metric_line("mutual_knn", [('{"k": 10}', 200)])
    assert line == "mutual kNN (k = 10, N = 200 sentences): range 0 to 1, chance ≈ k/(N - 1) = 0.050"
    assert "chance ≈ 0" in d.metric_line("cka_debiased")
    assert "shuffled baseline" in d.metric_line("svcca", [('{"k": 20}', 200)])
    # several pool sizes: no single chance number
    assert "=" not in d.metric_line("retrieval", [("{}", 100), ("{}", 200)]).split("chance")[1]
