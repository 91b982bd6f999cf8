"""What an index over adapted vectors is: the prefix it searches, how that prefix is stored, and what re-scores.

A Matryoshka vector is bought to be served as a funnel: a small index over the first `dim` adapted dims finds a
shortlist, and the full adapted vectors re-score it. Every knob of that funnel is a field here, saved as the
index folder's config.json, so an index on disk says exactly how it was built.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import InputError

INDEX_TYPES = ("flat", "hnsw", "ivf")  # exact scan, graph, inverted lists (all faiss)
PRECISIONS = ("float32", "float16", "int8", "binary")  # how the prefix index stores each coordinate
RESCORE_PRECISIONS = ("none", "float32", "float16", "int8")  # how the full vectors kept for re-scoring are stored
BITS = {"float32": 32, "float16": 16, "int8": 8, "binary": 1}
CONFIG_FILE = "config.json"


def vector_bytes(dim: int, precision: str) -> float:
    """Bytes one vector of `dim` coordinates takes at `precision`, codes only (no graph or list overhead)."""
    return dim * BITS[precision] / 8


@dataclass
class IndexConfig:
    """How an AdaptedIndex is built; `n_vectors`, `adaptor` and `files` are filled in when it is built and saved."""

    dim: int  # adapted dims in the shortlist index (the Matryoshka prefix), L2-normalised before indexing
    full_dim: int  # width of the adapted vectors (re-scoring uses all of them)
    index: str = "flat"  # one of INDEX_TYPES
    precision: str = "float32"  # of the prefix index, one of PRECISIONS (int8: per-dim ranges from the corpus)
    rescore: str = "float32"  # of the full vectors kept for re-scoring, one of RESCORE_PRECISIONS ('none': no re-score)
    hnsw_m: int = 32  # graph neighbours per node (hnsw)
    hnsw_ef_construction: int = 40  # candidate list while building the graph (hnsw); faiss's own default
    hnsw_ef_search: int = 128  # candidate list while searching (hnsw); raised to the shortlist size when smaller
    ivf_lists: int = 0  # inverted lists (ivf); 0: 4·sqrt(n), at most n / 39 so each list trains on enough points
    ivf_probe: int = 16  # lists visited per query (ivf)
    n_vectors: int = 0  # documents indexed
    adaptor: dict[str, Any] | None = None  # {"path", "fingerprint", "base_model", "input_dim"}; None: vectors given adapted
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # file name -> {"bytes", "sha256"}, checked on load

    def __post_init__(self) -> None:
        for name, allowed in (("index", INDEX_TYPES), ("precision", PRECISIONS), ("rescore", RESCORE_PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise InputError(f"index {name}={getattr(self, name)!r}: expected one of {', '.join(allowed)}")
        if not 1 <= self.dim <= self.full_dim:
            raise InputError(f"index dim={self.dim}: expected 1 <= dim <= full_dim={self.full_dim}")
        if self.precision == "binary" and self.dim % 8:
            raise InputError(f"index dim={self.dim} with binary precision: expected a multiple of 8 (whole bytes)")
        for name in ("hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "ivf_probe"):
            if getattr(self, name) < 1:
                raise InputError(f"index {name}={getattr(self, name)}: expected a positive integer")

    @property
    def prefix_bytes_per_vector(self) -> float:
        return vector_bytes(self.dim, self.precision)

    @property
    def rescore_bytes_per_vector(self) -> float:
        return 0.0 if self.rescore == "none" else vector_bytes(self.full_dim, self.rescore)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def read(cls, path: Path) -> IndexConfig:
        """The config of an index folder; a missing, unreadable or foreign file is one line naming it."""
        if not path.is_file():
            raise InputError(f"{path}: not found; expected the config.json of an index folder (AdaptedIndex.save)")
        try:
            raw = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: not valid JSON ({e}); expected an index config") from None
        known = {f.name for f in fields(cls)}
        if not isinstance(raw, dict) or not {"dim", "full_dim"} <= raw.keys() or raw.keys() - known:
            extra = sorted(raw.keys() - known) if isinstance(raw, dict) else []
            raise InputError(f"{path}: expected an index config with dim and full_dim" + (f", not {extra}" if extra else ""))
        return cls(**raw)
