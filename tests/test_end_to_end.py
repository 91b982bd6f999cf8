"""One small real run: MiniLM embeddings of a SciFact slice, both training stages, then the MTEB evaluation.

Needs SciFact in BEIR layout under $MATRYOSHKA_DATA_ROOT (CI points it at ../shared/data/beir).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

import main
from conftest import SCIFACT_SLICE, shared_data
from matryoshka_adaptor import MatryoshkaAdaptor
from matryoshka_adaptor.data import DATA_ROOT_ENV, load_dataset_folder
from matryoshka_adaptor.eval import main as eval_main

DATA_ROOT = os.environ.get(DATA_ROOT_ENV)


@pytest.fixture(scope="module", autouse=True)
def scifact() -> Path:
    return shared_data("scifact/corpus.jsonl")


MAX_DOCS = SCIFACT_SLICE


def _args(tmp: Path, *extra: str) -> list[str]:
    return [
        f"--data-root={DATA_ROOT}",
        f"--max_docs={MAX_DOCS}",
        f"--cache_dir={tmp / 'cache'}",
        f"--output_dir={tmp / 'models'}",
        "--unsup_epochs=2",
        "--sup_epochs=20",
        "--sup_patience=10",  # on this slice the held-out gain comes slowly: 5 epochs past epoch 10 end short of it
        "--val_fraction=0.25",
        "--seed=7",
        *extra,
    ]


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, minilm_cache: Path) -> Path:
    tmp = tmp_path_factory.mktemp("e2e")
    (tmp / "cache").symlink_to(minilm_cache, target_is_directory=True)  # the session's cache of the slice (conftest)
    assert main.main(_args(tmp)) == 0
    return tmp


def test_training_writes_both_adaptors_with_their_config(trained: Path) -> None:
    for stage in ("unsupervised", "supervised"):
        folder = trained / "models" / f"scifact_{stage}"
        config = json.loads((folder / "config.json").read_text())
        assert config["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
        assert config["input_dim"] == 384
        assert config["training"]["dataset"] == "scifact"
        assert config["training"]["config"]["seed"] == 7
        assert config["training"]["n_documents"] == MAX_DOCS
        assert [s["stage"] for s in config["training"]["stages"]][-1] == stage

def test_supervised_adaptor_beats_the_base_model_on_held_out_queries(trained: Path) -> None:
    """Training must help where it must: on the held-out validation queries (never trained on), the supervised
    stage passes its paired test, and its kept epoch beats the base model truncated to 16 and 32 dims by 0.05."""
    log = json.loads((trained / "models" / "scifact_supervised" / "config.json").read_text())["training"]["stages"][-1]
    assert log["test"]["accepted"] and log["best_epoch"] > 0
    kept, base = log["val_ndcg_at_10"][log["best_epoch"]], log["base_ndcg_at_10"]
    assert kept[0] > base[0] + 0.05 and kept[1] > base[1] + 0.05, (kept, base)


def test_second_run_encodes_nothing_and_repeats_bit_for_bit(trained: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert main.main(_args(trained, f"--output_dir={trained / 'again'}")) == 0
    assert "nothing encoded" in caplog.text
    assert "encoding " not in caplog.text
    for stage in ("unsupervised", "supervised"):
        first, second = trained / "models" / f"scifact_{stage}", trained / "again" / f"scifact_{stage}"
        assert _digest(first)["model.safetensors"] == _digest(second)["model.safetensors"]  # the weights' bytes


def test_refuses_to_overwrite_and_leaves_saved_models_intact(trained: Path, capsys: pytest.CaptureFixture) -> None:
    folder = trained / "models" / "scifact_supervised"
    before = _digest(folder)
    assert main.main(_args(trained)) == 2
    assert "already exists" in capsys.readouterr().err
    assert _digest(folder) == before


def test_bad_override_is_a_one_line_error(trained: Path, capsys: pytest.CaptureFixture) -> None:
    assert main.main(_args(trained, "--dims=64,32")) == 2
    err = capsys.readouterr().err.strip()
    assert "64, 32" in err and "increasing" in err and "\n" not in err
    assert main.main(["--no_such_key=1"]) == 2
    assert "no_such_key" in capsys.readouterr().err


def test_mteb_evaluation_writes_results_and_plot(trained: Path, capsys: pytest.CaptureFixture) -> None:
    out = trained / "eval"
    code = eval_main(
        [
            f"--data-root={DATA_ROOT}",
            f"--max-docs={MAX_DOCS}",
            f"--cache-dir={trained / 'cache'}",
            f"--models-dir={trained / 'models'}",
            "--dims=32,128,384",
            f"--results-dir={out}",
            f"--plots-dir={out}",
        ]
    )
    assert code == 0
    results = json.loads((out / "eval_results_scifact.json").read_text())
    scores = results["scores"]
    assert set(scores) == {"base", "pca", "pca_rotation", "centred_rotation", "unsupervised", "supervised"}
    assert all(0.0 <= v <= 1.0 for by_dim in scores.values() for v in by_dim.values())
    # an orthogonal rotation keeps every full-dim cosine, so MTEB must score it exactly as the base model
    assert scores["pca_rotation"]["384"] == pytest.approx(scores["base"]["384"], abs=1e-4)
    assert scores["centred_rotation"]["384"] == pytest.approx(scores["base"]["384"], abs=1e-4)
    assert (out / "eval_results_scifact.png").stat().st_size > 10_000
    assert (out / "shortlist_rerank_scifact.png").stat().st_size > 10_000
    assert (out / "frontier_scifact.png").stat().st_size > 10_000
    plans = {(r["dim"], r["precision"], r["rescore"]): r["ndcg_at_10"] for r in results["search_plans"]["supervised"]}
    # one-stage float32 search goes through the serving index: it must agree with MTEB's nDCG@10
    for dim in ("32", "128", "384"):
        assert plans[int(dim), "float32", False] == pytest.approx(scores["supervised"][dim], abs=2e-3)
    best = results["best_plan_per_budget"]["supervised"]["64"]["index_only"]
    assert best["bytes_per_vector"] <= 64 and best["ndcg_at_10"] >= plans[32, "int8", False]
    assert set(results["choose_dim"]["supervised"]) == {"within_1pct", "within_5pct"}
    printed = capsys.readouterr().out
    assert "supervised" in printed and "best plan per budget" in printed


def test_numpy_inference_and_sentence_transformers_export_match_transform(trained: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from matryoshka_adaptor import NumpyAdaptor
    from matryoshka_adaptor.encoders import DEFAULT_MODEL, resolve_model_path
    from matryoshka_adaptor.export import main as export_main

    folder = trained / "models" / "scifact_supervised"
    texts = list(load_dataset_folder("scifact", DATA_ROOT).queries.values())[:40]
    base = SentenceTransformer(resolve_model_path(DEFAULT_MODEL), device="cpu").encode(texts)
    adaptor = MatryoshkaAdaptor.load(folder)
    np.testing.assert_allclose(NumpyAdaptor.load(folder).transform(base), adaptor.transform(base), atol=1e-5)

    assert export_main([str(folder), str(trained / "st")]) == 0
    exported = SentenceTransformer(str(trained / "st"), truncate_dim=64, device="cpu")  # no trust_remote_code
    got = exported.encode(texts)
    want = adaptor.transform(base, dim=64)
    cosines = (got * want).sum(axis=1) / np.linalg.norm(got, axis=1)
    assert got.shape == (40, 64) and cosines.min() > 0.9999


def test_bring_your_own_embeddings(trained: Path) -> None:
    """Vectors from files, no model: train and evaluate with --embeddings and --qrels."""
    from matryoshka_adaptor.encoders import Encoder, embed_dataset

    ds = load_dataset_folder("scifact", DATA_ROOT)
    ds.corpus = dict(list(ds.corpus.items())[:MAX_DOCS])
    embedded = embed_dataset(ds, Encoder(cache_dir=trained / "cache"))  # cached by the first run
    own = trained / "own"
    own.mkdir()
    np.save(own / "corpus.npy", embedded.doc_embeddings)
    (own / "corpus_ids.txt").write_text("\n".join(embedded.doc_ids) + "\n")
    np.save(own / "queries.npy", embedded.query_embeddings)
    (own / "queries_ids.txt").write_text("\n".join(embedded.query_ids) + "\n")
    qrels = Path(DATA_ROOT) / "scifact" / "qrels"
    args = _args(trained, f"--embeddings={own}", f"--qrels={qrels / 'train.tsv'}", f"--output_dir={trained / 'own_models'}")
    assert main.main(args) == 0
    for stage in ("unsupervised", "supervised"):  # same vectors, same seed: the same adaptors as the text run
        x = embedded.doc_embeddings[:20]
        np.testing.assert_allclose(
            MatryoshkaAdaptor.load(trained / "own_models" / f"own_{stage}").transform(x),
            MatryoshkaAdaptor.load(trained / "models" / f"scifact_{stage}").transform(x),
            atol=1e-5,
        )
    out = trained / "own_eval"
    code = eval_main(
        [f"--embeddings={own}", f"--qrels={qrels / 'test.tsv'}", f"--models-dir={trained / 'own_models'}", "--dims=64,384",
         f"--results-dir={out}", f"--plots-dir={out}"]
    )
    assert code == 0
    assert set(json.loads((out / "eval_results_own.json").read_text())["scores"]) >= {"base", "supervised"}


def _adapted_slice(trained: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The SciFact slice's supervised-adapted documents and queries, from the cache training filled."""
    from matryoshka_adaptor.data.sources import Source

    embedded, _, _ = Source(dataset="scifact", data_root=DATA_ROOT, max_docs=MAX_DOCS, cache_dir=str(trained / "cache")).load("test")
    adaptor = MatryoshkaAdaptor.load(trained / "models" / "scifact_supervised")
    return adaptor.transform(embedded.doc_embeddings), adaptor.transform(embedded.query_embeddings), embedded.doc_ids


def test_qdrant_prefetch_then_rescore_returns_the_faiss_index_top_10(trained: Path) -> None:
    from matryoshka_adaptor.serving import AdaptedIndex, IndexConfig
    from matryoshka_adaptor.serving.qdrant import QdrantFunnel

    docs, queries, doc_ids = _adapted_slice(trained)
    faiss_ids, faiss_scores = AdaptedIndex.build(docs, IndexConfig(dim=64, full_dim=384)).search(queries, 10, shortlist=50)
    funnel = QdrantFunnel.connect(":memory:", "scifact", dim=64, full_dim=384)  # qdrant-client's local mode
    funnel.ingest(docs, doc_ids)
    qdrant_ids, qdrant_scores = funnel.search(queries, 10, shortlist=50)
    assert np.array_equal(qdrant_ids, faiss_ids)
    assert np.allclose(qdrant_scores, faiss_scores, atol=1e-4)


def test_index_command_line_builds_saves_and_answers_a_text_query(trained: Path, capsys: pytest.CaptureFixture) -> None:
    from matryoshka_adaptor.serving import AdaptedIndex
    from matryoshka_adaptor.serving.__main__ import main as serving_main

    out = trained / "index"
    build = [f"--data-root={DATA_ROOT}", f"--max-docs={MAX_DOCS}", f"--cache-dir={trained / 'cache'}", f"--out={out}",
             f"--adaptor={trained / 'models' / 'scifact_supervised'}", "--dim=64", "--precision=int8", "--index=hnsw"]
    assert serving_main(["build", *build]) == 0
    assert AdaptedIndex.load(out).config.n_vectors == MAX_DOCS
    assert serving_main(["build", *build]) == 2  # an existing index is never overwritten without --overwrite
    assert "already exists" in capsys.readouterr().err
    doc_ids = AdaptedIndex.load(out).doc_ids
    opening = next(iter(load_dataset_folder("scifact", DATA_ROOT).corpus.values()))[:300]
    assert serving_main(["query", f"--index={out}", f"--text={opening}", "--top-k=3", f"--cache-dir={trained / 'cache'}"]) == 0
    assert f"1. {doc_ids[0]} " in capsys.readouterr().out  # a document's own opening finds it first
    (out / "prefix.faiss").write_bytes(b"")
    assert serving_main(["query", f"--index={out}", "--text=x"]) == 2
    assert "prefix.faiss: 0 bytes, expected" in capsys.readouterr().err
