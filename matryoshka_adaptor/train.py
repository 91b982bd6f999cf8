"""Training: the unsupervised stage (corpus only), the supervised stage (adds L_rank), and both in sequence.

Inputs are embeddings, never texts: the base model is frozen and encoded once (embeddings.py). Each stage
runs for up to `epochs`, scores the validation queries (carved from the TRAIN queries) after every epoch and
keeps the best state; epoch 0 (the starting adaptor) is a candidate too, so a stage never ends worse on
validation than it began.
"""

from __future__ import annotations

import copy
import logging
import random
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import InputError
from .losses import default_dims, dim_weights, pair_loss, prefix_cosine, rank_loss, reconstruction_loss, topk_loss, validate_dims
from .metrics import ndcg_at_k
from .model import AdaptorConfig, MatryoshkaAdaptor
from .vectors import pca_rotation
from .neighbors import mine_neighbors

logger = logging.getLogger(__name__)

STAGES = ("unsupervised", "supervised")


@dataclass
class TrainConfig:
    """Every knob of a training run; saved inside each adaptor's config.json."""

    dims: tuple[int, ...] | None = None  # None: losses.default_dims(width), 16, 32, 64, 128, 192, ..., 384 for 384-dim
    dim_weighting: str = "uniform"  # 'uniform' as in the paper; 'log' favours small dims
    seed: int = 42
    # architecture of f
    hidden_dim: int = 512
    num_hidden_layers: int = 1
    activation: str = "relu"
    input_rotation: str = "pca"
    # loss weights (paper: alpha = beta = gamma = 1)
    alpha: float = 1.0  # L_pair
    beta: float = 1.0  # L_rec
    gamma: float = 1.0  # L_rank
    topk: int = 10  # neighbours per document for L_topk, mined over the whole corpus
    rank_temperature: float = 0.05  # s / T inside L_rank; see losses.rank_loss for why
    # unsupervised stage
    unsup_epochs: int = 3
    unsup_batch_size: int = 256  # anchor documents per step (L_pair is over their pairs)
    unsup_lr: float = 1e-3
    # supervised stage
    sup_epochs: int = 15
    sup_batch_size: int = 128  # training queries per step; each is ranked against the whole corpus
    sup_lr: float = 2e-3
    weight_decay: float = 0.0
    # validation
    val_fraction: float = 0.2  # share of the TRAIN queries held out to choose the stopping point
    patience: int = 4  # epochs without a better validation score before a stage stops
    max_dim_drop: float = 0.005  # an epoch is kept only if no dim's val nDCG@10 is this much below start or base

    def __post_init__(self) -> None:
        if self.dims is not None:
            self.dims = validate_dims((self.dims,) if isinstance(self.dims, int) else self.dims)
        dim_weights([1], self.dim_weighting)  # validates the name
        if not 0.0 < self.val_fraction < 1.0:
            raise InputError(f"val_fraction {self.val_fraction}: expected a value in (0, 1)")
        for name in ("unsup_epochs", "sup_epochs", "unsup_batch_size", "sup_batch_size", "topk", "patience"):
            if getattr(self, name) < (0 if name.endswith("epochs") else 1):
                raise InputError(f"{name} {getattr(self, name)}: expected a positive int")


@dataclass
class Supervision:
    """Query embeddings with their qrels as (query row, doc row, relevance) triples."""

    queries: np.ndarray
    query_rows: np.ndarray
    doc_rows: np.ndarray
    labels: np.ndarray

    @classmethod
    def from_qrels(
        cls,
        qrels: dict[str, dict[str, int]],
        query_index: dict[str, int],
        query_embeddings: np.ndarray,
        doc_index: dict[str, int],
    ) -> Supervision:
        """Queries with at least one relevant document (y > 0) among the indexed ones, in qrels order."""
        qids = [q for q, docs in qrels.items() if any(y > 0 and d in doc_index for d, y in docs.items())]
        triples = [
            (row, doc_index[d], y) for row, q in enumerate(qids) for d, y in qrels[q].items() if d in doc_index
        ]
        q_rows, d_rows, labels = zip(*triples) if triples else ((), (), ())
        return cls(
            queries=query_embeddings[[query_index[q] for q in qids]].reshape(len(qids), query_embeddings.shape[1]),
            query_rows=np.array(q_rows, dtype=np.int64),
            doc_rows=np.array(d_rows, dtype=np.int64),
            labels=np.array(labels, dtype=np.float32),
        )

    def relevance(self, rows: np.ndarray, n_docs: int) -> torch.Tensor:
        """Dense (len(rows), n_docs) relevance of the given query rows."""
        position = {int(r): i for i, r in enumerate(rows)}
        dense = torch.zeros((len(rows), n_docs))
        for q, d, y in zip(self.query_rows, self.doc_rows, self.labels):
            if int(q) in position:
                dense[position[int(q)], int(d)] = float(y)
        return dense

    def subset(self, rows: np.ndarray) -> Supervision:
        """The queries at `rows`, renumbered 0..len(rows)-1, with their qrels."""
        renumber = {int(r): i for i, r in enumerate(rows)}
        keep = np.array([int(q) in renumber for q in self.query_rows], dtype=bool)
        return Supervision(
            queries=self.queries[rows],
            query_rows=np.array([renumber[int(q)] for q in self.query_rows[keep]], dtype=np.int64),
            doc_rows=self.doc_rows[keep],
            labels=self.labels[keep],
        )


@dataclass
class StageLog:
    stage: str
    epochs_run: int = 0
    best_epoch: int = 0
    val_ndcg_at_10: list[list[float]] = field(default_factory=list)  # per epoch (epoch 0 first), per dim
    loss: list[float] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Seed every generator and ask torch for deterministic kernels (the scatter-adds in the backward pass of
    gathered embeddings otherwise accumulate in thread order, and two runs drift apart)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def split_validation(n_queries: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) of the training queries, by a seeded shuffle."""
    order = np.random.default_rng(seed).permutation(n_queries)
    n_val = max(1, round(n_queries * fraction))
    if n_val >= n_queries:
        raise InputError(f"{n_queries} training queries are too few to hold out a validation split")
    return np.sort(order[n_val:]), np.sort(order[:n_val])


class Trainer:
    """Holds the corpus on the device, its neighbours, and runs the stages on one adaptor."""

    def __init__(self, corpus: np.ndarray, config: TrainConfig, device: str = "auto") -> None:
        self.config = config
        self.device = resolve_device(device)
        if len(corpus) < 2:
            raise InputError(f"corpus of {len(corpus)} embeddings: expected at least 2")
        self.dims = validate_dims(config.dims or default_dims(corpus.shape[1]), corpus.shape[1])
        self.weights = dim_weights(self.dims, config.dim_weighting).to(self.device)
        self.corpus = torch.from_numpy(np.ascontiguousarray(corpus, dtype=np.float32)).to(self.device)
        self.neighbors = mine_neighbors(self.corpus, min(config.topk, len(corpus) - 1))

    def new_adaptor(self, base_model: str, provenance: dict[str, Any]) -> MatryoshkaAdaptor:
        c = self.config
        config = AdaptorConfig(
            input_dim=self.corpus.shape[1],
            base_model=base_model,
            hidden_dim=c.hidden_dim,
            num_hidden_layers=c.num_hidden_layers,
            activation=c.activation,
            input_rotation=c.input_rotation,
            training={"config": {**asdict(c), "dims": list(self.dims)}, **provenance},
        )
        rotation = pca_rotation(self.corpus.cpu().numpy()) if c.input_rotation == "pca" else None
        return MatryoshkaAdaptor(config, rotation).to(self.device)

    # -- losses -----------------------------------------------------------------------------------------------
    def unsupervised_loss(
        self, adaptor: MatryoshkaAdaptor, anchors: torch.Tensor, adapted_corpus: torch.Tensor | None = None
    ) -> torch.Tensor:
        """L_topk + alpha L_pair + beta L_rec over a batch of anchor documents and their corpus neighbours.

        adapted_corpus, when the caller already adapted the whole corpus, saves a second forward pass.
        """
        c = self.config
        nbr = self.neighbors[anchors]  # (b, k)
        rows, inverse = torch.unique(torch.cat([anchors, nbr.flatten()]), return_inverse=True)
        base = self.corpus[rows]
        adapted = adaptor(base) if adapted_corpus is None else adapted_corpus[rows]
        b = len(anchors)
        anchor_pos, nbr_pos = inverse[:b], inverse[b:].view(nbr.shape)
        l_topk = topk_loss(base[anchor_pos], adapted[anchor_pos], base[nbr_pos], adapted[nbr_pos], self.dims, self.weights)
        l_pair = pair_loss(base[anchor_pos], adapted[anchor_pos], self.dims, self.weights)
        l_rec = reconstruction_loss(adaptor.rotate(base), adapted)
        return l_topk + c.alpha * l_pair + c.beta * l_rec

    def supervised_loss(
        self, adaptor: MatryoshkaAdaptor, queries: torch.Tensor, relevance: torch.Tensor, anchors: torch.Tensor
    ) -> torch.Tensor:
        """Unsupervised terms plus gamma L_rank of the query batch against the whole corpus."""
        docs = adaptor(self.corpus)
        l_rank = rank_loss(adaptor(queries), docs, relevance, self.dims, self.weights, self.config.rank_temperature)
        return self.unsupervised_loss(adaptor, anchors, docs) + self.config.gamma * l_rank

    # -- validation -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, adaptor: MatryoshkaAdaptor | None, val: Supervision | None) -> list[float]:
        """Validation nDCG@10 at each dim (adaptor None: the base embeddings truncated; [] without validation)."""
        if val is None:
            return []
        queries = torch.from_numpy(val.queries).to(self.device)
        docs = self.corpus
        if adaptor is not None:
            adaptor.eval()
            docs, queries = adaptor(docs), adaptor(queries)
            adaptor.train()
        relevance = val.relevance(np.arange(len(val.queries)), len(self.corpus)).to(self.device)
        return [round(ndcg_at_k(prefix_cosine(queries, docs, m), relevance), 5) for m in self.dims]

    def selection_score(self, scores: list[float], reference: list[float]) -> float:
        """Mean validation nDCG@10 over dims; -inf when some dim fell more than max_dim_drop below the reference."""
        if not scores:
            return float("nan")
        if any(s < r - self.config.max_dim_drop for s, r in zip(scores, reference)):
            return -float("inf")
        return float(np.mean(scores))

    # -- stages -----------------------------------------------------------------------------------------------
    def run_stage(
        self,
        adaptor: MatryoshkaAdaptor,
        stage: str,
        train: Supervision | None,
        val: Supervision | None,
    ) -> StageLog:
        if stage not in STAGES:
            raise InputError(f"stage {stage!r}: expected one of {list(STAGES)}")
        if stage == "supervised" and (train is None or len(train.queries) == 0):
            raise InputError("supervised stage: expected training queries with qrels, got none")
        c = self.config
        supervised = stage == "supervised"
        epochs, lr = (c.sup_epochs, c.sup_lr) if supervised else (c.unsup_epochs, c.unsup_lr)
        optimizer = torch.optim.AdamW(adaptor.parameters(), lr=lr, weight_decay=c.weight_decay)
        generator = torch.Generator().manual_seed(c.seed + (1 if supervised else 0))
        log = StageLog(stage)
        start_scores = self.validate(adaptor, val)
        log.val_ndcg_at_10.append(start_scores)
        # do no harm: an epoch counts only if every dim is about as good as both the start and the base model
        reference = [max(a, b) for a, b in zip(start_scores, self.validate(None, val))]
        best_score = float(np.mean(start_scores)) if start_scores else float("nan")
        best_state = copy.deepcopy(adaptor.state_dict())
        logger.info("%s: epoch 0 val nDCG@10 (mean over dims) %.4f", stage, best_score)
        if supervised:
            query_emb = torch.from_numpy(train.queries).to(self.device)
            labeled = np.unique(train.query_rows)
        n_docs = len(self.corpus)
        for epoch in range(1, epochs + 1):
            adaptor.train()
            if supervised:
                order = labeled[torch.randperm(len(labeled), generator=generator).numpy()]
                batches = [order[i : i + c.sup_batch_size] for i in range(0, len(order), c.sup_batch_size)]
            else:
                perm = torch.randperm(n_docs, generator=generator)
                batches = [perm[i : i + c.unsup_batch_size] for i in range(0, n_docs, c.unsup_batch_size)]
                batches = [b for b in batches if len(b) >= 2]
            total = 0.0
            for batch in tqdm(batches, desc=f"{stage} epoch {epoch}/{epochs}", leave=False):
                if supervised:
                    anchors = torch.randint(n_docs, (c.unsup_batch_size,), generator=generator).to(self.device)
                    relevance = train.relevance(batch, n_docs).to(self.device)
                    loss = self.supervised_loss(adaptor, query_emb[torch.from_numpy(batch)], relevance, anchors)
                else:
                    loss = self.unsupervised_loss(adaptor, batch.to(self.device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item()
            log.loss.append(total / len(batches))
            scores = self.validate(adaptor, val)
            log.val_ndcg_at_10.append(scores)
            score = self.selection_score(scores, reference)
            log.epochs_run = epoch
            logger.info("%s: epoch %d loss %.4f val nDCG@10 %.4f", stage, epoch, log.loss[-1], score)
            if val is None or score > best_score:
                best_score, log.best_epoch = score, epoch
                best_state = copy.deepcopy(adaptor.state_dict())
            elif epoch - log.best_epoch >= c.patience:
                logger.info("%s: no gain for %d epochs, stopping", stage, c.patience)
                break
        adaptor.load_state_dict(best_state)
        logger.info("%s: keeping epoch %d (val %.4f)", stage, log.best_epoch, best_score)
        return log
