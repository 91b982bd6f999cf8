"""Synthetic corpora for tests and benchmarks: clustered unit vectors, queries near documents, and qrels.

Clusters give the neighbour search and the losses structure to work on (uniform random vectors in 384 dims are
all nearly orthogonal). Written as a bring-your-own-vectors folder (vector_files.py) plus a qrels TSV.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..vectors import unit_rows


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


def topic_and_nuisance(
    n_docs: int, n_queries: int, dim: int, topic_dims: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(documents, queries) with structure a supervised stage can learn and no start map finds: a document is
    dim - topic_dims nuisance coordinates then topic_dims topic coordinates, all of unit variance, and query i
    shares only document i's topic (plus 10% noise). Short prefixes rank by nuisance as much as by topic until
    training on queries teaches them the topic."""
    topic = rng.standard_normal((n_docs, topic_dims))
    docs = np.concatenate([rng.standard_normal((n_docs, dim - topic_dims)), topic], axis=1)
    queries = np.concatenate(
        [rng.standard_normal((n_queries, dim - topic_dims)), topic[:n_queries] + 0.1 * rng.standard_normal((n_queries, topic_dims))],
        axis=1,
    )
    return docs.astype(np.float32), queries.astype(np.float32)


def write_synthetic_folder(
    folder: str | Path, n_docs: int, n_queries: int, dim: int = 384, seed: int = 0, topic_dims: int | None = None
) -> Path:
    """A vectors folder (corpus.npy, queries.npy and their ids) and folder/qrels.tsv: query i is a noisy copy of
    document i (relevance 2) and is also judged to match one of that document's near copies (relevance 1); with
    `topic_dims`, query i instead shares only document i's topic (topic_and_nuisance), judged relevant to it alone."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if topic_dims:
        docs, queries = topic_and_nuisance(n_docs, n_queries, dim, topic_dims, rng)
        lines = ["query-id\tcorpus-id\tscore"] + [f"q{i}\td{i}\t1" for i in range(n_queries)]
    else:
        docs = clustered_unit_vectors(n_docs, dim, rng, n_clusters=max(2, min(1000, n_docs // 20)))
        queries = unit_rows(docs[:n_queries] + rng.standard_normal((n_queries, dim), dtype=np.float32) * (0.8 / np.sqrt(dim)))
        lines = ["query-id\tcorpus-id\tscore"]
        for i in range(n_queries):
            lines += [f"q{i}\td{i}\t2", f"q{i}\td{(i + n_queries) % n_docs}\t1"]
    np.save(folder / "corpus.npy", docs)
    np.save(folder / "queries.npy", queries.astype(np.float32))
    (folder / "corpus_ids.txt").write_text("".join(f"d{i}\n" for i in range(n_docs)))
    (folder / "queries_ids.txt").write_text("".join(f"q{i}\n" for i in range(n_queries)))
    (folder / "qrels.tsv").write_text("\n".join(lines) + "\n")
    return folder
