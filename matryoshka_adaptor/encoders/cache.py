"""Frozen base-model embeddings, encoded once per (model or encoder and role, max_seq_length, texts) and cached.

Encoding a corpus is the one slow step of a run (minutes on a CPU), so the cache must survive a crash or a
kill without losing finished work and without ever serving bad vectors:

- The cache key hashes the model name (a black-box encoder's name with the role it encodes in, a local model
  folder's name with a hash of its files, and the kernels when the process pinned them: numerics.py), the max
  sequence length and every text in order, so a changed corpus or model, even one retrained in place, can never
  be served stale vectors.
- `<cache_dir>/<key>/` holds the vectors in chunks of `chunk_size` rows, texts longest first as
  SentenceTransformer.encode batches them (`chunk_00000.npy`, ...), and a
  `manifest.json` listing each finished chunk with its row count and the sha256 of its bytes.
- Each chunk, then the manifest, is written to a temp file, fsynced and renamed into place: a kill at any
  moment leaves at most a stray temp file (removed on the next run) and a manifest naming only whole chunks.
- Every load checks every listed chunk (file present, sha256, dtype and shape); a bad one is logged and
  encoded again, never used. The next run encodes only the chunks the manifest lacks, with the manifest's
  chunk size: the same chunks make the same batches, so a resumed cache holds an uninterrupted run's bytes.
- With more than one CUDA device (and no single device asked for), or an explicit `devices` list, the chunks
  are encoded by Sentence-Transformers' multi-process pool.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from tqdm.auto import tqdm

from ..data import BeirDataset, item_of, part_of, read_qrels
from ..atomic import TMP_SUFFIX, write_bytes_atomic
from ..errors import InputError
from ..numerics import cache_tag
from ..vectors import check_embeddings
from .blackbox import ROLES, EncodeFunction, call_encoder, load_encoder_function
from .models import DEFAULT_MODEL, resolve_model_path

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "MATRYOSHKA_CACHE_DIR"
DEFAULT_CACHE_DIR = ".cache/embeddings"
CACHE_FORMAT = 2  # 2: chunks hold texts longest first
MANIFEST_NAME = "manifest.json"


def cache_key(model_name: str, max_seq_length: int | None, texts: list[str]) -> str:
    h = hashlib.sha256(json.dumps([model_name, max_seq_length]).encode())
    for text in texts:
        h.update(hashlib.sha256(text.encode("utf-8")).digest())
    return h.hexdigest()[:32]


def folder_fingerprint(folder: Path) -> str:
    """A hash of every file's relative path and bytes under a model folder: its weights, config and tokenizer."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def chunk_file_name(index: int) -> str:
    return f"chunk_{index:05d}.npy"


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


@dataclass
class Manifest:
    """manifest.json: what the cache folder is for, and every finished chunk as {file, rows, sha256}."""

    model: str
    max_seq_length: int | None
    n_texts: int
    chunk_size: int
    dim: int | None = None  # known once the first chunk is encoded
    chunks: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def n_chunks(self) -> int:
        return math.ceil(self.n_texts / self.chunk_size)

    def rows(self, index: int) -> slice:
        return slice(index * self.chunk_size, min((index + 1) * self.chunk_size, self.n_texts))

    def n_rows(self, index: int) -> int:
        return min(self.chunk_size, self.n_texts - index * self.chunk_size)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": CACHE_FORMAT,
                "model": self.model,
                "max_seq_length": self.max_seq_length,
                "n_texts": self.n_texts,
                "dim": self.dim,
                "chunk_size": self.chunk_size,
                "chunks": {str(i): self.chunks[i] for i in sorted(self.chunks)},
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse manifest.json; ValueError (or KeyError, TypeError) saying what is wrong."""
        raw = json.loads(text)
        if raw["format"] != CACHE_FORMAT:
            raise ValueError(f"format {raw['format']!r}, expected {CACHE_FORMAT}")
        m = cls(raw["model"], raw["max_seq_length"], raw["n_texts"], raw["chunk_size"], raw["dim"])
        for name, value in (("n_texts", m.n_texts), ("chunk_size", m.chunk_size), ("dim", m.dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} {value!r}, expected a positive int")
        for key, entry in raw["chunks"].items():
            i = int(key)
            expected = {"file": chunk_file_name(i), "rows": m.n_rows(i)}
            if not 0 <= i < m.n_chunks or {k: entry.get(k) for k in expected} != expected:
                raise ValueError(f"chunk {key!r}: {entry!r} does not fit {m.n_texts} texts in chunks of {m.chunk_size}")
            m.chunks[i] = {**expected, "sha256": str(entry["sha256"])}
        return m


def checked_output(emb: np.ndarray, n_texts: int, width: int | None, source: str) -> np.ndarray:
    """One finite row per text, as wide as earlier calls when `width` is known; else one line naming the source
    and what it returned. Nothing unchecked reaches the cache."""
    if emb.ndim != 2 or len(emb) != n_texts:
        raise InputError(f"{source}: returned shape {emb.shape} for {n_texts} texts; expected ({n_texts}, width)")
    if width is not None and emb.shape[1] != width:
        raise InputError(f"{source}: returned width {emb.shape[1]}, earlier calls returned {width}")
    return check_embeddings(emb, emb.shape[1], what=f"{source} output")


class Encoder:
    """Encodes texts with a frozen SentenceTransformer, or with a black-box `function(texts, role)` (blackbox.py)
    named `model_name`; the model or engine is loaded only when a chunk must be encoded."""

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        max_seq_length: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        device: str | None = None,
        batch_size: int = 32,  # SentenceTransformer.encode's default; on 2 CPU cores faster than 64 here
        chunk_size: int = 2048,  # rows per cache file: the most work a kill can lose
        devices: list[str] | None = None,  # e.g. ["cuda:0", "cuda:1"]: encode with a multi-process pool
        function: EncodeFunction | None = None,  # a black-box encoder instead of a SentenceTransformer
    ) -> None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise InputError(f"chunk_size {chunk_size!r}: expected a positive int")
        if devices is not None and (not devices or device is not None):
            raise InputError(f"devices {devices!r} with device {device!r}: expected a non-empty list, and no device")
        self.model_name = model_name
        self.max_seq_length = max_seq_length
        self.cache_dir = Path(cache_dir or os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)
        self.device = device
        self.batch_size = batch_size
        self.chunk_size = chunk_size
        self.devices = devices
        self.function = function
        self.width: int | None = None  # known after the first chunk; every later one must match
        self._model = None
        self._fingerprint: str | None = None

    @classmethod
    def black_box(cls, spec: str, **kwargs: Any) -> Encoder:
        """An encoder for a black-box spec: a built-in name or 'module:function' (blackbox.py)."""
        return cls(spec, function=load_encoder_function(spec), **kwargs)

    @property
    def has_roles(self) -> bool:
        """Whether queries and documents are encoded in different roles (black-box encoders, E5-style)."""
        return self.function is not None

    def cache_name(self, role: str) -> str:
        """What keys the cache: the model name, with the role for a black-box encoder (E5's roles differ), the hash
        of a local folder's files (a model fine-tuned again into the same folder encodes otherwise) and the pinned
        kernels in a process that pinned them (numerics.py: other kernels round otherwise)."""
        name = f"{self.model_name}#{role}" if self.has_roles else self.model_name
        if Path(self.model_name).is_dir():
            self._fingerprint = self._fingerprint or folder_fingerprint(Path(self.model_name))
            name = f"{name}#files-{self._fingerprint}"
        tag = cache_tag()
        return f"{name}@{tag}" if tag else name

    @property
    def model(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(resolve_model_path(self.model_name), device=self.device)
            if self.max_seq_length is not None:
                self._model.max_seq_length = self.max_seq_length
        return self._model

    def encode(self, texts: list[str], what: str = "texts", role: str = "document") -> np.ndarray:
        """(len(texts), dim) float32 embeddings; chunks already in the cache are verified and read, not encoded."""
        if not texts:
            raise InputError(f"no {what} to encode")
        if role not in ROLES:
            raise InputError(f"role {role!r}: expected one of {list(ROLES)}")
        name = self.cache_name(role)
        folder = self.cache_dir / cache_key(name, self.max_seq_length, texts)
        manifest = self._open_cache(folder, name, len(texts))
        # chunks hold the texts longest first, as SentenceTransformer.encode orders one call's batches, so
        # chunked encoding pads as little as one call over everything; rows go back to text order on the way
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = None if manifest.dim is None else np.empty((len(texts), manifest.dim), dtype=np.float32)
        missing = [i for i in range(manifest.n_chunks) if not self._read_chunk(folder, manifest, i, out, order)]
        if not missing:
            logger.info("embedding cache hit: %d %s from %s, nothing encoded", len(texts), what, folder)
            return self._checked_width(out, what)
        n_rows = sum(manifest.n_rows(i) for i in missing)
        logger.info(
            "encoding %d %s with %s: %d of %d chunks of %d (%d cached), into %s",
            n_rows, what, name, len(missing), manifest.n_chunks, manifest.chunk_size,
            len(texts) - n_rows, folder,
        )
        with self._pool() as pool, tqdm(total=n_rows, desc=f"encoding {what}", unit="text") as progress:
            for i in missing:
                rows = order[manifest.rows(i)]
                emb = self._encode_chunk([texts[r] for r in rows], manifest.dim, pool, what, role)
                if out is None:
                    manifest.dim = emb.shape[1]
                    out = np.empty((len(texts), manifest.dim), dtype=np.float32)
                out[rows] = emb
                self._write_chunk(folder, manifest, i, emb)
                progress.update(len(emb))
        return self._checked_width(out, what)

    def _checked_width(self, out: np.ndarray, what: str) -> np.ndarray:
        """out, once its width is known to match every earlier call's (queries and documents must agree)."""
        if self.width is not None and out.shape[1] != self.width:
            raise InputError(f"{self.model_name}: {what} have width {out.shape[1]}, earlier calls gave {self.width}")
        self.width = out.shape[1]
        return out

    def _open_cache(self, folder: Path, name: str, n_texts: int) -> Manifest:
        """The folder's manifest when it describes these texts, else a fresh one; stray files are removed."""
        fresh = Manifest(name, self.max_seq_length, n_texts, self.chunk_size)
        folder.mkdir(parents=True, exist_ok=True)
        manifest = fresh
        path = folder / MANIFEST_NAME
        if path.exists():
            try:
                manifest = Manifest.from_json(path.read_text())
                ours = (manifest.model, manifest.max_seq_length, manifest.n_texts)
                if ours != (fresh.model, fresh.max_seq_length, fresh.n_texts):
                    raise ValueError(f"written for (model, max_seq_length, n_texts) = {ours}")
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                logger.warning("%s: unreadable or not for these texts (%s); encoding everything again", path, e)
                path.unlink()
                manifest = fresh
        if manifest.chunk_size != self.chunk_size:
            logger.info("%s: resuming with its chunk size %d (not %d)", folder, manifest.chunk_size, self.chunk_size)
        keep = {MANIFEST_NAME} | {entry["file"] for entry in manifest.chunks.values()}
        for stray in folder.iterdir():
            if stray.name not in keep and (stray.name.endswith(TMP_SUFFIX) or stray.name.startswith("chunk_")):
                stray.unlink()
        return manifest

    def _read_chunk(
        self, folder: Path, manifest: Manifest, index: int, out: np.ndarray | None, order: np.ndarray
    ) -> bool:
        """Copy chunk `index` into its rows of out (text order) when the manifest lists it and its file checks out;
        False otherwise."""
        entry = manifest.chunks.get(index)
        if entry is None or out is None:
            return False
        path = folder / entry["file"]
        try:
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise ValueError(f"sha256 differs from the manifest's ({len(data)} bytes: truncated or corrupted)")
            array = np.load(io.BytesIO(data), allow_pickle=False)
            if array.dtype != np.float32 or array.shape != (entry["rows"], manifest.dim):
                raise ValueError(f"{array.dtype} {array.shape}, expected float32 ({entry['rows']}, {manifest.dim})")
        except (OSError, ValueError, EOFError) as e:
            logger.warning("%s: %s; encoding chunk %d again", path, e, index)
            del manifest.chunks[index]
            return False
        out[order[manifest.rows(index)]] = array
        return True

    def _encode_chunk(
        self, texts: list[str], dim: int | None, pool: dict[str, Any] | None, what: str, role: str
    ) -> np.ndarray:
        if self.function is not None:
            emb, source = call_encoder(self.function, self.model_name, texts, role), f"encoder {self.model_name!r} ({what})"
        else:
            kwargs: dict[str, Any] = {"batch_size": self.batch_size, "show_progress_bar": False, "convert_to_numpy": True}
            if pool is not None:  # one piece per worker
                kwargs.update(pool=pool, chunk_size=math.ceil(len(texts) / len(pool["processes"])))
            emb, source = np.asarray(self.model.encode(texts, **kwargs), dtype=np.float32), f"{self.model_name} ({what})"
        return checked_output(emb, len(texts), dim or self.width, source)

    @staticmethod
    def _write_chunk(folder: Path, manifest: Manifest, index: int, emb: np.ndarray) -> None:
        """The chunk file first, then the manifest that lists it: each complete, or absent, after a kill."""
        data = _npy_bytes(emb)
        name = chunk_file_name(index)
        write_bytes_atomic(folder / name, data)
        manifest.chunks[index] = {"file": name, "rows": len(emb), "sha256": hashlib.sha256(data).hexdigest()}
        write_bytes_atomic(folder / MANIFEST_NAME, manifest.to_json().encode())

    def _wants_pool(self) -> bool:
        if self.function is not None:
            return False
        if self.devices is not None:
            return True
        if self.device is not None:
            return False
        import torch

        return torch.cuda.device_count() > 1

    @contextmanager
    def _pool(self) -> Iterator[dict[str, Any] | None]:
        """Sentence-Transformers' multi-process pool when _wants_pool(), stopped on the way out; else None."""
        if not self._wants_pool():
            yield None
            return
        pool = self.model.start_multi_process_pool(self.devices)
        try:
            yield pool
        finally:
            self.model.stop_multi_process_pool(pool)


class PartCodes(NamedTuple):
    """A partitioned dataset's structure as ints, by row: documents' parts, queries' parts, and queries' ids within
    their part (one code for the same query in every part, e.g. one XQuAD-R question in its 11 languages)."""

    docs: np.ndarray
    queries: np.ndarray
    items: np.ndarray


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
    roles: bool = False  # queries and documents were encoded in different roles (a black-box encoder)
    partitioned: bool = False  # ids are `<part>/<id>`; a query is ranked among its own part's documents only

    def part_codes(self) -> PartCodes | None:
        """Each document's and query's part, and each query's id within its part, as ints; None for one collection."""
        if not self.partitioned:
            return None
        code = {p: i for i, p in enumerate(sorted({part_of(d) for d in self.doc_ids}))}
        unknown = sorted({part_of(q) for q in self.query_ids} - code.keys())
        if unknown:
            raise InputError(f"{self.name}: queries of part(s) {unknown} have no documents; expected one of {list(code)}")
        items: dict[str, int] = {}
        return PartCodes(
            docs=np.array([code[part_of(d)] for d in self.doc_ids], dtype=np.int64),
            queries=np.array([code[part_of(q)] for q in self.query_ids], dtype=np.int64),
            items=np.array([items.setdefault(item_of(q), len(items)) for q in self.query_ids], dtype=np.int64),
        )

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
        doc_embeddings=encoder.encode(doc_texts, what="documents", role="document"),
        query_ids=query_ids,
        query_embeddings=encoder.encode(query_texts, what="queries", role="query"),
        doc_texts=doc_texts,
        query_texts=query_texts,
        roles=encoder.has_roles,
        partitioned=dataset.partitioned,
    )
