import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from matryoshka_adaptor.encoders.cache import (
    CACHE_FORMAT,
    MANIFEST_NAME,
    EmbeddedDataset,
    Encoder,
    cache_key,
)
from matryoshka_adaptor.errors import InputError

TEXTS = [f"text number {i}" for i in range(7)]  # chunk_size 3: chunks of 3, 3 and 1 rows


class FakeModel:
    """Deterministic 4-dim vectors from a hash of each text; records how many texts each call encoded."""

    def __init__(self) -> None:
        self.encoded: list[int] = []
        self.kwargs: list[dict] = []

    def encode(self, texts, **kwargs):
        self.encoded.append(len(texts))
        self.kwargs.append(kwargs)
        return np.array([np.frombuffer(hashlib.sha256(t.encode()).digest()[:4], np.uint8) / 7 for t in texts], np.float32)


def fake_encoder(cache_dir: Path, chunk_size: int = 3, devices: list[str] | None = None) -> Encoder:
    # device "cpu" (without devices): deciding against a multi-process pool then needs no torch import
    enc = Encoder("fake", cache_dir=cache_dir, chunk_size=chunk_size, device=None if devices else "cpu", devices=devices)
    enc._model = FakeModel()
    return enc


def cache_folder(cache_dir: Path) -> Path:
    return cache_dir / cache_key("fake", None, TEXTS)


@pytest.fixture
def cached(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A complete cache of TEXTS in chunks of 3, and the array it was encoded into."""
    return cache_folder(tmp_path), fake_encoder(tmp_path).encode(TEXTS)


def test_chunks_and_manifest_are_written(cached) -> None:
    folder, first = cached
    assert sorted(p.name for p in folder.iterdir()) == ["chunk_00000.npy", "chunk_00001.npy", "chunk_00002.npy", MANIFEST_NAME]
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert {k: manifest[k] for k in ("format", "model", "max_seq_length", "n_texts", "dim", "chunk_size")} == {
        "format": CACHE_FORMAT, "model": "fake", "max_seq_length": None, "n_texts": 7, "dim": 4, "chunk_size": 3
    }
    assert [(c["file"], c["rows"]) for c in manifest["chunks"].values()] == [(f"chunk_0000{i}.npy", r) for i, r in enumerate((3, 3, 1))]
    for c in manifest["chunks"].values():
        assert hashlib.sha256((folder / c["file"]).read_bytes()).hexdigest() == c["sha256"]
    assert first.dtype == np.float32 and first.shape == (7, 4)
    np.testing.assert_array_equal(first, FakeModel().encode(TEXTS))


def test_second_encode_reads_the_cache(cached, caplog) -> None:
    folder, first = cached
    with caplog.at_level(logging.INFO):
        again = Encoder("fake", cache_dir=folder.parent).encode(TEXTS)  # a new encoder never loads a model
    np.testing.assert_array_equal(first, again)
    assert "nothing encoded" in caplog.text


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.unlink(), "No such file"),
        (lambda p: p.write_bytes(p.read_bytes()[:40]), "truncated or corrupted"),
        (lambda p: p.write_bytes(p.read_bytes()[:-1] + bytes([p.read_bytes()[-1] ^ 1])), "sha256 differs"),
    ],
    ids=["deleted", "truncated", "byte flipped"],
)
def test_a_damaged_chunk_is_detected_and_only_it_encoded_again(cached, caplog, damage, message) -> None:
    folder, first = cached
    damage(folder / "chunk_00001.npy")
    enc = fake_encoder(folder.parent)
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(enc.encode(TEXTS), first)
    assert enc._model.encoded == [3]
    assert "chunk_00001.npy" in caplog.text and message in caplog.text
    np.testing.assert_array_equal(fake_encoder(folder.parent).encode(TEXTS), first)  # and the cache is whole again


def test_a_corrupt_manifest_starts_over(cached, caplog) -> None:
    folder, first = cached
    (folder / MANIFEST_NAME).write_text('{"format": 1, "chunks": ')
    enc = fake_encoder(folder.parent)
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(enc.encode(TEXTS), first)
    assert enc._model.encoded == [3, 3, 1] and "manifest.json: unreadable" in caplog.text


def test_a_partial_manifest_resumes_the_missing_chunks_with_its_chunk_size(cached, tmp_path) -> None:
    folder, first = cached
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    del manifest["chunks"]["1"], manifest["chunks"]["2"]  # as if killed after chunk 0 (chunk 1's file is an orphan)
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    (folder / ".chunk_00002.npy.123.tmp").write_bytes(b"partial")
    enc = fake_encoder(folder.parent, chunk_size=5)  # the cache's chunk size wins
    np.testing.assert_array_equal(enc.encode(TEXTS), first)
    assert enc._model.encoded == [3, 1]
    assert not list(folder.glob("*.tmp")) and len(json.loads((folder / MANIFEST_NAME).read_text())["chunks"]) == 3


@pytest.mark.parametrize("chunk_size", [0, -1, 2.5, True])
def test_chunk_size_must_be_a_positive_int(tmp_path, chunk_size) -> None:
    with pytest.raises(InputError, match="chunk_size"):
        Encoder("fake", cache_dir=tmp_path, chunk_size=chunk_size)


def test_nothing_to_encode_is_an_input_error(tmp_path) -> None:
    with pytest.raises(InputError, match="no queries to encode"):
        fake_encoder(tmp_path).encode([], what="queries")


class FakePoolModel(FakeModel):
    def __init__(self) -> None:
        super().__init__()
        self.pools: list[str] = []

    def start_multi_process_pool(self, devices):
        self.pools.append(f"started {devices}")
        return {"processes": devices}

    def stop_multi_process_pool(self, pool) -> None:
        self.pools.append("stopped")


def test_devices_encode_every_chunk_with_one_pool(tmp_path) -> None:
    enc = fake_encoder(tmp_path, devices=["cpu", "cpu"])
    enc._model = FakePoolModel()
    enc.encode(TEXTS)
    assert enc._model.pools == ["started ['cpu', 'cpu']", "stopped"]
    assert [(k["pool"], k["chunk_size"]) for k in enc._model.kwargs] == [({"processes": ["cpu", "cpu"]}, n) for n in (2, 2, 1)]
    with pytest.raises(InputError, match="devices"):
        Encoder("fake", cache_dir=tmp_path, device="cpu", devices=["cpu"])


def test_cache_key_depends_on_model_length_and_every_text() -> None:
    k = cache_key("m", None, ["a", "b"])
    assert len({k, cache_key("m2", None, ["a", "b"]), cache_key("m", 128, ["a", "b"]), cache_key("m", None, ["a", "c"]), cache_key("m", None, ["ab"])}) == 5


def test_a_model_folder_changed_in_place_gets_another_cache_name(tmp_path) -> None:
    folder = tmp_path / "fine-tuned"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights 1")
    before = Encoder(str(folder)).cache_name("document")
    assert before.startswith(f"{folder}#files-") and Encoder(str(folder)).cache_name("document") == before
    (folder / "model.safetensors").write_bytes(b"weights 2")  # fine-tuned again into the same folder
    assert Encoder(str(folder)).cache_name("document") != before
    assert Encoder("sentence-transformers/all-MiniLM-L6-v2").cache_name("document") == "sentence-transformers/all-MiniLM-L6-v2"


def test_chunks_hold_texts_longest_first_but_rows_come_back_in_text_order(tmp_path) -> None:
    texts = ["a", "ccc", "bb", "dddd", "e"]
    enc = fake_encoder(tmp_path, chunk_size=2)
    got = enc.encode(texts)
    np.testing.assert_array_equal(got, FakeModel().encode(texts))
    first_chunk = np.load(tmp_path / cache_key("fake", None, texts) / "chunk_00000.npy")
    np.testing.assert_array_equal(first_chunk, FakeModel().encode(["dddd", "ccc"]))
    np.testing.assert_array_equal(fake_encoder(tmp_path, chunk_size=2).encode(texts), got)  # read back in order


def test_part_codes_of_a_partitioned_dataset() -> None:
    vectors = np.zeros((3, 2), np.float32)
    embedded = EmbeddedDataset("toy", "fake", ["en/d1", "de/d1", "en/d2"], vectors, ["de/q1", "en/q1", "en/q2"], vectors)
    assert embedded.part_codes() is None  # one collection
    embedded.partitioned = True
    codes = embedded.part_codes()
    assert codes.docs.tolist() == [1, 0, 1] and codes.queries.tolist() == [0, 1, 1]  # parts in sorted order: de, en
    assert codes.items.tolist() == [0, 0, 1]  # q1 in German and in English is one query
    embedded.query_ids = ["fr/q1", "en/q1", "en/q2"]
    with pytest.raises(InputError, match=r"toy: queries of part\(s\) \['fr'\] have no documents"):
        embedded.part_codes()
