"""The frozen base model's side: where a model loads from (models.py), black-box encoders with query and document
roles (blackbox.py, builtin.py), and the chunked, checksummed embedding cache every encoding goes through (cache.py)."""

from .blackbox import BUILTIN_ENCODERS, ROLES, load_encoder_function
from .cache import EmbeddedDataset, Encoder, embed_dataset
from .models import DEFAULT_MODEL, resolve_model_path

__all__ = [
    "BUILTIN_ENCODERS",
    "DEFAULT_MODEL",
    "ROLES",
    "EmbeddedDataset",
    "Encoder",
    "embed_dataset",
    "load_encoder_function",
    "resolve_model_path",
]
