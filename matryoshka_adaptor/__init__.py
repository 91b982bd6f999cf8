"""Matryoshka-Adaptor (Yoon et al., EMNLP 2024): make a frozen embedding model's vectors truncatable."""

from .errors import InputError
from .model import AdaptorConfig, MatryoshkaAdaptor

__all__ = ["AdaptorConfig", "InputError", "MatryoshkaAdaptor"]
