import os

import pytest

from matryoshka_adaptor.atomic import write_bytes_atomic, write_folder_atomic
from matryoshka_adaptor.errors import InputError


def _fill(files: dict[str, str]):
    def write(tmp) -> None:
        for name, text in files.items():
            (tmp / name).write_text(text)

    return write


def _failing(tmp) -> None:
    (tmp / "half.txt").write_text("half")
    raise RuntimeError("killed mid-write")


def test_write_bytes_replaces_the_file_and_leaves_no_temp(tmp_path) -> None:
    path = tmp_path / "x.bin"
    write_bytes_atomic(path, b"old")
    write_bytes_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["x.bin"]


def test_write_folder_refuses_an_existing_folder_without_overwrite(tmp_path) -> None:
    folder = write_folder_atomic(tmp_path / "m", _fill({"a.txt": "1"}))
    with pytest.raises(InputError, match=r"m already exists: pass --overwrite"):
        write_folder_atomic(folder, _fill({"a.txt": "2"}))
    assert (folder / "a.txt").read_text() == "1"


def test_write_folder_overwrite_replaces_the_whole_folder(tmp_path) -> None:
    folder = write_folder_atomic(tmp_path / "deep" / "m", _fill({"a.txt": "1", "stale.txt": "x"}))
    write_folder_atomic(folder, _fill({"a.txt": "2"}), overwrite=True)
    assert sorted(os.listdir(folder)) == ["a.txt"] and (folder / "a.txt").read_text() == "2"
    assert os.listdir(folder.parent) == ["m"]  # neither the temp folder nor the old one is left


@pytest.mark.parametrize("exists", [False, True])
def test_a_failed_write_leaves_the_old_folder_whole_and_no_temp(tmp_path, exists) -> None:
    folder = tmp_path / "m"
    if exists:
        write_folder_atomic(folder, _fill({"a.txt": "1"}))
    with pytest.raises(RuntimeError, match="killed mid-write"):
        write_folder_atomic(folder, _failing, overwrite=True)
    assert os.listdir(tmp_path) == (["m"] if exists else [])
    if exists:
        assert os.listdir(folder) == ["a.txt"] and (folder / "a.txt").read_text() == "1"
