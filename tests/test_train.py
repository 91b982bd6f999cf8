import numpy as np
import pytest
import torch

from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.losses import prefix_cosine
from matryoshka_adaptor.metrics import ndcg_at_k
from matryoshka_adaptor.train import (
    Supervision,
    TrainConfig,
    Trainer,
    seed_everything,
    split_validation,
)

RNG = np.random.default_rng(0)
DOCS = RNG.standard_normal((120, 16)).astype(np.float32)
QUERIES = (DOCS[:40] + 0.3 * RNG.standard_normal((40, 16))).astype(np.float32)  # query i is about doc i
QRELS = {f"q{i}": {f"d{i}": 1} for i in range(40)}
SUP = Supervision.from_qrels(QRELS, {f"q{i}": i for i in range(40)}, QUERIES, {f"d{i}": i for i in range(120)})
CONFIG = dict(dims=(4, 8, 16), hidden_dim=32, unsup_epochs=2, sup_epochs=4, unsup_batch_size=32, sup_batch_size=8, topk=3)


def run(seed: int = 0, **overrides) -> tuple[np.ndarray, list]:
    seed_everything(seed)
    config = TrainConfig(**{**CONFIG, **overrides}, seed=seed)
    trainer = Trainer(DOCS, config, "cpu")
    adaptor = trainer.new_adaptor("toy", {})
    train_rows, val_rows = split_validation(len(SUP.queries), 0.25, seed)
    logs = [trainer.run_stage(adaptor, s, SUP.subset(train_rows), SUP.subset(val_rows)) for s in ("unsupervised", "supervised")]
    return adaptor.transform(DOCS[:5]), logs


def test_same_seed_same_adaptor_and_kept_epoch_not_worse() -> None:
    a, logs = run()
    b, _ = run()
    np.testing.assert_array_equal(a, b)
    for log in logs:
        assert np.mean(log.val_ndcg_at_10[log.best_epoch]) >= np.mean(log.val_ndcg_at_10[0])
    assert len(logs[1].loss) == logs[1].epochs_run


def test_supervision_from_qrels_and_subset() -> None:
    sup = Supervision.from_qrels({"a": {"x": 1, "y": 0}, "b": {"y": 0}}, {"a": 0, "b": 1}, QUERIES[:2], {"x": 0, "y": 1})
    assert len(sup.queries) == 1  # b has no relevant document
    assert sup.relevance(np.array([0]), torch.arange(2)).tolist() == [[1.0, 0.0]]
    sub = SUP.subset(np.array([5, 7]))
    assert sub.relevance(np.array([0, 1]), torch.arange(120)).nonzero().tolist() == [[0, 5], [1, 7]]
    assert sub.relevance(np.array([1]), torch.tensor([3, 7, 9])).tolist() == [[0.0, 1.0, 0.0]]
    assert sub.positives(np.array([1])).tolist() == [7]


def test_split_validation_is_disjoint_and_seeded() -> None:
    tr, va = split_validation(10, 0.2, 1)
    assert len(va) == 2 and not set(tr) & set(va) and set(tr) | set(va) == set(range(10))
    assert np.array_equal(va, split_validation(10, 0.2, 1)[1])
    with pytest.raises(InputError, match="too few"):
        split_validation(1, 0.5, 0)


def test_config_validation() -> None:
    with pytest.raises(InputError, match="val_fraction"):
        TrainConfig(val_fraction=1.5)
    with pytest.raises(InputError, match="increasing"):
        TrainConfig(dims=(64, 32))
    with pytest.raises(InputError, match="larger than the embedding size 16"):
        Trainer(DOCS, TrainConfig(dims=(8, 32)), "cpu")


def test_supervised_stage_needs_queries() -> None:
    trainer = Trainer(DOCS, TrainConfig(**CONFIG), "cpu")
    with pytest.raises(InputError, match="supervised stage"):
        trainer.run_stage(trainer.new_adaptor("toy", {}), "supervised", None, None)
    assert torch.is_tensor(trainer.neighbors) and trainer.neighbors.shape == (120, 3)


def test_sampled_anchors_and_candidates_bound_the_work() -> None:
    trainer = Trainer(DOCS, TrainConfig(**CONFIG, train_corpus_size=50, rank_candidates=16), "cpu")
    assert trainer.anchors.shape == (50,) and trainer.neighbors.shape == (50, 3)
    assert len(set(trainer.anchors.tolist())) == 50  # sampled without replacement
    assert not (trainer.neighbors == trainer.anchors[:, None]).any()  # neighbours come from the whole corpus
    candidates = trainer.candidates(np.array([5, 119]), torch.Generator().manual_seed(0))
    assert {5, 119} <= set(candidates.tolist()) and len(candidates) <= 18
    a, logs = run(train_corpus_size=50, rank_candidates=16)
    assert np.isfinite(a).all() and logs[1].epochs_run >= 1


def test_validation_in_chunks_matches_a_dense_ndcg(monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = Trainer(DOCS, TrainConfig(**CONFIG), "cpu")
    val = SUP.subset(np.arange(10))
    queries, docs = torch.from_numpy(val.queries), torch.from_numpy(DOCS)
    dense = [round(ndcg_at_k(prefix_cosine(queries, docs, m), val.relevance(np.arange(10), torch.arange(120))), 5) for m in (4, 8, 16)]
    assert trainer.validate(None, val) == dense
    monkeypatch.setattr("matryoshka_adaptor.train.VALIDATION_BYTES", 4 * 10 * 7)  # chunks of 7 documents
    assert trainer.validate(None, val) == dense
