"""Kill-and-resume: a real subprocess is SIGKILLed at a random moment, run again, and must end where an
uninterrupted run ends, bit for bit.

The generic helpers are in killing.py; `progress_times` here times a run's steps. The seed and each delay are
printed (pytest shows them with a failure) and the failure message repeats the delay; RESUME_TEST_SEED=<seed>
replays the same random choices.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import statistics
import subprocess
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from killing import finish, kill_at_random, log_tail, run_python, start_python

from conftest import shared_data
from matryoshka_adaptor.data import DATA_ROOT_ENV, load_dataset_folder
from matryoshka_adaptor.encoders.cache import MANIFEST_NAME, Encoder

DATA_ROOT = os.environ.get(DATA_ROOT_ENV)


def progress_times(proc: subprocess.Popen, progress: Callable[[], int], log: Path, poll: float = 0.01) -> list[float]:
    """Run `proc` to a zero exit, noting the seconds each unit of `progress()` took (its change over time)."""
    seen, last, steps = progress(), time.monotonic(), []
    while proc.poll() is None:
        time.sleep(poll)
        now, value = time.monotonic(), progress()
        if value > seen:
            steps += [(now - last) / (value - seen)] * (value - seen) if seen else []  # the first includes start-up
            seen, last = value, now
    finish(proc, log)
    return steps


def manifest_chunks(cache_dir: Path) -> dict[str, dict]:
    """The chunks listed by the one manifest under cache_dir ({} before it exists)."""
    paths = list(cache_dir.glob(f"*/{MANIFEST_NAME}"))
    assert len(paths) <= 1, paths
    return json.loads(paths[0].read_text())["chunks"] if paths else {}


ENCODE_SCIFACT_QUERIES = """
import logging, sys
import torch
torch.set_num_threads(2)  # fixed, so every run does the same arithmetic whatever the machine's core count
from matryoshka_adaptor.data import load_dataset_folder
from matryoshka_adaptor.encoders import Encoder
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
data_root, cache_dir, chunk_size = sys.argv[1:]
queries = list(load_dataset_folder("scifact", data_root).queries.values())
Encoder(cache_dir=cache_dir, chunk_size=int(chunk_size)).encode(queries, what="queries")
"""


def test_encoding_killed_at_random_resumes_to_the_same_bytes(tmp_path: Path, rng: random.Random) -> None:
    """The real MiniLM on SciFact's queries in chunks of 64: killed mid-way, then resumed, it gives the very
    bytes (manifest checksums and array) of an uninterrupted run."""
    shared_data("scifact/queries.jsonl")
    queries = list(load_dataset_folder("scifact", DATA_ROOT).queries.values())
    chunk_size = 64
    n_chunks = -(-len(queries) // chunk_size)
    a, b = tmp_path / "a", tmp_path / "b"

    # the uninterrupted run; the time it took per chunk sizes the kill window
    proc = start_python(ENCODE_SCIFACT_QUERIES, DATA_ROOT, str(a), str(chunk_size), log=tmp_path / "a.log")
    chunk_seconds = statistics.median(progress_times(proc, lambda: len(manifest_chunks(a)), tmp_path / "a.log"))

    # killed at a random moment: once a random number of chunks is listed, within about one chunk's time.
    # Waiting on chunks, not seconds, keeps the kill mid-way when the (shared) machine's speed drifts between
    # runs; the 6 chunks held back allow the second run to be up to ~5x faster than the first.
    after = rng.randint(1, n_chunks - 6)
    code, delay = kill_at_random(
        ENCODE_SCIFACT_QUERIES, DATA_ROOT, str(b), str(chunk_size), log=tmp_path / "b.log",
        ready=lambda: len(manifest_chunks(b)) >= after, window=(0.0, chunk_seconds), rng=rng,
    )
    listed = len(manifest_chunks(b))
    where = (
        f"killed {delay:.3f} s (of a window of {chunk_seconds:.3f} s, one chunk) after chunk {after} was listed; "
        f"{listed} of {n_chunks} chunks listed then"
    )
    assert code == -signal.SIGKILL and 1 <= listed < n_chunks, where

    run_python(ENCODE_SCIFACT_QUERIES, DATA_ROOT, str(b), str(chunk_size), log=tmp_path / "b.log")
    resumed = re.findall(r"encoding (\d+) queries .*\((\d+) cached\)", log_tail(tmp_path / "b.log", 10**6))
    assert resumed[-1] == (str(len(queries) - listed * chunk_size), str(listed * chunk_size)), where
    assert manifest_chunks(b) == manifest_chunks(a), where
    assert np.array_equal(Encoder(cache_dir=b).encode(queries), Encoder(cache_dir=a).encode(queries)), where


ENCODE_WITH_A_SLOW_FAKE_MODEL = """
import sys, time, zlib
import numpy as np
from matryoshka_adaptor.encoders import Encoder

class SlowFake:
    def encode(self, texts, **kwargs):
        time.sleep(0.02)
        return np.array([[len(t), t.count("1"), zlib.crc32(t.encode()) % 97] for t in texts], np.float32)

encoder = Encoder("fake", cache_dir=sys.argv[1], device="cpu", chunk_size=1)
encoder._model = SlowFake()
encoder.encode([f"text {i}" for i in range(int(sys.argv[2]))])
"""


def test_many_kills_at_random_points_never_leave_a_bad_cache(tmp_path: Path, rng: random.Random) -> None:
    """Without torch, cheap enough to kill one run several times: each kill lands anywhere, mid-write
    included, and every restart only adds chunks until the cache is whole."""
    n, log, listed = 60, tmp_path / "fake.log", [0]
    for _ in range(3):
        code, delay = kill_at_random(
            ENCODE_WITH_A_SLOW_FAKE_MODEL, str(tmp_path), str(n), log=log,
            ready=lambda: len(manifest_chunks(tmp_path)) > listed[-1], window=(0.0, 0.3), rng=rng,
        )
        listed.append(len(manifest_chunks(tmp_path)))
        assert code == -signal.SIGKILL and listed[-2] < listed[-1] < n, f"{listed} chunks listed, last kill after {delay:.3f} s"
    run_python(ENCODE_WITH_A_SLOW_FAKE_MODEL, str(tmp_path), str(n), log=log)
    texts = [f"text {i}" for i in range(n)]
    (cache,) = (p.parent for p in tmp_path.glob(f"*/{MANIFEST_NAME}"))
    assert len(manifest_chunks(tmp_path)) == n and not list(cache.glob("*.tmp"))
    expected = [[len(t), t.count("1"), zlib.crc32(t.encode()) % 97] for t in texts]
    np.testing.assert_array_equal(Encoder("fake", cache_dir=tmp_path).encode(texts), expected)
