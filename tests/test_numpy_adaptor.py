import sys

import numpy as np
import pytest
import torch

from matryoshka_adaptor.config import AdaptorConfig
from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.model import MatryoshkaAdaptor
from matryoshka_adaptor.numpy_adaptor import NumpyAdaptor
from matryoshka_adaptor.vectors import start_map

X = np.random.default_rng(1).standard_normal((50, 12)).astype(np.float32)


@pytest.mark.parametrize(("activation", "layers", "start"), [("relu", 1, "pca"), ("gelu", 2, "centred_pca"), ("tanh", 1, "centred_axes")])
def test_numpy_path_matches_torch(tmp_path, activation: str, layers: int, start: str) -> None:
    torch.manual_seed(0)
    config = AdaptorConfig(input_dim=12, hidden_dim=20, num_hidden_layers=layers, activation=activation, input_rotation=start)
    a = MatryoshkaAdaptor(config, *start_map(X + 1.0, start))
    for p in a.mlp.parameters():
        torch.nn.init.normal_(p, std=0.3)
    a.save(tmp_path / "ad")
    n = NumpyAdaptor.load(tmp_path / "ad")
    np.testing.assert_allclose(n.transform(X), a.transform(X), atol=1e-5)
    np.testing.assert_allclose(n.transform(X, dim=4), a.transform(X, dim=4), atol=1e-5)
    with pytest.raises(InputError, match="expected width 12"):
        n.transform(X[:, :6])


def test_numpy_adaptor_module_does_not_import_torch() -> None:
    import subprocess

    code = "import sys, matryoshka_adaptor.numpy_adaptor; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=__file__.rsplit("/tests/", 1)[0])
