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
from functools import cached_property
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import Checkpointer
from .distributed import World, current_world
from .errors import InputError
from .losses import (
    default_dims,
    dim_weights,
    pair_loss,
    prefix_cosine,
    rank_loss,
    reconstruction_loss,
    topk_loss,
    validate_dims,
)
from .metrics import ndcg_of_top
from .model import AdaptorConfig, MatryoshkaAdaptor
from .neighbors import choose_method, mine_neighbors
from .vectors import pca_rotation

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
    neighbor_search: str = "auto"  # 'exact' (blocked), 'ivf' (faiss), 'auto': exact on GPU or up to 100k x 100k
    train_corpus_size: int | None = None  # anchor documents sampled for the unsupervised terms (paper: 50k); None: all
    rank_candidates: int = 8192  # docs a query is ranked against: the corpus if no larger, else positives + a sample
    rank_temperature: float = 0.05  # s / T inside L_rank; see losses.rank_loss for why
    # unsupervised stage
    unsup_epochs: int = 3
    unsup_batch_size: int = 256  # anchor documents per step (L_pair is over their pairs)
    unsup_lr: float = 1e-3
    # supervised stage
    sup_epochs: int = 15
    sup_batch_size: int = 128  # training queries per step; each is ranked against `rank_candidates` docs
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
        choose_method(self.neighbor_search, 1, 2, torch.device("cpu"))  # validates the name
        for name in ("unsup_epochs", "sup_epochs", "unsup_batch_size", "sup_batch_size", "topk", "patience",
                     "rank_candidates", "train_corpus_size"):
            value = getattr(self, name)
            if value is not None and value < (0 if name.endswith("epochs") else 1):
                raise InputError(f"{name} {value}: expected a positive int")


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

    @cached_property
    def judgments(self) -> list[dict[int, float]]:
        """Per query row, its judged documents (corpus row -> relevance)."""
        out: list[dict[int, float]] = [{} for _ in range(len(self.queries))]
        for q, d, y in zip(self.query_rows.tolist(), self.doc_rows.tolist(), self.labels.tolist()):
            out[q][d] = y
        return out

    def relevance(self, rows: np.ndarray, columns: torch.Tensor) -> torch.Tensor:
        """Dense (len(rows), len(columns)) relevance of the given query rows to the given corpus rows."""
        position = {int(c): i for i, c in enumerate(columns.tolist())}
        dense = torch.zeros((len(rows), len(columns)))
        judged = self.judgments
        for i, r in enumerate(rows.tolist()):
            for d, y in judged[r].items():
                if d in position:
                    dense[i, position[d]] = y
        return dense

    def positives(self, rows: np.ndarray) -> np.ndarray:
        """Corpus rows judged relevant (y > 0) to any of the given query rows."""
        keep = np.isin(self.query_rows, rows) & (self.labels > 0)
        return np.unique(self.doc_rows[keep])

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


def resolve_device(device: str, world: World | None = None) -> torch.device:
    """'auto': CUDA when available (this process's GPU in a multi-process run), else CPU."""
    world = world or current_world()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and world.size > 1:
        device = f"cuda:{world.local_rank}"
    return torch.device(device)


def split_validation(n_queries: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) of the training queries, by a seeded shuffle."""
    order = np.random.default_rng(seed).permutation(n_queries)
    n_val = max(1, round(n_queries * fraction))
    if n_val >= n_queries:
        raise InputError(f"{n_queries} training queries are too few to hold out a validation split")
    return np.sort(order[n_val:]), np.sort(order[:n_val])


VALIDATION_BYTES = 2**26  # score-matrix budget when ranking the corpus for validation, a chunk at a time


class Trainer:
    """Holds the corpus on the device, the anchor documents and their neighbours, and runs the stages."""

    def __init__(
        self,
        corpus: np.ndarray,
        config: TrainConfig,
        device: str = "auto",
        neighbors: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        self.config = config
        self.world = current_world()
        self.device = resolve_device(device, self.world)
        if len(corpus) < 2:
            raise InputError(f"corpus of {len(corpus)} embeddings: expected at least 2")
        for name in ("unsup_batch_size", "sup_batch_size"):
            if getattr(config, name) < self.world.size:
                raise InputError(f"{name} {getattr(config, name)}: expected at least one item per process ({self.world.size})")
        self.dims = validate_dims(config.dims or default_dims(corpus.shape[1]), corpus.shape[1])
        self.weights = dim_weights(self.dims, config.dim_weighting).to(self.device)
        self.corpus = torch.from_numpy(np.ascontiguousarray(corpus, dtype=np.float32)).to(self.device)
        # (anchor corpus rows, their neighbours): given (a resumed run), or sampled and mined here
        self.anchors, self.neighbors = neighbors if neighbors is not None else self.mine()
        self.anchors, self.neighbors = self.anchors.to(self.device), self.neighbors.to(self.device)

    def mine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The anchor documents (all, or a seeded sample of train_corpus_size) and their k nearest in the corpus."""
        c, n = self.config, len(self.corpus)
        if c.train_corpus_size is None or c.train_corpus_size >= n:
            anchors = torch.arange(n)
        else:
            anchors = torch.from_numpy(np.sort(np.random.default_rng(c.seed).choice(n, c.train_corpus_size, replace=False)))
        k = min(c.topk, n - 1)
        return anchors, mine_neighbors(self.corpus, k, anchors.to(self.device), c.neighbor_search, seed=c.seed).cpu()

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
    def step_loss(
        self,
        adaptor: MatryoshkaAdaptor,
        module: torch.nn.Module,
        batch: torch.Tensor,
        queries: torch.Tensor | None = None,
        relevance: torch.Tensor | None = None,
        candidates: torch.Tensor | None = None,
        n_queries: int = 0,
    ) -> torch.Tensor:
        """This process's part of one step's loss: L_topk + alpha L_pair + beta L_rec over its share of the anchor
        batch (positions into self.anchors), plus gamma L_rank of its share of the query batch against the
        candidate documents. Shares are weighted by size x processes, so DDP's gradient average is the gradient
        of the whole batch's loss; one forward pass serves every term (DDP expects one per backward)."""
        c, world = self.config, self.world
        lo, hi = world.share(len(batch))
        anchors = self.anchors[batch[lo:hi]]
        nbr = self.neighbors[batch[lo:hi]]  # (b, k)
        docs = [anchors, nbr.flatten()] + ([candidates] if candidates is not None else [])
        rows, inverse = torch.unique(torch.cat(docs), return_inverse=True)
        base = self.corpus[rows]
        n_q = 0 if queries is None else len(queries)
        out = module(base if queries is None else torch.cat([queries, base]))
        adapted_q, adapted = out[:n_q], out[n_q:]
        b = hi - lo
        a_pos, n_pos = inverse[:b], inverse[b : b + nbr.numel()].view(nbr.shape)
        l_topk = topk_loss(base[a_pos], adapted[a_pos], base[n_pos], adapted[n_pos], self.dims, self.weights)
        columns = self.corpus[self.anchors[batch]]  # L_pair pairs this share's anchors with the whole batch's
        adapted_columns = world.gather_rows(adapted[a_pos], len(batch))
        l_pair = pair_loss(base[a_pos], adapted[a_pos], self.dims, self.weights, columns, adapted_columns, offset=lo)
        l_rec = reconstruction_loss(adaptor.rotate(base[a_pos]), adapted[a_pos])
        loss = (l_topk + c.alpha * l_pair + c.beta * l_rec) * (b * world.size / len(batch))
        if queries is not None:
            c_pos = inverse[b + nbr.numel() :]
            l_rank = rank_loss(adapted_q, adapted[c_pos], relevance, self.dims, self.weights, c.rank_temperature)
            loss = loss + c.gamma * l_rank * (n_q * world.size / n_queries)
        return loss

    def candidates(self, positives: np.ndarray, generator: torch.Generator) -> torch.Tensor:
        """Corpus rows a query batch is ranked against: all, or its positives plus a uniform sample (memory and
        time per step stay bounded whatever the corpus size)."""
        n = len(self.corpus)
        if n <= self.config.rank_candidates:
            return torch.arange(n)
        sample = torch.randint(n, (self.config.rank_candidates,), generator=generator)
        return torch.unique(torch.cat([sample, torch.from_numpy(positives)]))

    # -- validation -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, adaptor: MatryoshkaAdaptor | None, val: Supervision | None, k: int = 10) -> list[float]:
        """Validation nDCG@10 at each dim (adaptor None: the base embeddings truncated; [] without validation).
        The corpus is adapted and ranked a chunk at a time, keeping each query's running top k."""
        if val is None:
            return []
        queries = torch.from_numpy(val.queries).to(self.device)
        queries = adaptor(queries) if adaptor is not None else queries
        chunk = max(1, VALIDATION_BYTES // (4 * len(queries)))
        best: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.dims)
        for start in range(0, len(self.corpus), chunk):
            docs = self.corpus[start : start + chunk]
            docs = adaptor(docs) if adaptor is not None else docs
            for j, m in enumerate(self.dims):
                scores = prefix_cosine(queries, docs, m)
                values, idx = scores.topk(min(k, scores.shape[1]), dim=1)
                idx = idx + start
                if best[j] is not None:  # merge with the earlier chunks' top k
                    values, idx = torch.cat([best[j][0], values], 1), torch.cat([best[j][1], idx], 1)
                    keep = values.topk(min(k, values.shape[1]), dim=1).indices
                    values, idx = values.gather(1, keep), idx.gather(1, keep)
                best[j] = (values, idx)
        return [round(ndcg_of_top(top.cpu(), val.judgments, k), 5) for _, top in best]

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
        checkpoint: Checkpointer | None = None,
        resume: dict[str, Any] | None = None,
    ) -> StageLog:
        """Train one stage in place and keep its best epoch; with `checkpoint`, save the state after every epoch;
        with `resume` (a checkpoint of this stage), continue after its epoch."""
        if stage not in STAGES:
            raise InputError(f"stage {stage!r}: expected one of {list(STAGES)}")
        if stage == "supervised" and (train is None or len(train.queries) == 0):
            raise InputError("supervised stage: expected training queries with qrels, got none")
        c = self.config
        supervised = stage == "supervised"
        epochs, lr = (c.sup_epochs, c.sup_lr) if supervised else (c.unsup_epochs, c.unsup_lr)
        optimizer = torch.optim.AdamW(adaptor.parameters(), lr=lr, weight_decay=c.weight_decay)
        generator = torch.Generator().manual_seed(c.seed + (1 if supervised else 0))
        if resume is not None:
            adaptor.load_state_dict(resume["adaptor"])
            optimizer.load_state_dict(resume["optimizer"])
            generator.set_state(resume["generator"])
            torch.set_rng_state(resume["torch_rng"])
            log, best_state, best_score, reference = (
                StageLog(**resume["log"]), resume["best_state"], resume["best_score"], resume["reference"],
            )
            first_epoch = resume["epoch"] + 1
        else:
            log = StageLog(stage)
            start_scores = self.validate(adaptor, val)
            log.val_ndcg_at_10.append(start_scores)
            # do no harm: an epoch counts only if every dim is about as good as both the start and the base model
            reference = [max(a, b) for a, b in zip(start_scores, self.validate(None, val))]
            best_score = float(np.mean(start_scores)) if start_scores else float("nan")
            best_state = copy.deepcopy(adaptor.state_dict())
            logger.info("%s: epoch 0 val nDCG@10 (mean over dims) %.4f", stage, best_score)
            first_epoch = 1
        module = self.distributed(adaptor)
        if supervised:
            query_emb = torch.from_numpy(train.queries).to(self.device)
            labeled = np.unique(train.query_rows)
        n_anchors = len(self.anchors)
        for epoch in range(first_epoch, epochs + 1):
            if epoch - log.best_epoch > c.patience and val is not None:
                break  # a resumed run whose last epoch already ran out of patience
            adaptor.train()
            if supervised:
                order = labeled[torch.randperm(len(labeled), generator=generator).numpy()]
                batches = [order[i : i + c.sup_batch_size] for i in range(0, len(order), c.sup_batch_size)]
            else:
                perm = torch.randperm(n_anchors, generator=generator)
                batches = [perm[i : i + c.unsup_batch_size] for i in range(0, n_anchors, c.unsup_batch_size)]
                batches = [b for b in batches if len(b) >= max(2, self.world.size)]
            total = 0.0
            for batch in tqdm(batches, desc=f"{stage} epoch {epoch}/{epochs}", leave=False, disable=not self.world.is_main):
                if supervised:
                    anchors = torch.randint(n_anchors, (c.unsup_batch_size,), generator=generator).to(self.device)
                    candidates = self.candidates(train.positives(batch), generator)
                    lo, hi = self.world.share(len(batch))
                    local = batch[lo:hi]
                    loss = self.step_loss(
                        adaptor, module, anchors, query_emb[torch.from_numpy(local).to(self.device)],
                        train.relevance(local, candidates).to(self.device), candidates.to(self.device), len(batch),
                    )
                else:
                    loss = self.step_loss(adaptor, module, batch.to(self.device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item()
            log.loss.append(self.world.mean(total / len(batches)))
            scores = self.validate(adaptor, val)
            log.val_ndcg_at_10.append(scores)
            score = self.selection_score(scores, reference)
            log.epochs_run = epoch
            logger.info("%s: epoch %d loss %.4f val nDCG@10 %.4f", stage, epoch, log.loss[-1], score)
            if val is None or score > best_score:
                best_score, log.best_epoch = score, epoch
                best_state = copy.deepcopy(adaptor.state_dict())
            if checkpoint is not None:
                checkpoint.save({
                    "stage": stage, "epoch": epoch, "adaptor": adaptor.state_dict(), "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(), "torch_rng": torch.get_rng_state(), "log": asdict(log),
                    "best_state": best_state, "best_score": best_score, "reference": reference,
                })
            if val is not None and epoch - log.best_epoch >= c.patience:
                logger.info("%s: no gain for %d epochs, stopping", stage, c.patience)
                break
        adaptor.load_state_dict(best_state)
        logger.info("%s: keeping epoch %d (val %.4f)", stage, log.best_epoch, best_score)
        return log

    def distributed(self, adaptor: MatryoshkaAdaptor) -> torch.nn.Module:
        """The adaptor wrapped in DistributedDataParallel in a multi-process run (the adaptor itself otherwise)."""
        if self.world.size == 1:
            return adaptor
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        # the rotation buffer never changes, so it need not be broadcast every step
        return DistributedDataParallel(adaptor, device_ids=device_ids, broadcast_buffers=False)
