"""Serving adapted vectors: a faiss index over the Matryoshka prefix with full-vector re-scoring, and Qdrant."""

from .config import IndexConfig
from .index import AdaptedIndex

__all__ = ["AdaptedIndex", "IndexConfig"]
