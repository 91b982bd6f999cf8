"""Matryoshka-Adaptor (Yoon et al., EMNLP 2024): make a frozen embedding model's vectors truncatable."""

from typing import Any

from .errors import InputError

__all__ = ["AdaptorConfig", "InputError", "MatryoshkaAdaptor", "NumpyAdaptor", "TrainConfig", "fit"]


def __getattr__(name: str) -> Any:
    # imported on first use: `from matryoshka_adaptor import NumpyAdaptor` never loads torch, and an entry point
    # can pin numpy's and torch's kernels (numerics.py) before either loads
    if name == "AdaptorConfig":
        from .config import AdaptorConfig

        return AdaptorConfig
    if name == "MatryoshkaAdaptor":
        from .model import MatryoshkaAdaptor

        return MatryoshkaAdaptor
    if name == "NumpyAdaptor":
        from .numpy_adaptor import NumpyAdaptor

        return NumpyAdaptor
    if name in ("TrainConfig", "fit"):
        from . import train

        return getattr(train, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
