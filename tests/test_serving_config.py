import json
from pathlib import Path

import pytest

from matryoshka_adaptor.errors import InputError
from matryoshka_adaptor.serving.config import IndexConfig, vector_bytes


def test_bytes_per_vector_follow_the_precision() -> None:
    assert [vector_bytes(64, p) for p in ("float32", "float16", "int8", "binary")] == [256, 128, 64, 8]
    config = IndexConfig(dim=64, full_dim=384, precision="int8", rescore="float16")
    assert (config.prefix_bytes_per_vector, config.rescore_bytes_per_vector) == (64, 768)
    assert IndexConfig(dim=64, full_dim=384, rescore="none").rescore_bytes_per_vector == 0


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"dim": 0}, "1 <= dim <= full_dim=384"),
        ({"dim": 400}, "1 <= dim <= full_dim=384"),
        ({"dim": 20, "precision": "binary"}, "multiple of 8"),
        ({"dim": 64, "precision": "int4"}, "precision='int4': expected one of float32, float16, int8, binary"),
        ({"dim": 64, "index": "lsh"}, "index='lsh': expected one of flat, hnsw, ivf"),
        ({"dim": 64, "rescore": "binary"}, "rescore='binary'"),
        ({"dim": 64, "hnsw_m": 0}, "hnsw_m=0"),
    ],
)
def test_bad_config_is_one_line_naming_the_value(kwargs: dict, words: str) -> None:
    with pytest.raises(InputError, match=None) as e:
        IndexConfig(full_dim=384, **kwargs)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_config_round_trips_and_a_foreign_file_is_named(tmp_path: Path) -> None:
    config = IndexConfig(dim=32, full_dim=384, index="hnsw", precision="binary", n_vectors=7)
    (tmp_path / "config.json").write_text(config.to_json())
    assert IndexConfig.read(tmp_path / "config.json") == config
    (tmp_path / "config.json").write_text(json.dumps({"dim": 32, "full_dim": 384, "colour": "red"}))
    with pytest.raises(InputError, match=r"config.json: expected an index config with dim and full_dim, not \['colour'\]"):
        IndexConfig.read(tmp_path / "config.json")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="config.json: not valid JSON"):
        IndexConfig.read(tmp_path / "config.json")
    with pytest.raises(InputError, match="nowhere/config.json: not found"):
        IndexConfig.read(tmp_path / "nowhere" / "config.json")
