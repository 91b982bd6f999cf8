import json
from dataclasses import asdict

import pytest

from matryoshka_adaptor.config import CONFIG_NAME, WEIGHTS_NAME, AdaptorConfig, read_adaptor_folder
from matryoshka_adaptor.errors import InputError


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_dim": 0}, r"input_dim 0: expected a positive int"),
        ({"input_dim": 8, "hidden_dim": 0}, r"hidden_dim 0, num_hidden_layers 1: expected positive ints"),
        ({"input_dim": 8, "num_hidden_layers": 0}, r"hidden_dim 512, num_hidden_layers 0: expected positive ints"),
        ({"input_dim": 8, "encoder_roles": "both"}, r"encoder_roles 'both': expected one of \['shared', 'query/document'\]"),
        ({"input_dim": 8, "activation": "swish"}, r"activation 'swish': expected one of \['gelu', 'relu', 'tanh'\]"),
        ({"input_dim": 8, "input_rotation": "random"}, r"input_rotation 'random': expected one of \['none', "),
    ],
)
def test_bad_fields_name_the_value_and_what_was_expected(kwargs, message) -> None:
    with pytest.raises(InputError, match=message):
        AdaptorConfig(**kwargs)


def _folder(tmp_path, config_text: str):
    (tmp_path / CONFIG_NAME).write_text(config_text)
    (tmp_path / WEIGHTS_NAME).write_bytes(b"")
    return tmp_path


def test_reads_a_saved_config_and_names_the_weights(tmp_path) -> None:
    config = AdaptorConfig(input_dim=8, training={"seed": 3})
    read, weights = read_adaptor_folder(_folder(tmp_path, json.dumps(asdict(config))))
    assert read == config and weights == tmp_path / WEIGHTS_NAME


@pytest.mark.parametrize("missing", [CONFIG_NAME, WEIGHTS_NAME])
def test_a_missing_file_is_named(tmp_path, missing) -> None:
    (_folder(tmp_path, json.dumps({"input_dim": 8})) / missing).unlink()
    with pytest.raises(InputError, match=rf"{missing}: missing; expected an adaptor folder with config.json and model.safetensors"):
        read_adaptor_folder(tmp_path)


@pytest.mark.parametrize("text", ["{not json", json.dumps({"input_dim": 8, "depth": 2}), json.dumps({})])
def test_a_bad_config_is_named(tmp_path, text) -> None:
    with pytest.raises(InputError, match=r"config.json: not a valid adaptor config \("):
        read_adaptor_folder(_folder(tmp_path, text))
