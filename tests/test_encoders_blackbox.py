"""Black-box encoders: a deterministic function defined here goes through the cache, training, saving, loading and
transform; bad encoders fail with one line naming the encoder and what it returned, and leave no cached chunk."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import main
from matryoshka_adaptor import MatryoshkaAdaptor
from matryoshka_adaptor.encoders import Encoder, load_encoder_function
from matryoshka_adaptor.encoders.cache import MANIFEST_NAME
from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.export import export_sentence_transformer

WIDTH = 48
SPEC = "test_encoders_blackbox:toy_encoder"  # pytest puts tests/ on sys.path, as a user's module would be
TOPICS = ["protein folding", "star formation", "river delta", "neural network", "glacier melt", "bond yield"]


def _word_vector(word: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(WIDTH)


def toy_encoder(texts: list[str], role: str) -> np.ndarray:
    """Bag of hashed word vectors; queries get an extra fixed direction, as E5's 'query: ' prefix shifts them."""
    rows = [sum((_word_vector(w) for w in t.lower().split()), np.zeros(WIDTH)) for t in texts]
    out = np.stack(rows) + (3.0 * _word_vector("<query>") if role == "query" else 0.0)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _beir_folder(root: Path) -> Path:
    """60 documents on 6 topics with filler words, 30 queries each naming its document's topic and tag."""
    folder = root / "toy"
    (folder / "qrels").mkdir(parents=True)
    rng = np.random.default_rng(0)
    filler = [f"w{i}" for i in range(40)]
    docs = {f"d{i}": f"{TOPICS[i % 6]} tag{i} " + " ".join(rng.choice(filler, 8)) for i in range(60)}
    queries = {f"q{i}": f"{TOPICS[i % 6]} tag{i}" for i in range(30)}
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n" for d, t in docs.items()))
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()))
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(30)))
    return root


def test_a_black_box_encoder_trains_saves_loads_and_transforms(tmp_path: Path) -> None:
    root = _beir_folder(tmp_path / "data")
    args = [f"--data_root={root}", "--dataset=toy", f"--encoder={SPEC}", f"--cache_dir={tmp_path / 'cache'}",
            f"--output_dir={tmp_path / 'models'}", "--dims=8,16,48", "--unsup_epochs=2", "--sup_epochs=3",
            "--probe_docs=10", "--val_fraction=0.3"]
    assert main.main(args) == 0
    adaptor = MatryoshkaAdaptor.load(tmp_path / "models" / "toy_supervised")
    assert (adaptor.config.base_model, adaptor.config.encoder_roles, adaptor.config.input_dim) == (SPEC, "query/document", WIDTH)
    queries = toy_encoder(["river delta tag2", "bond yield tag5"], "query")
    short = adaptor.transform(queries, dim=16)
    assert short.shape == (2, 16) and np.isfinite(short).all()
    full = adaptor.transform(queries)[:, :16]
    np.testing.assert_allclose(short, full / np.linalg.norm(full, axis=1, keepdims=True), atol=1e-6)
    with pytest.raises(InputError, match="48"):
        adaptor.transform(np.ones((2, 32), dtype=np.float32))
    with pytest.raises(InputError, match="cannot be exported"):
        export_sentence_transformer(tmp_path / "models" / "toy_supervised", tmp_path / "exported")
    # the cache holds each role under its own key
    manifests = [json.loads(p.read_text())["model"] for p in (tmp_path / "cache").glob(f"*/{MANIFEST_NAME}")]
    assert sorted(manifests) == [f"{SPEC}#document", f"{SPEC}#query"]


def _widening():
    """An encoder whose width grows by one on every call."""
    calls = []

    def encode(texts: list[str], role: str) -> np.ndarray:
        calls.append(1)
        return np.ones((len(texts), 3 + len(calls)))

    return encode


def _encoder(tmp_path: Path, function) -> Encoder:
    return Encoder("bad-encoder", cache_dir=tmp_path, chunk_size=2, function=function)


@pytest.mark.parametrize(
    "function, match",
    [
        (lambda texts, role: np.ones((len(texts) - 1, 4)), r"'bad-encoder' \(documents\): returned shape \(1, 4\) for 2 texts"),
        (lambda texts, role: np.full((len(texts), 4), np.nan), r"'bad-encoder' \(documents\) output: row 0 holds NaN or inf \(2 such rows\)"),
        (lambda texts, role: "not vectors", "not an array of numbers"),
        (_widening(), "returned width 5, earlier calls returned 4"),
    ],
)
def test_bad_encoder_output_is_one_line_and_caches_nothing_unverified(tmp_path: Path, function, match: str) -> None:
    with pytest.raises(InputError, match=match) as err:
        _encoder(tmp_path, function).encode(["a", "bb", "c"], what="documents")
    assert "\n" not in str(err.value)
    for manifest in tmp_path.glob(f"*/{MANIFEST_NAME}"):  # only chunks that passed the checks are listed
        chunks = json.loads(manifest.read_text())["chunks"]
        assert all(np.isfinite(np.load(manifest.parent / c["file"])).all() for c in chunks.values())
        assert len(chunks) <= 1


def test_width_must_agree_between_queries_and_documents(tmp_path: Path) -> None:
    encoder = _encoder(tmp_path, lambda texts, role: np.ones((len(texts), 4 if role == "document" else 6)))
    encoder.encode(["a"], what="documents", role="document")
    with pytest.raises(InputError, match=r"\(queries\): returned width 6, earlier calls returned 4"):
        encoder.encode(["q"], what="queries", role="query")


@pytest.mark.parametrize(
    "spec, match",
    [
        ("no_such_module_xyz:embed", "cannot import module 'no_such_module_xyz'"),
        ("json:no_such_function", "has no callable 'no_such_function'"),
        ("just-a-name", "expected 'module:function' or one of"),
    ],
)
def test_unloadable_encoder_spec_is_refused(spec: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        load_encoder_function(spec)


def test_encoder_and_model_together_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _beir_folder(tmp_path / "data")
    code = main.main([f"--data_root={root}", "--dataset=toy", f"--encoder={SPEC}", "--model=some/model",
                      f"--output_dir={tmp_path / 'models'}"])
    assert code == 2 and "name one base model, not both" in capsys.readouterr().err
