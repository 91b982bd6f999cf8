import json

import numpy as np
import pytest
import torch

from matryoshka_adaptor.config import AdaptorConfig
from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.model import MatryoshkaAdaptor
from matryoshka_adaptor.vectors import pca_rotation, start_map
from safetensors.torch import load_file, save_file

RNG = np.random.default_rng(0)
X = RNG.standard_normal((20, 8)).astype(np.float32)


def trained_like(rotation: np.ndarray | None = None) -> MatryoshkaAdaptor:
    torch.manual_seed(0)
    a = MatryoshkaAdaptor(AdaptorConfig(input_dim=8, hidden_dim=16), rotation)
    torch.nn.init.normal_(a.mlp[-1].weight, std=0.1)  # move f away from zero, as training would
    return a


def test_new_adaptor_is_exactly_the_identity() -> None:
    x = torch.from_numpy(X)
    with torch.no_grad():
        assert torch.equal(MatryoshkaAdaptor(AdaptorConfig(input_dim=8))(x), x)
    np.testing.assert_array_equal(MatryoshkaAdaptor(AdaptorConfig(input_dim=8)).transform(X), X)


def test_new_adaptor_with_pca_is_exactly_the_rotation() -> None:
    r = pca_rotation(X)
    x = torch.from_numpy(X)
    with torch.no_grad():
        assert torch.equal(MatryoshkaAdaptor(AdaptorConfig(input_dim=8), r)(x), x @ torch.from_numpy(r).T)
    np.testing.assert_allclose(MatryoshkaAdaptor(AdaptorConfig(input_dim=8), r).transform(X), X @ r.T, atol=1e-5)


def test_forward_of_rotated_vectors_equals_forward_of_base_vectors() -> None:
    a = trained_like(pca_rotation(X))
    x = torch.from_numpy(X)
    assert torch.allclose(a(a.rotate(x), rotated=True), a(x), atol=1e-6)
    assert not torch.allclose(a(x, rotated=True), a(x), atol=1e-2)  # the flag is not ignored


def test_trained_like_adaptor_is_not_the_identity() -> None:
    assert np.abs(trained_like().transform(X) - X).max() > 1e-3  # so the round trips below test something


def test_reset_tail_keeps_every_prefix_up_to_the_cut_and_restores_the_start_past_it() -> None:
    a, x = trained_like(pca_rotation(X)), torch.from_numpy(X)
    with torch.no_grad():
        before = a(x)
        a.reset_tail(5)
        after = a(x)
    assert torch.equal(after[:, :5], before[:, :5])
    assert torch.equal(after[:, 5:], a.rotate(x)[:, 5:]) and not torch.allclose(before[:, 5:], after[:, 5:])


@pytest.mark.parametrize("layers", [1, 2])
def test_average_is_exactly_the_mean_of_the_members_f(layers: int, tmp_path) -> None:
    torch.manual_seed(1)
    members = [MatryoshkaAdaptor(AdaptorConfig(input_dim=8, hidden_dim=16, num_hidden_layers=layers), pca_rotation(X))
               for _ in range(3)]
    for m in members:
        torch.nn.init.normal_(m.mlp[-1].weight, std=0.1)
        torch.nn.init.normal_(m.mlp[-1].bias, std=0.1)
    merged = MatryoshkaAdaptor.average(members)
    assert merged.config.hidden_dim == 48 and members[0].config.hidden_dim == 16
    expected = np.mean([m.transform(X) for m in members], axis=0)
    np.testing.assert_allclose(merged.transform(X), expected, atol=1e-5)
    assert np.abs(members[0].transform(X) - expected).max() > 1e-3  # the members differ, so the mean means something
    np.testing.assert_array_equal(MatryoshkaAdaptor.load(merged.save(tmp_path / "avg")).transform(X), merged.transform(X))


def test_average_rejects_members_of_different_start_maps() -> None:
    with pytest.raises(InputError, match="share one start map"):
        MatryoshkaAdaptor.average([trained_like(), trained_like(pca_rotation(X))])


def test_rotation_of_the_wrong_shape_is_rejected() -> None:
    with pytest.raises(InputError, match=r"expected shape \(8, 8\), got \(4, 4\)"):
        MatryoshkaAdaptor(AdaptorConfig(input_dim=8), np.eye(4))


def test_pca_rotation_is_orthogonal_ordered_and_deterministic() -> None:
    r = pca_rotation(X)
    assert r.shape == (8, 8)
    np.testing.assert_allclose(r @ r.T, np.eye(8), atol=1e-5)
    variances = ((X @ r.T) ** 2).sum(axis=0)  # uncentred: the second moment along each axis
    assert np.all(np.diff(variances) <= 1e-4)
    assert variances[0] > 1.5 * variances[-1]
    np.testing.assert_array_equal(r, pca_rotation(X.copy()))


def test_pca_rotation_keeps_full_dim_cosines() -> None:
    r = pca_rotation(X)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    rotated = X @ r.T
    rotated /= np.linalg.norm(rotated, axis=1, keepdims=True)
    np.testing.assert_allclose(rotated @ rotated.T, unit @ unit.T, atol=1e-5)


@pytest.mark.parametrize("dim", [1, 3, 8])
def test_transform_with_dim_gives_unit_prefixes(dim: int) -> None:
    a = trained_like()
    y = a.transform(X, dim=dim)
    assert y.shape == (20, dim) and y.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    full = a.transform(X)
    np.testing.assert_allclose(y, full[:, :dim] / np.linalg.norm(full[:, :dim], axis=1, keepdims=True), atol=1e-5)


def test_transform_batches_agree() -> None:
    a = trained_like(pca_rotation(X))
    np.testing.assert_allclose(a.transform(X, batch_size=3), a.transform(X), atol=1e-6)


def test_save_load_round_trip(tmp_path) -> None:
    a = trained_like(pca_rotation(X))
    a.config.training = {"seed": 3}
    a.save(tmp_path / "ad")
    b = MatryoshkaAdaptor.load(tmp_path / "ad")
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    np.testing.assert_array_equal(a.transform(X, dim=3), b.transform(X, dim=3))
    assert b.config == a.config
    assert json.loads((tmp_path / "ad" / "config.json").read_text())["training"] == {"seed": 3}
    assert sorted(p.name for p in (tmp_path / "ad").iterdir()) == ["config.json", "model.safetensors"]


def test_centred_start_is_exactly_centred_pca_and_survives_a_round_trip(tmp_path) -> None:
    rotation, center = start_map(X + 2.0, "centred_pca")
    a = MatryoshkaAdaptor(AdaptorConfig(input_dim=8, input_rotation="centred_pca"), rotation, center)
    np.testing.assert_allclose(a.transform(X + 2.0), (X + 2.0 - center) @ rotation.T, atol=1e-5)
    a.save(tmp_path / "ad")
    np.testing.assert_array_equal(MatryoshkaAdaptor.load(tmp_path / "ad").transform(X), a.transform(X))


def test_adaptor_saved_before_centring_existed_loads_uncentred(tmp_path) -> None:
    a = trained_like(pca_rotation(X))
    a.save(tmp_path / "ad")
    weights = load_file(tmp_path / "ad" / "model.safetensors")
    del weights["center"]
    save_file(weights, tmp_path / "ad" / "model.safetensors")
    np.testing.assert_array_equal(MatryoshkaAdaptor.load(tmp_path / "ad").transform(X), a.transform(X))


def test_save_refuses_to_overwrite_and_keeps_the_old_files(tmp_path) -> None:
    trained_like().save(tmp_path / "ad")
    before = {p.name: p.read_bytes() for p in (tmp_path / "ad").iterdir()}
    other = trained_like(pca_rotation(X))
    with pytest.raises(InputError, match="already exists"):
        other.save(tmp_path / "ad")
    assert {p.name: p.read_bytes() for p in (tmp_path / "ad").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ad"]  # no temp folder left behind
    other.save(tmp_path / "ad", overwrite=True)
    np.testing.assert_array_equal(MatryoshkaAdaptor.load(tmp_path / "ad").transform(X), other.transform(X))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ad"]


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors"])
def test_load_names_the_missing_file(tmp_path, missing: str) -> None:
    trained_like().save(tmp_path / "ad")
    (tmp_path / "ad" / missing).unlink()
    with pytest.raises(InputError, match=f"{missing}: missing"):
        MatryoshkaAdaptor.load(tmp_path / "ad")


def test_load_rejects_a_bad_config(tmp_path) -> None:
    trained_like().save(tmp_path / "ad")
    (tmp_path / "ad" / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="config.json: not a valid adaptor config"):
        MatryoshkaAdaptor.load(tmp_path / "ad")


def test_transform_rejects_the_wrong_width() -> None:
    with pytest.raises(InputError, match="expected width 8, got 5"):
        trained_like().transform(X[:, :5])


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_transform_rejects_non_finite_rows(value: float) -> None:
    bad = X.copy()
    bad[7, 2] = value
    with pytest.raises(InputError, match="row 7 holds NaN or inf"):
        trained_like().transform(bad)


@pytest.mark.parametrize("dim", [0, -1, 9])
def test_transform_rejects_dims_out_of_range(dim: int) -> None:
    with pytest.raises(InputError, match=f"dim {dim}: expected 1 <= dim <= 8"):
        trained_like().transform(X, dim=dim)


@pytest.mark.parametrize(
    ("field", "value"), [("activation", "swish"), ("input_rotation", "random"), ("hidden_dim", 0), ("input_dim", 0)]
)
def test_config_rejects_bad_values(field: str, value) -> None:
    kwargs = {"input_dim": 8, field: value}
    with pytest.raises(InputError, match=f"{field} '?{value}'?"):
        AdaptorConfig(**kwargs)
