"""A Medical Segmentation Decathlon folder (its own dataset.json, 4D multi-modal NIfTI) read
directly, as nnU-Net users have them before nnUNetv2_convert_MSD_dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medseg.datasets import load_dataset_spec, open_dataset, read_training_case
from medseg.errors import DatasetError
from medseg.io import Image, spacing_affine, write_image

CASES = ["hippocampus_001", "hippocampus_004", "hippocampus_007", "hippocampus_008"]


def _msd_json(cases: list[str], modality: dict[str, str], labels: dict[str, str]) -> dict:
    training = [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"}
                for c in cases]  # fmt: skip
    return {"name": "Hippocampus", "tensorImageSize": "3D", "modality": modality,
            "labels": labels, "numTraining": len(cases), "numTest": 0, "training": training,
            "test": []}  # fmt: skip


@pytest.fixture
def msd_hippocampus(hippocampus_dir: Path, tmp_path: Path) -> Path:
    """Four real Hippocampus cases in MSD's layout: no _0000 suffix, MSD's dataset.json, and
    the macOS '._' files MSD's archive carries."""
    root = tmp_path / "Task04_Hippocampus"
    for folder in ("imagesTr", "labelsTr"):
        (root / folder).mkdir(parents=True)
    for case in CASES:
        shutil.copy(
            hippocampus_dir / f"imagesTr/{case}_0000.nii.gz", root / f"imagesTr/{case}.nii.gz"
        )
        shutil.copy(hippocampus_dir / f"labelsTr/{case}.nii.gz", root / f"labelsTr/{case}.nii.gz")
    (root / "imagesTr/._hippocampus_001.nii.gz").write_bytes(b"\x00\x05\x16\x07")
    spec = _msd_json(CASES, {"0": "MRI"}, {"0": "background", "1": "Anterior", "2": "Posterior"})
    (root / "dataset.json").write_text(json.dumps(spec))
    return root


def test_msd_dataset_json_is_read_as_nnunet_fields(msd_hippocampus: Path) -> None:
    spec = load_dataset_spec(msd_hippocampus / "dataset.json")
    assert spec.labels == {"background": 0, "Anterior": 1, "Posterior": 2}
    assert spec.channel_names == {"0": "MRI"} and spec.file_ending == ".nii.gz"
    assert spec.single_file_cases
    dataset = open_dataset(msd_hippocampus)
    assert [c.case_id for c in dataset.training] == CASES
    image, label = read_training_case(dataset.training[0], dataset.spec)
    assert image.channels == 1 and set(np.unique(label)) == {0, 1, 2}


def test_a_4d_multimodal_case_becomes_channels(tmp_path: Path) -> None:
    root = tmp_path / "Task01_Tiny"
    rng = np.random.default_rng(0)
    label = np.zeros((8, 9, 7), np.uint8)
    label[2:5, 3:6, 1:4] = 1
    affine = spacing_affine((1.0, 1.0, 1.5))
    for case in ("tiny_0001", "tiny_0002"):  # four digits: still one file per case
        image = rng.normal(size=(4, 8, 9, 7)).astype(np.float32)
        write_image(Image(image, affine), root / f"imagesTr/{case}.nii.gz")
        write_image(Image(label[None], affine), root / f"labelsTr/{case}.nii.gz")
    modality = {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}
    spec = _msd_json(["tiny_0001", "tiny_0002"], modality, {"0": "background", "1": "tumour"})
    (root / "dataset.json").write_text(json.dumps(spec))
    dataset = open_dataset(root)
    assert [c.case_id for c in dataset.training] == ["tiny_0001", "tiny_0002"]
    image, _ = read_training_case(dataset.training[1], dataset.spec)
    assert image.channels == 4 and image.spatial_shape == (8, 9, 7)


def test_malformed_msd_labels_are_refused(msd_hippocampus: Path) -> None:
    path = msd_hippocampus / "dataset.json"
    spec = json.loads(path.read_text())
    spec["labels"] = {"background": 0, "Anterior": 1}  # nnU-Net's direction in an MSD file
    path.write_text(json.dumps(spec))
    with pytest.raises(DatasetError, match="dataset.json: labels: an MSD dataset.json maps"):
        load_dataset_spec(path)


def test_training_runs_on_an_msd_folder(msd_hippocampus: Path, tmp_path: Path) -> None:
    from medseg.train import TrainOptions, train_run

    options = TrainOptions(epochs=1, iterations_per_epoch=2, quiet=True, settings={"n_folds": 2})
    result = train_run(msd_hippocampus, tmp_path / "run", options, fold="all")
    assert (result.fold_dir / "model_latest.safetensors").is_file()
    run_spec = load_dataset_spec(tmp_path / "run/dataset.json")
    assert run_spec.foreground_labels == {1: "Anterior", 2: "Posterior"}
