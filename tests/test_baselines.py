import numpy as np
import pytest

from matryoshka_adaptor.baselines import StartMap
from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.vectors import MEAN_REMOVED, START_MAPS

X = np.random.default_rng(0).standard_normal((40, 6)).astype(np.float32) + 1.0
UNIT = X / np.linalg.norm(X, axis=1, keepdims=True)


@pytest.mark.parametrize("name", ["pca", "centred_axes"])
def test_rotations_keep_full_dim_cosines(name: str) -> None:
    rot = StartMap(X, name).transform(X, 6)
    np.testing.assert_allclose(rot @ rot.T, UNIT @ UNIT.T, atol=1e-5)


def test_centred_pca_centres_and_its_axes_differ_from_the_uncentred_ones() -> None:
    pca = StartMap(X, "centred_pca").transform(X, 6)
    centred = (X - X.mean(0)) / np.linalg.norm(X - X.mean(0), axis=1, keepdims=True)
    np.testing.assert_allclose(pca @ pca.T, centred @ centred.T, atol=1e-5)
    # the uncentred first axis points along the mean (all coordinates shifted by +1); the centred one does not
    first_uncentred, first_centred = StartMap(X, "pca").rotation[0], StartMap(X, "centred_axes").rotation[0]
    mean_dir = X.mean(0) / np.linalg.norm(X.mean(0))
    assert abs(first_uncentred @ mean_dir) > 0.9 > abs(first_centred @ mean_dir)


@pytest.mark.parametrize("name", list(MEAN_REMOVED))
def test_maps_on_the_centred_axes_remove_their_share_of_the_mean(name: str) -> None:
    share, axes = MEAN_REMOVED[name], StartMap(X, "centred_axes").rotation
    expected = (X - share * X.mean(0)) @ axes.T
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(StartMap(X, name).transform(X, 6), expected, atol=1e-5)
    np.testing.assert_array_equal(StartMap(X, name).rotation, axes)


def test_centred_axes_order_coordinates_by_variance() -> None:
    z = X @ StartMap(X, "centred_axes").rotation.T
    variances = z.var(axis=0)
    assert np.all(np.diff(variances) <= 1e-6)


def test_parts_make_the_centred_axes_within_part() -> None:
    parts = np.repeat([0, 1], 20)
    shifted = X + 4.0 * parts[:, None] * np.eye(6, dtype=np.float32)[0]  # the parts differ along coordinate 0
    part_centred = shifted - np.stack([shifted[parts == p].mean(0) for p in (0, 1)])[parts]
    within = StartMap(shifted, "centred_axes", parts).rotation
    np.testing.assert_allclose(within, StartMap(part_centred, "centred_axes").rotation, atol=1e-5)
    assert abs(StartMap(shifted, "centred_axes").rotation[0, 0]) > 0.9 > abs(within[0, 0])


def test_truncation_keeps_the_prefix() -> None:
    y = StartMap(X, "none").transform(X, 2)
    np.testing.assert_allclose(y, X[:, :2] / np.linalg.norm(X[:, :2], axis=1, keepdims=True), atol=1e-6)
    with pytest.raises(InputError, match="expected width 6"):
        StartMap(X, "none").transform(X[:, :3], 2)


def test_unknown_start_map_names_the_known_ones() -> None:
    with pytest.raises(InputError, match="'nope'.*" + ".*".join(START_MAPS)):
        StartMap(X, "nope")
