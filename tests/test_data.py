import json
import logging

import pytest

from matryoshka_adaptor.data import DATA_ROOT_ENV, load_dataset_folder, read_corpus, read_qrels, resolve_data_root
from matryoshka_adaptor.errors import InputError


def write_beir(root, corpus_lines=None, qrels_text=None):
    folder = root / "tiny"
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": "d1", "title": "Title", "text": "body one"}, {"_id": "d2", "title": "", "text": " body two "}]
    lines = corpus_lines if corpus_lines is not None else [json.dumps(d) for d in docs]
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "a claim"}) + "\n")
    qrels = qrels_text if qrels_text is not None else "query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\nq1\td2\t0\r\n"
    (folder / "qrels" / "train.tsv").write_bytes(qrels.encode())
    return folder


def test_reads_a_good_folder_with_crlf_qrels(tmp_path) -> None:
    write_beir(tmp_path)
    ds = load_dataset_folder("tiny", tmp_path)
    assert ds.corpus == {"d1": "Title body one", "d2": "body two"}
    assert ds.queries == {"q1": "a claim"}
    assert ds.qrels("train") == {"q1": {"d1": 1, "d2": 0}}


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        (['{"_id": "d1", "text": "ok"}', "{not json"], r"corpus.jsonl:2: not valid JSON"),
        (['{"text": "no id"}'], r"corpus.jsonl:1: missing field\(s\) _id"),
        (['{"_id": "d1"}'], r"corpus.jsonl:1: missing field\(s\) text"),
        (['{"_id": "d1", "text": "a"}', '{"_id": "d1", "text": "b"}'], r"corpus.jsonl:2: duplicate _id 'd1'"),
        ([], r"corpus.jsonl: empty"),
    ],
)
def test_bad_corpus_lines_name_file_and_line(tmp_path, lines, match) -> None:
    folder = write_beir(tmp_path, corpus_lines=lines)
    with pytest.raises(InputError, match=match):
        read_corpus(folder / "corpus.jsonl")


def test_missing_corpus_file(tmp_path) -> None:
    with pytest.raises(InputError, match="corpus.jsonl: file not found"):
        read_corpus(tmp_path / "corpus.jsonl")


def test_bad_qrels_score_names_line_and_value(tmp_path) -> None:
    folder = write_beir(tmp_path, qrels_text="query-id\tcorpus-id\tscore\nq1\td1\thigh\n")
    with pytest.raises(InputError, match=r"train.tsv:2: score 'high' is not an integer"):
        read_qrels(folder / "qrels" / "train.tsv", {"q1"}, {"d1"})


def test_unknown_qrels_ids_are_skipped_and_counted(tmp_path, caplog) -> None:
    folder = write_beir(tmp_path, qrels_text="q1\td1\t1\nq9\td1\t1\nq1\td9\t1\n")
    with caplog.at_level(logging.WARNING):
        assert read_qrels(folder / "qrels" / "train.tsv", {"q1"}, {"d1"}) == {"q1": {"d1": 1}}
    assert "skipped 2 pair(s)" in caplog.text


def test_missing_dataset_offline_says_where_it_looked(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(InputError, match=f"{tmp_path / 'nosuch' / 'corpus.jsonl'}.*mteb/nosuch") as e:
        load_dataset_folder("nosuch", tmp_path)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "nosuch").exists()


def test_data_root_resolution(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    assert str(resolve_data_root()) == "data"
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert resolve_data_root() == tmp_path
    assert str(resolve_data_root("elsewhere")) == "elsewhere"
