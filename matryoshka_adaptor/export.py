"""Export an adaptor as a Sentence-Transformers model: the base model's modules, then the adaptor as plain Dense layers.

`SentenceTransformer(folder, truncate_dim=64).encode(texts)` then returns the adapted, truncated embedding,
with no custom code to trust. ST's Dense is Linear + one activation, and ĉe = z + f(z) needs a skip connection, so
the export carries z through f's ReLU layers as relu(z) and relu(-z), since z = relu(z) - relu(-z):
    layer 1: [z; -z; W1 z + b1] -> ReLU          (z = R ce folded into the weights)
    layer k: [p; n; h] -> [p; n; Wk h + bk] -> ReLU   (p, n >= 0 pass through ReLU unchanged)
    last:    [p; n; h] -> p - n + W h + b = z + f(z)   (no activation)
This is exact for activation='relu' only; other activations are refused.

    python -m matryoshka_adaptor.export saved_models/scifact_supervised exported/scifact_supervised
    # and check it on every document and query of SciFact against transform() of the cached base embeddings:
    python -m matryoshka_adaptor.export saved_models/scifact_supervised exported/scifact_supervised --verify-dataset=scifact
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import torch
from torch import nn

from .atomic import refuse_existing, write_folder_atomic
from .encoders import resolve_model_path
from .errors import InputError, run_command
from .model import MatryoshkaAdaptor
from .data.sources import Source

logger = logging.getLogger(__name__)


def adaptor_as_dense_layers(adaptor: MatryoshkaAdaptor) -> list[nn.Module]:
    """Sentence-Transformers Dense modules that compute adaptor(x) exactly (ReLU adaptors only)."""
    from sentence_transformers.sentence_transformer.modules import Dense

    config = adaptor.config
    if config.activation != "relu":
        raise InputError(
            f"activation {config.activation!r}: only a 'relu' adaptor exports exactly to Sentence-Transformers Dense layers"
        )
    linears = [m for m in adaptor.mlp if isinstance(m, nn.Linear)]
    rot = adaptor.rotation.detach().cpu()
    shift = -rot @ adaptor.center.detach().cpu()  # z = R·x − R·μ: the centring becomes a bias
    d = config.input_dim
    eye = torch.eye(d)
    layers: list[nn.Module] = []
    with torch.no_grad():
        first = linears[0]
        w = torch.cat([rot, -rot, first.weight.cpu() @ rot])
        b = torch.cat([shift, -shift, first.bias.cpu() + first.weight.cpu() @ shift])
        layers.append(Dense(d, w.shape[0], activation_function=nn.ReLU(), init_weight=w, init_bias=b))
        for lin in linears[1:-1]:
            w = torch.block_diag(eye, eye, lin.weight.cpu())
            b = torch.cat([torch.zeros(2 * d), lin.bias.cpu()])
            layers.append(Dense(w.shape[1], w.shape[0], activation_function=nn.ReLU(), init_weight=w, init_bias=b))
        last = linears[-1]
        w = torch.cat([eye, -eye, last.weight.cpu()], dim=1)
        layers.append(Dense(w.shape[1], d, activation_function=nn.Identity(), init_weight=w, init_bias=last.bias.cpu().clone()))
    return layers


def export_sentence_transformer(
    adaptor_folder: str | os.PathLike[str], out_folder: str | os.PathLike[str], overwrite: bool = False
) -> Path:
    """Write base model + adaptor as one SentenceTransformer folder (temp folder, then rename)."""
    from sentence_transformers import SentenceTransformer

    out = Path(out_folder)
    if not overwrite:
        refuse_existing(out)
    adaptor = MatryoshkaAdaptor.load(adaptor_folder)
    if adaptor.config.encoder_roles != "shared":
        raise InputError(
            f"{adaptor_folder}: trained on {adaptor.config.base_model}'s query and document roles, a black-box encoder "
            "that cannot be exported as a Sentence-Transformers model; adapt its vectors with transform() or NumpyAdaptor"
        )
    base = SentenceTransformer(resolve_model_path(adaptor.config.base_model), device="cpu")
    dim = base.get_embedding_dimension()
    if dim != adaptor.config.input_dim:
        raise InputError(f"{adaptor.config.base_model} gives {dim}-dim embeddings, the adaptor expects {adaptor.config.input_dim}")
    model = SentenceTransformer(modules=[*base, *adaptor_as_dense_layers(adaptor)], device="cpu")
    write_folder_atomic(out, lambda tmp: model.save(str(tmp)), overwrite)
    logger.info("exported %s + %s to %s", adaptor.config.base_model, adaptor_folder, out)
    return out


def verify_export(
    exported: str | os.PathLike[str], adaptor_folder: str | os.PathLike[str], source: Source, dim: int
) -> dict[str, float]:
    """Encode every document and query of a dataset with the exported model and compare, row by row, with
    MatryoshkaAdaptor.transform (and the numpy path) of the cached base embeddings."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from .numpy_adaptor import NumpyAdaptor

    embedded, _, _ = source.load("test")
    if embedded.doc_texts is None or embedded.query_texts is None:
        raise InputError("verifying an export needs a text dataset, not precomputed vectors")
    base = np.concatenate([embedded.doc_embeddings, embedded.query_embeddings])
    want = MatryoshkaAdaptor.load(adaptor_folder).transform(base, dim=dim)
    numpy_gap = float(np.abs(NumpyAdaptor.load(adaptor_folder).transform(base, dim=dim) - want).max())
    model = SentenceTransformer(str(exported), truncate_dim=dim, device=source.device)
    got = model.encode(embedded.doc_texts + embedded.query_texts, show_progress_bar=True)
    cosines = (got * want).sum(axis=1) / np.linalg.norm(got, axis=1)
    report = {"texts": len(got), "dim": dim, "min_cosine": float(cosines.min()), "numpy_max_abs_diff": numpy_gap}
    logger.info("export check on %s: %s", embedded.name, report)
    return report


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description="Export an adaptor as a Sentence-Transformers model folder.")
    p.add_argument("adaptor", help="saved adaptor folder (config.json + model.safetensors)")
    p.add_argument("out", help="folder to write")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--verify-dataset", default=None, help="then check the export on every text of this BEIR dataset")
    p.add_argument("--data-root", default=None, help="folder of BEIR datasets (default: $MATRYOSHKA_DATA_ROOT)")
    p.add_argument("--verify-dim", type=int, default=64)
    args = p.parse_args(argv)

    def action() -> None:
        out = export_sentence_transformer(args.adaptor, args.out, args.overwrite)
        if args.verify_dataset:
            source = Source(dataset=args.verify_dataset, data_root=args.data_root, model=MatryoshkaAdaptor.load(args.adaptor).config.base_model)
            print(verify_export(out, args.adaptor, source, args.verify_dim))

    return run_command(action)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
