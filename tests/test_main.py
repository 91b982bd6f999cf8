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
