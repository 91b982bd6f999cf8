"""Subprocess runs for the kill-and-resume tests (test_resume.py, test_training_checkpoint.py): `start_python` runs a
script string from the repo root (output to a log file), `finish` waits for its zero exit, `wait_until` polls a
condition on disk, and `kill_at_random` SIGKILLs a run a random delay after its condition first holds."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 300.0  # seconds for any one subprocess run: a hang fails the test instead of blocking CI
RUN_MAIN = "import runpy, sys; sys.argv[0] = 'main.py'; runpy.run_path('main.py', run_name='__main__')"  # main.py args...
# torchrun with 2 CPU processes (gloo) on main.py: argv[1] is the rendezvous port, the rest main.py's args
RUN_TORCHRUN = (
    "import runpy, sys; sys.argv = ['torchrun', '--nproc_per_node=2', f'--master_port={sys.argv[1]}', 'main.py', "
    "*sys.argv[2:]]; runpy.run_module('torch.distributed.run', run_name='__main__')"
)


def start_python(code: str, *args: str, log: Path) -> subprocess.Popen:
    """`python -c code args...` from the repo root, stdout and stderr appended to `log` (a pipe could fill up)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with log.open("a") as out:
        return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc): torchrun starts its workers in sessions of their own, so neither a
    kill of the launcher nor of its process group reaches them."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        out.append(todo.pop())
        todo += children.get(out[-1], [])
    return out


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a run and every process it started, the launcher first so that it cannot start more."""
    below = descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    for pid in below:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def log_tail(log: Path, n: int = 3000) -> str:
    return log.read_text(errors="replace")[-n:] if log.exists() else ""


def finish(proc: subprocess.Popen, log: Path) -> None:
    """Wait for a run to end; a non-zero exit fails the test with the end of the log."""
    assert proc.wait(TIMEOUT) == 0, f"exit code {proc.returncode}:\n{log_tail(log)}"


def run_python(code: str, *args: str, log: Path) -> None:
    """Run to completion (`finish`)."""
    finish(start_python(code, *args, log=log), log)


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen, log: Path, poll: float = 0.01) -> float:
    """Poll `condition` until it holds (returns time.monotonic() then); fail if `proc` exits first."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert proc.poll() is None, f"exited ({proc.returncode}) before the condition held:\n{log_tail(log)}"
        assert time.monotonic() < deadline, f"condition not met in {TIMEOUT} s:\n{log_tail(log)}"
        time.sleep(poll)
    return time.monotonic()


def kill_at_random(
    code: str, *args: str, log: Path, ready: Callable[[], bool], window: tuple[float, float], rng: random.Random
) -> tuple[int, float]:
    """Start a run, SIGKILL it and every process it started uniform(*window) seconds after `ready()` first holds;
    (exit code, delay)."""
    proc = start_python(code, *args, log=log)
    try:
        wait_until(ready, proc, log)
        delay = rng.uniform(*window)
        print(f"killing pid {proc.pid} {delay:.3f} s after it was ready (window {window[0]:.3f}..{window[1]:.3f} s)")
        time.sleep(delay)
        kill_tree(proc)
        return proc.wait(TIMEOUT), delay
    finally:
        if proc.poll() is None:
            kill_tree(proc)
            proc.wait()
