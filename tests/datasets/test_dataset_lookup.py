"""A dataset named by its ID or name is found under $MEDSEG_RAW or $nnUNet_raw, as in nnU-Net."""

from __future__ import annotations

import shutil

import pytest

from medseg.datasets import open_dataset
from medseg.datasets.folder import find_dataset_folder
from medseg.datasets.phantom import write_phantom_dataset
from medseg.errors import DatasetError


@pytest.fixture
def raw(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDSEG_RAW", raising=False)
    folder = tmp_path / "nnUNet_raw"
    write_phantom_dataset(folder / "Dataset004_Phantom", n_train=3, n_test=1, dim=2, shape=(16, 16))
    monkeypatch.setenv("nnUNet_raw", str(folder))
    return folder


def test_an_id_or_a_name_finds_the_folder(raw, monkeypatch, tmp_path):
    for name in ("4", "004", "Dataset004_Phantom"):
        assert open_dataset(name).root == raw / "Dataset004_Phantom"
    mine = tmp_path / "mine"
    shutil.copytree(raw / "Dataset004_Phantom", mine / "Dataset004_Phantom")
    monkeypatch.setenv("MEDSEG_RAW", str(mine))  # looked in first
    assert find_dataset_folder("4") == mine / "Dataset004_Phantom"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "4").mkdir()  # a folder that exists is taken as given
    assert find_dataset_folder("4").resolve() == (tmp_path / "4").resolve()


def test_missing_and_ambiguous_ids_are_named(raw, monkeypatch):
    with pytest.raises(DatasetError, match=r"7: no such dataset folder here or in \$nnUNet_raw"):
        open_dataset("7")
    (raw / "Dataset004_Other").mkdir()
    with pytest.raises(
        DatasetError, match="dataset 4 is ambiguous: Dataset004_Other, Dataset004_Phantom"
    ):
        open_dataset("4")
    monkeypatch.delenv("nnUNet_raw")
    with pytest.raises(DatasetError, match="neither MEDSEG_RAW nor nnUNet_raw is set"):
        open_dataset("Dataset004_Phantom")
