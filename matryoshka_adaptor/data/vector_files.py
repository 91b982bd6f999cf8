"""Bring your own embeddings: precomputed corpus and query vectors, no embedding model loaded.

A folder holds either corpus.npy + corpus_ids.txt and queries.npy + queries_ids.txt (one id per line, in row
order), or corpus.parquet and queries.parquet with an id column and a vector column (list of floats).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..encoders import EmbeddedDataset
from ..errors import InputError
from ..vectors import check_embeddings


def _read_npy(folder: Path, part: str) -> tuple[list[str], np.ndarray]:
    vec_path, ids_path = folder / f"{part}.npy", folder / f"{part}_ids.txt"
    if not ids_path.is_file():
        raise InputError(f"{ids_path}: file not found; expected one id per line for the rows of {vec_path.name}")
    try:
        vectors = np.load(vec_path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise InputError(f"{vec_path}: not a readable .npy array ({e})") from None
    ids = [line.strip() for line in ids_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if vectors.ndim != 2 or len(ids) != len(vectors):
        raise InputError(f"{vec_path}: expected a 2-D array with one row per id in {ids_path.name} ({len(ids)}), got shape {vectors.shape}")
    return ids, check_embeddings(vectors, vectors.shape[1], what=str(vec_path))


def _read_parquet(path: Path, id_column: str, vector_column: str) -> tuple[list[str], np.ndarray]:
    import pandas as pd

    frame = pd.read_parquet(path)
    missing = [c for c in (id_column, vector_column) if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; it has {', '.join(map(str, frame.columns))}")
    try:
        vectors = np.stack([np.asarray(v, dtype=np.float32) for v in frame[vector_column]])
    except ValueError as e:
        raise InputError(f"{path}: column {vector_column!r} must hold vectors of one length ({e})") from None
    return [str(i) for i in frame[id_column]], check_embeddings(vectors, vectors.shape[1], what=str(path))


def _read_part(folder: Path, part: str, id_column: str, vector_column: str) -> tuple[list[str], np.ndarray]:
    if (folder / f"{part}.parquet").is_file():
        ids, vectors = _read_parquet(folder / f"{part}.parquet", id_column, vector_column)
    elif (folder / f"{part}.npy").is_file():
        ids, vectors = _read_npy(folder, part)
    else:
        raise InputError(f"{folder}: no {part}.npy or {part}.parquet")
    if len(set(ids)) != len(ids):
        raise InputError(f"{folder}: duplicate ids among the {part} vectors")
    return ids, vectors


def load_embedding_folder(
    folder: str | os.PathLike[str],
    name: str | None = None,
    base_model: str = "precomputed",
    id_column: str = "id",
    vector_column: str = "embedding",
) -> EmbeddedDataset:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder; expected corpus and query vectors (.npy + _ids.txt, or .parquet)")
    doc_ids, docs = _read_part(folder, "corpus", id_column, vector_column)
    query_ids, queries = _read_part(folder, "queries", id_column, vector_column)
    if queries.shape[1] != docs.shape[1]:
        raise InputError(f"{folder}: query vectors have width {queries.shape[1]}, corpus vectors {docs.shape[1]}; expected the same")
    return EmbeddedDataset(
        name=name or folder.name,
        base_model=base_model,
        doc_ids=doc_ids,
        doc_embeddings=docs,
        query_ids=query_ids,
        query_embeddings=queries,
    )
