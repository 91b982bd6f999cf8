import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from matryoshka_adaptor.encoders.cache import PartCodes
from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.losses import prefix_cosine
from matryoshka_adaptor.metrics import ndcg_at_k
from matryoshka_adaptor.model import MatryoshkaAdaptor
from matryoshka_adaptor.data.synthetic import topic_and_nuisance
from matryoshka_adaptor.train import (
    Supervision,
    TrainConfig,
    Trainer,
    fit,
    seed_everything,
    split_validation,
)
from matryoshka_adaptor.vectors import PARTLY_CENTRED, START_MAPS

RNG = np.random.default_rng(0)
DOCS = RNG.standard_normal((120, 16)).astype(np.float32)
QUERIES = (DOCS[:40] + 0.3 * RNG.standard_normal((40, 16))).astype(np.float32)  # query i is about doc i
QRELS = {f"q{i}": {f"d{i}": 1} for i in range(40)}
SUP = Supervision.from_qrels(QRELS, {f"q{i}": i for i in range(40)}, QUERIES, {f"d{i}": i for i in range(120)})
CONFIG = dict(dims=(4, 8, 16), hidden_dim=32, unsup_epochs=2, sup_epochs=4, unsup_batch_size=32, sup_batch_size=8, topk=3)
LONG_SUPERVISED = dict(sup_epochs=30, patience=30, sup_patience=30)  # room for a supervised stage to find its gain


def run(seed: int = 0, sup: Supervision = SUP, **overrides) -> tuple[np.ndarray, list, Trainer]:
    seed_everything(seed)
    config = TrainConfig(**{**CONFIG, **overrides}, seed=seed)
    trainer = Trainer(DOCS, config, "cpu", evidence=sup)
    adaptor = trainer.new_adaptor("toy", {})
    train_rows, val_rows = split_validation(len(sup.queries), 0.25, seed)
    logs = [trainer.run_stage(adaptor, s, sup.subset(train_rows), sup.subset(val_rows)) for s in ("unsupervised", "supervised")]
    return adaptor.transform(DOCS[:5]), logs, trainer


def planted(n: int, labelled: range) -> tuple[np.ndarray, Supervision]:
    """n documents of 8 nuisance coordinates then 8 topic coordinates, n queries each sharing only its document's
    topic; (documents, the `labelled` queries' supervision)."""
    docs, queries = topic_and_nuisance(n, n, 16, 8, np.random.default_rng(2))
    ids, doc_ids = {f"q{i}": i for i in range(n)}, {f"d{i}": i for i in range(n)}
    return docs, Supervision.from_qrels({f"q{i}": {f"d{i}": 1} for i in labelled}, ids, queries, doc_ids)


def planted_trainer(docs: np.ndarray, sup: Supervision, **overrides) -> tuple[Trainer, MatryoshkaAdaptor]:
    """A seeded trainer on planted data with room for the supervised stage to find the topic, and a fresh adaptor."""
    seed_everything(0)
    config = TrainConfig(**{**CONFIG, **LONG_SUPERVISED, "sup_batch_size": 16, **overrides}, seed=0)
    trainer = Trainer(docs, config, "cpu", evidence=sup)
    return trainer, trainer.new_adaptor("toy", {})


def test_same_seed_same_adaptor_bit_for_bit() -> None:
    a, logs, _ = run()
    b, _, _ = run()
    assert a.tobytes() == b.tobytes()
    assert len(logs[1].loss) == logs[1].epochs_run and logs[1].stopped in ("patience", "epoch cap")


def test_supervised_stage_is_kept_when_it_helps_held_out_queries() -> None:
    """Planted structure: 160 documents are 8 nuisance coordinates then 8 topic coordinates, and a query shares only
    its document's topic. Training on 120 queries must teach the 4-dim prefix the topic for the 40 held-out ones,
    the paired test must say so, and the stage must keep it."""
    docs, sup = planted(160, range(160))
    trainer, adaptor = planted_trainer(docs, sup)
    train_rows, val_rows = split_validation(160, 0.25, 0)
    log = trainer.run_stage(adaptor, "supervised", sup.subset(train_rows), sup.subset(val_rows))
    assert log.test["accepted"] and log.best_epoch > 0
    assert log.val_ndcg_at_10[log.best_epoch][0] > log.val_ndcg_at_10[0][0] + 0.2  # dim 4, held-out queries


def test_refit_trains_on_every_training_query_for_the_chosen_epoch_count() -> None:
    """Same planted structure, 160 training queries and 40 never seen: after the epoch is chosen on held-out
    training queries, the refit trains from the stage's start on all 160 for that many epochs, and what it learns
    carries to the unseen queries."""
    docs, sup = planted(200, range(160))
    _, unseen = planted(200, range(160, 200))
    train_rows, val_rows = split_validation(160, 0.25, 0)
    results = {}
    for refit in (False, True):
        trainer, adaptor = planted_trainer(docs, sup, refit=refit)
        start = trainer.validate(adaptor, unseen)[0]
        log = trainer.run_stage(adaptor, "supervised", sup.subset(train_rows), sup.subset(val_rows))
        results[refit] = (log, adaptor.transform(docs[:5]), trainer.validate(adaptor, unseen)[0])
    (kept, kept_out, _), (refit, refit_out, refit_unseen) = results[False], results[True]
    assert kept.best_epoch == refit.best_epoch > 0 and (kept.refit_queries, refit.refit_queries) == (0, 160)
    assert not np.array_equal(kept_out, refit_out)
    assert refit_unseen > start + 0.2  # dim 4


def test_refit_members_average_refits_that_differ_only_in_batch_order() -> None:
    """refit_members=3: three refits from the stage's start, member k drawing its batches from seed + 2 + 1000k, and
    the result is their mean exactly; member 0 is the single refit, so refit_members=1 changes nothing."""
    docs, sup = planted(200, range(160))
    trainer, adaptor = planted_trainer(docs, sup, refit=False)
    start = copy.deepcopy(adaptor.state_dict())
    train_rows, val_rows = split_validation(160, 0.25, 0)
    epochs = trainer.run_stage(adaptor, "supervised", sup.subset(train_rows), sup.subset(val_rows)).best_epoch
    assert epochs > 0
    config, outs = trainer.config, {}
    for seed, members in ((0, 1), (1000, 1), (2000, 1), (0, 3)):
        trainer.config = replace(config, seed=seed, refit_members=members)
        trainer.refit(adaptor, adaptor, start, epochs)
        outs[seed, members] = adaptor.transform(docs[:5])
        hidden = adaptor.config.hidden_dim
        adaptor = trainer.new_adaptor("toy", {})  # a fresh one of the single width for the next refit
    assert hidden == 3 * CONFIG["hidden_dim"]
    singles = [outs[s, 1] for s in (0, 1000, 2000)]
    assert np.abs(singles[0] - singles[1]).max() > 1e-4  # batch order alone moves the refit
    np.testing.assert_allclose(outs[0, 3], np.mean(singles, axis=0), atol=1e-5)


def test_refit_members_must_be_positive() -> None:
    with pytest.raises(InputError, match="refit_members 0"):
        TrainConfig(refit_members=0)


def test_supervised_stage_is_dropped_when_its_gain_is_noise() -> None:
    """With relevance drawn at random, no gain on held-out queries is real: the start must be kept, exactly."""
    rng = np.random.default_rng(1)
    random_qrels = {f"q{i}": {f"d{int(rng.integers(120))}": 1} for i in range(40)}
    noise = Supervision.from_qrels(random_qrels, {f"q{i}": i for i in range(40)}, QUERIES, {f"d{i}": i for i in range(120)})
    seed_everything(0)
    config = TrainConfig(**{**CONFIG, **LONG_SUPERVISED}, seed=0)
    trainer = Trainer(DOCS, config, "cpu", evidence=noise)
    adaptor = trainer.new_adaptor("toy", {})
    start = {k: v.clone() for k, v in adaptor.state_dict().items()}
    train_rows, val_rows = split_validation(40, 0.25, 0)
    log = trainer.run_stage(adaptor, "supervised", noise.subset(train_rows), noise.subset(val_rows))
    assert log.best_epoch == 0 and log.epochs_run >= 1
    assert all(torch.equal(start[k], v) for k, v in adaptor.state_dict().items())


def test_sup_patience_ends_a_supervised_stage_only_once_it_has_beaten_its_start() -> None:
    """`sup_patience` (1 here) ends a supervised stage past its first gain; `patience` (100, past the 30-epoch caps)
    ends the unsupervised stage, and a supervised stage that has not yet beaten its start (learning rate 0: it never
    does) runs to its cap instead of stopping after one flat epoch."""
    _, logs, _ = run(unsup_epochs=30, sup_epochs=30, patience=100, sup_patience=1)
    assert (logs[0].stopped, logs[0].epochs_run) == ("epoch cap", 30)
    assert logs[1].stopped == "patience" and logs[1].epochs_run < 30  # 100 epochs of patience could not stop it
    _, logs, _ = run(unsup_epochs=1, sup_epochs=30, patience=100, sup_patience=1, sup_lr=0.0)
    assert (logs[1].stopped, logs[1].epochs_run, logs[1].best_epoch) == ("epoch cap", 30, 0)


def test_auto_start_map_is_the_best_on_training_queries() -> None:
    # a common offset shared by documents and queries (the anisotropy of real embeddings): centring removes it
    shifted = Supervision.from_qrels(QRELS, {f"q{i}": i for i in range(40)}, QUERIES + 2.0, {f"d{i}": i for i in range(120)})
    trainer = Trainer(DOCS + 2.0, TrainConfig(**CONFIG), "cpu", evidence=shifted)
    assert list(trainer.start_scores) == list(START_MAPS)
    assert trainer.start == "centred_pca"
    assert trainer.start_scores["centred_pca"][0] > trainer.start_scores["pca"][0] + 0.02  # at dim 4
    assert Trainer(DOCS, TrainConfig(**CONFIG), "cpu").start == "centred_axes"  # no queries: the isometric default
    assert Trainer(DOCS, TrainConfig(**CONFIG, input_rotation="pca"), "cpu", evidence=SUP).start == "pca"


def test_partly_centred_candidates_draw_nothing_from_the_seed() -> None:
    # after scoring every candidate the seed's generator is where the four earlier maps alone left it, so a run
    # that chooses one of those four repeats its earlier runs bit for bit
    seed_everything(0)
    trainer = Trainer(DOCS, TrainConfig(**CONFIG), "cpu", evidence=SUP)
    after = torch.get_rng_state()
    seed_everything(0)
    for name in (n for n in START_MAPS if n not in PARTLY_CENTRED):
        MatryoshkaAdaptor(trainer.adaptor_config(name, "", {}))
    Trainer(DOCS, TrainConfig(**CONFIG, input_rotation=trainer.start), "cpu", evidence=SUP)  # the constructor's other draws
    assert torch.equal(torch.get_rng_state(), after)


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
    items = np.repeat(np.arange(10), 3)  # each query in three languages: held out together
    tr, va = split_validation(30, 0.2, 1, items)
    assert len(va) == 6 and not set(items[tr]) & set(items[va])
    with pytest.raises(InputError, match="too few"):
        split_validation(4, 0.5, 0, np.zeros(4))


def test_config_validation() -> None:
    with pytest.raises(InputError, match="val_fraction"):
        TrainConfig(val_fraction=1.5)
    with pytest.raises(InputError, match="increasing"):
        TrainConfig(dims=(64, 32))
    with pytest.raises(InputError, match="test_tail=true with adapt_tail=false"):
        TrainConfig(test_tail=True, adapt_tail=False)
    assert TrainConfig().test_tail and not TrainConfig(adapt_tail=False).test_tail  # on by default, moot without a tail
    with pytest.raises(InputError, match="larger than the embedding size 16"):
        Trainer(DOCS, TrainConfig(dims=(8, 32)), "cpu")


def test_supervised_stage_needs_queries() -> None:
    trainer = Trainer(DOCS, TrainConfig(**CONFIG), "cpu")
    with pytest.raises(InputError, match="supervised stage"):
        trainer.run_stage(trainer.new_adaptor("toy", {}), "supervised", None, None)
    # every document but the 24 held-out probes (a fifth of 120) is an anchor
    assert torch.is_tensor(trainer.neighbors) and trainer.neighbors.shape == (96, 3)
    assert not set(trainer.anchors.tolist()) & set(trainer.probe_rows.tolist())


def test_sampled_anchors_and_candidates_bound_the_work() -> None:
    trainer = Trainer(DOCS, TrainConfig(**CONFIG, train_corpus_size=50, rank_candidates=16), "cpu")
    assert trainer.anchors.shape == (50,) and trainer.neighbors.shape == (50, 3)
    assert len(set(trainer.anchors.tolist())) == 50  # sampled without replacement
    assert not (trainer.neighbors == trainer.anchors[:, None]).any()  # neighbours come from the whole corpus
    candidates = trainer.candidates(np.array([5, 119]), torch.Generator().manual_seed(0))
    assert {5, 119} <= set(candidates.tolist()) and len(candidates) <= 18
    a, logs, _ = run(train_corpus_size=50, rank_candidates=16)
    assert np.isfinite(a).all() and logs[1].epochs_run >= 1


def test_validation_in_chunks_matches_a_dense_ndcg(monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = Trainer(DOCS, TrainConfig(**CONFIG), "cpu")
    val = SUP.subset(np.arange(10))
    queries, docs = torch.from_numpy(val.queries), torch.from_numpy(DOCS)
    dense = [round(ndcg_at_k(prefix_cosine(queries, docs, m), val.relevance(np.arange(10), torch.arange(120))), 5) for m in (4, 8, 16)]
    assert trainer.validate(None, val) == dense
    monkeypatch.setattr("matryoshka_adaptor.train.VALIDATION_BYTES", 4 * 10 * 3 * 7)  # 3 dims: chunks of 7 documents
    assert trainer.validate(None, val) == dense


def test_start_space_rows_are_the_rotated_corpus_cached_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = Trainer(DOCS, TrainConfig(**CONFIG, input_rotation="centred_pca"), "cpu")
    adaptor = trainer.new_adaptor("toy", {})
    rows = torch.tensor([3, 0, 3, 119])
    expected = adaptor.rotate(torch.from_numpy(DOCS[rows.numpy()]))
    assert torch.allclose(trainer.started(adaptor, rows), expected, atol=1e-6)
    with torch.no_grad():
        adaptor.rotation.copy_(adaptor.rotation.flip(0))  # another start map: the cached rows must not be reused
    assert torch.allclose(trainer.started(adaptor, rows), expected.flip(1), atol=1e-6)
    torch.nn.init.normal_(adaptor.mlp[-1].weight, std=0.1)
    val = SUP.subset(np.arange(10))
    cached = trainer.validate(adaptor, val)
    monkeypatch.setattr("matryoshka_adaptor.train.START_CACHE_BYTES", 0)  # a corpus too large to hold twice
    assert torch.allclose(trainer.started(adaptor, rows), expected.flip(1), atol=1e-6)
    assert trainer.validate(adaptor, val) == pytest.approx(cached, abs=1e-6)


def test_unsupervised_losses_teach_short_prefixes_the_full_dim_neighbours() -> None:
    """Planted structure: the variance sits in the last 4 of 16 coordinates, so the identity start's 4-dim prefix
    keeps almost none of a document's full-dim neighbours (probe nDCG@10 about 0.24). L_topk and L_pair must move
    it there. With L_rec at the paper's weight (beta = 1, an L1 sum over all coordinates) the adaptor stays at its
    start, which is what the quality suite sees on real collections; with a light L_rec it learns."""
    rng = np.random.default_rng(0)
    docs = np.concatenate([0.2 * rng.standard_normal((600, 12)), 2.0 * rng.standard_normal((600, 4))], axis=1)
    config = dict(dims=(4, 8, 16), hidden_dim=64, input_rotation="none", unsup_epochs=20, patience=20,
                  unsup_batch_size=64, topk=5, unsup_lr=1e-2)
    curves = {}
    for beta in (1.0, 0.01):
        seed_everything(0)
        trainer = Trainer(docs.astype(np.float32), TrainConfig(**config, beta=beta), "cpu")
        log = trainer.run_stage(trainer.new_adaptor("toy", {}), "unsupervised", None, None)
        curves[beta] = [scores[0] for scores in log.probe_ndcg_at_10]  # dim 4, epoch 0 first
    assert curves[0.01][0] < 0.3 and max(curves[0.01]) > curves[0.01][0] + 0.4
    assert max(curves[1.0]) < curves[1.0][0] + 0.05


def test_a_partitioned_dataset_ranks_each_query_among_its_own_parts_documents() -> None:
    """Two parts, the second a near copy of the first (a translation): ranked together, each query's copy of its
    answer would crowd its top 10; within its part it never appears, in validation, batches or candidates."""
    docs = np.concatenate([DOCS[:60], DOCS[:60] + 0.01 * RNG.standard_normal((60, 16)).astype(np.float32)])
    doc_parts = np.repeat([0, 1], 60)
    qrels = {f"{p}/q{i}": {f"{p}/d{i}": 1} for p in range(2) for i in range(40)}
    query_index = {q: i for i, q in enumerate(qrels)}
    doc_index = {f"{p}/d{i}": p * 60 + i for p in range(2) for i in range(60)}
    codes = PartCodes(doc_parts, np.repeat([0, 1], 40), np.tile(np.arange(40), 2))
    sup = Supervision.from_qrels(qrels, query_index, np.concatenate([QUERIES, QUERIES]), doc_index, codes)
    assert sup.parts.tolist() == [0] * 40 + [1] * 40 and sup.subset(np.array([3, 45])).items.tolist() == [3, 5]
    with pytest.raises(InputError, match="doc_parts"):
        Trainer(docs, TrainConfig(**CONFIG), "cpu", evidence=sup)
    trainer = Trainer(docs, TrainConfig(**CONFIG, rank_candidates=16), "cpu", evidence=sup, doc_parts=doc_parts)
    queries = torch.from_numpy(sup.queries)
    own = [round(ndcg_at_k(prefix_cosine(queries[:40], torch.from_numpy(DOCS[:60]), m),
                           SUP.relevance(np.arange(40), torch.arange(60))), 5) for m in (4, 8, 16)]
    assert trainer.validate(None, sup.subset(np.arange(40))) == own
    unmasked = Trainer(docs, TrainConfig(**CONFIG), "cpu").validate(None, replace(sup, parts=None))
    assert all(u < o - 0.1 for u, o in zip(unmasked, own))  # the copies would be scored as misses
    generator = torch.Generator().manual_seed(0)
    batches = trainer.query_batches(sup, generator)
    assert sorted(np.concatenate(batches).tolist()) == list(range(80))
    assert all(len(set(sup.parts[b].tolist())) == 1 for b in batches)
    candidates = trainer.candidates(sup.positives(batches[0]), generator, int(sup.parts[batches[0][0]]))
    assert set(candidates.tolist()) <= set(np.flatnonzero(doc_parts == sup.parts[batches[0][0]]).tolist())
    assert set(sup.positives(batches[0]).tolist()) <= set(candidates.tolist())


# f leaves alone what lies past the largest dim below the width (16); with (4, 12) nothing moves those coordinates
@pytest.mark.parametrize("dims, tail, adapt_tail", [((4, 8, 16), 8, True), ((4, 8, 16), 8, False), ((4, 12), 12, False)])
def test_without_adapt_tail_f_leaves_the_coordinates_only_the_full_width_sees(
    dims: tuple[int, ...], tail: int, adapt_tail: bool
) -> None:
    trainer = Trainer(DOCS, TrainConfig(**{**CONFIG, "dims": dims}, adapt_tail=adapt_tail), "cpu", evidence=SUP)
    adaptor = trainer.new_adaptor("toy", {})
    optimizer = torch.optim.AdamW(adaptor.parameters(), lr=1e-2)
    for _ in range(3):
        trainer.train_epoch(adaptor, adaptor, optimizer, torch.Generator().manual_seed(0), SUP, "test")
    x = torch.from_numpy(DOCS)
    with torch.no_grad():
        change = (adaptor(x) - adaptor.rotate(x)).abs()
    assert change[:, tail - 4 : tail].max() > 1e-3  # the prefix just below the cut still adapts
    assert (change[:, tail:].max() > 1e-3) if adapt_tail else (change[:, tail:].max() == 0)


def test_tail_test_asks_the_learned_tail_for_a_significant_full_width_gain_over_the_start_maps() -> None:
    """`learned` is the adaptor's (queries, dims) score; the reset adaptor is scored inside. Only the full-width
    column counts; a gain must be shown, equal is refused; off, or without the full width among the dims: no test."""
    trainer = Trainer(DOCS, TrainConfig(**CONFIG), "cpu", evidence=SUP)  # on by default
    adaptor, val = trainer.new_adaptor("toy", {}), SUP.subset(np.arange(20))
    reset = trainer.validate_per_query(adaptor, val)  # f is zero: the adaptor is its own reset
    gain = np.zeros_like(reset)
    gain[:, -1] = np.linspace(0.05, 0.15, len(gain))
    assert trainer.test_learned_tail(adaptor, val, reset + gain).accepted
    assert not trainer.test_learned_tail(adaptor, val, reset).accepted
    assert not trainer.test_learned_tail(adaptor, val, reset - gain).accepted
    small = reset.copy()
    small[:, :-1] += 1.0  # smaller dims do not count
    assert not trainer.test_learned_tail(adaptor, val, small).accepted
    off = Trainer(DOCS, TrainConfig(**CONFIG, test_tail=False), "cpu", evidence=SUP)
    assert off.test_learned_tail(adaptor, val, reset + gain) is None
    no_width = Trainer(DOCS, TrainConfig(**{**CONFIG, "dims": (4, 8)}), "cpu", evidence=SUP)
    assert no_width.test_learned_tail(adaptor, val, reset + gain) is None


def test_with_test_tail_a_stage_differs_from_one_without_only_past_the_cut() -> None:
    """The planted data above, where the stage passes its test: every coordinate up to 8 of 16 is bit for bit that
    of a run with test_tail=false; past it, the start map's exactly when the tail test refused the learned tail (the
    reset comes after the refit, which would otherwise relearn it)."""
    docs, sup = planted(160, range(160))
    train_rows, val_rows = split_validation(160, 0.25, 0)
    out = {}
    for test_tail in (False, True):
        trainer, adaptor = planted_trainer(docs, sup, test_tail=test_tail)
        log = trainer.run_stage(adaptor, "supervised", sup.subset(train_rows), sup.subset(val_rows))
        out[test_tail] = adaptor.transform(docs), log
    start = trainer.new_adaptor("toy", {}).transform(docs)
    (untested, untested_log), (tested, log) = out[False], out[True]
    assert log.best_epoch > 0 and log.refit_queries > 0 and log.tail_test is not None and untested_log.tail_test is None
    assert tested[:, :8].tobytes() == untested[:, :8].tobytes()
    assert np.array_equal(tested[:, 8:], start[:, 8:]) != log.tail_test["accepted"]
    assert not np.allclose(untested[:, 8:], start[:, 8:])  # the untested tail did move


ROW_QRELS = {i: {i: 1} for i in range(40)}  # QRELS by row: query i is about document i


def test_fit_trains_both_stages_on_vectors_in_memory_and_repeats() -> None:
    config = TrainConfig(**CONFIG, seed=3)
    first, again = (fit(DOCS, QUERIES, ROW_QRELS, config, device="cpu", base_model="toy") for _ in range(2))
    assert list(first) == ["unsupervised", "supervised"]
    assert [len(a.config.training["stages"]) for a in first.values()] == [1, 2]
    assert first["supervised"].config.training["n_train_queries"] + first["supervised"].config.training["n_val_queries"] == 40
    for stage in first:
        for name, tensor in first[stage].state_dict().items():
            assert torch.equal(tensor, again[stage].state_dict()[name]), (stage, name)
    assert first["supervised"].transform(DOCS[:3], dim=4).shape == (3, 4)


def test_fit_and_its_config_are_the_package_s_own() -> None:
    import matryoshka_adaptor

    assert matryoshka_adaptor.fit is fit and matryoshka_adaptor.TrainConfig is TrainConfig


def test_fit_without_queries_trains_the_corpus_only_stage() -> None:
    assert list(fit(DOCS, config=TrainConfig(**CONFIG), device="cpu")) == ["unsupervised"]
    with pytest.raises(InputError, match=r"fit\(queries=None, qrels=None\): no training qrels; the supervised stage needs them"):
        fit(DOCS, config=TrainConfig(**CONFIG), stages=["supervised"], device="cpu")


@pytest.mark.parametrize(("queries", "qrels", "match"), [
    (QUERIES, None, "queries and qrels go together"),
    (QUERIES, {40: {0: 1}}, r"query 40: expected a row of the query vectors, 0..39"),
    (QUERIES, {0: {-1: 1}}, r"document -1: expected a row of the document vectors, 0..119"),
    (QUERIES, {0: {"d0": 1}}, r"document 'd0': expected a row"),
    (QUERIES, {0: {0: float("nan")}}, r"query 0, document 0: relevance nan, expected a finite number"),
    (QUERIES[:, :8], ROW_QRELS, r"queries: expected width 16, got 8"),
])
def test_fit_refuses_bad_input_naming_the_value(queries, qrels, match) -> None:
    with pytest.raises(InputError, match=match):
        fit(DOCS, queries, qrels, TrainConfig(**CONFIG), device="cpu")
