import json

import numpy as np
import pytest
import torch

from matryoshka_adaptor.config import AdaptorConfig
from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.model import MatryoshkaAdaptor
from matryoshka_adaptor.vectors import pca_rotation

RNG = np.random.default_rng(0)
X = RNG.standard_normal((20, 8)).astype(np.float32)


def trained_like(rotation: np.ndarray | None = None) -> MatryoshkaAdaptor:
    torch.manual_seed(0)
    a = MatryoshkaAdaptor(AdaptorConfig(input_dim=8, hidden_dim=16), rotation)
    torch.nn.init.normal_(a.mlp[-1].weight, std=0.1)  # move f away from zero, as training would
    return a


def test_new_adaptor_is_the_identity_or_the_rotation() -> None:
    np.testing.assert_allclose(MatryoshkaAdaptor(AdaptorConfig(input_dim=8)).transform(X), X, atol=1e-6)
    r = pca_rotation(X)
    np.testing.assert_allclose(MatryoshkaAdaptor(AdaptorConfig(input_dim=8), r).transform(X), X @ r.T, atol=1e-5)


def test_pca_rotation_is_orthogonal_ordered_and_deterministic() -> None:
    r = pca_rotation(X)
    np.testing.assert_allclose(r @ r.T, np.eye(8), atol=1e-5)
    variances = ((X @ r.T) ** 2).sum(axis=0)
    assert np.all(np.diff(variances) <= 1e-4)
    np.testing.assert_array_equal(r, pca_rotation(X.copy()))
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    rotated = unit @ r.T
    np.testing.assert_allclose(rotated @ rotated.T, unit @ unit.T, atol=1e-5)  # full-dim cosines kept


def test_transform_with_dim_gives_unit_prefixes() -> None:
    y = trained_like().transform(X, dim=3)
    assert y.shape == (20, 3)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)


def test_save_load_round_trip(tmp_path) -> None:
    a = trained_like(pca_rotation(X))
    a.config.training = {"seed": 3}
    a.save(tmp_path / "ad")
    b = MatryoshkaAdaptor.load(tmp_path / "ad")
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    assert b.config == a.config
    assert json.loads((tmp_path / "ad" / "config.json").read_text())["training"] == {"seed": 3}


def test_save_refuses_to_overwrite_and_keeps_the_old_files(tmp_path) -> None:
    trained_like().save(tmp_path / "ad")
    before = {p.name: p.read_bytes() for p in (tmp_path / "ad").iterdir()}
    other = trained_like(pca_rotation(X))
    with pytest.raises(InputError, match="already exists"):
        other.save(tmp_path / "ad")
    assert {p.name: p.read_bytes() for p in (tmp_path / "ad").iterdir()} == before
    other.save(tmp_path / "ad", overwrite=True)
    np.testing.assert_array_equal(MatryoshkaAdaptor.load(tmp_path / "ad").transform(X), other.transform(X))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ad"]  # no temp folders left behind


def test_load_names_the_missing_file(tmp_path) -> None:
    (tmp_path / "ad").mkdir()
    with pytest.raises(InputError, match="config.json"):
        MatryoshkaAdaptor.load(tmp_path / "ad")


def test_transform_rejects_bad_input() -> None:
    a = trained_like()
    with pytest.raises(InputError, match="expected width 8, got 5"):
        a.transform(X[:, :5])
    bad = X.copy()
    bad[7, 2] = np.nan
    with pytest.raises(InputError, match="row 7"):
        a.transform(bad)
    with pytest.raises(InputError, match="dim 9"):
        a.transform(X, dim=9)


@pytest.mark.parametrize(("field", "value"), [("activation", "swish"), ("input_rotation", "random"), ("hidden_dim", 0)])
def test_config_rejects_bad_values(field: str, value) -> None:
    with pytest.raises(InputError, match=field):
        AdaptorConfig(input_dim=8, **{field: value})
