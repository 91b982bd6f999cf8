import os
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # main.py and the package, without installing


@pytest.fixture
def rng() -> random.Random:
    """Random choices of the kill-and-resume tests; RESUME_TEST_SEED=<seed> replays a run's choices."""
    seed = int(os.environ.get("RESUME_TEST_SEED") or random.randrange(2**32))
    print(f"RESUME_TEST_SEED={seed}")  # pytest shows a failing test's output; INFO logs it would drop
    return random.Random(seed)
