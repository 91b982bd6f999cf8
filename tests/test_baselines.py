import numpy as np
import pytest

from matryoshka_adaptor.baselines import PCA, PCARotation, Truncation
from matryoshka_adaptor.errors import InputError

X = np.random.default_rng(0).standard_normal((40, 6)).astype(np.float32) + 1.0


def test_rotation_keeps_full_dim_cosines_and_pca_centres() -> None:
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    rot = PCARotation(X).transform(X, 6)
    np.testing.assert_allclose(rot @ rot.T, unit @ unit.T, atol=1e-5)
    pca = PCA(X).transform(X, 6)
    centred = (X - X.mean(0)) / np.linalg.norm(X - X.mean(0), axis=1, keepdims=True)
    np.testing.assert_allclose(pca @ pca.T, centred @ centred.T, atol=1e-5)


def test_truncation_keeps_the_prefix() -> None:
    y = Truncation(6).transform(X, 2)
    np.testing.assert_allclose(y, X[:, :2] / np.linalg.norm(X[:, :2], axis=1, keepdims=True), atol=1e-6)
    with pytest.raises(InputError, match="expected width 6"):
        Truncation(6).transform(X[:, :3], 2)
