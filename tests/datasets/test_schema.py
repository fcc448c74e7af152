"""dataset.json: the valid form and each way it can be malformed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medseg.datasets import DatasetSpec, load_dataset_spec
from medseg.errors import DatasetError

VALID = {
    "name": "Hippocampus",
    "channel_names": {"0": "MRI"},
    "labels": {"background": 0, "Anterior": 1, "Posterior": 2},
    "numTraining": 200,
    "file_ending": ".nii.gz",
}


def _write(folder: Path, content: object) -> Path:
    path = folder / "dataset.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def _with(**changes: object) -> dict:
    spec = dict(VALID)
    for key, value in changes.items():
        if value is None:
            spec.pop(key)
        else:
            spec[key] = value
    return spec


def test_valid_dataset_json(tmp_path: Path) -> None:
    spec = load_dataset_spec(_write(tmp_path, VALID))
    assert isinstance(spec, DatasetSpec)
    assert spec.num_training == 200
    assert spec.file_ending == ".nii.gz"
    assert spec.num_channels == 1
    assert spec.label_values == [0, 1, 2]
    assert spec.foreground_labels == {1: "Anterior", 2: "Posterior"}
    assert spec.name == "Hippocampus"


def test_unordered_labels_and_several_channels(tmp_path: Path) -> None:
    spec = load_dataset_spec(
        _write(
            tmp_path,
            _with(
                channel_names={"1": "T2", "0": "T1", "2": "FLAIR"},
                labels={"tumour": 2, "background": 0, "edema": 1},
            ),
        )
    )
    assert spec.num_channels == 3
    assert spec.label_values == [0, 1, 2]
    assert list(spec.foreground_labels) == [1, 2]


def test_extra_keys_are_allowed(tmp_path: Path) -> None:
    spec = load_dataset_spec(_write(tmp_path, _with(licence="CC BY-SA 4.0", tensorImageSize="3D")))
    assert spec.num_training == 200


MALFORMED = {
    "not JSON": ("{'channel_names': ", "not valid JSON"),
    "not an object": ([1, 2, 3], "JSON object"),
    "missing numTraining": (_with(numTraining=None), "numTraining"),
    "missing labels": (_with(labels=None), "labels"),
    "missing channel_names": (_with(channel_names=None), "channel_names"),
    "missing file_ending": (_with(file_ending=None), "file_ending"),
    "labels without background": (_with(labels={"liver": 1, "spleen": 2}), "background"),
    "empty labels": (_with(labels={}), "background"),
    "two labels share a value": (_with(labels={"background": 0, "a": 1, "b": 1}), "share"),
    "a region list": (_with(labels={"background": 0, "whole": [1, 2], "core": 2}), "region"),
    "a non-integer label": (_with(labels={"background": 0, "liver": 1.5}), "labels"),
    "file_ending without dot": (_with(file_ending="nii.gz"), "file_ending"),
    "channel keys not from 0": (_with(channel_names={"1": "T1", "2": "T2"}), "channel"),
    "channel keys with a gap": (_with(channel_names={"0": "T1", "2": "T2"}), "channel"),
    "channel key not a number": (_with(channel_names={"0": "T1", "T2": "T2"}), "channel"),
    "no channel": (_with(channel_names={}), "channel"),
    "negative numTraining": (_with(numTraining=-1), "numTraining"),
    "numTraining not a number": (_with(numTraining="many"), "numTraining"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_dataset_json_names_the_file_and_the_problem(tmp_path: Path, case: str) -> None:
    content, problem = MALFORMED[case]
    path = _write(tmp_path, content)
    with pytest.raises(DatasetError) as info:
        load_dataset_spec(path)
    message = str(info.value)
    assert message.startswith(f"{path}:")
    assert problem in message
    assert "\n" not in message


def test_missing_dataset_json(tmp_path: Path) -> None:
    path = tmp_path / "dataset.json"
    with pytest.raises(DatasetError, match="not found") as info:
        load_dataset_spec(path)
    assert str(path) in str(info.value)


def test_dataset_json_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "dataset.json"
    path.write_bytes(b'{"name": "\xff\xfe"}')
    with pytest.raises(DatasetError, match="not valid JSON") as info:
        load_dataset_spec(path)
    assert str(path) in str(info.value)


def test_spec_can_be_built_in_code() -> None:
    spec = DatasetSpec(
        channel_names={"0": "CT"},
        labels={"background": 0, "liver": 1},
        numTraining=10,
        file_ending=".nii.gz",
    )
    assert (spec.label_values, spec.num_channels) == ([0, 1], 1)


def test_negative_label_value_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, _with(labels={"background": 0, "liver": -1}))
    with pytest.raises(DatasetError) as info:
        load_dataset_spec(path)
    assert str(path) in str(info.value)


def test_negative_label_value_message_says_what_is_wrong(tmp_path: Path) -> None:
    path = _write(tmp_path, _with(labels={"background": 0, "liver": -1}))
    with pytest.raises(DatasetError, match=">= 0"):
        load_dataset_spec(path)
