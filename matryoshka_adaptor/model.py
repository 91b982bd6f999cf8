"""The adaptor: ĉe = z + f(z) with z = R·(ce − μ), a fixed start map (R a rotation, μ a centre, often 0) and a small MLP f.

f's last layer starts at zero, so a new adaptor is exactly z: the identity, a rotation onto principal axes (an
isometry: every full-dim cosine unchanged, coordinates ordered by variance), or centred PCA (μ the corpus mean,
which changes cosines). Training then only has to bend that start, which is why the start is a named config value
(`input_rotation`) rather than a hidden trick; training/selection.py chooses it from training-time evidence.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .atomic import write_folder_atomic
from .config import CONFIG_NAME, WEIGHTS_NAME, AdaptorConfig, read_adaptor_folder
from .errors import InputError
from .vectors import check_embeddings

logger = logging.getLogger(__name__)

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}


class MatryoshkaAdaptor(nn.Module):
    """ĉe = z + f(z), z = R·ce; the first m coordinates of ĉe are a usable m-dim embedding."""

    def __init__(
        self,
        config: AdaptorConfig,
        rotation: np.ndarray | torch.Tensor | None = None,
        center: np.ndarray | torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        d = config.input_dim
        rot = torch.eye(d) if rotation is None else torch.as_tensor(rotation, dtype=torch.float32)
        if rot.shape != (d, d):
            raise InputError(f"rotation: expected shape ({d}, {d}), got {tuple(rot.shape)}")
        mu = torch.zeros(d) if center is None else torch.as_tensor(center, dtype=torch.float32)
        if mu.shape != (d,):
            raise InputError(f"center: expected shape ({d},), got {tuple(mu.shape)}")
        self.register_buffer("rotation", rot.clone())
        self.register_buffer("center", mu.clone())
        act = ACTIVATIONS[config.activation]
        layers: list[nn.Module] = []
        width = d
        for _ in range(config.num_hidden_layers):
            layers += [nn.Linear(width, config.hidden_dim), act()]
            width = config.hidden_dim
        out = nn.Linear(width, d)
        nn.init.zeros_(out.weight)  # f = 0 at start: the adaptor begins as the rotation alone
        nn.init.zeros_(out.bias)
        self.mlp = nn.Sequential(*layers, out)

    def forward(self, embeddings: torch.Tensor, rotated: bool = False) -> torch.Tensor:
        """ĉe for base embeddings; with `rotated`, for start vectors z already rotated (a trainer rotates its corpus
        once per start map instead of once per step)."""
        z = embeddings if rotated else self.rotate(embeddings)
        return z + self.mlp(z)

    def rotate(self, embeddings: torch.Tensor) -> torch.Tensor:
        """z = R·(ce − μ): the adaptor's starting point, the reference every unsupervised loss measures against."""
        return (embeddings - self.center) @ self.rotation.T

    @torch.no_grad()
    def reset_tail(self, start: int) -> None:
        """Zero f's outputs from coordinate `start` on: those coordinates become the start map's, every prefix up to
        `start` is unchanged."""
        out = self.mlp[-1]
        out.weight[start:] = 0
        out.bias[start:] = 0

    @classmethod
    @torch.no_grad()
    def average(cls, members: Sequence[MatryoshkaAdaptor]) -> MatryoshkaAdaptor:
        """One adaptor whose f is the mean of the members' f, exactly: their hidden units side by side (deeper layers
        block-diagonal), the last layer scaled by 1/k. The members must share a start map and an architecture."""
        first = members[0]
        for other in members[1:]:
            if (other.config.hidden_dim, other.config.num_hidden_layers) != (first.config.hidden_dim, first.config.num_hidden_layers):
                raise InputError("average: expected members of one architecture")
            if not (torch.equal(other.rotation, first.rotation) and torch.equal(other.center, first.center)):
                raise InputError("average: expected members that share one start map")
        config = replace(first.config, hidden_dim=first.config.hidden_dim * len(members))
        merged = cls(config, first.rotation.cpu(), first.center.cpu()).to(first.device)
        linears = [i for i, layer in enumerate(first.mlp) if isinstance(layer, nn.Linear)]
        for n, i in enumerate(linears):
            weights = [m.mlp[i].weight for m in members]
            biases = [m.mlp[i].bias for m in members]
            if n == 0:
                weight, bias = torch.cat(weights, dim=0), torch.cat(biases)
            elif n < len(linears) - 1:
                weight, bias = torch.block_diag(*weights), torch.cat(biases)
            else:
                weight, bias = torch.cat(weights, dim=1) / len(members), torch.stack(biases).mean(dim=0)
            merged.mlp[i].weight.copy_(weight)
            merged.mlp[i].bias.copy_(bias)
        return merged

    def take_mlp(self, other: MatryoshkaAdaptor) -> None:
        """Become `other` (same start map): its f and the config that describes f's width."""
        self.mlp, self.config = other.mlp, other.config

    @property
    def device(self) -> torch.device:
        return self.rotation.device

    @torch.no_grad()
    def transform(self, x: np.ndarray, dim: int | None = None, batch_size: int = 8192) -> np.ndarray:
        """Adapt base embeddings x (n, input_dim); with dim, the first dim coordinates, L2-normalised."""
        d = self.config.input_dim
        if dim is not None and not 1 <= dim <= d:
            raise InputError(f"dim {dim}: expected 1 <= dim <= {d}")
        x = check_embeddings(x, d, what=f"embeddings given to an adaptor for {d}-dim {self.config.base_model}")
        was_training = self.training
        self.eval()
        out = []
        for start in range(0, len(x), batch_size):
            batch = torch.from_numpy(x[start : start + batch_size]).to(self.device)
            y = self(batch)
            if dim is not None:
                y = nn.functional.normalize(y[:, :dim], dim=-1)
            out.append(y.cpu().numpy())
        self.train(was_training)
        return np.concatenate(out) if out else np.zeros((0, dim or d), dtype=np.float32)

    def save(self, folder: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write config.json + model.safetensors into a temp folder, then rename it into place."""

        def write(tmp: Path) -> None:
            (tmp / CONFIG_NAME).write_text(json.dumps(asdict(self.config), indent=2) + "\n")
            save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, tmp / WEIGHTS_NAME)

        folder = write_folder_atomic(Path(folder), write, overwrite)
        logger.info("saved adaptor to %s", folder)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike[str], device: str | torch.device = "cpu") -> MatryoshkaAdaptor:
        config, weights_path = read_adaptor_folder(folder)
        model = cls(config)
        weights = load_file(weights_path)
        weights.setdefault("center", torch.zeros(config.input_dim))  # adaptors saved before centring existed
        model.load_state_dict(weights)
        return model.to(device).eval()
