"""XQuAD-R (LAReQA, Roy et al. 2020, section 3.1) read as a retrieval dataset: questions against sentences.

One language is named `xquad-r-<lang>` and read from <data root>/xquad-r/<lang>.json, a SQuAD-format file whose
paragraphs carry `sentences` and `sentence_breaks`. The corpus is every sentence of every paragraph, with the id
`<article>-<paragraph>-<sentence>` (0-based; equal sentence texts stay separate documents, as in LAReQA); the
queries are the questions; a question's one relevant sentence is the one whose span holds its first answer's
`answer_start`. Spans are half-open, `context[start:end] == sentence` (checked on all 11 files), and every answer
of the released files starts inside a span, so an answer starting outside every span is an error, not a guess.

No split ships with the data, so one is fixed here: a question is in `test` iff
`int(sha256(id).hexdigest(), 16) % 10 < 3` (about 30%), else in `train`. It depends on the id alone, and the ids
are shared by the 11 parallel files, so every language splits the same questions the same way and a model trained
on one language's train questions never sees another language's test questions. The qrels of both splits are held
in memory (`BeirDataset.split_qrels`); there are no qrels files.

`xquad-r-all` is the 11 languages as the parts of one partitioned dataset (BeirDataset.partitioned): ids are
`<lang>/<id>`, and a question is ranked among its own language's sentences only, with its own language's answer
relevant: the 11 retrieval tasks of the per-language setting, trained as one, so one adaptor serves every language
and is chosen on the task it is scored on. Same split by question id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from .beir import BeirDataset, resolve_data_root
from ..errors import InputError

logger = logging.getLogger(__name__)

LANGUAGES = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
PREFIX = "xquad-r-"
ALL = "all"  # xquad-r-all: the 11 languages as one dataset
FOLDER = "xquad-r"  # under the data root
TEST_FRACTION = 0.3  # the rule below puts 3 of 10 hash buckets in test
SOURCE = "github.com/google-research-datasets/lareqa (xquad-r/<lang>.json)"


def split_of(question_id: str) -> str:
    """'test' or 'train': a fixed function of the id, so the split is the same in every language and every run."""
    bucket = int(hashlib.sha256(question_id.encode()).hexdigest(), 16) % 10
    return "test" if bucket < round(TEST_FRACTION * 10) else "train"


def _get(obj: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if key not in obj:
        raise InputError(f"{where}: missing {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(f"{where}: {key!r} must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _spans(breaks: list, n_sentences: int, where: str) -> list[tuple[int, int]]:
    if len(breaks) != n_sentences:
        raise InputError(
            f"{where}: {n_sentences} sentences but {len(breaks)} sentence_breaks; expected one [start, end] each"
        )
    spans = []
    for span in breaks:
        if not (isinstance(span, list) and len(span) == 2 and all(type(x) is int for x in span) and span[0] <= span[1]):
            raise InputError(f"{where}: sentence_breaks entry {span!r} is not a [start, end] pair of integers")
        spans.append((span[0], span[1]))
    return spans


def read_xquad(path: Path, name: str) -> BeirDataset:
    """One XQuAD-R language file as a dataset: sentences as documents, questions as queries, qrels per split."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found; XQuAD-R files come from {SOURCE}")
    try:
        with path.open(encoding="utf-8") as f:
            raw = json.load(f)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None

    corpus: dict[str, str] = {}
    queries: dict[str, str] = {}
    split_qrels: dict[str, dict[str, dict[str, int]]] = {"train": {}, "test": {}}
    for a, article in enumerate(_get(raw, "data", list, str(path))):
        for p, paragraph in enumerate(_get(article, "paragraphs", list, f"{path}: data[{a}]")):
            where = f"{path}: data[{a}].paragraphs[{p}]"
            sentences = _get(paragraph, "sentences", list, where)
            spans = _spans(_get(paragraph, "sentence_breaks", list, where), len(sentences), where)
            for s, sentence in enumerate(sentences):
                if not isinstance(sentence, str):
                    raise InputError(f"{where}: sentences[{s}] must be a string, got {type(sentence).__name__}")
                corpus[f"{a}-{p}-{s}"] = sentence.strip()
            for k, qa in enumerate(_get(paragraph, "qas", list, where)):
                qid = _get(qa, "id", str, f"{where}.qas[{k}]")
                at = f"{path}: question {qid!r}"
                if qid in queries:
                    raise InputError(f"{at}: duplicate question id; expected each id once per file")
                question = _get(qa, "question", str, at)
                answers = _get(qa, "answers", list, at)
                if not answers:
                    raise InputError(f"{at}: 'answers' is empty; expected at least one answer")
                start = _get(answers[0], "answer_start", int, f"{at}: answers[0]")
                hits = [s for s, (lo, hi) in enumerate(spans) if lo <= start < hi]
                if not hits:
                    raise InputError(
                        f"{at}: answer_start {start} lies outside every sentence span {spans}; expected it inside one"
                    )
                queries[qid] = question
                split_qrels[split_of(qid)][qid] = {f"{a}-{p}-{hits[0]}": 1}
    if not queries:
        raise InputError(f"{path}: no questions; expected data[].paragraphs[].qas[] entries")
    logger.info(
        "%s: %d sentences, %d questions (%d train, %d test)",
        path, len(corpus), len(queries), len(split_qrels["train"]), len(split_qrels["test"]),
    )
    # a split with no questions is absent, like a missing qrels file
    return BeirDataset(name, path, corpus, queries, split_qrels={k: v for k, v in split_qrels.items() if v})


def load_xquad(name: str, data_root: str | os.PathLike[str] | None = None) -> BeirDataset:
    """`xquad-r-<lang>` from <data root>/xquad-r/<lang>.json, or `xquad-r-all` from all of them (never fetched:
    the hub has no copy in this form)."""
    lang = name[len(PREFIX):] if name.startswith(PREFIX) else ""
    if lang not in (*LANGUAGES, ALL):
        raise InputError(
            f"dataset {name!r}: unknown XQuAD-R language {lang!r}; expected {PREFIX}<lang> with <lang> one of "
            + ", ".join(LANGUAGES) + f", or {PREFIX}{ALL}"
        )
    folder = resolve_data_root(data_root) / FOLDER
    if lang != ALL:
        return read_xquad(folder / f"{lang}.json", name)
    return union({code: read_xquad(folder / f"{code}.json", f"{PREFIX}{code}") for code in LANGUAGES}, folder, name)


def union(datasets: dict[str, BeirDataset], folder: Path, name: str) -> BeirDataset:
    """Languages as the parts of one dataset: every id prefixed `<lang>/`, each language's qrels kept as they are."""
    def prefixed(lang: str, items: dict[str, Any]) -> dict[str, Any]:
        return {f"{lang}/{k}": v for k, v in items.items()}

    split_qrels: dict[str, dict[str, dict[str, int]]] = {}
    for lang, ds in datasets.items():
        for split, qrels in (ds.split_qrels or {}).items():
            split_qrels.setdefault(split, {}).update({q: prefixed(lang, docs) for q, docs in prefixed(lang, qrels).items()})
    return BeirDataset(
        name, folder,
        corpus={i: t for lang, ds in datasets.items() for i, t in prefixed(lang, ds.corpus).items()},
        queries={i: t for lang, ds in datasets.items() for i, t in prefixed(lang, ds.queries).items()},
        split_qrels=split_qrels, partitioned=True,
    )
