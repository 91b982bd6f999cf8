"""Per-epoch training checkpoints, so a killed run resumes (`--resume`) to the adaptor an uninterrupted run makes.

A checkpoint holds everything the next epoch depends on: the adaptor, the optimiser, the batch generator, the
best state so far with its score and epoch, the stage logs, and the config that made it (a resume under a
different config is refused). The mined neighbours are saved once beside it, since re-mining costs minutes at
scale and approximate search need not repeat bit for bit. Files are written to a temp name and renamed.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from ..atomic import write_bytes_atomic
from ..errors import InputError

logger = logging.getLogger(__name__)

STATE_FILE = "state.pt"
NEIGHBORS_FILE = "neighbors.pt"
# the layout of a saved state; raised when it changes, so a resume never reads a state it does not understand
# (2: the stage's epoch choice is one `choice` entry, training.selection.EpochChoice)
FORMAT = 2


def _save_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def _differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    keys = sorted(set(saved) | set(current))
    return [f"{k}: {saved.get(k)!r} then, {current.get(k)!r} now" for k in keys if saved.get(k) != current.get(k)]


class Checkpointer:
    """The checkpoint folder of one run; `fingerprint` is the config a resumed run must match."""

    def __init__(self, folder: str | os.PathLike[str], fingerprint: dict[str, Any], writer: bool = True) -> None:
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self.writer = writer  # only one process of a multi-process run writes
        self.context: dict[str, Any] = {}  # run-level state saved with every epoch (stage index, earlier logs)

    def save(self, state: dict[str, Any]) -> None:
        if self.writer:
            _save_atomic({"fingerprint": self.fingerprint, "format": FORMAT, **self.context, **state}, self.folder / STATE_FILE)

    def load(self) -> dict[str, Any] | None:
        """The last checkpoint, or None when there is none; refuses one made by another config."""
        path = self.folder / STATE_FILE
        if not path.is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # a checkpoint is written by rename, so this is damage, not a torn write
            raise InputError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e}); delete it to start over") from None
        if state.get("format") != FORMAT:
            raise InputError(f"{path}: checkpoint format {state.get('format')}, expected {FORMAT} (written by another "
                             "version of this package); drop --resume or delete it")
        diff = _differences(state.get("fingerprint", {}), self.fingerprint)
        if diff:
            raise InputError(f"{path}: made by a different config ({'; '.join(diff[:3])}); drop --resume or delete it")
        logger.info("resuming from %s: stage %s, epoch %d", path, state["stage"], state["epoch"])
        return state

    def save_neighbors(self, anchors: torch.Tensor, neighbors: torch.Tensor) -> None:
        if self.writer:
            _save_atomic(
                {"fingerprint": self.fingerprint, "anchors": anchors.cpu(), "neighbors": neighbors.cpu()},
                self.folder / NEIGHBORS_FILE,
            )

    def load_neighbors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        path = self.folder / NEIGHBORS_FILE
        if not path.is_file():
            return None
        saved = torch.load(path, map_location="cpu", weights_only=False)
        if saved.get("fingerprint") != self.fingerprint:
            return None
        return saved["anchors"], saved["neighbors"]

    def clear(self) -> None:
        """Remove the checkpoint folder, and its parent too when that is left empty (<output_dir>/checkpoints)."""
        if self.writer and self.folder.exists():
            shutil.rmtree(self.folder)
            if not any(self.folder.parent.iterdir()):
                self.folder.parent.rmdir()
