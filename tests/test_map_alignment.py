"""Procrustes alignment of 2-D maps (core.map_alignment): a turned, mirrored and shifted copy is
recovered exactly, distances within every map are kept, the fit is optimal and does not depend on
how the source happened to be posed, and bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest

from core.map_alignment import align_chain, align_to, mean_displacement, procrustes


def _rotation(angle: float, reflect: bool = False) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    return rotation @ np.diag([1.0, -1.0]) if reflect else rotation


def _distances(xy: np.ndarray) -> np.ndarray:
    return np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=-1))


@pytest.fixture
def cloud() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(60, 2)) * [3.0, 1.0]


@pytest.mark.parametrize("angle", [0.0, 0.7, np.pi / 2, 2.9, -1.3])
@pytest.mark.parametrize("reflect", [False, True])
def test_a_moved_copy_is_recovered_exactly(cloud, angle, reflect):
    moved = cloud @ _rotation(angle, reflect) + [5.0, -2.0]
    motion = procrustes(moved, cloud)
    np.testing.assert_allclose(motion.apply(moved), cloud, atol=1e-12)
    assert motion.is_reflection == reflect
    np.testing.assert_allclose(motion.rotation @ motion.rotation.T, np.eye(2), atol=1e-12)


def test_alignment_keeps_every_distance_and_never_fits_worse_than_no_motion(cloud):
    rng = np.random.default_rng(1)
    target = cloud + rng.normal(scale=0.5, size=cloud.shape)  # another layer: not a rigid copy
    source = cloud @ _rotation(1.1) + [1.0, 1.0]
    aligned = procrustes(source, target).apply(source)
    np.testing.assert_allclose(_distances(aligned), _distances(source), atol=1e-10)
    residual = ((aligned - target) ** 2).sum()
    assert residual <= ((source - target) ** 2).sum()
    # optimal among rigid motions: small turns of the solution about its centre only fit worse
    centre = aligned.mean(axis=0)
    for angle in (-0.05, 0.05):
        turned = (aligned - centre) @ _rotation(angle) + centre
        assert ((turned - target) ** 2).sum() > residual


def test_result_does_not_depend_on_the_pose_of_the_source(cloud):
    target = cloud + np.random.default_rng(2).normal(scale=0.3, size=cloud.shape)
    one = procrustes(cloud, target).apply(cloud)
    posed = cloud @ _rotation(2.0, reflect=True) - [4.0, 7.0]
    np.testing.assert_allclose(procrustes(posed, target).apply(posed), one, atol=1e-10)


def test_result_follows_a_moved_target(cloud):
    target = cloud + np.random.default_rng(3).normal(scale=0.3, size=cloud.shape)
    motion = (_rotation(0.4), np.array([2.0, -1.0]))
    before = procrustes(cloud, target).apply(cloud)
    after = procrustes(cloud, target @ motion[0] + motion[1]).apply(cloud)
    np.testing.assert_allclose(after, before @ motion[0] + motion[1], atol=1e-10)


def test_align_to_matches_items_by_id_whatever_their_order(cloud):
    ids = np.arange(len(cloud))
    order = np.random.default_rng(4).permutation(len(cloud))
    moved = cloud @ _rotation(0.9, reflect=True) + [3.0, 0.0]
    extra_ids, extra_xy = np.array([1000]), np.array([[50.0, 50.0]])  # only in the source
    aligned = align_to(np.r_[ids[order], extra_ids], np.r_[moved[order], extra_xy], ids, cloud)
    np.testing.assert_allclose(aligned[:-1], cloud[order], atol=1e-12)
    # the extra item travels with its map: its distances to the others are kept
    np.testing.assert_allclose(_distances(aligned), _distances(np.r_[moved[order], extra_xy]),
                               atol=1e-10)


def test_chained_alignment_undoes_each_layer_turn_and_keeps_distances(cloud):
    ids = np.arange(len(cloud))
    rng = np.random.default_rng(5)
    layers, truth = [], []
    drift = cloud.copy()
    for layer in range(5):
        drift = drift + rng.normal(scale=0.05, size=drift.shape)  # small true change per layer
        truth.append(drift.copy())
        layers.append((ids, drift @ _rotation(rng.uniform(-np.pi, np.pi), bool(layer % 2))
                       + rng.normal(scale=10, size=2)))
    aligned = align_chain(layers)
    np.testing.assert_array_equal(aligned[0], layers[0][1])  # the first map stays as stored
    for (_, stored), moved in zip(layers, aligned, strict=True):
        np.testing.assert_allclose(_distances(moved), _distances(stored), atol=1e-9)
    for before, after in zip(aligned, aligned[1:], strict=False):
        # consecutive aligned maps differ by about the true per-layer change, not by a jump
        assert mean_displacement(ids, before, ids, after) < 0.2
    for (_, before), (_, after) in zip(layers, layers[1:], strict=False):
        assert mean_displacement(ids, before, ids, after) > 1.0


def test_chain_skips_a_map_that_shares_too_few_items(cloud):
    ids = np.arange(len(cloud))
    other = (np.array([900, 901, 902]), np.zeros((3, 2)))
    aligned = align_chain([(ids, cloud), other, (ids, cloud @ _rotation(1.0))])
    np.testing.assert_array_equal(aligned[1], other[1])
    assert aligned[2].shape == cloud.shape


def test_non_finite_rows_are_left_out_of_the_fit(cloud):
    moved = cloud @ _rotation(0.3) + 1.0
    moved_with_gap = moved.copy()
    moved_with_gap[0] = np.nan
    aligned = procrustes(moved_with_gap, cloud).apply(moved_with_gap)
    assert np.isnan(aligned[0]).all()
    np.testing.assert_allclose(aligned[1:], cloud[1:], atol=1e-12)


@pytest.mark.parametrize(("source", "target", "message"), [
    (np.zeros((3, 3)), np.zeros((3, 3)), "(n, 2)"),
    (np.zeros((3, 2)), np.zeros((4, 2)), "same items"),
    (np.zeros((1, 2)), np.zeros((1, 2)), "at least 2"),
    (np.full((3, 2), np.nan), np.zeros((3, 2)), "at least 2"),
])
def test_bad_input_is_refused_with_a_reason(source, target, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        procrustes(source, target)


def test_align_to_needs_shared_items():
    with pytest.raises(ValueError, match="shared items"):
        align_to(np.array([1, 2]), np.zeros((2, 2)), np.array([3, 4]), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="one id per point"):
        align_to(np.array([1]), np.zeros((2, 2)), np.array([1, 2]), np.zeros((2, 2)))
