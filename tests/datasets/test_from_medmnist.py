"""`medseg convert medmnist`: MedMNIST files become classification dataset folders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseg.datasets.classification import open_classification_dataset
from medseg.datasets.from_medmnist import convert_medmnist
from medseg.errors import DatasetError
from medseg.io import read_image


@pytest.fixture(scope="module")
def classification_dir(shared_data):
    folder = shared_data / "classification"
    if not folder.is_dir():
        pytest.skip(f"no classification data in {shared_data}")
    return folder


def test_pneumoniamnist_keeps_its_split_pixels_and_classes(classification_dir, tmp_path):
    npz = classification_dir / "PneumoniaMNIST/pneumoniamnist.npz"
    names = ["normal", "pneumonia"]
    out = convert_medmnist(npz, tmp_path / "Dataset201_Pneumonia", names, quiet=True)
    dataset = open_classification_dataset(out)
    source = np.load(npz)
    assert len(dataset.training) == 4708 + 524 and len(dataset.test) == 624
    ((train, val),) = dataset.splits
    assert len(train) == 4708 and len(val) == 524 and val[0] == "val_00000"
    for split, k in (("train", 17), ("val", 3), ("test", 600)):
        folder = out / ("imagesTs" if split == "test" else "imagesTr")
        image = read_image(folder / f"{split}_{k:05d}_0000.png")
        np.testing.assert_array_equal(image.array[0], source[f"{split}_images"][k])
    assert dataset.classes["train_00017"] == int(source["train_labels"][17, 0])
    assert dataset.test_classes["test_00600"] == int(source["test_labels"][600, 0])
    assert np.bincount(list(dataset.test_classes.values())).tolist() == [234, 390]
    spec = json.loads((out / "dataset.json").read_text())
    assert spec["classes"] == {"normal": 0, "pneumonia": 1} and spec["file_ending"] == ".png"


def test_adrenalmnist3d_becomes_nifti_volumes(classification_dir, tmp_path):
    npz = classification_dir / "AdrenalMNIST3D/adrenalmnist3d_64.npz"
    out = convert_medmnist(npz, tmp_path / "Dataset202_Adrenal", quiet=True)
    dataset = open_classification_dataset(out)
    assert dataset.spec.class_names == ["class_0", "class_1"]
    assert len(dataset.training) == 1188 + 98 and len(dataset.test) == 298
    image = read_image(out / "imagesTr/train_00005_0000.nii.gz")
    np.testing.assert_array_equal(image.array[0], np.load(npz)["train_images"][5])


def _npz(path, labels_shape=(4, 1), train_labels=(0, 1, 0, 1), drop=None):
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = np.zeros((4, 8, 8), np.uint8)
        arrays[f"{split}_labels"] = np.array([0, 1, 1, 0], np.uint8).reshape(4, 1)
    arrays["train_labels"] = np.array(train_labels, np.uint8).reshape(labels_shape)
    arrays.pop(drop, None)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"labels_shape": (2, 2)}, "multi-label sets are not supported"),
        ({"drop": "val_images"}, "no val_images"),
        ({"train_labels": (0, 0, 0, 0)}, "no training case of class"),
    ],
)
def test_files_medseg_cannot_use_are_refused_before_any_write(tmp_path, kwargs, problem):
    npz = _npz(tmp_path / "bad.npz", **kwargs)
    with pytest.raises(DatasetError, match=problem):
        convert_medmnist(npz, tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists()


def test_too_few_class_names_and_a_used_folder_are_refused(tmp_path):
    npz = _npz(tmp_path / "ok.npz")
    with pytest.raises(DatasetError, match="need 2 distinct class names"):
        convert_medmnist(npz, tmp_path / "out", ["only"], quiet=True)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    with pytest.raises(DatasetError, match="not empty"):
        convert_medmnist(npz, tmp_path / "used", quiet=True)


def test_an_array_too_large_is_refused_before_it_is_inflated(tmp_path, monkeypatch):
    import medseg.datasets.from_medmnist as module

    monkeypatch.setattr(module, "MAX_BYTES", 100)
    with pytest.raises(DatasetError, match="declares"):
        convert_medmnist(_npz(tmp_path / "ok.npz"), tmp_path / "out", quiet=True)


def test_the_cli_converts_and_refuses_in_one_line(tmp_path, run_cli):
    npz = _npz(tmp_path / "ok.npz")
    args = ["convert", "medmnist", npz, "--out", tmp_path / "Dataset9_X", "--classes", "no,yes"]
    code, out, err = run_cli(args)
    assert code == 0 and "wrote the classification dataset" in out, err
    assert open_classification_dataset(tmp_path / "Dataset9_X").spec.class_names == ["no", "yes"]
    missing = tmp_path / "missing.npz"
    code, _, err = run_cli(["convert", "medmnist", missing, "--out", tmp_path / "o"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "missing.npz" in err
