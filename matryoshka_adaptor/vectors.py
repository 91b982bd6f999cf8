"""Numpy-only helpers on embedding matrices (no torch import, so torch-free inference can share them)."""

from __future__ import annotations

import numpy as np

from .errors import InputError


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to unit L2 norm (zero rows stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pca_rotation(embeddings: np.ndarray) -> np.ndarray:
    """Orthogonal (d, d) matrix whose rows are the principal axes of the uncentred embeddings, largest first.

    Without mean removal the map is a pure rotation, so cosines at full dim are unchanged. Each axis' sign is
    fixed (largest coordinate positive) so that the same embeddings always give the same matrix.
    """
    d = embeddings.shape[1]
    gram = np.zeros((d, d))
    for start in range(0, len(embeddings), 65536):  # in float64 a block at a time: no full-size copy
        block = np.asarray(embeddings[start : start + 65536], dtype=np.float64)
        gram += block.T @ block
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    axes = eigenvectors[:, np.argsort(eigenvalues)[::-1]].T
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    return (axes * signs[:, None]).astype(np.float32)


def check_embeddings(x: np.ndarray, expected_dim: int, what: str = "embeddings") -> np.ndarray:
    """2-D finite float32 array of width expected_dim, or an InputError saying what is wrong."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise InputError(f"{what}: expected a 2-D array (n, {expected_dim}), got shape {x.shape}")
    if x.shape[1] != expected_dim:
        raise InputError(f"{what}: expected width {expected_dim}, got {x.shape[1]} (shape {x.shape})")
    x = x.astype(np.float32, copy=False)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise InputError(f"{what}: row {int(bad.argmax())} holds NaN or inf ({int(bad.sum())} such rows)")
    return x
