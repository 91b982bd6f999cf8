import pytest

from matryoshka_adaptor.errors import InputError, run_command


def _raise(error: Exception):
    def action() -> None:
        raise error

    return action


def test_bad_input_is_one_line_on_stderr_and_exit_code_2(capsys) -> None:
    assert run_command(_raise(InputError("corpus.jsonl:3: missing field(s) text"))) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: corpus.jsonl:3: missing field(s) text\n" and captured.out == ""


def test_success_is_exit_code_0(capsys) -> None:
    assert run_command(lambda: None) == 0
    assert capsys.readouterr().err == ""


def test_a_bug_is_not_dressed_as_bad_input() -> None:
    with pytest.raises(ZeroDivisionError):  # a traceback, not a one-line "error:"
        run_command(_raise(ZeroDivisionError("bug")))
