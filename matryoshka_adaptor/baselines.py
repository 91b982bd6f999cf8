"""Training-free ways to shorten embeddings, the yardsticks an adaptor must beat. Each has transform(x, dim)."""

from __future__ import annotations

import numpy as np

from .vectors import check_embeddings, start_map, unit_rows


class StartMap:
    """x -> R·(x − μ) truncated to dim and L2-normalised, for a start map of vectors.START_MAPS: 'none' (the
    base model truncated), 'pca' (uncentred axes), 'centred_axes' (centred axes, no mean removal), 'centred_pca'
    and the partly centred maps between those two (vectors.MEAN_REMOVED);
    `parts` (each document's part of a partitioned corpus) makes the centred axes the within-part ones."""

    def __init__(self, corpus: np.ndarray, name: str, parts: np.ndarray | None = None) -> None:
        corpus = check_embeddings(corpus, corpus.shape[1], what="corpus embeddings")
        self.input_dim = corpus.shape[1]
        self.rotation, self.center = start_map(corpus, name, parts)

    def transform(self, x: np.ndarray, dim: int) -> np.ndarray:
        x = check_embeddings(x, self.input_dim)
        if self.center is not None:
            x = x - self.center
        if self.rotation is not None:
            x = x @ self.rotation[:dim].T
        return unit_rows(x[:, :dim])
