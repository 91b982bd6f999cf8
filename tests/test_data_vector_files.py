import numpy as np
import pandas as pd
import pytest

from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.data.vector_files import load_embedding_folder

RNG = np.random.default_rng(0)


def write_npy(folder, docs=4, queries=2, width=6, query_width=None):
    folder.mkdir(exist_ok=True)
    np.save(folder / "corpus.npy", RNG.standard_normal((docs, width)).astype(np.float32))
    (folder / "corpus_ids.txt").write_text("\n".join(f"d{i}" for i in range(docs)) + "\n")
    np.save(folder / "queries.npy", RNG.standard_normal((queries, query_width or width)).astype(np.float32))
    (folder / "queries_ids.txt").write_text("\n".join(f"q{i}" for i in range(queries)) + "\n")
    return folder


def test_reads_npy_and_parquet(tmp_path) -> None:
    e = load_embedding_folder(write_npy(tmp_path / "mine"))
    assert e.name == "mine" and e.doc_ids == ["d0", "d1", "d2", "d3"] and e.query_embeddings.shape == (2, 6)
    pq = tmp_path / "pq"
    pq.mkdir()
    for part, n in (("corpus", 3), ("queries", 2)):
        pd.DataFrame({"pid": [f"{part}{i}" for i in range(n)], "vec": list(RNG.standard_normal((n, 5)))}).to_parquet(pq / f"{part}.parquet")
    e = load_embedding_folder(pq, id_column="pid", vector_column="vec")
    assert e.doc_embeddings.shape == (3, 5) and e.query_ids == ["queries0", "queries1"]


def test_bad_vector_files(tmp_path) -> None:
    folder = write_npy(tmp_path / "nan")
    x = np.load(folder / "corpus.npy")
    x[2, 1] = np.nan
    np.save(folder / "corpus.npy", x)
    with pytest.raises(InputError, match=r"corpus.npy: row 2 holds NaN"):
        load_embedding_folder(folder)
    with pytest.raises(InputError, match="width 4, corpus vectors 6"):
        load_embedding_folder(write_npy(tmp_path / "wide", query_width=4))
    folder = write_npy(tmp_path / "ids")
    (folder / "corpus_ids.txt").write_text("d0\nd1\n")
    with pytest.raises(InputError, match=r"corpus.npy: expected a 2-D array with one row per id"):
        load_embedding_folder(folder)
    pq = tmp_path / "pq"
    pq.mkdir()
    pd.DataFrame({"id": ["a"], "vector": [[1.0, 2.0]]}).to_parquet(pq / "corpus.parquet")
    with pytest.raises(InputError, match=r"corpus.parquet: missing column\(s\) embedding"):
        load_embedding_folder(pq)
