"""Per-epoch checkpoints: a training run killed with SIGKILL at a random point and resumed with --resume ends
with the same adaptor files, byte for byte, as an uninterrupted run."""

import json
import random
import signal
import socket
from pathlib import Path

import pytest
import torch
from killing import RUN_MAIN, RUN_TORCHRUN, finish, kill_at_random, log_tail, run_python, start_python, wait_until

from matryoshka_adaptor.training.checkpoint import FORMAT, STATE_FILE, Checkpointer
from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.data.synthetic import write_synthetic_folder

STAGES = ("unsupervised", "supervised")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_folder(tmp_path_factory.mktemp("synthetic"), n_docs=1500, n_queries=150, dim=64)


def main_args(folder: Path, out: Path) -> list[str]:
    return [f"--embeddings={folder}", f"--qrels={folder / 'qrels.tsv'}", f"--output_dir={out}", "--hidden_dim=128",
            "--unsup_epochs=4", "--sup_epochs=6", "--unsup_batch_size=64", "--sup_batch_size=16", "--max_dim_drop=1.0",
            "--threads=1"]


def adaptor_files(out: Path, name: str) -> dict[str, bytes]:
    return {s: (out / f"{name}_{s}" / "model.safetensors").read_bytes() for s in STAGES}


def training_logs(out: Path, name: str) -> dict[str, list[dict]]:
    """Each saved adaptor's stage logs (losses, validation scores, kept epochs, tests), timings aside."""
    logs = {}
    for s in STAGES:
        stages = json.loads((out / f"{name}_{s}" / "config.json").read_text())["training"]["stages"]
        logs[s] = [{k: v for k, v in log.items() if k not in ("seconds", "resumed")} for log in stages]
    return logs


def after_first_checkpoint(code: str, *args: str, log: Path, state: Path) -> float:
    """Run to completion: the seconds from its first epoch checkpoint (`state`) to that checkpoint's removal once
    the last stage is saved, the span in which a kill of a repeat run interrupts training (start-up and exit
    excluded: their share of a run differs with the machine and process count, and a kill during the exit finds
    no checkpoint to resume from)."""
    proc = start_python(code, *args, log=log)
    first = wait_until(state.exists, proc, log)
    last = wait_until(lambda: not state.exists(), proc, log)
    finish(proc, log)
    return last - first


def state_file(out: Path, folder: Path) -> Path:
    """Where main.py --output_dir=out keeps the epoch checkpoint of a run on `folder`."""
    return out / "checkpoints" / folder.name / STATE_FILE


def test_killed_training_resumes_to_the_same_adaptor(folder: Path, tmp_path: Path, rng: random.Random) -> None:
    whole = tmp_path / "whole"
    span = after_first_checkpoint(RUN_MAIN, *main_args(folder, whole), log=tmp_path / "whole.log",
                                  state=state_file(whole, folder))

    out, log = tmp_path / "killed", tmp_path / "killed.log"
    state = state_file(out, folder)
    code, delay = kill_at_random(RUN_MAIN, *main_args(folder, out), log=log, ready=state.exists,
                                 window=(0.0, 0.5 * span), rng=rng)  # in the first half of what follows it
    assert code == -signal.SIGKILL, f"the run ended before the kill ({delay:.2f} s after its first checkpoint)"
    killed_at = torch.load(state, weights_only=False)
    run_python(RUN_MAIN, *main_args(folder, out), "--resume", log=log)
    assert f"resuming from {state}: stage {killed_at['stage']}, epoch {killed_at['epoch']}" in log_tail(log, 10**6)
    assert adaptor_files(out, folder.name) == adaptor_files(tmp_path / "whole", folder.name)
    assert training_logs(out, folder.name) == training_logs(tmp_path / "whole", folder.name)
    assert not state.parent.parent.exists()  # removed once the run is complete, with the emptied checkpoints/


def test_killed_torchrun_training_resumes_to_the_same_adaptor(folder: Path, tmp_path: Path, rng: random.Random) -> None:
    """Two gloo processes under torchrun, killed (launcher and workers) at a random moment after the first
    checkpoint and resumed under torchrun: the same adaptor bytes and logs as an uninterrupted torchrun run."""
    whole = tmp_path / "whole"
    span = after_first_checkpoint(RUN_TORCHRUN, str(free_port()), *main_args(folder, whole), log=tmp_path / "whole.log",
                                  state=state_file(whole, folder))

    out, log = tmp_path / "killed", tmp_path / "killed.log"
    args = main_args(folder, out)
    state = state_file(out, folder)
    code, delay = kill_at_random(RUN_TORCHRUN, str(free_port()), *args, log=log, ready=state.exists,
                                 window=(0.0, 0.5 * span), rng=rng)
    assert code == -signal.SIGKILL, f"the run ended before the kill ({delay:.2f} s after its first checkpoint)"
    killed_at = torch.load(state, weights_only=False)
    run_python(RUN_TORCHRUN, str(free_port()), *args, "--resume", log=log)
    assert f"resuming from {state}: stage {killed_at['stage']}, epoch {killed_at['epoch']}" in log_tail(log, 10**6)
    assert adaptor_files(out, folder.name) == adaptor_files(tmp_path / "whole", folder.name)
    assert training_logs(out, folder.name) == training_logs(tmp_path / "whole", folder.name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_resume_refuses_a_checkpoint_of_another_config(tmp_path: Path) -> None:
    Checkpointer(tmp_path, {"seed": 1}).save({"stage": "unsupervised", "epoch": 1})
    with pytest.raises(InputError, match=r"different config \(seed: 1 then, 2 now\)"):
        Checkpointer(tmp_path, {"seed": 2}).load()
    assert Checkpointer(tmp_path, {"seed": 1}).load()["epoch"] == 1


def test_resume_refuses_a_checkpoint_of_another_format_in_one_line(tmp_path: Path) -> None:
    state = {"fingerprint": {}, "stage": "unsupervised", "epoch": 1, "best_state": {}, "start": {}}  # no format
    torch.save(state, tmp_path / STATE_FILE)
    with pytest.raises(InputError, match=f"{STATE_FILE}: checkpoint format None, expected {FORMAT} "):
        Checkpointer(tmp_path, {}).load()


def test_damaged_checkpoint_is_an_error_not_a_state(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=f"{STATE_FILE}: unreadable checkpoint"):
        Checkpointer(tmp_path, {}).load()
    assert Checkpointer(tmp_path / "none", {}).load() is None


def test_only_the_writer_writes(tmp_path: Path) -> None:
    Checkpointer(tmp_path / "a", {}, writer=False).save({"stage": "unsupervised", "epoch": 1})
    Checkpointer(tmp_path / "a", {}, writer=False).save_neighbors(torch.arange(3), torch.zeros((3, 1)))
    assert not (tmp_path / "a").exists()
