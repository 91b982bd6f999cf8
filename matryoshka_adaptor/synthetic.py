"""Synthetic corpora for tests and benchmarks: clustered unit vectors, queries near documents, and qrels.

Clusters give the neighbour search and the losses structure to work on (uniform random vectors in 384 dims are
all nearly orthogonal). Written as a bring-your-own-vectors folder (vector_files.py) plus a qrels TSV.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .vectors import unit_rows


def clustered_unit_vectors(n: int, dim: int, rng: np.random.Generator, n_clusters: int = 1000, spread: float = 0.5,
                           block: int = 65536) -> np.ndarray:
    """(n, dim) float32 unit vectors around `n_clusters` random centres, generated a block at a time."""
    centres = unit_rows(rng.standard_normal((n_clusters, dim))).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, block):
        m = min(block, n - start)
        noise = rng.standard_normal((m, dim), dtype=np.float32) * (spread / np.sqrt(dim))
        out[start : start + m] = unit_rows(centres[rng.integers(n_clusters, size=m)] + noise)
    return out


def write_synthetic_folder(folder: str | Path, n_docs: int, n_queries: int, dim: int = 384, seed: int = 0) -> Path:
    """A vectors folder (corpus.npy, queries.npy and their ids) and folder/qrels.tsv: query i is a noisy copy of
    document i (relevance 2) and is also judged to match one of that document's near copies (relevance 1)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    docs = clustered_unit_vectors(n_docs, dim, rng, n_clusters=max(2, min(1000, n_docs // 20)))
    queries = unit_rows(docs[:n_queries] + rng.standard_normal((n_queries, dim), dtype=np.float32) * (0.8 / np.sqrt(dim)))
    np.save(folder / "corpus.npy", docs)
    np.save(folder / "queries.npy", queries.astype(np.float32))
    (folder / "corpus_ids.txt").write_text("".join(f"d{i}\n" for i in range(n_docs)))
    (folder / "queries_ids.txt").write_text("".join(f"q{i}\n" for i in range(n_queries)))
    lines = ["query-id\tcorpus-id\tscore"]
    for i in range(n_queries):
        lines += [f"q{i}\td{i}\t2", f"q{i}\td{(i + n_queries) % n_docs}\t1"]
    (folder / "qrels.tsv").write_text("\n".join(lines) + "\n")
    return folder
