"""Two CPU processes with gloo against one process: the same gradients, and the same training run."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from matryoshka_adaptor.training.distributed import World
from matryoshka_adaptor.model import MatryoshkaAdaptor
from matryoshka_adaptor.data.synthetic import write_synthetic_folder
from matryoshka_adaptor.train import Supervision, TrainConfig, Trainer, seed_everything

ROOT = Path(__file__).resolve().parents[1]
CONFIG = dict(hidden_dim=32, topk=5, dims=(8, 16, 32), rank_candidates=300)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step_gradients(rank: int, world_size: int, port: int, folder: str, out: str) -> None:
    """One training step (odd batch sizes, so the shares are uneven) of both stages' losses; every rank saves its
    averaged gradients to <out>.rank<r>. Torch's thread count and deterministic mode are restored afterwards, so
    a call in the test process leaves nothing switched on for later tests."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        _step_gradients(rank, world_size, port, folder, out)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _step_gradients(rank: int, world_size: int, port: int, folder: str, out: str) -> None:
    if world_size > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    seed_everything(0)
    docs, queries = np.load(f"{folder}/corpus.npy"), np.load(f"{folder}/queries.npy")
    trainer = Trainer(docs, TrainConfig(**CONFIG), "cpu")
    assert trainer.world.size == world_size and trainer.world.rank == rank  # the world the trainer sees
    adaptor = trainer.new_adaptor("toy", {})
    with torch.no_grad():  # move off the identity start, where the last layer's gradients are special
        for p in adaptor.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    module = trainer.distributed(adaptor)
    sup = Supervision.from_qrels({f"q{i}": {f"d{i}": 1} for i in range(40)}, {f"q{i}": i for i in range(40)}, queries,
                                 {f"d{i}": i for i in range(len(docs))})
    batch, query_rows = torch.arange(3, 40), np.arange(11)
    lo, hi = trainer.world.share(len(query_rows))
    candidates = trainer.candidates(sup.positives(query_rows), torch.Generator().manual_seed(0))
    loss = trainer.step_loss(adaptor, module, batch) + trainer.step_loss(
        adaptor, module, batch, torch.from_numpy(queries[query_rows[lo:hi]]),
        sup.relevance(query_rows[lo:hi], candidates), candidates, len(query_rows),
    )
    loss.backward()
    torch.save([p.grad for p in adaptor.parameters()], f"{out}.rank{rank}")
    if world_size > 1:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # planted structure that supervision can learn, so that the supervised stage is kept and the runs compared
    # below end away from their start
    return write_synthetic_folder(tmp_path_factory.mktemp("synthetic"), n_docs=1200, n_queries=240, dim=32, topic_dims=8)


def test_two_gloo_processes_give_the_single_process_gradient(folder: Path, tmp_path: Path) -> None:
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    step_gradients(0, 1, 0, str(folder), str(tmp_path / "one.pt"))
    assert torch.get_num_threads() == threads and torch.are_deterministic_algorithms_enabled() == deterministic
    mp.spawn(step_gradients, args=(2, free_port(), str(folder), str(tmp_path / "two.pt")), nprocs=2)
    one = torch.load(tmp_path / "one.pt.rank0")
    for rank in (0, 1):  # DDP averages the shares' gradients: every rank must hold the single-process gradient
        for a, b in zip(one, torch.load(tmp_path / f"two.pt.rank{rank}")):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6 * float(a.abs().max()))


def test_shares_cover_a_batch_in_order() -> None:
    shares = [World(r, 3).share(10) for r in range(3)]
    assert shares == [(0, 3), (3, 6), (6, 10)]


def run_main(folder: Path, out: Path, processes: int) -> MatryoshkaAdaptor:
    args = [f"--embeddings={folder}", f"--qrels={folder / 'qrels.tsv'}", f"--output_dir={out}", "--threads=1",
            "--hidden_dim=32", "--unsup_epochs=2", "--sup_epochs=2", "--unsup_batch_size=100", "--sup_batch_size=32",
            "--max_dim_drop=1.0", "--rank_candidates=300", "--prefix_rotation=16"]
    launcher = [sys.executable, "main.py"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}", f"--master_port={free_port()}", "main.py"]
    result = subprocess.run(launcher + args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return MatryoshkaAdaptor.load(out / f"{folder.name}_supervised")


def test_torchrun_two_processes_match_one(folder: Path, tmp_path: Path) -> None:
    """Same seed and global batch. The gradients agree to float rounding (above), but Adam divides by the root of
    tiny second moments near the identity start, so rounding differences grow; the stated tolerance is on what
    the run delivers: the loss curve to 1e-4 relative, every validation score to 0.01, and the adapted embeddings
    to cosine 0.9999 with each other."""
    one, two = run_main(folder, tmp_path / "one", 1), run_main(folder, tmp_path / "two", 2)
    assert two.config.training["processes"] == 2
    assert one.config.training["stages"][-1]["best_epoch"] >= 1  # training moved the adaptor
    refined = [a.config.training["start_map"]["prefix_rotation"] for a in (one, two)]
    assert refined[0]["epochs_run"] == refined[1]["epochs_run"] == 2 and refined[0]["best_epoch"] == refined[1]["best_epoch"]
    torch.testing.assert_close(two.rotation, one.rotation, atol=1e-5, rtol=0)  # the refined start, on every process
    for a, b in zip(one.config.training["stages"], two.config.training["stages"]):
        assert a["epochs_run"] == b["epochs_run"] and a["best_epoch"] == b["best_epoch"]
        np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-4)
        np.testing.assert_allclose(b["val_ndcg_at_10"], a["val_ndcg_at_10"], atol=0.01)
    x = np.load(folder / "corpus.npy")
    ea, eb = one.transform(x), two.transform(x)
    cos = (ea * eb).sum(1) / np.linalg.norm(ea, axis=1) / np.linalg.norm(eb, axis=1)
    assert cos.min() > 0.9999
