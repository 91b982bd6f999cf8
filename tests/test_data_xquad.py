import copy
import json
import logging
from pathlib import Path

import pytest

from conftest import shared_data
from matryoshka_adaptor.data import sources
from matryoshka_adaptor.data import DATA_ROOT_ENV, load_dataset_folder
from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.data.sources import Source
from matryoshka_adaptor.data.xquad import LANGUAGES, read_xquad, split_of


def paragraph(sentences: list[str], qas: list[tuple[str, str, str]]) -> dict:
    """A paragraph as XQuAD-R writes it: sentences joined by a space, half-open spans, answers found in the context."""
    context = " ".join(sentences)
    breaks, at = [], 0
    for s in sentences:
        breaks.append([at, at + len(s)])
        at += len(s) + 1
    return {
        "context": context,
        "sentences": sentences,
        "sentence_breaks": breaks,
        "qas": [
            {"id": qid, "question": q, "answers": [{"answer_start": context.index(a), "text": a}]} for qid, q, a in qas
        ],
    }


# split_of: q1, q3 -> train; q2, q5 -> test
DATA = {
    "data": [
        {
            "title": "Cities",
            "paragraphs": [
                paragraph(["Paris is in France.", "It has the Louvre."],
                          [("q1", "Where is Paris?", "France"), ("q2", "Which museum?", "Louvre")]),
                paragraph(["Rome is old.", "Rome is old."], [("q3", "Is Rome old?", "old")]),
            ],
        },
        {"title": "Germany", "paragraphs": [paragraph([" Berlin has a wall. ", "Bonn was the capital."],
                                                        [("q5", "What was Bonn?", "capital")])]},
    ]
}


def write(tmp_path: Path, data=DATA, lang: str = "en") -> Path:
    path = tmp_path / "xquad-r" / f"{lang}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_reads_sentences_questions_and_split_qrels(tmp_path) -> None:
    path = write(tmp_path)
    ds = read_xquad(path, "xquad-r-en")
    assert ds.name == "xquad-r-en" and ds.folder == path
    assert ds.corpus == {
        "0-0-0": "Paris is in France.", "0-0-1": "It has the Louvre.",
        "0-1-0": "Rome is old.", "0-1-1": "Rome is old.",  # equal texts stay two documents
        "1-0-0": "Berlin has a wall.", "1-0-1": "Bonn was the capital.",  # stripped
    }
    assert ds.queries == {"q1": "Where is Paris?", "q2": "Which museum?", "q3": "Is Rome old?", "q5": "What was Bonn?"}
    assert ds.split_qrels == {
        "train": {"q1": {"0-0-0": 1}, "q3": {"0-1-0": 1}},
        "test": {"q2": {"0-0-1": 1}, "q5": {"1-0-1": 1}},
    }
    assert ds.qrels_path("test") == Path(f"{path}#test")


def test_load_dataset_folder_dispatches_and_resolves_the_data_root(tmp_path, monkeypatch) -> None:
    write(tmp_path, lang="de")
    assert load_dataset_folder("xquad-r-de", tmp_path).folder == tmp_path / "xquad-r" / "de.json"
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert load_dataset_folder("xquad-r-de").queries.keys() == {"q1", "q2", "q3", "q5"}


def test_split_is_a_fixed_function_of_the_id(tmp_path) -> None:
    assert [split_of(f"q{i}") for i in range(6)] == ["train", "train", "test", "train", "train", "test"]
    assert split_of("56beb4343aeaaa14008c925b") == "train" and split_of("56beb4343aeaaa14008c925c") == "test"
    # same ids in another language (other texts, other order): same split
    other = copy.deepcopy(DATA)
    other["data"].reverse()
    for article in other["data"]:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                qa["question"] = qa["question"].upper()
    a, b = read_xquad(write(tmp_path, lang="en"), "a"), read_xquad(write(tmp_path, other, lang="de"), "b")
    assert {k: set(v) for k, v in a.split_qrels.items()} == {k: set(v) for k, v in b.split_qrels.items()}


def test_a_split_without_questions_is_absent(tmp_path) -> None:
    data = {"data": [{"paragraphs": [paragraph(["Only train."], [("q1", "What?", "train")])]}]}
    ds = read_xquad(write(tmp_path, data), "x")
    assert ds.split_qrels == {"train": {"q1": {"0-0-0": 1}}}


def _set(path: str, value):
    """A change to DATA: set (or with value=KeyError, delete) the item at a /-separated path."""

    def change(d):
        *parents, last = path.split("/")
        for key in parents:
            d = d[int(key) if key.isdigit() else key]
        last = int(last) if last.isdigit() else last
        if value is KeyError:
            del d[last]
        else:
            d[last] = value

    return change


def _no_questions(d) -> None:
    for article in d["data"]:
        for p in article["paragraphs"]:
            p["qas"] = []


P = "data/0/paragraphs/0"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (_set("data", KeyError), r"en.json: missing 'data'"),
        (_set("data", {}), r"en.json: 'data' must be a list, got dict"),
        (_set("data/1/paragraphs", KeyError), r"en.json: data\[1\]: missing 'paragraphs'"),
        (_set(f"{P}/sentences", KeyError), r"data\[0\].paragraphs\[0\]: missing 'sentences'"),
        (_set(f"{P}/sentence_breaks", KeyError), r"data\[0\].paragraphs\[0\]: missing 'sentence_breaks'"),
        (_set(f"{P}/qas", KeyError), r"data\[0\].paragraphs\[0\]: missing 'qas'"),
        (_set(f"{P}/sentence_breaks/1", KeyError), r"paragraphs\[0\]: 2 sentences but 1 sentence_breaks"),
        (_set(f"{P}/sentence_breaks/1", [20, "x"]), r"entry \[20, 'x'\] is not a \[start, end\] pair"),
        (_set(f"{P}/sentences/1", None), r"paragraphs\[0\]: sentences\[1\] must be a string"),
        (_set(f"{P}/qas/1/answers/0/answer_start", 999), r"question 'q2': answer_start 999 lies outside every"),
        (_set(f"{P}/qas/1/answers/0/answer_start", 19), r"question 'q2': answer_start 19 lies outside every"),  # gap
        (_set(f"{P}/qas/1/answers/0/answer_start", "5"), r"question 'q2': answers\[0\]: 'answer_start' must be"),
        (_set(f"{P}/qas/1/answers", []), r"question 'q2': 'answers' is empty"),
        (_set(f"{P}/qas/1/question", KeyError), r"question 'q2': missing 'question'"),
        (_set(f"{P}/qas/1/id", KeyError), r"paragraphs\[0\].qas\[1\]: missing 'id'"),
        (_set("data/1/paragraphs/0/qas/0/id", "q1"), r"question 'q1': duplicate question id"),
        (_no_questions, r"en.json: no questions"),
    ],
)
def test_bad_input_names_file_question_and_expectation(tmp_path, change, match) -> None:
    data = copy.deepcopy(DATA)
    change(data)
    path = write(tmp_path, data)
    with pytest.raises(InputError, match=match) as e:
        read_xquad(path, "xquad-r-en")
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_not_json(tmp_path) -> None:
    path = write(tmp_path, '{"data": [\n  {"paragraphs": ]}')
    with pytest.raises(InputError, match=r"en.json:2: not valid JSON") as e:
        read_xquad(path, "xquad-r-en")
    assert str(path) in str(e.value)


def test_missing_file_says_where_it_looked_and_where_files_come_from(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no hub fetch is tried; this makes sure one could not succeed
    with pytest.raises(InputError, match="google-research-datasets/lareqa") as e:
        load_dataset_folder("xquad-r-th", tmp_path)
    assert str(tmp_path / "xquad-r" / "th.json") in str(e.value) and "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["xquad-r-xx", "xquad-r-", "xquad-r-EN"])
def test_unknown_language_names_the_eleven(tmp_path, name) -> None:
    with pytest.raises(InputError, match="unknown XQuAD-R language") as e:
        load_dataset_folder(name, tmp_path)
    assert ", ".join(LANGUAGES) in str(e.value) and len(LANGUAGES) == 11


class _NoEncoder:
    def __init__(self, *args, **kwargs) -> None:
        pass


def test_source_uses_in_memory_qrels_unless_a_file_is_given(tmp_path, monkeypatch, caplog) -> None:
    monkeypatch.setattr(sources, "Encoder", _NoEncoder)
    monkeypatch.setattr(sources, "embed_dataset", lambda ds, encoder: ds)
    path = write(tmp_path)
    source = Source(dataset="xquad-r-en", data_root=str(tmp_path))
    _, qrels, where = source.load("test")
    assert qrels == {"q2": {"0-0-1": 1}, "q5": {"1-0-1": 1}} and where == Path(f"{path}#test")
    _, qrels, where = source.load("dev")
    assert qrels is None and where == Path(f"{path}#dev")
    # --max_docs cuts the qrels to the kept documents, as read_qrels does for a file
    with caplog.at_level(logging.WARNING, logger="matryoshka_adaptor.data.sources"):
        _, qrels, _ = Source(dataset="xquad-r-en", data_root=str(tmp_path), max_docs=2).load("test")
    assert qrels == {"q2": {"0-0-1": 1}} and "skipped 1 query" in caplog.text
    with pytest.raises(InputError, match=r"en.json#train: no relevant document among the first 0"):
        Source(dataset="xquad-r-en", data_root=str(tmp_path), max_docs=0).load("train")
    tsv = tmp_path / "mine.tsv"
    tsv.write_text("q1\t1-0-0\t1\n")
    _, qrels, where = Source(dataset="xquad-r-en", data_root=str(tmp_path), qrels=str(tsv)).load("test")
    assert qrels == {"q1": {"1-0-0": 1}} and where == tsv


def test_real_english_file() -> None:
    path = shared_data("xquad-r/en.json")
    ds = read_xquad(path, "xquad-r-en")
    assert (len(ds.queries), len(ds.corpus)) == (1190, 1180)
    assert {k: len(v) for k, v in ds.split_qrels.items()} == {"train": 806, "test": 384}
    answers = {
        qa["id"]: qa["answers"][0]["text"]
        for article in json.loads(path.read_text(encoding="utf-8"))["data"]
        for p in article["paragraphs"]
        for qa in p["qas"]
    }
    qrels = {**ds.split_qrels["train"], **ds.split_qrels["test"]}
    assert qrels.keys() == ds.queries.keys()
    # 3 answers run past a sentence split at an abbreviation ("E.I. du Pont"): their sentence holds the answer's start
    outside = [q for q, docs in qrels.items() if answers[q] not in ds.corpus[next(iter(docs))]]
    assert len(outside) == 3
    de = read_xquad(path.with_name("de.json"), "xquad-r-de")  # parallel files: the same questions, the same splits
    assert {k: set(v) for k, v in de.split_qrels.items()} == {k: set(v) for k, v in ds.split_qrels.items()}


def test_all_languages_are_the_parts_of_one_dataset_each_judged_in_its_own_language(tmp_path) -> None:
    for lang in LANGUAGES:
        write(tmp_path, lang=lang)
    german = copy.deepcopy(DATA)  # German moves q5's answer to the first sentence of its paragraph
    german["data"][1]["paragraphs"][0] = paragraph(["Bonn war die Hauptstadt.", "Berlin hat eine Mauer."],
                                                   [("q5", "Was war Bonn?", "Hauptstadt")])
    write(tmp_path, german, lang="de")
    ds = load_dataset_folder("xquad-r-all", tmp_path)
    assert ds.partitioned and len(ds.corpus) == 6 * 11 and len(ds.queries) == 4 * 11
    assert ds.corpus["de/1-0-0"] == "Bonn war die Hauptstadt." and ds.queries["de/q5"] == "Was war Bonn?"
    assert ds.split_qrels["test"]["en/q5"] == {"en/1-0-1": 1} and ds.split_qrels["test"]["de/q5"] == {"de/1-0-0": 1}
    assert set(ds.split_qrels["train"]) == {f"{lang}/{q}" for lang in LANGUAGES for q in ("q1", "q3")}


def test_the_union_trains_as_one_partitioned_dataset_and_eval_refuses_it(tmp_path, capsys) -> None:
    import main
    from matryoshka_adaptor.eval import main as eval_main

    for lang in LANGUAGES:
        write(tmp_path, lang=lang)
    common = [f"--data_root={tmp_path}", "--dataset=xquad-r-all", "--encoder=test_encoders_blackbox:toy_encoder",
              f"--cache_dir={tmp_path / 'cache'}"]
    assert main.main([*common, f"--output_dir={tmp_path / 'models'}", "--dims=8,16,48", "--unsup_epochs=1",
                      "--sup_epochs=1"]) == 0
    saved = json.loads((tmp_path / "models" / "xquad-r-all_supervised" / "config.json").read_text())["training"]
    assert saved["partitioned"] is True and saved["n_train_queries"] + saved["n_val_queries"] == 2 * 11
    fresh = tmp_path / "fresh_cache"
    assert eval_main([*common, f"--models_dir={tmp_path / 'models'}", "--split=train", f"--cache_dir={fresh}"]) == 2
    assert "a partitioned dataset ranks each query among its own part's documents" in capsys.readouterr().err
    assert not fresh.exists()  # refused before anything was encoded
