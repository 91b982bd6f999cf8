"""The white-box alternative to an adaptor: fine-tune the base model itself with Sentence-Transformers'
MatryoshkaLoss around MultipleNegativesRankingLoss, on the same (query, relevant document) training pairs.

A plain torch loop calls the library's own losses (no `accelerate` dependency for its Trainer). The fine-tuned
model is saved to a folder, and the suite encodes with it through the repo's embedding cache, keyed by that folder.
"""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from matryoshka_adaptor.atomic import write_folder_atomic
from matryoshka_adaptor.data import BeirDataset
from matryoshka_adaptor.encoders import resolve_model_path
from matryoshka_adaptor.training.optimizer import PortableAdamW

logger = logging.getLogger("benchmarks.whitebox")

# the usual recipe for a small in-domain set (Sentence-Transformers' Matryoshka examples): lr 2e-5, 10% warm-up
EPOCHS = 1
BATCH_SIZE = 32  # in-batch negatives: each query is ranked against the batch's 32 documents
LR = 2e-5
WARMUP = 0.1


def training_pairs(ds: BeirDataset, qrels: dict[str, dict[str, int]], seed: int) -> list[tuple[str, str]]:
    """(query text, relevant document text) for every judged-relevant pair, shuffled by seed."""
    pairs = [(ds.queries[q], ds.corpus[d]) for q, docs in qrels.items() for d, y in docs.items() if y > 0]
    random.Random(seed).shuffle(pairs)
    return pairs


def finetune(
    model_name: str, ds: BeirDataset, qrels: dict[str, dict[str, int]], dims: tuple[int, ...], seed: int,
    out: Path, max_seq_length: int | None = None,
) -> float:
    """Fine-tune `model_name` on the training pairs, save it to `out`; returns the training seconds."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss, MultipleNegativesRankingLoss

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = SentenceTransformer(resolve_model_path(model_name), device=device)
    if max_seq_length:
        model.max_seq_length = max_seq_length
    loss = MatryoshkaLoss(model, MultipleNegativesRankingLoss(model), matryoshka_dims=list(dims))
    pairs = training_pairs(ds, qrels, seed)
    batches = [pairs[i : i + BATCH_SIZE] for i in range(0, len(pairs), BATCH_SIZE)] * EPOCHS
    optimizer = PortableAdamW(model.parameters(), lr=LR, weight_decay=0.01)  # torch.optim.AdamW's default decay
    warmup = max(1, int(WARMUP * len(batches)))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (len(batches) - step) / (len(batches) - warmup)))
    )
    start = time.perf_counter()
    model.train()
    for batch in tqdm(batches, desc=f"fine-tuning {Path(model_name).name} (seed {seed})"):
        features = [model.preprocess([q for q, _ in batch]), model.preprocess([d for _, d in batch])]
        features = [{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in f.items()} for f in features]
        value = loss(features, labels=None)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        schedule.step()
    seconds = time.perf_counter() - start
    model.eval()
    write_folder_atomic(out, lambda tmp: model.save(str(tmp)), overwrite=True)
    logger.info("fine-tuned on %d pairs in %.0f s, saved to %s", len(pairs), seconds, out)
    return seconds
