"""Build and query an AdaptedIndex from the command line.

    python -m matryoshka_adaptor.serving build --adaptor=saved_models/scifact_supervised --dataset=scifact \\
        --dim=64 --precision=int8 --out=indexes/scifact_64_int8
    python -m matryoshka_adaptor.serving query --index=indexes/scifact_64_int8 --text="What lowers blood pressure?"

`build` embeds the dataset's documents with the base model (through the embedding cache: nothing is re-encoded),
adapts them with --adaptor (without one it indexes the base vectors) and saves the index folder. `query` encodes
each --text as a query with the base model the index's adaptor records and prints the top documents.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repo root importable
    sys.path[0] = str(Path(__file__).resolve().parents[2])

from matryoshka_adaptor.encoders import DEFAULT_MODEL, Encoder  # noqa: E402
from matryoshka_adaptor.errors import InputError, run_command  # noqa: E402
from matryoshka_adaptor.serving.config import INDEX_TYPES, PRECISIONS, RESCORE_PRECISIONS, IndexConfig  # noqa: E402
from matryoshka_adaptor.serving.index import AdaptedIndex  # noqa: E402
from matryoshka_adaptor.data.sources import Source  # noqa: E402

KNOBS = ("hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "ivf_lists", "ivf_probe")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="index a dataset's documents", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    b.add_argument("--out", required=True, help="index folder to write")
    b.add_argument("--adaptor", default=None, help="saved adaptor folder (None: index the base vectors)")
    b.add_argument("--dataset", default="scifact", help="BEIR dataset name, or xquad-r-<lang>")
    b.add_argument("--data-root", "--data_root", default=None, help="folder of datasets (None: $MATRYOSHKA_DATA_ROOT)")
    b.add_argument("--embeddings", default=None, help="folder of precomputed base vectors instead of a dataset")
    b.add_argument("--model", default=DEFAULT_MODEL, help="base SentenceTransformer model")
    b.add_argument("--encoder", default=None, help="black-box encoder instead of --model")
    b.add_argument("--cache-dir", "--cache_dir", default=None, help="embedding cache (None: $MATRYOSHKA_CACHE_DIR)")
    b.add_argument("--max-docs", "--max_docs", type=int, default=None, help="first N documents only")
    b.add_argument("--dim", type=int, required=True, help="adapted dims in the shortlist index")
    b.add_argument("--index", default="flat", choices=INDEX_TYPES)
    b.add_argument("--precision", default="float32", choices=PRECISIONS, help="of the shortlist index")
    b.add_argument("--rescore", default="float32", choices=RESCORE_PRECISIONS, help="of the full vectors kept for re-scoring")
    defaults = {f.name: f.default for f in fields(IndexConfig)}
    for knob in KNOBS:
        b.add_argument(f"--{knob.replace('_', '-')}", type=int, default=defaults[knob], dest=knob)
    b.add_argument("--overwrite", action="store_true", help="replace an existing index folder")
    q = sub.add_parser("query", help="search an index with query texts", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    q.add_argument("--index", required=True, help="index folder written by build")
    q.add_argument("--text", action="append", required=True, help="a query (repeat for several)")
    q.add_argument("--top-k", "--top_k", type=int, default=10)
    q.add_argument("--shortlist", type=int, default=100, help="candidates the prefix index passes to re-scoring")
    q.add_argument("--cache-dir", "--cache_dir", default=None, help="embedding cache for the query texts")
    return p.parse_args(argv)


def build(args: argparse.Namespace) -> AdaptedIndex:
    source = Source(dataset=args.dataset, data_root=args.data_root, embeddings=args.embeddings, max_docs=args.max_docs,
                    model=args.model, encoder=args.encoder, cache_dir=args.cache_dir)
    embedded, _, _ = source.load("test")
    config = IndexConfig(dim=args.dim, full_dim=embedded.doc_embeddings.shape[1], index=args.index,
                         precision=args.precision, rescore=args.rescore, **{k: getattr(args, k) for k in KNOBS})
    index = AdaptedIndex.build(embedded.doc_embeddings, config, embedded.doc_ids, adaptor=args.adaptor)
    index.save(args.out, overwrite=args.overwrite)
    print(f"{args.out}: {index.config.n_vectors} documents, {index.prefix_bytes / index.config.n_vectors:.1f} index bytes per vector")
    return index


def query(args: argparse.Namespace) -> None:
    index = AdaptedIndex.load(args.index)
    recorded = index.config.adaptor
    if recorded is None or recorded["path"] is None:
        raise InputError(f"{args.index}: built without an adaptor folder, so it cannot encode texts; query it from Python")
    from matryoshka_adaptor.model import MatryoshkaAdaptor

    adaptor = MatryoshkaAdaptor.load(recorded["path"])
    black_box = adaptor.config.encoder_roles != "shared"
    encoder = (Encoder.black_box(adaptor.config.base_model, cache_dir=args.cache_dir) if black_box
               else Encoder(adaptor.config.base_model, cache_dir=args.cache_dir))
    vectors = encoder.encode(args.text, what="queries", role="query")
    ids, scores = index.search_base(vectors, adaptor, top_k=args.top_k, shortlist=args.shortlist)
    for text, row, row_scores in zip(args.text, ids, scores):
        print(text)
        for rank, (i, s) in enumerate(zip(row, row_scores), 1):
            if i >= 0:
                print(f"  {rank:>3}. {index.doc_ids[i] if index.doc_ids else i}  {s:.4f}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    return run_command(lambda: build(args) if args.command == "build" else query(args))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
