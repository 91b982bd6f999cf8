"""Numpy-only helpers on embedding matrices (no torch import, so torch-free inference can share them)."""

from __future__ import annotations

import numpy as np

from .errors import InputError


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to unit L2 norm (zero rows stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pca_rotation(embeddings: np.ndarray, center: np.ndarray | None = None, parts: np.ndarray | None = None) -> np.ndarray:
    """Orthogonal (d, d) matrix whose rows are the principal axes of the embeddings, largest first: of their
    second moment (uncentred) by default, of their covariance with `center` = their mean; with `parts` (each
    embedding's part) `center` holds one row per part (each part's mean: the within-part covariance).

    The matrix is a pure rotation either way; only subtracting a centre from the vectors changes cosines. Each
    axis' sign is fixed (largest coordinate positive) so that the same embeddings always give the same matrix.
    """
    d = embeddings.shape[1]
    gram = np.zeros((d, d))
    for start in range(0, len(embeddings), 65536):  # in float64 a block at a time: no full-size copy
        block = np.asarray(embeddings[start : start + 65536], dtype=np.float64)
        if center is not None:
            block = block - (center if parts is None else center[parts[start : start + 65536]])
        gram += block.T @ block
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    axes = eigenvectors[:, np.argsort(eigenvalues)[::-1]].T
    signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
    return (axes * signs[:, None]).astype(np.float32)


# Training-free start maps x -> R·(x − μ), the adaptor's possible starting points and the baselines it must beat.
# The maps on the covariance's axes differ only in how much of the corpus mean they remove: none of it keeps every
# full-dim cosine (a rotation), all of it is classic PCA, and a part of it shrinks the direction every document
# shares without the full centring that loses at full width on some corpora (on MiniLM's XQuAD-R Vietnamese
# training questions half and three quarters beat both ends at most dims; the start scores are in each config.json).
MEAN_REMOVED = {
    "centred_axes": 0.0,  # axes of the covariance, applied without centring: still a rotation, cosines unchanged
    "centred_pca": 1.0,  # classic PCA: mean removed, so full-dim cosines change too
    "quarter_centred": 0.25,
    "half_centred": 0.5,
    "three_quarter_centred": 0.75,
}
PARTLY_CENTRED = tuple(name for name, share in MEAN_REMOVED.items() if 0 < share < 1)
START_MAPS = (
    "none",  # the base model's own coordinates
    "pca",  # axes of the uncentred second moment (a rotation); the first is close to the corpus mean direction
    *MEAN_REMOVED,
)


def start_maps(
    corpus: np.ndarray, names: tuple[str, ...] = START_MAPS, parts: np.ndarray | None = None
) -> dict[str, tuple[np.ndarray | None, np.ndarray | None]]:
    """name -> (rotation R or None for the identity, centre μ or None) of each named start map, from the corpus;
    the maps on the covariance's axes share one pass over the corpus for them. With `parts` (each document's part of a
    partitioned corpus, where queries rank within a part) the centred axes are those of the within-part covariance:
    the directions that tell apart documents of one part, not the parts themselves (one language from another)."""
    unknown = [n for n in names if n not in START_MAPS]
    if unknown:
        raise InputError(f"start map {unknown[0]!r}: expected one of {list(START_MAPS)}")
    out: dict[str, tuple[np.ndarray | None, np.ndarray | None]] = {}
    if "none" in names:
        out["none"] = (None, None)
    if "pca" in names:
        out["pca"] = (pca_rotation(corpus), None)
    if set(MEAN_REMOVED) & set(names):
        mean = corpus.mean(axis=0, dtype=np.float64)  # accumulated in float64, without a float64 copy
        axes = pca_rotation(corpus, mean) if parts is None else pca_rotation(corpus, part_means(corpus, parts), parts)
        for name, share in MEAN_REMOVED.items():
            out[name] = (axes, None if share == 0 else (share * mean).astype(np.float32))
    return {n: out[n] for n in names}


def start_map(
    corpus: np.ndarray, name: str, parts: np.ndarray | None = None
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(rotation R or None for the identity, centre μ or None) of the named start map, from the corpus."""
    return start_maps(corpus, (name,), parts)[name]


def part_means(corpus: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """(number of parts, d) mean of each part's rows, in float64."""
    sums = np.zeros((int(parts.max()) + 1, corpus.shape[1]))
    np.add.at(sums, parts, corpus)
    return sums / np.bincount(parts, minlength=len(sums))[:, None]


def check_embeddings(x: np.ndarray, expected_dim: int | None, what: str = "embeddings") -> np.ndarray:
    """2-D finite float32 array of width expected_dim (None: any width), or an InputError saying what is wrong."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise InputError(f"{what}: expected a 2-D array (n, {expected_dim or 'd'}), got shape {x.shape}")
    if expected_dim is not None and x.shape[1] != expected_dim:
        raise InputError(f"{what}: expected width {expected_dim}, got {x.shape[1]} (shape {x.shape})")
    x = x.astype(np.float32, copy=False)
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise InputError(f"{what}: row {int(bad.argmax())} holds NaN or inf ({int(bad.sum())} such rows)")
    return x
