"""A run's inputs: BEIR folders read strictly (beir.py), XQuAD-R as a retrieval dataset (xquad.py), precomputed
vectors (vector_files.py), the choice among them (sources.py), and synthetic corpora for tests (synthetic.py)."""

from .beir import DATA_ROOT_ENV, BeirDataset, document_text, item_of, load_dataset_folder, part_of, read_corpus, read_qrels, resolve_data_root

__all__ = ["DATA_ROOT_ENV", "BeirDataset", "document_text", "item_of", "load_dataset_folder", "part_of", "read_corpus", "read_qrels", "resolve_data_root"]
