"""Training-free ways to shorten embeddings, the yardsticks an adaptor must beat. Each has transform(x, dim)."""

from __future__ import annotations

import numpy as np

from .vectors import check_embeddings, pca_rotation, unit_rows


class Truncation:
    """The base model as is: keep the first dim coordinates."""

    def __init__(self, input_dim: int) -> None:
        self.input_dim = input_dim

    def transform(self, x: np.ndarray, dim: int) -> np.ndarray:
        return unit_rows(check_embeddings(x, self.input_dim)[:, :dim])


class PCA:
    """Project the mean-removed embeddings on the top principal axes of the corpus."""

    def __init__(self, corpus: np.ndarray) -> None:
        corpus = check_embeddings(corpus, corpus.shape[1], what="corpus embeddings")
        self.mean = corpus.mean(axis=0)
        self.axes = pca_rotation(corpus - self.mean)

    def transform(self, x: np.ndarray, dim: int) -> np.ndarray:
        return unit_rows((check_embeddings(x, len(self.mean)) - self.mean) @ self.axes[:dim].T)


class PCARotation:
    """The same axes without mean removal: an orthogonal rotation, so full-dim cosines are unchanged."""

    def __init__(self, corpus: np.ndarray) -> None:
        self.axes = pca_rotation(check_embeddings(corpus, corpus.shape[1], what="corpus embeddings"))

    def transform(self, x: np.ndarray, dim: int) -> np.ndarray:
        return unit_rows(check_embeddings(x, len(self.axes)) @ self.axes[:dim].T)
