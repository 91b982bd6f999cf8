"""Training: the unsupervised stage (corpus only), the supervised stage (adds L_rank), and both in sequence.

Inputs are embeddings, never texts: the base model is frozen and encoded once (encoders/). The start map is
chosen first (training/selection.py), then each stage trains until its criterion stops improving for `patience`
epochs (`sup_patience` for a supervised stage past its start; the epoch caps are safety nets, set far above where
SciFact and the suite's collections stop) and keeps its best epoch; epoch 0 (the start) is a candidate too. The
unsupervised stage scores held-out documents' neighbourhoods, guarded by all training queries; the supervised stage
scores held-out training queries and is kept only when its gain is significant. The test split is never read here.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .training.checkpoint import Checkpointer
from .training.distributed import World, current_world
from .errors import InputError
from .losses import (
    default_dims,
    dim_weights,
    pair_loss,
    prefix_cosines,
    rank_loss,
    reconstruction_loss,
    tail_start,
    topk_loss,
    validate_dims,
)
from .encoders.cache import PartCodes
from .model import AdaptorConfig, MatryoshkaAdaptor
from .metrics import Judgments, qrels_by_row
from .numerics import numerics_record
from .training.neighbors import choose_method, mine_neighbors
from .training.optimizer import PortableAdamW
from .training.prefix_rotation import refine_start
from .training.selection import EpochChoice, PairedTest, choose_start, paired_gain_test
from .vectors import PARTLY_CENTRED, START_MAPS, check_embeddings, start_map, start_maps

logger = logging.getLogger(__name__)

STAGES = ("unsupervised", "supervised")


REFIT_MEMBER_STRIDE = 1000  # member k of a refit draws its batches from generator seed + 2 + k * this


@dataclass
class TrainConfig:
    """Every knob of a training run; saved inside each adaptor's config.json."""

    dims: tuple[int, ...] | None = None  # None: losses.default_dims(width), 16, 32, 64, 128, 192, ..., 384 for 384-dim
    dim_weighting: str = "uniform"  # 'uniform' as in the paper; 'log' favours small dims
    seed: int = 42  # seeds the validation split, probes, anchors, batches and the MLP's initialisation
    # architecture of f
    hidden_dim: int = 512  # width of f's hidden layers
    num_hidden_layers: int = 1  # f = Linear -> act -> (Linear -> act) x (n-1) -> Linear, last layer zero at start
    activation: str = "relu"  # 'relu', 'gelu' or 'tanh'; ReLU exports exactly to Sentence-Transformers
    input_rotation: str = "auto"  # start map, one of vectors.START_MAPS; 'auto': the best on training queries
    # the coordinates past the largest dim below the full width count at full width alone; the README (Multilingual)
    # shows what adapting them costs an English-trained adaptor in other languages, and what holding them costs
    adapt_tail: bool = True  # False: the coordinates only the full width sees stay the start map's (comment above)
    # the default middle way: f writes them while it trains, but a supervised stage keeps those writes only if they
    # beat the start map's values there at full width in its paired test on the held-out queries; every smaller
    # prefix is the same either way (README, Method: "The coordinates only the full width sees")
    test_tail: bool | None = None  # on unless adapt_tail=false (nothing to test then); false: keep f's tail untested
    # opt-in: mix the start map's first this-many coordinates (a Matryoshka dim) by a learned rotation, each anchor
    # ranking its corpus neighbours first at every dim up to it; larger prefixes keep the start's cosines exactly
    # (training/prefix_rotation.py; the README gives what it gained, on training queries and on test)
    prefix_rotation: int = 0  # 0: off; else the block of leading coordinates to mix (comment above)
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
    unsup_epochs: int = 100  # a cap that does not bind: the stage stops on `patience`
    unsup_batch_size: int = 256  # anchor documents per step (L_pair is over their pairs)
    unsup_lr: float = 1e-3  # AdamW learning rate of the unsupervised stage
    probe_docs: int = 1000  # documents held out of the anchors; their full-dim neighbours score unsupervised epochs
    # supervised stage
    sup_epochs: int = 300  # a cap that does not bind: the stage stops on `sup_patience`
    sup_batch_size: int = 128  # training queries per step; each is ranked against `rank_candidates` docs
    sup_lr: float = 5e-3  # AdamW learning rate of the supervised stage
    weight_decay: float = 0.0  # AdamW weight decay, both stages
    # selection (training/selection.py)
    val_fraction: float = 0.2  # share of the TRAIN queries held out to choose the supervised epoch
    patience: int = 10  # epochs without a better selection score before a stage stops (but see sup_patience)
    # once a supervised epoch has beaten the start, its held-out score climbs in steps, flat for 10-15 epochs between
    # rises where the base model is weak (XQuAD-R Greek, Vietnamese), and elsewhere creeps along a plateau by new
    # bests in the fourth decimal (SciFact), whose epochs cost most (its refits repeat them). So the stage waits 15
    # epochs, but only for a gain of more than 0.001: on held-out training queries that keeps the long climbs (+0.03
    # to +0.06 at every dim in Vietnamese against 5 epochs), is neutral on SciFact and keeps `python main.py` under
    # 3 minutes (benchmarks/stopping_rule.py, docs/method.md). Before any epoch beats the start it waits `patience`
    sup_patience: int = 15  # epochs without a gain that stop a supervised stage past its start (comment above)
    sup_min_gain: float = 0.001  # the held-out mean over dims an epoch must add to the last gain's to count as one
    max_dim_drop: float = 0.005  # an epoch is kept only if no dim's nDCG@10 is this much below start or base
    # 1%, not 5%: the tested epoch was itself chosen on the same queries, which makes a chance pass likelier
    significance: float = 0.01  # one-sided level of the paired t-test a supervised stage must pass to be kept
    # once the supervised epoch is chosen and has passed its test, train again from the stage's start on ALL training
    # queries (the held-out ones too) for that many epochs: 25% more supervision, and no dependence on which queries
    # the split held out (checked on held-out training queries only: benchmarks/nested_refit.py, README)
    refit: bool = True  # then retrain on all training queries for the chosen epoch count (comment above)
    # refits from the same start, each with its own batch order, averaged into one f (hidden width x members; exact):
    # on held-out SciFact training queries the refit's batch order alone moves a dim by up to 0.045, and two members
    # raised every dim's mean on two CPUs (benchmarks/refit_members.py, README); each member is one more refit
    refit_members: int = 2  # 1: one refit, as before this release; k: k refits averaged (comment above)

    def __post_init__(self) -> None:
        if self.dims is not None:
            self.dims = validate_dims((self.dims,) if isinstance(self.dims, int) else self.dims)
        dim_weights([1], self.dim_weighting)  # validates the name
        if not 0.0 < self.val_fraction < 1.0:
            raise InputError(f"val_fraction {self.val_fraction}: expected a value in (0, 1)")
        choose_method(self.neighbor_search, 1, 2, torch.device("cpu"))  # validates the name
        if not 0.0 <= self.sup_min_gain < 1.0:
            raise InputError(f"sup_min_gain {self.sup_min_gain}: expected an nDCG@10 gain in [0, 1)")
        if not 0.0 < self.significance < 0.5:
            raise InputError(f"significance {self.significance}: expected a one-sided test level in (0, 0.5)")
        if self.test_tail and not self.adapt_tail:
            raise InputError("test_tail=true with adapt_tail=false: f never writes the tail, so there is nothing to test")
        if self.test_tail is None:
            self.test_tail = self.adapt_tail
        if self.input_rotation not in ("auto", *START_MAPS):
            raise InputError(f"input_rotation {self.input_rotation!r}: expected 'auto' or one of {list(START_MAPS)}")
        for name in ("unsup_epochs", "sup_epochs", "unsup_batch_size", "sup_batch_size", "topk", "patience", "sup_patience",
                     "rank_candidates", "train_corpus_size", "probe_docs", "prefix_rotation", "refit_members"):
            value = getattr(self, name)
            if value is not None and value < (0 if name.endswith(("epochs", "docs", "rotation")) else 1):
                raise InputError(f"{name} {value}: expected a positive int")


@dataclass
class Supervision:
    """Query embeddings with their qrels as (query row, doc row, relevance) triples."""

    queries: np.ndarray
    query_rows: np.ndarray
    doc_rows: np.ndarray
    labels: np.ndarray
    # partitioned datasets (EmbeddedDataset.part_codes): per query, its part, and its id within the part, shared by
    # the same query in other parts (a translation): one unit when queries are held out or tested
    parts: np.ndarray | None = None
    items: np.ndarray | None = None

    @classmethod
    def from_qrels(
        cls,
        qrels: dict[str, dict[str, int]],
        query_index: dict[str, int],
        query_embeddings: np.ndarray,
        doc_index: dict[str, int],
        parts: PartCodes | None = None,
    ) -> Supervision:
        """Queries with at least one relevant document (y > 0) among the indexed ones, in qrels order; `parts`: a
        partitioned dataset's codes (by query_index row)."""
        qids = cls.labelled_ids(qrels, doc_index)
        triples = [
            (row, doc_index[d], y) for row, q in enumerate(qids) for d, y in qrels[q].items() if d in doc_index
        ]
        q_rows, d_rows, labels = zip(*triples) if triples else ((), (), ())
        rows = [query_index[q] for q in qids]
        return cls(
            queries=query_embeddings[rows].reshape(len(qids), query_embeddings.shape[1]),
            query_rows=np.array(q_rows, dtype=np.int64),
            doc_rows=np.array(d_rows, dtype=np.int64),
            labels=np.array(labels, dtype=np.float32),
            parts=parts.queries[rows] if parts is not None else None,
            items=parts.items[rows] if parts is not None else None,
        )

    @staticmethod
    def labelled_ids(qrels: dict[str, dict[str, int]], doc_index: dict[str, int]) -> list[str]:
        """The query ids from_qrels keeps, in its row order: those with a relevant (y > 0) indexed document."""
        return [q for q, docs in qrels.items() if any(y > 0 and d in doc_index for d, y in docs.items())]

    @cached_property
    def judgments(self) -> list[dict[int, float]]:
        """Per query row, its judged documents (corpus row -> relevance)."""
        out: list[dict[int, float]] = [{} for _ in range(len(self.queries))]
        for q, d, y in zip(self.query_rows.tolist(), self.doc_rows.tolist(), self.labels.tolist()):
            out[q][d] = y
        return out

    @cached_property
    def ndcg_judgments(self) -> Judgments:
        """The judgments arrayed for nDCG@10, built once for the epochs that rank these queries."""
        return Judgments(self.judgments, k=10)

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

    def split(self, fraction: float, seed: int) -> tuple[Supervision, Supervision]:
        """(training, validation) queries: `fraction` of them held out by split_validation."""
        train_rows, val_rows = split_validation(len(self.queries), fraction, seed, self.items)
        return self.subset(train_rows), self.subset(val_rows)

    def subset(self, rows: np.ndarray) -> Supervision:
        """The queries at `rows`, renumbered 0..len(rows)-1, with their qrels."""
        renumber = {int(r): i for i, r in enumerate(rows)}
        keep = np.array([int(q) in renumber for q in self.query_rows], dtype=bool)
        return Supervision(
            queries=self.queries[rows],
            query_rows=np.array([renumber[int(q)] for q in self.query_rows[keep]], dtype=np.int64),
            doc_rows=self.doc_rows[keep],
            labels=self.labels[keep],
            parts=self.parts[rows] if self.parts is not None else None,
            items=self.items[rows] if self.items is not None else None,
        )


@dataclass
class StageLog:
    stage: str
    epochs_run: int = 0
    best_epoch: int = 0
    criterion: str = ""  # what chose the epoch
    val_ndcg_at_10: list[list[float]] = field(default_factory=list)  # queries, per epoch (epoch 0 first), per dim
    base_ndcg_at_10: list[float] = field(default_factory=list)  # the same queries, base model truncated, per dim
    probe_ndcg_at_10: list[list[float]] = field(default_factory=list)  # held-out documents' neighbours, likewise
    loss: list[float] = field(default_factory=list)
    stopped: str = ""  # 'patience' or 'epoch cap'
    test: dict[str, Any] | None = None  # the supervised stage's paired test (training.selection.PairedTest)
    tail_test: dict[str, Any] | None = None  # with test_tail: the learned tail against the start's, at full width
    refit_queries: int = 0  # queries of the refit on all training queries (0: no refit); it runs best_epoch epochs


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


def split_validation(
    n_queries: int, fraction: float, seed: int, items: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) of the training queries, by a seeded shuffle; with `items` (per query, a unit
    such as one question in every language) whole units are held out, so no held-out query has a translation in
    training that would answer it."""
    if items is None:
        items = np.arange(n_queries)
    units = np.unique(items)
    n_val = max(1, round(len(units) * fraction))
    if n_val >= len(units):
        raise InputError(f"{n_queries} training queries are too few to hold out a validation split")
    held = np.isin(items, units[np.random.default_rng(seed).permutation(len(units))[:n_val]])
    return np.flatnonzero(~held), np.flatnonzero(held)


def column_means(per_query: np.ndarray) -> list[float]:
    """Per-dim mean nDCG@10 over the queries that have relevant documents, rounded as logged."""
    return [round(float(np.nanmean(col)), 5) for col in per_query.T]


START_CACHE_BYTES = 2**30  # a corpus up to this size is also held rotated into the start space (Trainer.started)
VALIDATION_BYTES = 2**29  # score-matrix budget (all dims) when ranking the corpus for validation, a chunk at a time


class Trainer:
    """Holds the corpus on the device, the start map, the anchor documents and their neighbours, the probe
    documents, and runs the stages."""

    def __init__(
        self,
        corpus: np.ndarray,
        config: TrainConfig,
        device: str = "auto",
        neighbors: tuple[torch.Tensor, torch.Tensor] | None = None,
        evidence: Supervision | None = None,
        doc_parts: np.ndarray | None = None,
    ) -> None:
        """`evidence`: all training queries (never the test split), to choose the start map and to guard the
        unsupervised stage; None for a corpus-only run. `doc_parts`: each document's part of a partitioned dataset
        (EmbeddedDataset.part_codes), among which alone the queries of that part are ranked."""
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
        self.tail = None if config.adapt_tail else tail_start(self.dims, corpus.shape[1])  # where f stops writing
        self.corpus = torch.from_numpy(np.ascontiguousarray(corpus, dtype=np.float32)).to(self.device)
        if doc_parts is not None and len(doc_parts) != len(corpus):
            raise InputError(f"doc_parts of {len(doc_parts)} documents: expected one part per document ({len(corpus)})")
        if evidence is not None and evidence.parts is not None and doc_parts is None:
            raise InputError("training queries carry parts but the documents do not: expected doc_parts")
        self.doc_parts = torch.from_numpy(doc_parts).to(self.device) if doc_parts is not None else None
        self.part_rows = [np.flatnonzero(doc_parts == p) for p in range(int(doc_parts.max()) + 1)] if doc_parts is not None else []
        self.evidence = evidence
        self._started: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # (rotation, centre, z): started()
        self.start_scores: dict[str, list[float]] = {}
        self.start, self.rotation, self.center = self.choose_start(corpus, doc_parts)
        # held-out documents whose full-dim neighbours score the unsupervised stage; never anchors
        n, c = len(self.corpus), config
        order = np.random.default_rng(c.seed).permutation(n)
        self.probe_rows = np.sort(order[: min(c.probe_docs, n // 5)])
        self.probes = self.probe_judgments() if len(self.probe_rows) else None
        # (anchor corpus rows, their neighbours): given (a resumed run), or sampled and mined here
        self.anchors, self.neighbors = neighbors if neighbors is not None else self.mine(np.sort(order[len(self.probe_rows) :]))
        self.anchors, self.neighbors = self.anchors.to(self.device), self.neighbors.to(self.device)

    def start_space(self) -> torch.Tensor:
        """The corpus as the start map sees it for neighbours: centred for centred PCA (rotations keep them)."""
        return self.corpus - torch.from_numpy(self.center).to(self.device) if self.center is not None else self.corpus

    @torch.no_grad()
    def started(self, adaptor: MatryoshkaAdaptor, rows: torch.Tensor | slice) -> torch.Tensor:
        """Corpus rows in the adaptor's start space, z = R·(ce − μ). A corpus within START_CACHE_BYTES is rotated
        once per start map and read from then on (SciFact's supervised steps rotated all of it twice a step); a
        larger one is rotated a batch at a time, as it is never held twice."""
        if self.corpus.numel() * self.corpus.element_size() > START_CACHE_BYTES:
            return adaptor.rotate(self.corpus[rows])
        cached = self._started
        if cached is None or not (torch.equal(cached[0], adaptor.rotation) and torch.equal(cached[1], adaptor.center)):
            cached = self._started = (adaptor.rotation.clone(), adaptor.center.clone(), adaptor.rotate(self.corpus))
        return cached[2][rows]

    def mine(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The anchor documents (`rows`, or a seeded sample of train_corpus_size of them) and their k nearest in
        the corpus."""
        c, n = self.config, len(self.corpus)
        if c.train_corpus_size is not None and c.train_corpus_size < len(rows):
            rows = np.sort(np.random.default_rng(c.seed).choice(rows, c.train_corpus_size, replace=False))
        anchors = torch.from_numpy(rows)
        k = min(c.topk, n - 1)
        return anchors, mine_neighbors(self.start_space(), k, anchors.to(self.device), c.neighbor_search, seed=c.seed).cpu()

    def probe_judgments(self, k: int = 10) -> Supervision:
        """The probe documents as queries whose relevant documents are themselves and their full-dim k nearest
        (in the start map's space): nDCG@10 of a truncated ranking then measures how well it keeps them."""
        rows = self.probe_rows
        k = min(k, len(self.corpus) - 1)
        nbr = mine_neighbors(self.start_space(), k, torch.from_numpy(rows).to(self.device), "exact").cpu().numpy()
        doc_rows = np.concatenate([rows[:, None], nbr], axis=1)
        return Supervision(
            queries=self.corpus[torch.from_numpy(rows).to(self.device)].cpu().numpy(),
            query_rows=np.repeat(np.arange(len(rows)), k + 1),
            doc_rows=doc_rows.reshape(-1).astype(np.int64),
            labels=np.ones(doc_rows.size, dtype=np.float32),
        )

    def choose_start(
        self, corpus: np.ndarray, doc_parts: np.ndarray | None = None
    ) -> tuple[str, np.ndarray | None, np.ndarray | None]:
        """(name, rotation, centre) of the configured start map, or with 'auto' of the best of vectors.START_MAPS on
        the training queries at every dim (selection.choose_start); without queries the centred-axes rotation,
        which keeps every full-dim cosine and orders coordinates by how much documents differ along them. A
        partitioned corpus's centred axes are its within-part ones (vectors.start_maps)."""
        c = self.config
        if c.input_rotation != "auto" or self.evidence is None or len(self.evidence.queries) == 0:
            name = c.input_rotation if c.input_rotation != "auto" else "centred_axes"
            logger.info("start map: %s (%s)", name, "configured" if name == c.input_rotation else "no training queries")
            return (name, *start_map(corpus, name, doc_parts))
        maps = start_maps(corpus, parts=doc_parts)
        for name, (rotation, center) in maps.items():
            # a candidate's f is zero, but building it draws an init; the partly centred maps came later and draw
            # from a forked generator, so a seed that chooses one of the first four repeats its earlier runs bit for bit
            with torch.random.fork_rng(devices=[], enabled=name in PARTLY_CENTRED):
                candidate = MatryoshkaAdaptor(self.adaptor_config(name, "", {}), rotation, center).to(self.device)
            self.start_scores[name] = self.validate(candidate, self.evidence)
        chosen = choose_start(self.start_scores)
        logger.info(
            "start map: %s (training queries' nDCG@10 mean over dims: %s)", chosen,
            ", ".join(f"{k} {np.mean(v):.4f}" for k, v in self.start_scores.items()),
        )
        return (chosen, *maps[chosen])

    def adaptor_config(
        self, start: str, base_model: str, training: dict[str, Any], encoder_roles: str = "shared"
    ) -> AdaptorConfig:
        c = self.config
        return AdaptorConfig(
            input_dim=self.corpus.shape[1],
            base_model=base_model,
            encoder_roles=encoder_roles,
            hidden_dim=c.hidden_dim,
            num_hidden_layers=c.num_hidden_layers,
            activation=c.activation,
            input_rotation=start,
            training=training,
        )

    def new_adaptor(
        self, base_model: str, provenance: dict[str, Any], encoder_roles: str = "shared"
    ) -> MatryoshkaAdaptor:
        """A fresh adaptor at the chosen start map (refined by training/prefix_rotation.py when prefix_rotation is
        set); its config records the base model (name, role handling, width), the training config and how the start
        was chosen."""
        training = {
            "config": {**asdict(self.config), "dims": list(self.dims)},
            "start_map": {"chosen": self.start, "train_query_ndcg_at_10": self.start_scores},
            **provenance,
        }
        config = self.adaptor_config(self.start, base_model, training, encoder_roles)
        adaptor = MatryoshkaAdaptor(config, self.rotation, self.center).to(self.device)
        if self.config.prefix_rotation:
            training["start_map"]["prefix_rotation"] = refine_start(self, adaptor)
        return adaptor

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
        # every unsupervised term measures against the start z = R·(ce − μ): its cosines are ce's for a rotation
        z = self.started(adaptor, rows)
        n_q = 0 if queries is None else len(queries)
        out = module(z if queries is None else torch.cat([adaptor.rotate(queries), z]), rotated=True)
        adapted_q, adapted = out[:n_q], out[n_q:]
        b = hi - lo
        a_pos, n_pos = inverse[:b], inverse[b : b + nbr.numel()].view(nbr.shape)
        l_topk = topk_loss(z[a_pos], adapted[a_pos], z[n_pos], adapted[n_pos], self.dims, self.weights)
        columns = self.started(adaptor, self.anchors[batch])  # L_pair pairs this share's anchors with the whole batch's
        adapted_columns = world.gather_rows(adapted[a_pos], len(batch))
        l_pair = pair_loss(z[a_pos], adapted[a_pos], self.dims, self.weights, columns, adapted_columns, offset=lo)
        l_rec = reconstruction_loss(z[a_pos], adapted[a_pos])
        loss = (l_topk + c.alpha * l_pair + c.beta * l_rec) * (b * world.size / len(batch))
        if queries is not None:
            c_pos = inverse[b + nbr.numel() :]
            l_rank = rank_loss(adapted_q, adapted[c_pos], relevance, self.dims, self.weights, c.rank_temperature)
            loss = loss + c.gamma * l_rank * (n_q * world.size / n_queries)
        return loss

    def candidates(self, positives: np.ndarray, generator: torch.Generator, part: int | None = None) -> torch.Tensor:
        """Corpus rows a query batch is ranked against: all (of its `part`, for a partitioned dataset), or its
        positives plus a uniform sample of them (memory and time per step stay bounded whatever the corpus size)."""
        pool = torch.from_numpy(self.part_rows[part]) if part is not None else torch.arange(len(self.corpus))
        if len(pool) <= self.config.rank_candidates:
            return pool
        sample = pool[torch.randint(len(pool), (self.config.rank_candidates,), generator=generator)]
        return torch.unique(torch.cat([sample, torch.from_numpy(positives)]))

    def parts_of(self, queries: Supervision) -> np.ndarray | None:
        """The queries' parts when the documents have parts too (ranking within parts), else None."""
        return queries.parts if self.doc_parts is not None else None

    # -- validation -------------------------------------------------------------------------------------------
    def validate(self, adaptor: MatryoshkaAdaptor | None, val: Supervision | None) -> list[float]:
        """Validation nDCG@10 at each dim, mean over queries (adaptor None: the base embeddings truncated; []
        without validation)."""
        return column_means(self.validate_per_query(adaptor, val)) if val is not None else []

    @torch.no_grad()
    def validate_per_query(self, adaptor: MatryoshkaAdaptor | None, val: Supervision) -> np.ndarray:
        """(queries, dims) nDCG@10. The corpus is adapted and ranked a chunk at a time, keeping each query's
        running top k."""
        k = val.ndcg_judgments.k
        queries = torch.from_numpy(val.queries).to(self.device)
        queries = adaptor(queries) if adaptor is not None else queries
        parts = self.parts_of(val)
        parts = torch.from_numpy(parts).to(self.device) if parts is not None else None
        chunk = max(1, VALIDATION_BYTES // (4 * len(queries) * len(self.dims)))  # every dim's scores at once
        best: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(self.dims)
        for start in range(0, len(self.corpus), chunk):
            rows = slice(start, start + chunk)
            docs = adaptor(self.started(adaptor, rows), rotated=True) if adaptor is not None else self.corpus[rows]
            # a query of a partitioned dataset never ranks another part's documents
            elsewhere = parts[:, None] != self.doc_parts[None, rows] if parts is not None else None
            for j, scores in enumerate(prefix_cosines(queries, docs, self.dims)):
                if elsewhere is not None:
                    scores = scores.masked_fill(elsewhere, -float("inf"))
                values, idx = scores.topk(min(k, scores.shape[1]), dim=1)
                idx = idx + start
                if best[j] is not None:  # merge with the earlier chunks' top k
                    values, idx = torch.cat([best[j][0], values], 1), torch.cat([best[j][1], idx], 1)
                    keep = values.topk(min(k, values.shape[1]), dim=1).indices
                    values, idx = values.gather(1, keep), idx.gather(1, keep)
                best[j] = (values, idx)
        return np.stack([val.ndcg_judgments.ndcg(top.cpu()) for _, top in best], axis=1)

    def stage_evidence(self, stage: str, val: Supervision | None) -> tuple[Supervision | None, Supervision | None]:
        """(queries scored after each epoch, probe documents or None): the supervised stage is chosen on its
        held-out queries; the unsupervised stage on the probes, with all training queries as a guard."""
        return (val, None) if stage == "supervised" else (self.evidence, self.probes)

    def epoch_scores(
        self, adaptor: MatryoshkaAdaptor, queries: Supervision | None, probes: Supervision | None
    ) -> tuple[np.ndarray | None, list[float], list[float]]:
        """(per-query nDCG@10 of `queries` or None, its per-dim means or [], per-dim probe nDCG@10 or []): one
        ranking pass each, the per-query scores kept for the supervised stage's paired test."""
        per_query = self.validate_per_query(adaptor, queries) if queries is not None else None
        return per_query, column_means(per_query) if per_query is not None else [], self.validate(adaptor, probes)

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
        """Train one stage in place until its criterion stops improving for `patience` epochs (`sup_patience` for a
        supervised stage once an epoch has beaten its start), and keep its best epoch (a supervised stage only if its
        gain passes the paired test); with `checkpoint`, save the state after every epoch; with `resume` (a
        checkpoint of this stage), continue after its epoch."""
        if stage not in STAGES:
            raise InputError(f"stage {stage!r}: expected one of {list(STAGES)}")
        if stage == "supervised" and (train is None or len(train.queries) == 0):
            raise InputError("supervised stage: expected training queries with qrels, got none")
        c = self.config
        supervised = stage == "supervised"
        epochs, lr = (c.sup_epochs, c.sup_lr) if supervised else (c.unsup_epochs, c.unsup_lr)
        queries, probes = self.stage_evidence(stage, val)
        optimizer = PortableAdamW(adaptor.parameters(), lr=lr, weight_decay=c.weight_decay)
        generator = torch.Generator().manual_seed(c.seed + (1 if supervised else 0))
        if resume is not None:
            adaptor.load_state_dict(resume["adaptor"])
            optimizer.load_state_dict(resume["optimizer"])
            generator.set_state(resume["generator"])
            torch.set_rng_state(resume["torch_rng"])
            log, choice = StageLog(**resume["log"]), EpochChoice(**resume["choice"])
            first_epoch = resume["epoch"] + 1
        else:
            log = StageLog(stage, criterion="held-out training queries" if supervised else "probe documents' neighbours")
            per_query, scores, probe_scores = self.epoch_scores(adaptor, queries, probes)
            log.val_ndcg_at_10.append(scores)
            log.probe_ndcg_at_10.append(probe_scores)
            log.base_ndcg_at_10 = self.validate(None, queries)
            state = copy.deepcopy(adaptor.state_dict())
            choice = EpochChoice.at_start(state, per_query, scores, log.base_ndcg_at_10, probe_scores, c.max_dim_drop,
                                          c.sup_min_gain if supervised else 0.0)
            logger.info("%s: epoch 0 %s nDCG@10 (mean over dims) %.4f", stage, log.criterion, choice.best_score)
            first_epoch = 1
        module = self.distributed(adaptor)

        def patience() -> int:
            return choice.patience(c.patience, c.sup_patience if supervised else c.patience)

        log.stopped = "epoch cap"
        for epoch in range(first_epoch, epochs + 1):
            if choice.patience_spent(epoch - 1, patience()):
                log.stopped = "patience"
                break  # a resumed run whose last epoch already ran out of patience
            log.loss.append(self.train_epoch(adaptor, module, optimizer, generator, train if supervised else None,
                                             f"{stage} epoch {epoch}/{epochs}"))
            per_query, scores, probe_scores = self.epoch_scores(adaptor, queries, probes)
            log.val_ndcg_at_10.append(scores)
            log.probe_ndcg_at_10.append(probe_scores)
            score = choice.offer(epoch, per_query, scores, probe_scores, lambda: copy.deepcopy(adaptor.state_dict()))
            log.epochs_run, log.best_epoch = epoch, choice.best_epoch
            logger.info("%s: epoch %d loss %.4f %s nDCG@10 %.4f", stage, epoch, log.loss[-1], log.criterion, score)
            if checkpoint is not None:
                checkpoint.save({
                    "stage": stage, "epoch": epoch, "adaptor": adaptor.state_dict(), "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(), "torch_rng": torch.get_rng_state(), "log": asdict(log),
                    "choice": choice.state_dict(),
                })
            if choice.patience_spent(epoch, patience()):
                logger.info("%s: no gain for %d epochs, stopping", stage, patience())
                log.stopped = "patience"
                break
        if supervised:
            test = choice.test_best(c.significance, queries.items if queries is not None else None, stage)
            log.test = asdict(test) if test is not None else None
            log.best_epoch = choice.best_epoch
        adaptor.load_state_dict(choice.best_state)
        logger.info("%s: keeping epoch %d of %d (%s)", stage, log.best_epoch, log.epochs_run, log.stopped)
        tail = self.test_learned_tail(adaptor, queries, choice.best_per_query) if supervised and log.best_epoch > 0 else None
        log.tail_test = asdict(tail) if tail is not None else None
        if supervised and c.refit and log.best_epoch > 0 and self.evidence is not None and queries is not None:
            log.refit_queries = len(np.unique(self.evidence.query_rows))
            self.refit(adaptor, module, choice.start_state, log.best_epoch)
        if tail is not None and not tail.accepted:
            adaptor.reset_tail(tail_start(self.dims, self.corpus.shape[1]))
        return log

    def test_learned_tail(
        self, adaptor: MatryoshkaAdaptor, val: Supervision | None, learned: np.ndarray | None
    ) -> PairedTest | None:
        """With test_tail, the paired test (at `significance`) of the adaptor's full-width nDCG@10 on `val` against
        the same adaptor with the coordinates only the full width sees reset to the start map's; `learned` is its
        (queries, dims) score. None when off, without held-out queries, or when the full width is not a trained dim
        (then no held-out score can tell the two apart)."""
        width = self.corpus.shape[1]
        cut = tail_start(self.dims, width)
        if not self.config.test_tail or val is None or learned is None or cut is None or self.dims[-1] != width:
            return None
        reset = copy.deepcopy(adaptor)
        reset.reset_tail(cut)
        test = paired_gain_test(
            learned[:, -1:], self.validate_per_query(reset, val)[:, -1:], self.config.significance,
            self.config.max_dim_drop, val.items,
        )
        logger.info("supervised: the tail f learned past %d %s at full width (%s)", cut,
                    "is kept" if test.accepted else "gives way to the start map's", test)
        return test

    def refit(self, adaptor: MatryoshkaAdaptor, module: torch.nn.Module, start_state: dict[str, Any], epochs: int) -> None:
        """Train the supervised stage again from `start_state` on all training queries for `epochs` epochs, once per
        `refit_members` (member k > 0 with its own batch order), and leave `adaptor` the members' average; `module`
        is the adaptor as the stage trained it (DDP-wrapped in a multi-process run: wrapping it twice would reduce
        each gradient twice). A function of its inputs and the seed alone (its own generators), so a run killed
        during it repeats it exactly."""
        c = self.config
        members = []
        for k in range(c.refit_members):
            adaptor.load_state_dict(start_state)
            optimizer = PortableAdamW(adaptor.parameters(), lr=c.sup_lr, weight_decay=c.weight_decay)
            generator = torch.Generator().manual_seed(c.seed + 2 + REFIT_MEMBER_STRIDE * k)  # k = 0: one refit's
            name = f"refit {k + 1}/{c.refit_members} epoch" if c.refit_members > 1 else "refit epoch"
            for epoch in range(1, epochs + 1):
                loss = self.train_epoch(adaptor, module, optimizer, generator, self.evidence, f"{name} {epoch}/{epochs}")
                logger.info("supervised %s %d on all %d training queries: loss %.4f", name, epoch,
                            len(self.evidence.queries), loss)
            if c.refit_members > 1:
                members.append(copy.deepcopy(adaptor))
        if members:
            adaptor.take_mlp(MatryoshkaAdaptor.average(members))

    def train_epoch(
        self,
        adaptor: MatryoshkaAdaptor,
        module: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        train: Supervision | None,
        desc: str,
    ) -> float:
        """One pass over the anchors (unsupervised, train None) or the labelled training queries, each query batch
        with a random anchor batch; the mean step loss over processes."""
        c = self.config
        adaptor.train()
        n_anchors = len(self.anchors)
        if train is not None:
            query_emb = torch.from_numpy(train.queries).to(self.device)
            batches, parts = self.query_batches(train, generator), self.parts_of(train)
        else:
            perm = torch.randperm(n_anchors, generator=generator)
            batches = [perm[i : i + c.unsup_batch_size] for i in range(0, n_anchors, c.unsup_batch_size)]
            batches = [b for b in batches if len(b) >= max(2, self.world.size)]
        total = 0.0
        for batch in tqdm(batches, desc=desc, leave=False, disable=not self.world.is_main):
            if train is not None:
                anchors = torch.randint(n_anchors, (c.unsup_batch_size,), generator=generator).to(self.device)
                candidates = self.candidates(train.positives(batch), generator, int(parts[batch[0]]) if parts is not None else None)
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
            self.hold_tail(adaptor)
            optimizer.step()
            total += loss.item()
        return self.world.mean(total / len(batches))

    def hold_tail(self, adaptor: MatryoshkaAdaptor) -> None:
        """Without adapt_tail, zero the gradient into f's outputs from `self.tail` on: f's last layer starts at zero,
        so those coordinates stay the start map's (AdamW moves nothing whose gradient stayed zero)."""
        if self.tail is not None:
            out = adaptor.mlp[-1]
            out.weight.grad[self.tail :] = 0
            out.bias.grad[self.tail :] = 0

    def query_batches(self, train: Supervision, generator: torch.Generator) -> list[np.ndarray]:
        """The labelled training queries shuffled into batches of sup_batch_size; for a partitioned dataset each
        batch holds one part's queries (they share its candidates), the parts' batches shuffled together."""
        labeled, parts = np.unique(train.query_rows), self.parts_of(train)
        groups = [labeled[parts[labeled] == p] for p in np.unique(parts[labeled])] if parts is not None else [labeled]
        size, batches = self.config.sup_batch_size, []
        for rows in groups:
            order = rows[torch.randperm(len(rows), generator=generator).numpy()]
            batches += [order[i : i + size] for i in range(0, len(order), size)]
        if len(groups) > 1:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def distributed(self, adaptor: MatryoshkaAdaptor) -> torch.nn.Module:
        """The adaptor wrapped in DistributedDataParallel in a multi-process run (the adaptor itself otherwise)."""
        if self.world.size == 1:
            return adaptor
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        # the rotation buffer never changes, so it need not be broadcast every step
        return DistributedDataParallel(adaptor, device_ids=device_ids, broadcast_buffers=False)


def train_stages(
    trainer: Trainer,
    adaptor: MatryoshkaAdaptor,
    stages: Sequence[str],
    train: Supervision | None,
    val: Supervision | None,
    checkpoint: Checkpointer | None = None,
    state: dict[str, Any] | None = None,
) -> Iterator[str]:
    """Run `stages` in order on one adaptor, each starting where the last ended (the paper's two stages), and yield
    each stage's name once it is done, its log added to `adaptor.config.training["stages"]`. With `checkpoint`, save
    one after every epoch; with `state` (a checkpoint's), skip the stages it finished and resume the one it was in."""
    stage_logs: list[dict[str, Any]] = state["stage_logs"] if state else []
    for i, stage in enumerate(stages):
        if state and i < state["stage_index"]:
            continue  # finished (and saved) before the run was killed
        if checkpoint is not None:
            checkpoint.context = {"stage_index": i, "stage_logs": stage_logs}
        start = time.perf_counter()
        resume = state if state and i == state["stage_index"] else None
        log = trainer.run_stage(adaptor, stage, train, val, checkpoint, resume)
        stage_logs.append({**asdict(log), "seconds": round(time.perf_counter() - start, 1), "resumed": bool(resume)})
        adaptor.config.training["stages"] = list(stage_logs)
        yield stage


def check_stages(stages: Sequence[str]) -> list[str]:
    """The stage names, in order, each one of STAGES, or an InputError before any work."""
    names = [s.strip() for s in stages if s.strip()]
    for name in names:
        if name not in STAGES:
            raise InputError(f"stages {','.join(stages)!r}: {name!r} is not one of {list(STAGES)}")
    return names


def without_supervised(stages: list[str], qrels: str) -> list[str]:
    """The stages a run without training qrels (`qrels` names where they were looked for) can train: the supervised
    one dropped with a warning, or an InputError when it was the only one asked for."""
    if "supervised" not in stages:
        return stages
    if stages == ["supervised"]:
        raise InputError(f"{qrels}: no training qrels; the supervised stage needs them")
    logger.warning("%s: no training qrels; training the unsupervised stage only, chosen on the corpus alone", qrels)
    return [s for s in stages if s != "supervised"]


def fit(
    documents: np.ndarray,
    queries: np.ndarray | None = None,
    qrels: Mapping[int, Mapping[int, float]] | None = None,
    config: TrainConfig | None = None,
    *,
    stages: Sequence[str] = STAGES,
    device: str = "auto",
    base_model: str = "",
) -> dict[str, MatryoshkaAdaptor]:
    """Train adaptors on vectors held in memory, as `python main.py` does on a dataset's: `documents` (n, d) the
    corpus; `queries` (m, d) training queries and `qrels` {query row: {document row: relevance}} for the supervised
    stage (without them only the unsupervised stage runs). Returns {stage: the adaptor after it}; `.save(folder)`
    keeps one. `base_model` only records which model made the vectors."""
    config = config or TrainConfig()
    documents = check_embeddings(documents, None, "documents")
    if (queries is None) != (qrels is None):
        raise InputError("fit: queries and qrels go together (training queries and their judged documents)")
    names = check_stages(stages)
    if qrels is None:
        names = without_supervised(names, "fit(queries=None, qrels=None)")
    seed_everything(config.seed)
    evidence = train = val = None
    if qrels is not None:  # and so queries, checked above
        queries = check_embeddings(queries, documents.shape[1], "queries")
        rows = qrels_by_row(qrels, len(queries), len(documents))
        evidence = Supervision.from_qrels(rows, {str(i): i for i in range(len(queries))}, queries,
                                          {str(i): i for i in range(len(documents))})
        train, val = evidence.split(config.val_fraction, config.seed)
    trainer = Trainer(documents, config, device, evidence=evidence)
    provenance = {
        "n_documents": len(documents),
        "n_train_queries": len(train.queries) if train else 0,
        "n_val_queries": len(val.queries) if val else 0,
        "numerics": numerics_record(),
        "stages": [],
    }
    adaptor = trainer.new_adaptor(base_model, provenance)
    return {stage: copy.deepcopy(adaptor) for stage in train_stages(trainer, adaptor, names, train, val)}
