import numpy as np
import pytest
import torch

from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.losses import prefix_cosine
from matryoshka_adaptor.train import Supervision, TrainConfig, Trainer, seed_everything
from matryoshka_adaptor.training.prefix_rotation import PrefixRotation

# planted: the neighbour-defining variance sits in coordinates 4-7, inside the block of 8 the rotation may mix,
# so the identity start's 4-dim prefix keeps few of a document's full-dim neighbours until they are rotated forward
RNG = np.random.default_rng(0)
DOCS = np.concatenate(
    [0.2 * RNG.standard_normal((600, 4)), 2.0 * RNG.standard_normal((600, 4)), 0.5 * RNG.standard_normal((600, 8))], axis=1
).astype(np.float32)
CONFIG = dict(dims=(4, 8, 16), hidden_dim=16, input_rotation="none", unsup_epochs=15, patience=15, unsup_batch_size=64,
              topk=5, unsup_lr=3e-2, prefix_rotation=8)


def refined(evidence: Supervision | None = None, **overrides):
    seed_everything(0)
    trainer = Trainer(DOCS, TrainConfig(**{**CONFIG, **overrides}), "cpu", evidence=evidence)
    adaptor = trainer.new_adaptor("toy", {})
    return trainer, adaptor, adaptor.config.training["start_map"]["prefix_rotation"]


def test_prefix_rotation_starts_at_the_identity_and_stays_orthogonal() -> None:
    q = PrefixRotation(6, 4)
    x = torch.randn(5, 6)
    assert torch.allclose(q(x), x) and torch.allclose(q.matrix(), torch.eye(6))
    with torch.no_grad():
        q.q.parametrizations.weight.original.add_(0.3 * torch.randn(4, 4))
    m = q.matrix()
    assert torch.allclose(m @ m.T, torch.eye(6), atol=1e-5) and not torch.allclose(m, torch.eye(6))
    assert torch.allclose(q(x), x @ m.T, atol=1e-5)
    assert torch.equal(q(x)[:, 4:], x[:, 4:])  # the coordinates past the block pass through
    with pytest.raises(InputError, match="block 7"):
        PrefixRotation(6, 7)


def test_refinement_teaches_short_prefixes_and_keeps_the_block_and_beyond_exactly() -> None:
    trainer, adaptor, log = refined()
    probe_at_4 = [scores[0] for scores in log["probe_ndcg_at_10"]]
    assert log["best_epoch"] > 0 and probe_at_4[log["best_epoch"]] > probe_at_4[0] + 0.3
    z, out = torch.from_numpy(DOCS[:50]), torch.from_numpy(adaptor.transform(DOCS[:50]))
    for m in (8, 16):  # prefixes of the block's width or more keep the start's (here the base's) cosines
        assert torch.allclose(prefix_cosine(out, out, m), prefix_cosine(z, z, m), atol=1e-5)
    assert not torch.allclose(prefix_cosine(out, out, 4), prefix_cosine(z, z, 4), atol=1e-2)


def training_queries(about_their_documents: bool) -> Supervision:
    """Query i is document i plus noise, judged relevant to it; or the same documents judged against a shuffled
    query, so that no map can rank them better than chance."""
    queries = DOCS[:200] + 0.3 * RNG.standard_normal((200, 16)).astype(np.float32)
    targets = np.arange(200) if about_their_documents else np.random.default_rng(1).permutation(200)
    qrels = {f"q{i}": {f"d{t}": 1} for i, t in enumerate(targets)}
    return Supervision.from_qrels(qrels, {f"q{i}": i for i in range(200)}, queries, {f"d{i}": i for i in range(600)})


@pytest.mark.parametrize("about_their_documents", [True, False])
def test_the_kept_epoch_must_pass_a_paired_test_on_the_training_queries(about_their_documents: bool) -> None:
    _, adaptor, log = refined(training_queries(about_their_documents), max_dim_drop=1.0)
    assert log["test"]["n_queries"] == 200 and log["test"]["accepted"] is about_their_documents
    assert (log["best_epoch"] > 0) is about_their_documents
    assert torch.equal(adaptor.rotation, torch.eye(16)) is not about_their_documents


def test_a_refinement_that_does_not_help_keeps_the_start() -> None:
    _, adaptor, log = refined(unsup_lr=0.0, patience=2)
    assert log["best_epoch"] == 0 and log["stopped"] == "patience"
    assert torch.equal(adaptor.rotation, torch.eye(16))


def test_the_block_must_be_a_matryoshka_dim() -> None:
    with pytest.raises(InputError, match="prefix_rotation 6: expected one of the Matryoshka dims \\[8, 16\\]"):
        refined(prefix_rotation=6)
    with pytest.raises(InputError, match="prefix_rotation -1"):
        TrainConfig(prefix_rotation=-1)
