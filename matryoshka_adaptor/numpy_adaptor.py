"""Torch-free inference: the same transform as MatryoshkaAdaptor, in numpy, from the saved safetensors.

For services that only store and search vectors: `from matryoshka_adaptor.numpy_adaptor import NumpyAdaptor`
imports numpy, scipy and safetensors, never torch.
"""

from __future__ import annotations

import os
import re

import numpy as np
from safetensors.numpy import load_file
from scipy.special import erf

from .config import AdaptorConfig, read_adaptor_folder
from .errors import InputError
from .vectors import check_embeddings, unit_rows

ACTIVATIONS = {
    "gelu": lambda x: 0.5 * x * (1.0 + erf(x / np.sqrt(2.0))),  # exact GELU, as torch.nn.GELU()
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
}


class NumpyAdaptor:
    """ĉe = z + f(z), z = R·(ce − μ), computed in float32 numpy; matches the torch path to about 1e-6."""

    def __init__(self, config: AdaptorConfig, weights: dict[str, np.ndarray]) -> None:
        self.config = config
        self.rotation = weights["rotation"]
        self.center = weights.get("center", np.zeros(config.input_dim, dtype=np.float32))  # absent in older adaptors
        indices = sorted({int(m.group(1)) for k in weights if (m := re.fullmatch(r"mlp\.(\d+)\.weight", k))})
        self.layers = [(weights[f"mlp.{i}.weight"].T.copy(), weights[f"mlp.{i}.bias"]) for i in indices]
        if len(self.layers) != config.num_hidden_layers + 1:
            raise InputError(f"weights hold {len(self.layers)} linear layers, config says {config.num_hidden_layers + 1}")
        self.activation = ACTIVATIONS[config.activation]

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> NumpyAdaptor:
        config, weights_path = read_adaptor_folder(folder)
        return cls(config, load_file(weights_path))

    def transform(self, x: np.ndarray, dim: int | None = None) -> np.ndarray:
        """Adapt base embeddings x (n, input_dim); with dim, the first dim coordinates, L2-normalised."""
        d = self.config.input_dim
        if dim is not None and not 1 <= dim <= d:
            raise InputError(f"dim {dim}: expected 1 <= dim <= {d}")
        z = check_embeddings(x, d, what=f"embeddings given to an adaptor for {d}-dim {self.config.base_model}")
        z = (z - self.center) @ self.rotation.T
        h = z
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                h = self.activation(h)
        y = (z + h).astype(np.float32)
        return y if dim is None else unit_rows(y[:, :dim])
