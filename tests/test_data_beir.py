import json
import logging
import sys
from pathlib import Path

import pytest

from matryoshka_adaptor.data import (
    DATA_ROOT_ENV,
    document_text,
    load_dataset_folder,
    read_corpus,
    read_qrels,
    resolve_data_root,
)
from matryoshka_adaptor.errors import InputError

DOCS = [
    {"_id": "d1", "title": "Title", "text": "body one"},
    {"_id": "d2", "title": "", "text": " body two "},
    {"_id": "d3", "text": "no title\n"},
    {"_id": 4, "title": None, "text": "null title"},
]
QRELS = "query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\nq1\td2\t0\r\nq2\td3\t2\r\n"


def write_beir(root: Path, corpus_lines=None, qrels_text=QRELS) -> Path:
    folder = root / "tiny"
    (folder / "qrels").mkdir(parents=True)
    lines = corpus_lines if corpus_lines is not None else [json.dumps(d) for d in DOCS]
    (folder / "corpus.jsonl").write_text("".join(line + "\n" for line in lines))
    queries = [{"_id": "q1", "text": "a claim"}, {"_id": "q2", "text": "another"}]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels" / "train.tsv").write_bytes(qrels_text.encode())
    return folder


def test_reads_a_good_folder_with_crlf_qrels_and_a_header(tmp_path) -> None:
    write_beir(tmp_path)
    ds = load_dataset_folder("tiny", tmp_path)
    assert ds.name == "tiny" and ds.folder == tmp_path / "tiny"
    assert ds.corpus == {"d1": "Title body one", "d2": "body two", "d3": "no title", "4": "null title"}
    assert ds.queries == {"q1": "a claim", "q2": "another"}
    assert ds.qrels_path("train").is_file() and not ds.qrels_path("test").is_file()
    assert read_qrels(ds.qrels_path("train"), set(ds.queries), set(ds.corpus)) == {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}}


@pytest.mark.parametrize(
    ("title", "text", "expected"),
    [("T", "body", "T body"), ("", " body ", "body"), (" T ", "body ", "T  body"), ("T", "", "T")],
)
def test_document_text(title: str, text: str, expected: str) -> None:
    assert document_text(title, text) == expected


def test_qrels_without_header(tmp_path) -> None:
    folder = write_beir(tmp_path, qrels_text="q1\td1\t1\nq1\td2\t0\n")
    assert read_qrels(folder / "qrels" / "train.tsv", {"q1"}, {"d1", "d2"}) == {"q1": {"d1": 1, "d2": 0}}


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        (['{"_id": "d1", "text": "ok"}', "{not json"], r"corpus.jsonl:2: not valid JSON"),
        (['{"text": "no id"}'], r"corpus.jsonl:1: missing field\(s\) _id"),
        (['{"_id": "d1", "text": "ok"}', "", '{"_id": "d2"}'], r"corpus.jsonl:3: missing field\(s\) text"),
        (['{"_id": "d1", "text": "a"}', '{"_id": "d1", "text": "b"}'], r"corpus.jsonl:2: duplicate _id 'd1'"),
        (['["d1", "text"]'], r"corpus.jsonl:1: expected a JSON object, got list"),
        (['{"_id": "d1", "text": 5}'], r"corpus.jsonl:1: 'text' and 'title' must be strings"),
        ([], r"corpus.jsonl: empty"),
        (["", "  "], r"corpus.jsonl: empty"),
    ],
)
def test_bad_corpus_lines_name_file_and_line(tmp_path, lines, match) -> None:
    folder = write_beir(tmp_path, corpus_lines=lines)
    with pytest.raises(InputError, match=match) as e:
        read_corpus(folder / "corpus.jsonl")
    assert str(folder / "corpus.jsonl") in str(e.value)


def test_missing_corpus_file(tmp_path) -> None:
    with pytest.raises(InputError, match="corpus.jsonl: file not found") as e:
        read_corpus(tmp_path / "corpus.jsonl")
    assert str(tmp_path) in str(e.value)


def test_folder_without_corpus_file(tmp_path) -> None:
    (write_beir(tmp_path) / "corpus.jsonl").unlink()
    with pytest.raises(InputError, match=r"tiny/corpus.jsonl: file not found; expected a BEIR folder"):
        load_dataset_folder("tiny", tmp_path)


@pytest.mark.parametrize(
    ("qrels", "match"),
    [
        ("query-id\tcorpus-id\tscore\nq1\td1\thigh\n", r"train.tsv:2: score 'high' is not an integer"),
        ("q1\td1\t1\nq1\td1\t0.5\n", r"train.tsv:2: score '0.5' is not an integer"),
        ("q1\td1\t1\nq1\td1\n", r"train.tsv:2: expected 3 tab-separated fields"),
        ("query-id\tcorpus-id\tscore\n", r"train.tsv: no usable"),
    ],
)
def test_bad_qrels_name_file_line_and_value(tmp_path, qrels: str, match: str) -> None:
    folder = write_beir(tmp_path, qrels_text=qrels)
    with pytest.raises(InputError, match=match):
        read_qrels(folder / "qrels" / "train.tsv", {"q1"}, {"d1"})


def test_missing_qrels_file(tmp_path) -> None:
    with pytest.raises(InputError, match="test.tsv: file not found"):
        read_qrels(tmp_path / "test.tsv", {"q1"}, {"d1"})


def test_unknown_qrels_ids_are_skipped_and_counted(tmp_path, caplog) -> None:
    folder = write_beir(tmp_path, qrels_text="q1\td1\t1\nq9\td1\t1\nq1\td9\t1\n")
    with caplog.at_level(logging.WARNING, logger="matryoshka_adaptor.data"):
        assert read_qrels(folder / "qrels" / "train.tsv", {"q1"}, {"d1"}) == {"q1": {"d1": 1}}
    assert "skipped 2 pair(s)" in caplog.text
    assert [r.levelno for r in caplog.records] == [logging.WARNING]


def test_known_qrels_ids_log_nothing(tmp_path, caplog) -> None:
    folder = write_beir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="matryoshka_adaptor.data"):
        read_qrels(folder / "qrels" / "train.tsv", {"q1", "q2"}, {"d1", "d2", "d3"})
    assert caplog.records == []


def test_missing_dataset_offline_says_where_it_looked(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # both libraries read these at import: if another test imported them first, switch them off here too
    for module, name in [
        ("huggingface_hub.constants", "HF_HUB_OFFLINE"),
        ("datasets.config", "HF_HUB_OFFLINE"),
        ("datasets.config", "HF_DATASETS_OFFLINE"),
    ]:
        if hasattr(sys.modules.get(module), name):
            monkeypatch.setattr(sys.modules[module], name, True)
    with pytest.raises(InputError, match="mteb/nosuch") as e:
        load_dataset_folder("nosuch", tmp_path)
    assert str(tmp_path / "nosuch" / "corpus.jsonl") in str(e.value)
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []  # no half-written dataset or temp folder left behind


def test_data_root_resolution(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    assert resolve_data_root() == Path("data")
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert resolve_data_root() == tmp_path
    assert resolve_data_root("elsewhere") == Path("elsewhere")
    assert resolve_data_root(tmp_path / "x") == tmp_path / "x"
