"""The same funnel in Qdrant: each document holds two named vectors, the adapted prefix and the full adapted vector;
a query prefetches a shortlist on the prefix and re-scores it on the full vector, inside Qdrant.

    funnel = QdrantFunnel.connect(":memory:", "scifact", dim=64, full_dim=384)   # or a path, or a server URL
    funnel.ingest(adapted_docs, doc_ids)
    positions, scores = funnel.search(adapted_queries, top_k=10, shortlist=100)

`location` is ":memory:" or a folder for qdrant-client's local mode (in-process, no server: the tested default),
or an http(s) URL of a Qdrant server. Points are numbered by position, as AdaptedIndex numbers documents, and carry
their document id as payload. `prefix_quantization` asks a server to keep the prefix as int8 or binary codes
(Qdrant's own quantisation, re-scored on its originals); local mode searches exact vectors either way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..vectors import check_embeddings, unit_rows

PREFIX, FULL = "prefix", "full"  # the two named vectors of every point
QUANTIZATIONS = ("none", "int8", "binary")


def _models() -> Any:
    try:
        from qdrant_client import models
    except ImportError:
        raise InputError("Qdrant serving needs qdrant-client: pip install qdrant-client") from None
    return models


class QdrantFunnel:
    """A Qdrant collection of adapted documents, searched by prefix prefetch then full-vector re-scoring."""

    def __init__(self, client: Any, collection: str, dim: int, full_dim: int) -> None:
        if not 1 <= dim <= full_dim:
            raise InputError(f"Qdrant prefix dim={dim}: expected 1 <= dim <= full_dim={full_dim}")
        self.client, self.collection, self.dim, self.full_dim = client, collection, dim, full_dim

    @classmethod
    def connect(cls, location: str, collection: str, dim: int, full_dim: int) -> QdrantFunnel:
        _models()
        from qdrant_client import QdrantClient

        if location.startswith(("http://", "https://")):
            client = QdrantClient(url=location)
        else:
            client = QdrantClient(location=location) if location == ":memory:" else QdrantClient(path=location)
        return cls(client, collection, dim, full_dim)

    def ingest(self, vectors: np.ndarray, doc_ids: list[str], prefix_quantization: str = "none",
               batch_size: int = 512) -> None:
        """(Re)create the collection and upload every adapted document vector (n, full_dim) with its id."""
        models = _models()
        if prefix_quantization not in QUANTIZATIONS:
            raise InputError(f"prefix_quantization={prefix_quantization!r}: expected one of {', '.join(QUANTIZATIONS)}")
        full = unit_rows(check_embeddings(vectors, self.full_dim, what=f"documents for a {self.full_dim}-dim Qdrant funnel"))
        if len(doc_ids) != len(full):
            raise InputError(f"{len(doc_ids)} document ids for {len(full)} vectors: expected one id per vector")
        quantization = {
            "none": None,
            "int8": models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)),
            "binary": models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True)),
        }[prefix_quantization]
        if self.client.collection_exists(self.collection):
            self.client.delete_collection(self.collection)
        self.client.create_collection(self.collection, vectors_config={
            PREFIX: models.VectorParams(size=self.dim, distance=models.Distance.COSINE, quantization_config=quantization),
            FULL: models.VectorParams(size=self.full_dim, distance=models.Distance.COSINE),
        })
        prefix = unit_rows(full[:, : self.dim])
        for start in range(0, len(full), batch_size):
            stop = min(start + batch_size, len(full))
            self.client.upsert(self.collection, points=[
                models.PointStruct(id=i, vector={PREFIX: prefix[i].tolist(), FULL: full[i].tolist()},
                                   payload={"doc_id": doc_ids[i]})
                for i in range(start, stop)
            ])

    def search(self, queries: np.ndarray, top_k: int = 10, shortlist: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """(positions, scores), each (queries, top_k), best first: Qdrant prefetches `shortlist` points by the
        prefix, then ranks them by the full vector. -1 pads when fewer were found."""
        models = _models()
        q = unit_rows(check_embeddings(queries, self.full_dim, what=f"queries for a {self.full_dim}-dim Qdrant funnel"))
        requests = [
            models.QueryRequest(
                prefetch=models.Prefetch(query=unit_rows(row[None, : self.dim])[0].tolist(), using=PREFIX, limit=max(shortlist, top_k)),
                query=row.tolist(), using=FULL, limit=top_k,
            )
            for row in q
        ]
        ids = np.full((len(q), top_k), -1, dtype=np.int64)
        scores = np.full((len(q), top_k), -np.inf, dtype=np.float32)
        for i, answer in enumerate(self.client.query_batch_points(self.collection, requests)):
            for j, point in enumerate(answer.points):
                ids[i, j], scores[i, j] = point.id, point.score
        return ids, scores
