"""Serving benchmark (not part of the test suite): what the small adapted vectors buy in a real index.

    MATRYOSHKA_DATA_ROOT=../shared/data/beir python benchmarks/serving.py [--sizes=100000,1000000]
        [--dims=32,64,128,384] [--threads=2] [--hnsw_1m=64:int8,384:float32]

Every plan is an AdaptedIndex (matryoshka_adaptor/serving): an index over the first k adapted dims (flat or HNSW;
float32, int8 or binary), with or without re-scoring its top 100 by the full float32 vectors.
- speed, on SYNTHETIC vectors: clustered unit base vectors (synthetic.py) at each size, adapted by the shipped
  saved_models/scifact_supervised; 256 queries near documents. Each plan runs in a fresh child process: build time,
  index bytes per vector (faiss's serialised index: codes plus graph), queries/s one query at a time and in
  batches of 64, peak RSS of that child (the input vectors included), and recall@10 against exact full-dim search
  of the same synthetic vectors. HNSW at the largest size only for --hnsw_1m (its graph takes minutes to build).
- recall and quality, on REAL vectors: SciFact's documents and queries adapted by the shipped supervised adaptor
  (and cacm, medline, xquad-r-en with the quality suite's seed-1 supervised adaptors when .cache/suite holds them):
  recall@10 against exact full-dim search over all their queries, and on SciFact nDCG@10 of the test queries.
Writes results/serving_benchmark.json (machine recorded) and plots/serving_benchmark.png (queries/s at the largest
size on synthetic vectors against recall@10 on SciFact's real ones, one point per plan), and prints the bars.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

from matryoshka_adaptor.numerics import pin_at_startup  # noqa: E402

if __name__ == "__main__":
    pin_at_startup()  # before numpy and torch load, as main.py (matryoshka_adaptor/numerics.py)

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.machine import cpu_name, peak_rss_mb  # noqa: E402
from matryoshka_adaptor.serving import AdaptedIndex, IndexConfig  # noqa: E402
from matryoshka_adaptor.serving.plans import plan_grid  # noqa: E402

SHORTLIST, TOP_K, N_QUERIES, BATCH, N_SINGLE = 100, 10, 256, 64, 32
ADAPTOR = ROOT / "saved_models" / "scifact_supervised"
PRECISIONS = ("float32", "int8", "binary")
EF_SEARCH = (64, 128, 256)  # HNSW candidate lists swept, so HNSW can be read at matched recall
REAL = {"scifact": ADAPTOR, **{c: ROOT / ".cache" / "suite" / "seed1" / f"{c}_supervised" for c in ("cacm", "medline", "xquad-r-en")}}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100000,1000000")
    p.add_argument("--dims", default="32,64,128,384")
    p.add_argument("--threads", type=int, default=2, help="faiss threads (the same for every plan)")
    p.add_argument("--hnsw_1m", default="64:int8,384:float32", help="the HNSW plans built at the largest size, dim:precision")
    p.add_argument("--hnsw_m", type=int, default=32)
    p.add_argument("--work_dir", default=".cache/serving", help="synthetic adapted vectors, kept between runs")
    p.add_argument("--data_root", default=os.environ.get("MATRYOSHKA_DATA_ROOT", "../shared/data/beir"))
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def exact_top_10(docs: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The reference every recall is measured against: exact float32 search over the full adapted vectors."""
    full = docs.shape[1]
    return AdaptedIndex.build(docs, IndexConfig(dim=full, full_dim=full, rescore="none")).search(queries, TOP_K)[0]


def recall_at_10(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / TOP_K for a, b in zip(found, exact)]))


def timed_queries(index: AdaptedIndex, queries: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(top-10 of every query from batches of 64, queries/s in batches of 64, queries/s one at a time)."""
    start = time.perf_counter()
    found = np.concatenate([index.search(queries[i : i + BATCH], TOP_K, SHORTLIST)[0] for i in range(0, len(queries), BATCH)])
    batched = len(queries) / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(N_SINGLE):
        index.search(queries[i : i + 1], TOP_K, SHORTLIST)
    single = N_SINGLE / (time.perf_counter() - start)
    return found, batched, single


def child(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """One plan at one size, in this fresh process: its peak RSS is its own."""
    faiss.omp_set_num_threads(spec["threads"])
    docs = np.load(spec["docs"], mmap_mode="r")
    queries, exact = np.load(spec["queries"]), np.load(spec["exact"])
    config = IndexConfig(**spec["config"])
    start = time.perf_counter()
    index = AdaptedIndex.build(np.ascontiguousarray(docs), config)
    build = time.perf_counter() - start
    config = index.config  # as built: n_vectors filled in
    del docs
    rows = []
    for ef in EF_SEARCH if config.index == "hnsw" else (None,):
        if ef is not None:
            index.config.hnsw_ef_search = ef
        found, batched, single = timed_queries(index, queries)
        rows.append({
            "n_vectors": config.n_vectors, "dim": config.dim, "full_dim": config.full_dim, "index": config.index,
            "precision": config.precision, "rescore": config.rescore != "none", "hnsw_m": config.hnsw_m if ef else None,
            "ef_search": ef, "batch": BATCH, "queries_per_s": round(batched, 1), "single_queries_per_s": round(single, 1),
            "recall_at_10_synthetic": round(recall_at_10(found, exact), 4), "build_s": round(build, 2),
            "index_bytes_per_vector": round(index.prefix_bytes / config.n_vectors, 2),
            "rescore_bytes_per_vector": config.rescore_bytes_per_vector,
            "peak_rss_mb": round(peak_rss_mb(), 1),
        })
    return rows


def synthetic(n: int, work: Path) -> dict[str, str]:
    """Adapted synthetic documents and queries of size n, and the queries' exact full-dim top 10 (cached)."""
    paths = {k: str(work / f"synthetic_{n}_{k}.npy") for k in ("docs", "queries", "exact")}
    if all(Path(p).is_file() for p in paths.values()):
        return paths
    from matryoshka_adaptor.model import MatryoshkaAdaptor
    from matryoshka_adaptor.data.synthetic import clustered_unit_vectors
    from matryoshka_adaptor.vectors import unit_rows

    rng = np.random.default_rng(0)
    adaptor = MatryoshkaAdaptor.load(ADAPTOR)
    base = clustered_unit_vectors(n, adaptor.config.input_dim, rng)
    queries = unit_rows(base[rng.choice(n, N_QUERIES, replace=False)] + 0.05 * rng.standard_normal((N_QUERIES, base.shape[1]), dtype=np.float32))
    docs, queries = unit_rows(adaptor.transform(base)), unit_rows(adaptor.transform(queries))
    del base
    exact = exact_top_10(docs, queries)
    work.mkdir(parents=True, exist_ok=True)
    for key, array in (("docs", docs), ("queries", queries), ("exact", exact)):
        np.save(paths[key], array)
    return paths


def run_child(spec: dict[str, Any]) -> list[dict[str, Any]]:
    result = subprocess.run([sys.executable, __file__, f"--child={json.dumps(spec)}"], capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"plan {spec['config']} failed:\n{result.stderr[-3000:]}")
    rows = json.loads(result.stdout.strip().splitlines()[-1])
    for r in rows:
        print(json.dumps(r), file=sys.stderr, flush=True)
    return rows


def speed(args: argparse.Namespace, sizes: list[int], dims: list[int]) -> list[dict[str, Any]]:
    rows = []
    hnsw_largest = [(int(d), p) for d, p in (x.split(":") for x in args.hnsw_1m.split(",") if x)]
    for n in sizes:
        paths = synthetic(n, Path(args.work_dir))
        full = dims[-1]
        grid = plan_grid(full, dims, PRECISIONS)
        hnsw = plan_grid(full, dims, PRECISIONS, index="hnsw", hnsw_m=args.hnsw_m)
        if n == max(sizes):
            hnsw = [c for c in hnsw if (c.dim, c.precision) in hnsw_largest]
        for config in grid + hnsw:
            rows += run_child({**paths, "threads": args.threads, "config": config.__dict__})
    return rows


def real(args: argparse.Namespace, dims: list[int]) -> list[dict[str, Any]]:
    """Recall@10 against exact full-dim search on real adapted vectors, and SciFact's test nDCG@10, per plan."""
    import torch

    from matryoshka_adaptor.metrics import relevance_matrix
    from matryoshka_adaptor.model import MatryoshkaAdaptor
    from matryoshka_adaptor.serving.plans import ndcg_of_ranking
    from matryoshka_adaptor.data.sources import Source

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    rows = []
    for name, folder in REAL.items():
        if not (folder / "config.json").is_file():
            print(f"skipping {name}: no adaptor at {folder}", file=sys.stderr)
            continue
        root = args.data_root if name != "xquad-r-en" else str(Path(args.data_root).parent)
        embedded, qrels, _ = Source(dataset=name, data_root=root).load("test")
        adaptor = MatryoshkaAdaptor.load(folder)
        docs, queries = adaptor.transform(embedded.doc_embeddings), adaptor.transform(embedded.query_embeddings)
        exact = exact_top_10(docs, queries)
        test = [i for i, q in enumerate(embedded.query_ids) if qrels and q in qrels]
        relevance = relevance_matrix(qrels, [embedded.query_ids[i] for i in test], embedded.doc_index) if name == "scifact" else None
        for config in plan_grid(dims[-1], dims, PRECISIONS) + plan_grid(dims[-1], dims, PRECISIONS, index="hnsw", hnsw_m=args.hnsw_m):
            found = AdaptedIndex.build(docs, config).search(queries, TOP_K, SHORTLIST)[0]
            rows.append({
                "collection": name, "n_vectors": len(docs), "n_queries": len(queries), "dim": config.dim,
                "index": config.index, "precision": config.precision, "rescore": config.rescore != "none",
                "bytes_per_vector": config.prefix_bytes_per_vector, "recall_at_10": round(recall_at_10(found, exact), 4),
                "ndcg_at_10_test": round(ndcg_of_ranking(found[test], relevance), 5) if relevance is not None else None,
            })
    return rows


def bars(speed_rows: list[dict[str, Any]], real_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's bars, read off the rows (none is tuned here: every plan has the settings in its row)."""
    n = max(r["n_vectors"] for r in speed_rows)

    def at(**kw: Any) -> list[dict[str, Any]]:
        return [r for r in speed_rows if r["n_vectors"] == n and all(r[k] == v for k, v in kw.items())]

    plan = at(index="flat", dim=64, precision="int8", rescore=True)[0]
    full = at(index="flat", dim=384, precision="float32", rescore=False)[0]
    hnsw_small, hnsw_full = at(index="hnsw", dim=64, precision="int8", rescore=True), at(index="hnsw", dim=384, precision="float32")
    sci = {(r["index"], r["dim"], r["precision"], r["rescore"]): r for r in real_rows if r["collection"] == "scifact"}
    sci_plan, sci_full = sci["flat", 64, "int8", True], sci["flat", 384, "float32", False]
    small = [r for r in sci.values() if r["bytes_per_vector"] <= 64 and r["index"] == "flat"]
    best_small = max(small, key=lambda r: r["ndcg_at_10_test"])
    return {
        "n_vectors": n,
        "flat_64_int8_rescore_speedup_over_flat_384_float32": round(plan["queries_per_s"] / full["queries_per_s"], 2),
        "hnsw": {"64_int8_rescore": hnsw_small, "384_float32": hnsw_full},
        "hnsw_64_int8_bytes_over_384_float32": round(hnsw_small[0]["index_bytes_per_vector"] / hnsw_full[0]["index_bytes_per_vector"], 3)
        if hnsw_small and hnsw_full else None,
        "scifact_flat_64_int8_rescore_recall_at_10": sci_plan["recall_at_10"],
        "scifact_flat_64_int8_rescore_ndcg_minus_full": round(sci_plan["ndcg_at_10_test"] - sci_full["ndcg_at_10_test"], 5),
        "scifact_best_plan_within_64_bytes": best_small,
        "scifact_best_plan_within_64_bytes_ndcg_minus_full": round(best_small["ndcg_at_10_test"] - sci_full["ndcg_at_10_test"], 5),
    }


def plot(payload: dict[str, Any], path: Path) -> None:
    from matryoshka_adaptor.eval import pyplot, save_figure

    plt = pyplot()
    n = max(r["n_vectors"] for r in payload["speed"])
    recall = {(r["index"], r["dim"], r["precision"], r["rescore"]): r["recall_at_10"] for r in payload["real"] if r["collection"] == "scifact"}
    fig, ax = plt.subplots(figsize=(8, 5))
    markers = {"float32": "o", "int8": "s", "binary": "^"}
    for r in (r for r in payload["speed"] if r["n_vectors"] == n and r["ef_search"] in (None, 128)):
        key = (r["index"], r["dim"], r["precision"], r["rescore"])
        color = {32: "C0", 64: "C1", 128: "C2", 384: "C3"}.get(r["dim"], "C4")
        ax.scatter(recall[key], r["queries_per_s"], marker=markers[r["precision"]], color=color,
                   facecolors=color if r["rescore"] else "none", s=40 if r["index"] == "flat" else 90)
        ax.annotate(f"{r['index']} {r['dim']}{' +rs' if r['rescore'] else ''}", (recall[key], r["queries_per_s"]), fontsize=6,
                    xytext=(3, 2), textcoords="offset points")
    for dim, color in {32: "C0", 64: "C1", 128: "C2", 384: "C3"}.items():
        ax.scatter([], [], color=color, label=f"{dim} dims")
    ax.scatter([], [], color="grey", s=40, label="flat (exact)")
    ax.scatter([], [], color="grey", s=90, label="HNSW, efSearch 128")
    ax.legend(fontsize=7, loc="lower left")
    ax.set_yscale("log")
    ax.set(xlabel="recall@10 vs exact full-dim search (SciFact, real supervised-adapted vectors)",
           ylabel=f"queries/s at {n:,} synthetic adapted vectors (batches of {BATCH})",
           title=f"{payload['machine']['cpu']}, {payload['machine']['threads']} threads; filled: top {SHORTLIST} re-scored; o float32, s int8, ^ binary")
    ax.title.set_fontsize(8)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    sizes, dims = [int(x) for x in args.sizes.split(",")], [int(x) for x in args.dims.split(",")]
    start = time.perf_counter()
    real_rows = real(args, dims)
    speed_rows = speed(args, sizes, dims)
    payload = {
        "command": "python benchmarks/serving.py " + " ".join(argv),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": args.threads, "faiss": faiss.__version__,
                    "platform": platform.platform()},
        "vectors": "synthetic",
        "speed_vectors": f"clustered unit base vectors (synthetic.py, seed 0) adapted by {ADAPTOR.relative_to(ROOT)}",
        "shortlist": SHORTLIST,
        "speed": speed_rows,
        "real": real_rows,
        "bars": bars(speed_rows, real_rows),
        "seconds": round(time.perf_counter() - start, 1),
    }
    from matryoshka_adaptor.eval import write_json_atomic

    write_json_atomic(ROOT / "results" / "serving_benchmark.json", payload)
    plot(payload, ROOT / "plots" / "serving_benchmark.png")
    print(json.dumps(payload["bars"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
