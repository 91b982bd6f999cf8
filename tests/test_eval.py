import json
import re
import logging

import numpy as np
import pytest
import torch

from matryoshka_adaptor.config import AdaptorConfig
from matryoshka_adaptor.encoders import EmbeddedDataset
from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.eval import (
    CachedVectors,
    choose_dims,
    dims_option,
    evaluate_arrays,
    format_table,
    main,
    method_names,
    methods_to_run,
    read_benchmark,
    texts_of,
)
from matryoshka_adaptor.metrics import ndcg_at_k
from matryoshka_adaptor.model import MatryoshkaAdaptor

X = np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32)


def _embedded(base_model: str = "model-a", texts: bool = False) -> EmbeddedDataset:
    return EmbeddedDataset(
        name="tiny", base_model=base_model, doc_ids=["d1", "d2", "d3", "d4"], doc_embeddings=X[:4],
        query_ids=["q1", "q2"], query_embeddings=X[4:],
        doc_texts=["a", "b", "c", "shared"] if texts else None, query_texts=["x", "shared"] if texts else None,
    )


def test_method_names_keeps_the_order_given() -> None:
    assert method_names(" supervised, base ,pca") == ["supervised", "base", "pca"]


@pytest.mark.parametrize(("text", "message"), [("base,bm25", r"unknown \['bm25'\]"), (" , ", "none named")])
def test_method_names_refuses_unknown_or_none(text, message) -> None:
    with pytest.raises(InputError, match=rf"--methods '{text}': {message}; expected some of base, pca, pca_rotation"):
        method_names(text)


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("--methods=base,bm25", r"--methods 'base,bm25': unknown \['bm25'\]"),
        ("--dims=64,32", r"--dims '64,32': matryoshka dims \[64, 32\]: expected strictly increasing"),
        ("--dims=16,x", r"--dims '16,x': invalid literal for int\(\)"),
        ("--benchmark={bad}", r"--benchmark .*bad.json: not JSON"),
    ],
)
def test_bad_options_fail_before_any_vectors_are_loaded(tmp_path, capsys, arg, message) -> None:
    (tmp_path / "bad.json").write_text("{")
    missing = tmp_path / "no-such-vectors"  # loading would fail with a message naming this folder
    assert main([f"--embeddings={missing}", arg.format(bad=tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no-such-vectors" not in err
    assert re.search(message, err), err


def test_dims_option_checks_the_width_once_it_is_known() -> None:
    assert dims_option("16, 32,64", 64) == (16, 32, 64)
    with pytest.raises(InputError, match=r"--dims '16,128': matryoshka dims \[16, 128\]: dim 128 is larger than the embedding size 64"):
        dims_option("16,128", 64)


def test_read_benchmark(tmp_path) -> None:
    path = tmp_path / "serving_benchmark.json"
    assert read_benchmark(path) is None  # serving.py has not run: the plot has no speed panel
    path.write_text(json.dumps({"speed": [], "vectors": "random", "machine": {}}))
    assert read_benchmark(path)["vectors"] == "random"
    path.write_text(json.dumps({"speed": []}))
    with pytest.raises(InputError, match=r"serving_benchmark.json: missing \['vectors', 'machine'\]"):
        read_benchmark(path)


def test_choose_dims_is_the_smallest_dim_within_1_and_5_percent_of_base_at_full_dim() -> None:
    scores = {"base": {16: 0.5, 32: 0.9, 64: 1.0}, "adaptor": {16: 0.96, 32: 0.995, 64: 1.01}}
    choices = choose_dims(scores, (16, 32, 64))
    assert {n: (c["within_1pct"]["dim"], c["within_5pct"]["dim"]) for n, c in choices.items()} == {
        "base": (64, 64), "adaptor": (32, 16)
    }
    assert choices["adaptor"]["within_5pct"]["mb_per_million_float32"] == 64.0  # 16 float32s x 1M vectors
    assert choose_dims({"adaptor": scores["adaptor"]}, (16, 32, 64)) == {}  # nothing to compare against


def test_format_table_has_a_row_per_method_and_a_column_per_dim() -> None:
    lines = format_table({"base": {16: 0.12345, 32: 0.5}}, (16, 32)).splitlines()
    assert lines[0].split() == ["method", "16", "32"] and lines[2].split() == ["base", "0.1235", "0.5000"]


def test_texts_of_falls_back_to_ids_for_precomputed_vectors() -> None:
    assert texts_of(_embedded()) == (["doc:d1", "doc:d2", "doc:d3", "doc:d4"], ["query:q1", "query:q2"])
    assert texts_of(_embedded(texts=True))[1] == ["x", "shared"]


def test_cached_vectors_look_up_by_text_and_role() -> None:
    rows = {"document": {"a": 0, "shared": 3}, "query": {"x": 4, "shared": 5}}
    enc = CachedVectors("m", rows, X)
    np.testing.assert_array_equal(enc.encode([{"text": ["shared", "x"]}], prompt_type="query"), X[[5, 4]])
    np.testing.assert_array_equal(enc.encode([{"text": ["shared"]}, {"text": ["a"]}]), X[[3, 0]])
    with pytest.raises(InputError, match=r"MTEB asked for a query text that was not embedded: 'a'"):
        enc.encode([{"text": ["a"]}], prompt_type="query")


def test_methods_to_run_skips_a_missing_adaptor_and_refuses_another_models(tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        methods = methods_to_run(_embedded(), tmp_path, ["base", "supervised"])
    assert list(methods) == ["base"] and "tiny_supervised: not found" in caplog.text
    np.testing.assert_allclose(np.linalg.norm(methods["base"](X, 3), axis=1), 1.0, rtol=1e-6)
    MatryoshkaAdaptor(AdaptorConfig(input_dim=8, base_model="model-b")).save(tmp_path / "tiny_unsupervised")
    with pytest.raises(InputError, match=r"tiny_unsupervised: adapts model-b vectors, these are model-a's"):
        methods_to_run(_embedded(), tmp_path, ["unsupervised"])


def test_evaluate_arrays_scores_baselines_and_adaptors_as_trec_eval_does() -> None:
    rng = np.random.default_rng(1)
    docs = rng.standard_normal((60, 8)).astype(np.float32)
    queries = docs[:12] + 0.8 * rng.standard_normal((12, 8)).astype(np.float32)
    qrels = {i: {i: 1, (i + 12) % 60: 2} for i in range(12)}
    adaptor = MatryoshkaAdaptor(AdaptorConfig(input_dim=8, hidden_dim=16, input_rotation="none"))
    scores = evaluate_arrays(docs, queries, qrels, {"mine": adaptor}, dims=(4, 8), baselines=("base", "pca"))
    assert list(scores) == ["base", "pca", "mine"] and all(list(s) == [4, 8] for s in scores.values())
    # the base model at full width, by metrics.ndcg_at_k (trec_eval's definition), the validation path's own nDCG
    cos = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ (docs / np.linalg.norm(docs, axis=1, keepdims=True)).T
    relevance = torch.zeros((12, 60))
    for q, judged in qrels.items():
        for d, y in judged.items():
            relevance[q, d] = y
    assert scores["base"][8] == pytest.approx(ndcg_at_k(torch.from_numpy(cos), relevance), abs=1e-4)
    assert scores["mine"][8] == pytest.approx(scores["base"][8], abs=1e-4)  # f starts at zero: the identity


@pytest.mark.parametrize(("qrels", "kw", "match"), [
    ({0: {0: 0.5}}, {}, r"query 0, document 0: relevance 0.5, expected an integer"),
    ({0: {9: 1}}, {}, r"document 9: expected a row of the document vectors, 0..5"),
    ({0: {0: 1}}, {"baselines": ("bm25",)}, r"unknown \['bm25'\]"),
    ({0: {0: 1}}, {"adaptors": {"base": None}}, r"\['base'\] also name adaptors"),
    ({0: {0: 1}}, {"dims": (16,)}, r"dims \(16,\)"),
])
def test_evaluate_arrays_refuses_bad_input_naming_it(qrels, kw, match) -> None:
    with pytest.raises(InputError, match=match):
        evaluate_arrays(X, X[:2], qrels, **kw)
