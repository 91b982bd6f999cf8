from pathlib import Path

import numpy as np
import pytest
import torch

from matryoshka_adaptor import MatryoshkaAdaptor
from matryoshka_adaptor.config import AdaptorConfig
from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.serving import AdaptedIndex, IndexConfig
from matryoshka_adaptor.vectors import unit_rows

RNG = np.random.default_rng(0)
# documents whose first 16 dims carry most of the signal, as a Matryoshka prefix does
SCALE = np.concatenate([np.full(16, 2.0), np.full(48, 1.0)]).astype(np.float32)
DOCS = (RNG.standard_normal((2000, 64)) * SCALE).astype(np.float32)
QUERIES = DOCS[:40] + (0.3 * RNG.standard_normal((40, 64)) * SCALE).astype(np.float32)
EXACT = np.argsort(-(unit_rows(QUERIES) @ unit_rows(DOCS).T), axis=1)[:, :10]


def recall(ids: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, EXACT)]))


def test_full_width_flat_float32_is_exact_search() -> None:
    ids, scores = AdaptedIndex.build(DOCS, IndexConfig(dim=64, full_dim=64, rescore="none")).search(QUERIES)
    assert (ids == EXACT).all()
    assert np.allclose(scores[:, 0], (unit_rows(QUERIES) * unit_rows(DOCS)[EXACT[:, 0]]).sum(1), atol=1e-5)


@pytest.mark.parametrize("index", ["flat", "hnsw", "ivf"])
@pytest.mark.parametrize("precision", ["float32", "float16", "int8", "binary"])
def test_a_prefix_shortlist_rescored_in_full_finds_the_exact_top_10(index: str, precision: str) -> None:
    config = IndexConfig(dim=16, full_dim=64, index=index, precision=precision, ivf_probe=64)
    rescored, _ = AdaptedIndex.build(DOCS, config).search(QUERIES, top_k=10, shortlist=200)
    alone, _ = AdaptedIndex.build(DOCS, IndexConfig(**{**config.__dict__, "rescore": "none"})).search(QUERIES)
    assert recall(rescored) >= (0.6 if precision == "binary" else 0.97)  # one bit a dim keeps less order
    assert recall(rescored) >= recall(alone) + 0.1  # re-scoring is what recovers the full-dim ranking


@pytest.mark.parametrize("precision", ["float32", "binary"])
def test_hnsw_graph_settings_reach_faiss(precision: str) -> None:
    config = IndexConfig(dim=16, full_dim=64, index="hnsw", precision=precision, hnsw_ef_construction=57)
    assert AdaptedIndex.build(DOCS[:200], config).prefix.hnsw.efConstruction == 57


def test_int8_rescoring_stays_close_to_float32() -> None:
    ids, _ = AdaptedIndex.build(DOCS, IndexConfig(dim=16, full_dim=64, rescore="int8")).search(QUERIES, shortlist=200)
    assert recall(ids) >= 0.95


def test_save_load_round_trip_answers_the_same(tmp_path: Path) -> None:
    doc_ids = [f"d{i}" for i in range(len(DOCS))]
    for precision in ("int8", "binary"):
        index = AdaptedIndex.build(DOCS, IndexConfig(dim=16, full_dim=64, index="hnsw", precision=precision), doc_ids)
        index.save(tmp_path / precision)
        loaded = AdaptedIndex.load(tmp_path / precision)
        assert loaded.doc_ids == doc_ids and loaded.config == index.config
        for a, b in zip(index.search(QUERIES), loaded.search(QUERIES)):
            assert np.array_equal(a, b)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind


def test_truncated_or_swapped_files_are_named_on_load(tmp_path: Path) -> None:
    AdaptedIndex.build(DOCS, IndexConfig(dim=16, full_dim=64, precision="int8")).save(tmp_path / "a")
    AdaptedIndex.build(DOCS[::-1].copy(), IndexConfig(dim=16, full_dim=64, precision="int8")).save(tmp_path / "b")
    full = tmp_path / "a" / "full.faiss"
    full.write_bytes(full.read_bytes()[:-100])
    with pytest.raises(InputError, match=r"a/full.faiss: \d+ bytes, expected \d+ \(config.json\): truncated"):
        AdaptedIndex.load(tmp_path / "a")
    (tmp_path / "a" / "full.faiss").write_bytes((tmp_path / "b" / "full.faiss").read_bytes())
    with pytest.raises(InputError, match="a/full.faiss: sha256 differs from config.json's"):
        AdaptedIndex.load(tmp_path / "a")
    (tmp_path / "b" / "prefix.faiss").unlink()
    with pytest.raises(InputError, match="b/prefix.faiss: missing"):
        AdaptedIndex.load(tmp_path / "b")


def test_a_failed_save_leaves_the_old_index_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = AdaptedIndex.build(DOCS, IndexConfig(dim=16, full_dim=64))
    index.save(tmp_path / "idx")
    before = {p.name: p.read_bytes() for p in (tmp_path / "idx").iterdir()}
    with pytest.raises(InputError, match="already exists: pass --overwrite"):
        index.save(tmp_path / "idx")
    monkeypatch.setattr("matryoshka_adaptor.serving.index.faiss.write_index", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        index.save(tmp_path / "idx", overwrite=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "idx").iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]


def test_queries_of_another_width_or_another_adaptor_are_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    adaptor, other = MatryoshkaAdaptor(AdaptorConfig(input_dim=64)), MatryoshkaAdaptor(AdaptorConfig(input_dim=64))
    with torch.no_grad():
        other.mlp[-1].bias.fill_(0.01)
    adaptor.save(tmp_path / "adaptor")
    index = AdaptedIndex.build(DOCS, IndexConfig(dim=16, full_dim=64), adaptor=tmp_path / "adaptor")
    assert index.config.adaptor["path"] == str(tmp_path / "adaptor")
    ids, _ = index.search_base(QUERIES, tmp_path / "adaptor")
    assert recall(ids) >= 0.97  # the adaptor at its start is the identity: same neighbours as the base vectors
    with pytest.raises(InputError, match="is not the one this index was built with"):
        index.search_base(QUERIES, other)
    with pytest.raises(InputError, match="expected .*64"):
        index.search(QUERIES[:, :32])
    with pytest.raises(InputError, match="already-adapted vectors"):
        AdaptedIndex.build(DOCS, IndexConfig(dim=16, full_dim=64)).search_base(QUERIES, adaptor)


def test_a_corpus_smaller_than_top_k_pads() -> None:
    ids, scores = AdaptedIndex.build(DOCS[:3], IndexConfig(dim=16, full_dim=64)).search(QUERIES[:2], top_k=5)
    assert ids.shape == (2, 5) and (ids[:, 3:] == -1).all() and np.isinf(scores[:, 3:]).all()
