import os
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # main.py and the package, without installing

from matryoshka_adaptor.data import DATA_ROOT_ENV  # noqa: E402


def shared_data(relative: str) -> Path:
    """A path under $MATRYOSHKA_DATA_ROOT (or beside it: CI's root is shared/data/beir, XQuAD-R sits in
    shared/data/xquad-r). Missing, the test is skipped only on a developer's machine with the variable unset;
    in CI (CI set) or with the variable set it fails, naming what is missing, so CI cannot pass by skipping."""
    root = os.environ.get(DATA_ROOT_ENV)
    candidates = [Path(root) / relative, Path(root).parent / relative] if root else []
    found = next((p for p in candidates if p.exists()), None)
    if found is not None:
        return found
    reason = (
        f"${DATA_ROOT_ENV}={root}: neither {' nor '.join(map(str, candidates))} exists"
        if root else f"${DATA_ROOT_ENV} is not set: point it at a folder holding {relative}"
    )
    if root or os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


SCIFACT_SLICE = 400  # SciFact's first documents, which the tests that train on the real MiniLM's vectors encode


@pytest.fixture(scope="session")
def minilm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the tests that encode the SciFact slice (all queries, the first SCIFACT_SLICE
    documents) with the real MiniLM: the cache is keyed by the texts, so the first such test fills it for the rest."""
    return tmp_path_factory.mktemp("minilm-cache")


@pytest.fixture
def rng() -> random.Random:
    """Random choices of the kill-and-resume tests; RESUME_TEST_SEED=<seed> replays a run's choices."""
    seed = int(os.environ.get("RESUME_TEST_SEED") or random.randrange(2**32))
    print(f"RESUME_TEST_SEED={seed}")  # pytest shows a failing test's output; INFO logs it would drop
    return random.Random(seed)
