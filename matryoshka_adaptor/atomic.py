"""Files and folders written whole or not at all: a temp beside the target, then renamed over it.

A run killed at any moment leaves the old file or the new one, never a torn one, and at worst a stray
`.<name>.<pid>.tmp` that the next run ignores or removes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import InputError

TMP_SUFFIX = ".tmp"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temp file beside `path`, fsync it, rename it into place and fsync the folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if hasattr(os, "O_DIRECTORY"):  # makes the rename itself durable (POSIX)
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def refuse_existing(folder: Path) -> None:
    """Refuse to replace `folder` unless asked: checked before any work, so a refused run costs nothing."""
    if folder.exists():
        raise InputError(f"{folder} already exists: pass --overwrite (overwrite=True from Python) to replace it")


def write_folder_atomic(folder: Path, write: Callable[[Path], None], overwrite: bool = False) -> Path:
    """Fill a temp folder beside `folder` with `write(tmp)`, then rename it into place: a run that fails or is
    killed leaves the old folder whole (at worst a stray `.<name>.*` temp folder), never a half-written one."""
    if not overwrite:
        refuse_existing(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        write(tmp)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
