"""AdaptedIndex: a faiss index over the first `dim` adapted dims, re-scored with the full adapted vectors.

    index = AdaptedIndex.build(base_vectors, IndexConfig(dim=64, full_dim=384, precision="int8"), adaptor=folder)
    ids, scores = index.search_base(base_queries, adaptor, top_k=10, shortlist=100)
    index.save("indexes/scifact_64_int8"); AdaptedIndex.load("indexes/scifact_64_int8")

Quantisation is faiss's own: float16 and int8 prefixes are scalar-quantised indexes whose per-dim int8 ranges are
trained on the corpus and stored in the index file; a binary prefix keeps one bit per dim, set where the
coordinate is above that dim's corpus median (saved beside the index), and is searched by Hamming distance.
The full vectors kept for re-scoring are a faiss flat or scalar-quantised store read back with reconstruct_batch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ..atomic import write_folder_atomic
from ..errors import InputError
from ..vectors import check_embeddings, unit_rows
from .config import CONFIG_FILE, IndexConfig

logger = logging.getLogger(__name__)

PREFIX_FILE, FULL_FILE, THRESHOLDS_FILE, IDS_FILE = "prefix.faiss", "full.faiss", "thresholds.npy", "ids.json"
CODECS = {"float32": "Flat", "float16": "SQfp16", "int8": "SQ8"}  # faiss index_factory names of each precision
QUERY_CHUNK = 256  # queries re-scored at once: bounds the (queries, shortlist, full_dim) block in memory


def adaptor_fingerprint(adaptor: Any) -> str:
    """sha256 over an adaptor's weights (names and bytes, sorted): the same weights give the same fingerprint."""
    digest = hashlib.sha256()
    for name, tensor in sorted(adaptor.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def ivf_lists(config: IndexConfig, n: int) -> int:
    """The configured list count, or 4·sqrt(n) capped so every list trains on at least 39 points (faiss's floor)."""
    return config.ivf_lists or max(1, min(int(4 * np.sqrt(n)), n // 39))


def new_prefix_index(config: IndexConfig, n: int) -> Any:
    """An empty faiss index for the prefix: inner product on unit vectors (cosine), or Hamming on bits."""
    lists = ivf_lists(config, n)
    if config.precision == "binary":
        spec = {"flat": "BFlat", "hnsw": f"BHNSW{config.hnsw_m}", "ivf": f"BIVF{lists}"}[config.index]
        index = faiss.index_binary_factory(config.dim, spec)
    else:
        codec = CODECS[config.precision]
        spec = {"flat": codec, "hnsw": f"HNSW{config.hnsw_m},{codec}", "ivf": f"IVF{lists},{codec}"}[config.index]
        index = faiss.index_factory(config.dim, spec, faiss.METRIC_INNER_PRODUCT)
    if config.index == "hnsw":
        index.hnsw.efConstruction = config.hnsw_ef_construction  # the factory string cannot carry it
    return index


def new_rescore_store(config: IndexConfig) -> Any:
    return faiss.index_factory(config.full_dim, CODECS[config.rescore], faiss.METRIC_INNER_PRODUCT)


class AdaptedIndex:
    """A shortlist index over adapted prefixes plus (optionally) full adapted vectors for re-scoring."""

    def __init__(self, config: IndexConfig, prefix: Any, full: Any | None, thresholds: np.ndarray | None,
                 doc_ids: list[str] | None) -> None:
        self.config, self.prefix, self.full, self.thresholds, self.doc_ids = config, prefix, full, thresholds, doc_ids

    # ---- building -------------------------------------------------------------------------------------------
    @classmethod
    def build(cls, vectors: np.ndarray, config: IndexConfig, doc_ids: list[str] | None = None,
              adaptor: Any | str | os.PathLike[str] | None = None) -> AdaptedIndex:
        """Index `vectors`: base vectors when `adaptor` (a MatryoshkaAdaptor or its folder) is given, else vectors
        already adapted, (n, config.full_dim)."""
        info = None
        if adaptor is not None:
            adaptor, info = _load_adaptor(adaptor)
            vectors = adaptor.transform(vectors)
        full = unit_rows(check_embeddings(vectors, config.full_dim, what=f"vectors for a {config.full_dim}-dim index"))
        if doc_ids is not None and len(doc_ids) != len(full):
            raise InputError(f"{len(doc_ids)} document ids for {len(full)} vectors: expected one id per vector")
        n = len(full)
        if n == 0:
            raise InputError("no vectors to index: expected at least one")
        config = replace(config, n_vectors=n, adaptor=info,
                         ivf_lists=ivf_lists(config, n) if config.index == "ivf" else config.ivf_lists)
        prefix_rows = unit_rows(full[:, : config.dim])
        thresholds = np.median(prefix_rows, axis=0).astype(np.float32) if config.precision == "binary" else None
        prefix = new_prefix_index(config, n)
        codes = _binary_codes(prefix_rows, thresholds) if thresholds is not None else prefix_rows
        if not prefix.is_trained:
            prefix.train(codes)  # int8 ranges per dim, IVF centroids: from this corpus
        prefix.add(codes)
        store = None
        if config.rescore != "none":
            store = new_rescore_store(config)
            if not store.is_trained:
                store.train(full)
            store.add(full)
        logger.info("indexed %d vectors: %s %s prefix of %d dims, re-score %s", n, config.index, config.precision,
                    config.dim, config.rescore)
        return cls(config, prefix, store, thresholds, list(doc_ids) if doc_ids is not None else None)

    # ---- searching ------------------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, top_k: int = 10, shortlist: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """(positions, scores), each (queries, top_k), best first, for adapted queries (n, full_dim): the prefix
        index finds `shortlist` candidates, the full vectors re-score them (without re-scoring: the prefix's top_k).
        Positions index the documents in build order (`doc_ids`); -1 pads when fewer were found."""
        c = self.config
        if top_k < 1 or shortlist < 1:
            raise InputError(f"top_k={top_k}, shortlist={shortlist}: expected positive integers")
        q = unit_rows(check_embeddings(queries, c.full_dim, what=f"queries for this {c.full_dim}-dim adapted index"))
        first = min(top_k if c.rescore == "none" else max(shortlist, top_k), c.n_vectors)
        ids, scores = [], []
        for start in range(0, len(q), QUERY_CHUNK):
            block = q[start : start + QUERY_CHUNK]
            cand_scores, cand = self._search_prefix(unit_rows(block[:, : c.dim]), first)
            if self.full is not None:
                cand_scores = self._rescore(block, cand)
            order = np.argsort(-cand_scores, axis=1, kind="stable")[:, :top_k]
            ids.append(np.take_along_axis(cand, order, axis=1))
            scores.append(np.take_along_axis(cand_scores, order, axis=1))
        return _pad(np.concatenate(ids) if ids else np.zeros((0, 0), np.int64), top_k, -1), \
            _pad(np.concatenate(scores) if scores else np.zeros((0, 0), np.float32), top_k, -np.inf)

    def search_base(self, base_queries: np.ndarray, adaptor: Any, top_k: int = 10, shortlist: int = 100
                    ) -> tuple[np.ndarray, np.ndarray]:
        """search() for base-model queries, adapted by `adaptor`, which must be the one the index was built with."""
        recorded = self.config.adaptor
        if recorded is None:
            raise InputError("this index was built from already-adapted vectors: pass adapted queries to search()")
        adaptor, info = _load_adaptor(adaptor)
        if info["fingerprint"] != recorded["fingerprint"]:
            raise InputError(
                f"adaptor {info['path'] or ''} (weights {info['fingerprint'][:12]}) is not the one this index was "
                f"built with: expected {recorded['path'] or 'an adaptor'} (weights {recorded['fingerprint'][:12]})"
            )
        return self.search(adaptor.transform(base_queries), top_k, shortlist)

    def _search_prefix(self, prefix_queries: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        if c.index == "hnsw":
            self.prefix.hnsw.efSearch = max(c.hnsw_ef_search, n)
        elif c.index == "ivf":
            (self.prefix if c.precision == "binary" else faiss.extract_index_ivf(self.prefix)).nprobe = c.ivf_probe
        if self.thresholds is not None:
            distances, ids = self.prefix.search(_binary_codes(prefix_queries, self.thresholds), n)
            scores = 1.0 - 2.0 * distances.astype(np.float32) / c.dim  # agreeing bits as a cosine-like score
        else:
            scores, ids = self.prefix.search(prefix_queries, n)
        return np.where(ids >= 0, scores, -np.inf).astype(np.float32), ids

    def _rescore(self, queries: np.ndarray, cand: np.ndarray) -> np.ndarray:
        found = cand >= 0
        rows = self.full.reconstruct_batch(np.where(found, cand, 0).ravel()).reshape(*cand.shape, -1)
        return np.where(found, np.einsum("qd,qnd->qn", queries, rows), -np.inf).astype(np.float32)

    # ---- disk -----------------------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """One folder: prefix.faiss, full.faiss (re-scoring), thresholds.npy (binary), ids.json, and config.json
        with every file's size and sha256; written to a temp folder and renamed, never left half-written."""

        def write(tmp: Path) -> None:
            (faiss.write_index_binary if self.thresholds is not None else faiss.write_index)(self.prefix, str(tmp / PREFIX_FILE))
            if self.full is not None:
                faiss.write_index(self.full, str(tmp / FULL_FILE))
            if self.thresholds is not None:
                np.save(tmp / THRESHOLDS_FILE, self.thresholds)
            if self.doc_ids is not None:
                (tmp / IDS_FILE).write_text(json.dumps(self.doc_ids))
            files = {p.name: {"bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in sorted(tmp.iterdir())}
            self.config = replace(self.config, files=files)
            (tmp / CONFIG_FILE).write_text(self.config.to_json())

        folder = write_folder_atomic(Path(folder), write, overwrite)
        logger.info("saved index to %s", folder)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> AdaptedIndex:
        """Read an index folder, checking every file against the sizes and hashes its config.json records."""
        folder = Path(folder)
        config = IndexConfig.read(folder / CONFIG_FILE)
        needed = {PREFIX_FILE} | ({FULL_FILE} if config.rescore != "none" else set()) \
            | ({THRESHOLDS_FILE} if config.precision == "binary" else set())
        if needed - config.files.keys():
            raise InputError(f"{folder / CONFIG_FILE}: lists no {sorted(needed - config.files.keys())}, which a "
                             f"{config.precision} index with re-score {config.rescore} needs")
        for name, meta in config.files.items():
            _check_file(folder / name, meta)
        binary = config.precision == "binary"
        prefix = (faiss.read_index_binary if binary else faiss.read_index)(str(folder / PREFIX_FILE))
        if prefix.d != config.dim or prefix.ntotal != config.n_vectors:
            raise InputError(f"{folder / PREFIX_FILE}: {prefix.ntotal} vectors of {prefix.d} dims, expected "
                             f"{config.n_vectors} of {config.dim} (config.json)")
        full = faiss.read_index(str(folder / FULL_FILE)) if config.rescore != "none" else None
        if full is not None and (full.d != config.full_dim or full.ntotal != config.n_vectors):
            raise InputError(f"{folder / FULL_FILE}: {full.ntotal} vectors of {full.d} dims, expected "
                             f"{config.n_vectors} of {config.full_dim} (config.json)")
        thresholds = np.load(folder / THRESHOLDS_FILE) if binary else None
        doc_ids = json.loads((folder / IDS_FILE).read_text()) if IDS_FILE in config.files else None
        return cls(config, prefix, full, thresholds, doc_ids)

    @property
    def prefix_bytes(self) -> int:
        """Bytes of the prefix index as faiss serialises it: codes plus graph or lists, what a server keeps in RAM."""
        writer = faiss.serialize_index_binary if self.thresholds is not None else faiss.serialize_index
        return int(writer(self.prefix).size)


def _load_adaptor(adaptor: Any) -> tuple[Any, dict[str, Any]]:
    """(the adaptor, what an index records of it); a folder is loaded, an adaptor object is taken as is."""
    path = None
    if isinstance(adaptor, (str, os.PathLike)):
        from ..model import MatryoshkaAdaptor  # torch only when an adaptor is actually used

        path, adaptor = str(adaptor), MatryoshkaAdaptor.load(adaptor)
    info = {"path": path, "fingerprint": adaptor_fingerprint(adaptor), "base_model": adaptor.config.base_model,
            "input_dim": adaptor.config.input_dim}
    return adaptor, info


def _binary_codes(rows: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return np.packbits(rows > thresholds, axis=1)


def _pad(x: np.ndarray, width: int, value: float) -> np.ndarray:
    """Right-pad columns to `width` (a corpus smaller than top_k)."""
    if x.shape[1] >= width:
        return x
    return np.pad(x, ((0, 0), (0, width - x.shape[1])), constant_values=value)


def _check_file(path: Path, meta: dict[str, Any]) -> None:
    if not path.is_file():
        raise InputError(f"{path}: missing; the index's config.json lists it ({meta['bytes']} bytes)")
    size = path.stat().st_size
    if size != meta["bytes"]:
        raise InputError(f"{path}: {size} bytes, expected {meta['bytes']} (config.json): truncated or not this index's file")
    if file_sha256(path) != meta["sha256"]:
        raise InputError(f"{path}: sha256 differs from config.json's: not the file this index was saved with")
