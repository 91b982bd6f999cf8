import pytest

import main
from matryoshka_adaptor.errors import InputError


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
    assert config.train_corpus_size == 50_000 and config.sup_epochs == 5
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
