import numpy as np

from matryoshka_adaptor.data.vector_files import load_embedding_folder
from matryoshka_adaptor.data.synthetic import clustered_unit_vectors, topic_and_nuisance, write_synthetic_folder


def test_clustered_unit_vectors_are_unit_clustered_and_the_same_across_blocks() -> None:
    x = clustered_unit_vectors(300, 16, np.random.default_rng(0), n_clusters=3, block=64)
    assert x.shape == (300, 16) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    nearest = np.sort(x @ x.T, axis=1)[:, -2]  # each vector's nearest other one: its cluster's
    assert nearest.min() > 0.7
    np.testing.assert_array_equal(x, clustered_unit_vectors(300, 16, np.random.default_rng(0), n_clusters=3, block=64))


def test_topic_and_nuisance_puts_the_shared_topic_in_the_last_coordinates() -> None:
    docs, queries = topic_and_nuisance(50, 20, 12, 4, np.random.default_rng(0))
    assert docs.shape == (50, 12) and queries.shape == (20, 12)
    topic_gap = np.abs(queries[:, 8:] - docs[:20, 8:]).mean()
    nuisance_gap = np.abs(queries[:, :8] - docs[:20, :8]).mean()
    assert topic_gap < 0.2 and nuisance_gap > 0.8


def test_written_folder_reads_back_with_the_qrels_it_names(tmp_path) -> None:
    folder = write_synthetic_folder(tmp_path / "syn", n_docs=40, n_queries=10, dim=8, seed=1)
    embedded = load_embedding_folder(folder)
    assert (len(embedded.doc_ids), len(embedded.query_ids), embedded.doc_embeddings.shape[1]) == (40, 10, 8)
    qrels = embedded.qrels(folder / "qrels.tsv")
    assert qrels["q3"] == {"d3": 2, "d13": 1}  # its own document and that document's near copy
    cos = (embedded.query_embeddings * embedded.doc_embeddings[:10]).sum(1)
    assert cos.min() > 0.5  # query i is a noisy copy of document i
