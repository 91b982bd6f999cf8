"""AdaptorConfig: an adaptor's architecture and provenance, saved as config.json (no torch needed to read it)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError
from .vectors import START_MAPS

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ACTIVATIONS = ("gelu", "relu", "tanh")
ENCODER_ROLES = ("shared", "query/document")


@dataclass
class AdaptorConfig:
    """Architecture plus the provenance of a trained adaptor; saved as config.json beside the weights."""

    input_dim: int
    base_model: str = "sentence-transformers/all-MiniLM-L6-v2"  # model name or black-box encoder spec; input_dim its width
    # 'query/document': the base model encodes queries and documents in different roles (E5-style); adapt each
    # role's vectors with this one adaptor, as in training. 'shared': one encoding for both.
    encoder_roles: str = "shared"
    hidden_dim: int = 512  # width of f's hidden layers
    num_hidden_layers: int = 1  # f = Linear -> act -> (Linear -> act) x (n-1) -> Linear
    activation: str = "relu"
    # the start map z = R·(ce − μ), one of vectors.START_MAPS; R's first coordinates are mixed further when
    # training["config"]["prefix_rotation"] > 0 (training/prefix_rotation.py): the weights hold R as trained
    input_rotation: str = "centred_axes"
    training: dict[str, Any] = field(default_factory=dict)  # losses, hyperparameters, dataset, seed, scores

    def __post_init__(self) -> None:
        if self.input_dim < 1:
            raise InputError(f"input_dim {self.input_dim}: expected a positive int")
        if self.hidden_dim < 1 or self.num_hidden_layers < 1:
            raise InputError(
                f"hidden_dim {self.hidden_dim}, num_hidden_layers {self.num_hidden_layers}: expected positive ints"
            )
        if self.encoder_roles not in ENCODER_ROLES:
            raise InputError(f"encoder_roles {self.encoder_roles!r}: expected one of {list(ENCODER_ROLES)}")
        if self.activation not in ACTIVATIONS:
            raise InputError(f"activation {self.activation!r}: expected one of {list(ACTIVATIONS)}")
        if self.input_rotation not in START_MAPS:
            raise InputError(f"input_rotation {self.input_rotation!r}: expected one of {list(START_MAPS)}")


def read_adaptor_folder(folder: str | os.PathLike[str]) -> tuple[AdaptorConfig, Path]:
    """The config of a saved adaptor and the path of its weights, or an InputError naming what is missing."""
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise InputError(f"{path}: missing; expected an adaptor folder with {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        return AdaptorConfig(**json.loads(config_path.read_text())), weights_path
    except (json.JSONDecodeError, TypeError) as e:
        raise InputError(f"{config_path}: not a valid adaptor config ({e})") from None
