"""BEIR-format datasets: corpus.jsonl, queries.jsonl, qrels/<split>.tsv, read strictly.

A dataset is named (default `scifact`) and looked up as <data root>/<name>; the data root comes from
--data-root, else $MATRYOSHKA_DATA_ROOT, else ./data. When the folder is missing, the dataset is fetched
from the Hugging Face hub (mteb/<name>, as MTEB does) and written there in BEIR layout. `xquad-r-<lang>` is
read from <data root>/xquad-r/<lang>.json instead (xquad.py), with its qrels in memory.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_folder_atomic
from ..errors import InputError

logger = logging.getLogger(__name__)

DATA_ROOT_ENV = "MATRYOSHKA_DATA_ROOT"
DEFAULT_DATA_ROOT = "data"


@dataclass
class BeirDataset:
    """Texts as the model reads them: a document is `title + " " + text` (MTEB's join), a query its text."""

    name: str
    folder: Path  # the BEIR folder; for a dataset read from one file (xquad.py), that file
    corpus: dict[str, str]
    queries: dict[str, str]
    # split -> qrels held in memory, for datasets not stored as BEIR files; None: read qrels/<split>.tsv
    split_qrels: dict[str, dict[str, dict[str, int]]] | None = None
    # several collections under one adaptor (xquad-r-all's languages): ids are `<part>/<id>`, and a query is ranked
    # only among its own part's documents, in training as in use
    partitioned: bool = False

    def qrels_path(self, split: str) -> Path:
        """Where `split`'s qrels come from: qrels/<split>.tsv, or <file>#<split> for in-memory qrels."""
        if self.split_qrels is not None:
            return Path(f"{self.folder}#{split}")
        return self.folder / "qrels" / f"{split}.tsv"



def part_of(item_id: str) -> str:
    """The part of a partitioned dataset's document or query id (`<part>/<id>`)."""
    return item_id.split("/", 1)[0]


def item_of(item_id: str) -> str:
    """The id within its part of a partitioned dataset's document or query id (`<part>/<id>`)."""
    return item_id.split("/", 1)[-1]


def resolve_data_root(data_root: str | os.PathLike[str] | None = None) -> Path:
    return Path(data_root or os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT)


def document_text(title: str, text: str) -> str:
    """MTEB's document text: title and body joined by a space, stripped; the body alone without a title."""
    return f"{title} {text}".strip() if title else text.strip()


def _read_jsonl(path: Path, required: tuple[str, ...]) -> list[dict]:
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            missing = [k for k in required if k not in row]
            if missing:
                raise InputError(f"{path}:{lineno}: missing field(s) {', '.join(missing)}")
            if not isinstance(row["text"], str) or not isinstance(row.get("title") or "", str):  # null title = none
                raise InputError(f"{path}:{lineno}: 'text' and 'title' must be strings")
            row["_id"] = str(row["_id"])
            row["_lineno"] = lineno
            rows.append(row)
    if not rows:
        raise InputError(f"{path}: empty; expected one JSON object per line")
    return rows


def _index(rows: list[dict], path: Path, text_of) -> dict[str, str]:
    out: dict[str, str] = {}
    for row in rows:
        if row["_id"] in out:
            raise InputError(f"{path}:{row['_lineno']}: duplicate _id {row['_id']!r}")
        out[row["_id"]] = text_of(row)
    return out


def read_corpus(path: Path) -> dict[str, str]:
    rows = _read_jsonl(path, ("_id", "text"))
    return _index(rows, path, lambda r: document_text(r.get("title") or "", r["text"]))


def read_queries(path: Path) -> dict[str, str]:
    return _index(_read_jsonl(path, ("_id", "text")), path, lambda r: r["text"])


def read_qrels(path: Path, query_ids: set[str], doc_ids: set[str]) -> dict[str, dict[str, int]]:
    """query id -> {doc id: relevance}; pairs naming unknown ids are skipped with one warning that counts them."""
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    qrels: dict[str, dict[str, int]] = {}
    unknown = 0
    with path.open(encoding="utf-8", newline="") as f:  # newline="": csv handles BEIR's CRLF
        reader = csv.reader(f, delimiter="\t")
        for lineno, fields in enumerate(reader, start=1):
            if not fields or all(not x.strip() for x in fields):
                continue
            if len(fields) != 3:
                raise InputError(f"{path}:{lineno}: expected 3 tab-separated fields (query-id, corpus-id, score)")
            qid, did, score = (x.strip() for x in fields)
            if lineno == 1 and score.lower() == "score":
                continue  # BEIR's header: query-id, corpus-id, score
            try:
                y = int(score)
            except ValueError:
                raise InputError(f"{path}:{lineno}: score {score!r} is not an integer") from None
            if qid not in query_ids or did not in doc_ids:
                unknown += 1
                continue
            qrels.setdefault(qid, {})[did] = y
    if unknown:
        logger.warning("%s: skipped %d pair(s) naming unknown query or document ids", path, unknown)
    if not qrels:
        raise InputError(f"{path}: no usable (query, document, score) rows")
    return qrels


def fetch_from_hub(name: str, folder: Path) -> None:
    """Download mteb/<name> (corpus, queries, qrels) and write it to `folder` in BEIR layout, atomically."""
    from datasets import get_dataset_split_names, load_dataset

    repo = f"mteb/{name}"
    logger.info("%s not found locally: fetching %s from the Hugging Face hub", folder, repo)

    def write(tmp: Path) -> None:
        for config, filename in (("corpus", "corpus.jsonl"), ("queries", "queries.jsonl")):
            with (tmp / filename).open("w", encoding="utf-8") as f:
                for row in load_dataset(repo, config, split=config):
                    row = dict(row)
                    row.setdefault("_id", row.pop("id", None))  # some hub copies name the id column "id"
                    f.write(json.dumps(row) + "\n")
        (tmp / "qrels").mkdir()
        for split in get_dataset_split_names(repo, "default"):
            with (tmp / "qrels" / f"{split}.tsv").open("w", encoding="utf-8", newline="") as f:
                writer = csv.writer(f, delimiter="\t")
                writer.writerow(["query-id", "corpus-id", "score"])
                for row in load_dataset(repo, "default", split=split):
                    writer.writerow([row["query-id"], row["corpus-id"], row["score"]])

    try:
        write_folder_atomic(folder, write)
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(
            f"dataset {name!r}: no {folder / 'corpus.jsonl'} and fetching {repo} from the hub failed ({reason}); "
            f"point --data-root or ${DATA_ROOT_ENV} at a folder holding {name}/ in BEIR layout"
        ) from None


def load_dataset_folder(name: str, data_root: str | os.PathLike[str] | None = None) -> BeirDataset:
    """Read <data root>/<name> (fetching it from the hub first if it is not there); xquad-r-<lang>: xquad.py."""
    from . import xquad  # here, not at the top: xquad.py imports this module

    if name.startswith(xquad.PREFIX):
        return xquad.load_xquad(name, data_root)
    root = resolve_data_root(data_root)
    folder = root / name
    if not folder.exists():
        fetch_from_hub(name, folder)
    if not (folder / "corpus.jsonl").is_file():
        raise InputError(f"{folder / 'corpus.jsonl'}: file not found; expected a BEIR folder")
    return BeirDataset(
        name=name,
        folder=folder,
        corpus=read_corpus(folder / "corpus.jsonl"),
        queries=read_queries(folder / "queries.jsonl"),
    )
