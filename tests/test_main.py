import builtins
import io
import json
import os
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch

import main
from conftest import SCIFACT_SLICE, shared_data
from matryoshka_adaptor.data.synthetic import write_synthetic_folder
from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.model import MatryoshkaAdaptor
from matryoshka_adaptor.train import TrainConfig, fit


def test_overrides_take_the_type_of_their_default() -> None:
    run, config = main.parse_args(["--dims=16,64", "--seed=3", "--sup_lr=1e-3", "--overwrite", "--max_docs=10", "--data-root=/x"])
    assert config.dims == (16, 64) and config.seed == 3 and config.sup_lr == 1e-3
    assert run["overwrite"] is True and run["max_docs"] == 10 and run["data_root"] == "/x"


@pytest.mark.parametrize(("arg", "match"), [("--nope=1", "unknown key 'nope'"), ("--seed=abc", "cannot read 'abc'"), ("seed=1", "expected --key=value"), ("--overwrite=maybe", "true or false")])
def test_bad_arguments(arg: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        main.parse_args([arg])


def test_unknown_stage_is_refused_before_any_work(tmp_path) -> None:
    run, config = main.parse_args([f"--output_dir={tmp_path}", "--stages=unsupervised,finetune"])
    with pytest.raises(InputError, match="'finetune' is not one of"):
        main.train(run, config)


def test_named_dataset_config_applies_before_overrides() -> None:
    _, config = main.parse_args(["--dataset=hotpotqa", "--sup_epochs=5"])
    assert config.train_corpus_size == 50_000 and config.patience == config.sup_patience == 3 and config.sup_epochs == 5
    assert main.parse_args([])[1].train_corpus_size is None


def test_bad_line_at_one_million_fails_before_training_and_touches_nothing(tmp_path, capsys) -> None:
    """A corpus with a bad line at line 1,000,000: one line naming it, exit 2, the cache and saved models intact."""
    folder = tmp_path / "data" / "big"
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as f:
        f.writelines(f'{{"_id": "d{i}", "title": "", "text": "document {i}"}}\n' for i in range(1, 1_000_000))
        f.write('{"_id": "d1000000", "title": "", "text": "cut off\n')
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "a query"}\n')
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    saved, cache = tmp_path / "models" / "big_unsupervised", tmp_path / "cache" / "somekey"
    for path in (saved, cache):
        path.mkdir(parents=True)
        (path / "file.bin").write_bytes(b"precious")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and "data" not in p.parts}

    code = main.main([f"--data_root={tmp_path / 'data'}", "--dataset=big", f"--output_dir={tmp_path / 'models'}",
                      f"--cache_dir={tmp_path / 'cache'}", "--overwrite"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith(f"error: {folder / 'corpus.jsonl'}:1000000: not valid JSON")
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and "data" not in p.parts}
    assert after == before


def test_help_lists_only_config_keys_each_with_its_comment(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as stop:
        main.parse_args(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    keys = [line.split()[0].split("=")[0][2:] for line in text.splitlines() if line.startswith("  --")]
    assert keys == main.RUN_KEYS + [f.name for f in fields(TrainConfig)]
    assert "STATE_FILE" not in text and "EVAL_SPLIT" not in text
    for line in text.splitlines():
        if line.startswith("  --"):
            assert len(line.split(maxsplit=1)) == 2, f"no help comment: {line}"
    assert "$MATRYOSHKA_DATA_ROOT" in text and "matryoshka_adaptor/eval.py" in text
    with pytest.raises(InputError, match="unknown key 'STATE_FILE'"):
        main.parse_args(["--STATE_FILE=x"])


def test_training_on_the_evaluated_split_is_refused() -> None:
    run, config = main.parse_args(["--train_split=test"])
    with pytest.raises(InputError, match="--train_split=test: that is the split eval.py scores"):
        main.train(run, config)


def test_training_never_opens_the_test_qrels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, minilm_cache: Path) -> None:
    """The SciFact slice with its real test qrels planted as a trap: main.py trains normally, and no file it
    opens (Python's open, which pathlib, csv, json and numpy go through) is the trap."""
    source = shared_data("scifact")
    data = tmp_path / "data" / "scifact"
    (data / "qrels").mkdir(parents=True)
    docs = (source / "corpus.jsonl").read_text().splitlines(keepends=True)[:SCIFACT_SLICE]
    doc_ids = {json.loads(line)["_id"] for line in docs}
    train = [l for l in (source / "qrels" / "train.tsv").read_text().splitlines(keepends=True)[1:] if l.split("\t")[1] in doc_ids]
    (data / "corpus.jsonl").write_text("".join(docs))
    shutil.copy(source / "queries.jsonl", data / "queries.jsonl")  # all of them, as the shared cache holds
    (data / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(train))
    trap = data / "qrels" / "test.tsv"
    shutil.copy(source / "qrels" / "test.tsv", trap)
    opened: list[str] = []
    real_open = io.open

    def recording_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)):
            opened.append(os.path.realpath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", recording_open)
    monkeypatch.setattr(io, "open", recording_open)
    args = [f"--data_root={tmp_path / 'data'}", f"--cache_dir={minilm_cache}", f"--output_dir={tmp_path / 'models'}",
            "--unsup_epochs=2", "--sup_epochs=2", "--probe_docs=50"]
    assert main.main(args) == 0
    assert (tmp_path / "models" / "scifact_supervised" / "config.json").is_file()
    assert str(data / "qrels" / "train.tsv") in opened  # the recording works: it saw the training qrels
    assert str(trap) not in opened


def test_main_on_a_vectors_folder_trains_what_fit_trains_on_the_arrays(tmp_path) -> None:
    folder = write_synthetic_folder(tmp_path / "vectors", n_docs=150, n_queries=40, dim=16, seed=4)
    small = {"dims": "4,8,16", "hidden_dim": 32, "unsup_epochs": 2, "sup_epochs": 3, "topk": 3, "sup_batch_size": 8}
    main.main([f"--embeddings={folder}", f"--qrels={folder / 'qrels.tsv'}", f"--output_dir={tmp_path / 'models'}",
               "--device=cpu", "--seed=5", *(f"--{k}={v}" for k, v in small.items())])
    rows: dict[int, dict[int, float]] = {}
    for line in (folder / "qrels.tsv").read_text().splitlines()[1:]:
        q, d, y = line.split("\t")
        rows.setdefault(int(q[1:]), {})[int(d[1:])] = float(y)
    config = TrainConfig(**{**small, "dims": (4, 8, 16)}, seed=5)
    fitted = fit(np.load(folder / "corpus.npy"), np.load(folder / "queries.npy"), rows, config, device="cpu")
    for stage, adaptor in fitted.items():
        saved = MatryoshkaAdaptor.load(tmp_path / "models" / f"vectors_{stage}")
        for name, tensor in adaptor.state_dict().items():
            assert torch.equal(tensor, saved.state_dict()[name]), (stage, name)
