"""Reference metrics against vectors computed with google/svcca's cca_core and Kornblith's CKA formula
(../shared/golden, see its README). Skips when the shared folder is absent."""

import json

import numpy as np
import pytest

from core.metrics import grid
from core.metrics.similarity import linear_cka, svcca

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cases(shared_data):
    golden = shared_data("golden")
    expected = json.loads((golden / "svcca_expected.json").read_text())
    arrays = np.load(golden / "svcca_cases.npz")
    return {name: (arrays[f"{name}__x"], arrays[f"{name}__y"], values)
            for name, values in expected.items()}


def test_golden_cases_are_present(cases):
    assert {"identical", "rotated_scaled", "different_dims_noisy", "independent", "half_shared"} <= set(cases)


@pytest.mark.parametrize("name", ["identical", "rotated_scaled", "different_dims_noisy", "independent",
                                  "half_shared"])
def test_reference_metrics_agree_with_golden_values(cases, name):
    x, y, expected = cases[name]
    assert x.shape == (expected["n"], expected["x_dims"]) and y.shape[1] == expected["y_dims"]
    assert svcca(x, y, k=20) == pytest.approx(expected["svcca_k20"], abs=1e-6)
    assert svcca(x, y, k=10) == pytest.approx(expected["svcca_k10"], abs=1e-6)
    assert linear_cka(x, y) == pytest.approx(expected["linear_cka"], abs=1e-6)


def test_grid_agrees_with_golden_values(cases):
    sides, pairs = {}, []
    for name, (x, y, _) in cases.items():
        sides[(name, "x")], sides[(name, "y")] = x, y
        pairs.append(((name, "x"), (name, "y")))
    specs = [grid.MetricSpec("svcca", {"k": 20}), grid.MetricSpec("svcca", {"k": 10}),
             grid.MetricSpec("linear_cka")]
    table = grid.compute_grid(sides, pairs, specs, n_permutations=0, n_bootstrap=0, device="cpu")
    for row in table.itertuples():
        expected = cases[row.key_a[0]][2]
        column = "linear_cka" if row.metric == "linear_cka" else f"svcca_k{json.loads(row.params)['k']}"
        assert row.value == pytest.approx(expected[column], abs=1e-6), (row.key_a, column)
