"""Reading JSON settings files: the content, or one line naming the file and the problem, raised
as the error class the caller chose."""

from __future__ import annotations

from pathlib import Path

import pytest

from medseg.errors import ConfigError, DatasetError, MedsegError, RunFolderError
from medseg.io import read_json_file


def _refusal(path: Path, error: type[MedsegError] = ConfigError, **kwargs: bool) -> str:
    """The message ``read_json_file`` raises for ``path``, checked to be one line that
    starts with the file."""
    with pytest.raises(error) as info:
        read_json_file(path, error, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    return message


def test_reads_utf8_json(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"name": "Hippocampus \u00e9", "labels": [0, 1]}', encoding="utf-8")
    assert read_json_file(path, ConfigError, expect_object=True) == {
        "name": "Hippocampus \u00e9",
        "labels": [0, 1],
    }
    path.write_text("[1, 2]", encoding="utf-8")
    assert read_json_file(str(path), ConfigError) == [1, 2]  # any JSON unless told otherwise


@pytest.mark.parametrize("error", [ConfigError, DatasetError, RunFolderError])
def test_bad_json_raises_the_callers_error(tmp_path: Path, error: type[MedsegError]) -> None:
    path = tmp_path / "plan.json"
    path.write_text('{"batch_size": 2,\n "patch_size": }', encoding="utf-8")
    message = _refusal(path, error)
    assert "not valid JSON" in message and "line 2" in message


def test_text_that_is_not_utf8_is_not_valid_json(tmp_path: Path) -> None:
    path = tmp_path / "dataset.json"
    path.write_bytes(b'{"name": "\xff\xfe"}')
    message = _refusal(path, DatasetError)
    assert "not valid JSON" in message and "utf-8" in message


def test_missing_file_and_a_folder(tmp_path: Path) -> None:
    assert _refusal(tmp_path / "absent.json").endswith(": file not found")
    assert _refusal(tmp_path).endswith(": a folder, expected a file")


def test_a_top_level_other_than_an_object_is_refused_on_request(tmp_path: Path) -> None:
    path = tmp_path / "dataset.json"
    for content in ("[1, 2, 3]", '"text"', "3", "null"):
        path.write_text(content, encoding="utf-8")
        assert _refusal(path, expect_object=True).endswith(": expected a JSON object")


def test_pathological_json_is_refused_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    assert "not valid JSON" in _refusal(path)
    path.write_text("1" * 10_000, encoding="utf-8")  # more digits than Python converts
    assert "not valid JSON" in _refusal(path)
    path.write_text("", encoding="utf-8")
    assert "not valid JSON" in _refusal(path)
