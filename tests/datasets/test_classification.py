"""Classification dataset folders: dataset.json's classes, labels.csv and splits, checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medseg.datasets import load_dataset_spec
from medseg.datasets.classification import open_classification_dataset
from medseg.datasets.schema import load_classification_spec
from medseg.errors import DatasetError
from medseg.io import Image, write_image


def _folder(root: Path, rows: str, classes=None, cases=("a", "b", "c")) -> Path:
    (root / "imagesTr").mkdir(parents=True)
    blank = Image(np.zeros((1, 4, 4), np.uint8), np.eye(4))
    for case in cases:
        write_image(blank, root / "imagesTr" / f"{case}_0000.png")
    spec = {
        "channel_names": {"0": "x-ray"},
        "classes": classes or {"normal": 0, "pneumonia": 1},
        "numTraining": len(cases),
        "file_ending": ".png",
    }
    (root / "dataset.json").write_text(json.dumps(spec))
    (root / "labels.csv").write_text(rows)
    return root


def test_a_valid_folder_opens_with_classes_by_case(tmp_path):
    root = _folder(tmp_path / "d", "case,class\na,normal\nb,pneumonia\nc,normal\n")
    (root / "splits_final.json").write_text(json.dumps([{"train": ["a", "b"], "val": ["c"]}]))
    dataset = open_classification_dataset(root)
    assert dataset.classes == {"a": 0, "b": 1, "c": 0}
    assert dataset.splits == [(["a", "b"], ["c"])] and dataset.test == ()


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ("case,class\na,normal\nb,pneumonia\nc,normal\nd,normal\n", "line 5: no case 'd'"),
        ("case,class\na,normal\nb,pneumonia\nc,normal\na,pneumonia\n", "'a' has a second class"),
        ("case,class\na,normal\nb,flu\nc,normal\n", "unknown class 'flu'"),
        ("case,class\na,normal\nb,pneumonia\n", "no class for 1 case"),
        ("case,class\na,normal\nb,normal\nc,normal\n", "no training case of class ['pneumonia']"),
        ("id,label\na,normal\n", "first line must be 'case,class'"),
    ],
)
def test_bad_class_tables_are_one_line_errors(tmp_path, rows, problem):
    root = _folder(tmp_path / "d", rows)
    with pytest.raises(DatasetError) as caught:
        open_classification_dataset(root)
    assert problem in str(caught.value) and str(caught.value).startswith(str(root))


def test_bad_splits_and_classes_are_refused(tmp_path):
    root = _folder(tmp_path / "d", "case,class\na,normal\nb,pneumonia\nc,normal\n")
    (root / "splits_final.json").write_text(json.dumps([{"train": ["a", "z"], "val": ["c"]}]))
    with pytest.raises(DatasetError, match="fold 0: unknown case 'z'"):
        open_classification_dataset(root)
    other = _folder(tmp_path / "e", "case,class\n", classes={"a": 0, "b": 2})
    with pytest.raises(DatasetError, match="numbered 0..K-1"):
        open_classification_dataset(other)


def test_each_task_refuses_the_other_kind_of_dataset(tmp_path, phantom2d):
    root = _folder(tmp_path / "d", "case,class\na,normal\nb,pneumonia\nc,normal\n")
    with pytest.raises(DatasetError, match="use medseg train-classifier"):
        load_dataset_spec(root / "dataset.json")
    with pytest.raises(DatasetError, match="a segmentation dataset"):
        load_classification_spec(phantom2d / "dataset.json")
