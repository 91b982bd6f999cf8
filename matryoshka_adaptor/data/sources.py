"""Where a run's vectors and qrels come from: a BEIR dataset embedded by the base model, or precomputed vectors."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .beir import BeirDataset, load_dataset_folder, read_qrels
from ..encoders import DEFAULT_MODEL, EmbeddedDataset, Encoder, embed_dataset
from ..errors import InputError
from .vector_files import load_embedding_folder

logger = logging.getLogger(__name__)


@dataclass
class Source:
    """The options that pick a run's inputs; main.py and eval.py fill it from their command lines."""

    dataset: str = "scifact"  # BEIR dataset name (ignored with `embeddings`)
    data_root: str | None = None
    embeddings: str | None = None  # folder of precomputed vectors (vector_files.py); no model is loaded
    qrels: str | None = None  # qrels TSV; default for BEIR: <dataset folder>/qrels/<split>.tsv
    max_docs: int | None = None  # keep only the first N documents
    model: str = DEFAULT_MODEL
    encoder: str | None = None  # a black-box encoder (encoders/blackbox.py) instead of the SentenceTransformer `model`
    max_seq_length: int | None = None
    cache_dir: str | None = None
    device: str | None = None
    id_column: str = "id"
    vector_column: str = "embedding"

    @property
    def name(self) -> str:
        return Path(self.embeddings).name if self.embeddings else self.dataset

    def load(
        self, split: str, one_corpus: bool = False
    ) -> tuple[EmbeddedDataset, dict[str, dict[str, int]] | None, Path | None]:
        """(vectors, qrels of `split` or None when there is no such file, the qrels path); `one_corpus`: refuse a
        partitioned dataset before encoding it (a scorer that ranks every query against the whole corpus)."""
        if self.embeddings:
            embedded = load_embedding_folder(self.embeddings, self.name, self.model, self.id_column, self.vector_column)
            if self.max_docs is not None:
                embedded.doc_ids = embedded.doc_ids[: self.max_docs]
                embedded.doc_embeddings = embedded.doc_embeddings[: self.max_docs]
            path = Path(self.qrels) if self.qrels else None
            return embedded, (embedded.qrels(path) if path else None), path
        if self.encoder and self.model != DEFAULT_MODEL:
            raise InputError(f"--encoder={self.encoder} and --model={self.model}: name one base model, not both")
        ds = load_dataset_folder(self.dataset, self.data_root)
        if one_corpus and ds.partitioned:
            raise InputError(
                f"--dataset={ds.name}: a partitioned dataset ranks each query among its own part's documents, which "
                "one MTEB task cannot; evaluate its parts by name (benchmarks/multilingual.py scores xquad-r-all's per language)"
            )
        if self.max_docs is not None:
            ds.corpus = dict(list(ds.corpus.items())[: self.max_docs])
        qrels, path = self.dataset_qrels(ds, split)  # before encoding: a bad file fails before minutes of work
        device = None if self.device in (None, "auto") else self.device
        if self.encoder:
            encoder = Encoder.black_box(self.encoder, max_seq_length=self.max_seq_length, cache_dir=self.cache_dir)
        else:
            encoder = Encoder(self.model, self.max_seq_length, self.cache_dir, device=device)
        return embed_dataset(ds, encoder), qrels, path

    def dataset_qrels(self, ds: BeirDataset, split: str) -> tuple[dict[str, dict[str, int]] | None, Path]:
        """(qrels of `split` or None when there are none, where they come from) for a dataset read by name:
        the --qrels file, else qrels/<split>.tsv, else the dataset's in-memory qrels (<file>#<split>)."""
        path = Path(self.qrels) if self.qrels else ds.qrels_path(split)
        if self.qrels and not path.is_file():
            raise InputError(f"{path}: file not found")
        if not self.qrels and ds.split_qrels is not None:
            qrels = ds.split_qrels.get(split)
            if qrels is not None and self.max_docs is not None:
                qrels = _within(qrels, set(ds.corpus), path)
            return qrels, path
        return (read_qrels(path, set(ds.queries), set(ds.corpus)) if path.is_file() else None), path


def _within(qrels: dict[str, dict[str, int]], doc_ids: set[str], path: Path) -> dict[str, dict[str, int]]:
    """In-memory qrels cut to the kept documents (--max_docs), as read_qrels skips pairs naming unknown ids."""
    kept = {q: {d: y for d, y in docs.items() if d in doc_ids} for q, docs in qrels.items()}
    kept = {q: docs for q, docs in kept.items() if docs}
    if len(kept) < len(qrels):
        skipped = len(qrels) - len(kept)
        logger.warning("%s: skipped %d query(ies) whose relevant documents are past --max_docs", path, skipped)
    if not kept:
        raise InputError(f"{path}: no relevant document among the first {len(doc_ids)} documents; raise --max_docs")
    return kept
