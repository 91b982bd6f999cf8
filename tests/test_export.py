import numpy as np
import pytest
import torch

from matryoshka_adaptor.config import AdaptorConfig
from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.export import adaptor_as_dense_layers
from matryoshka_adaptor.model import MatryoshkaAdaptor
from matryoshka_adaptor.vectors import start_map

X = np.random.default_rng(0).standard_normal((30, 10)).astype(np.float32)


@pytest.mark.parametrize(("layers", "start"), [(1, "pca"), (2, "pca"), (1, "centred_pca")])
def test_dense_layers_compute_the_adaptor_exactly(layers: int, start: str) -> None:
    """Centred PCA's mean becomes a bias of the first Dense layer; the output must not change."""
    torch.manual_seed(0)
    config = AdaptorConfig(input_dim=10, hidden_dim=16, num_hidden_layers=layers, input_rotation=start)
    a = MatryoshkaAdaptor(config, *start_map(X + 1.0, start))
    for p in a.mlp.parameters():
        torch.nn.init.normal_(p, std=0.5)
    features = {"sentence_embedding": torch.from_numpy(X)}
    for module in adaptor_as_dense_layers(a):
        features = module(features)
    np.testing.assert_allclose(features["sentence_embedding"].detach().numpy(), a.transform(X), atol=1e-5)


def test_only_relu_adaptors_export() -> None:
    a = MatryoshkaAdaptor(AdaptorConfig(input_dim=10, activation="gelu"))
    with pytest.raises(InputError, match="only a 'relu' adaptor"):
        adaptor_as_dense_layers(a)
