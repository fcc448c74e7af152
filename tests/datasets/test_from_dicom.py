"""`medseg convert dicom`: an nnU-Net dataset from DICOM studies labelled by SEG or RTSTRUCT."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medseg.datasets import open_dataset, read_training_case
from medseg.datasets.from_dicom import convert_dicom_studies
from medseg.errors import DatasetError
from medseg.io import read_dicom_series, read_image
from medseg.io.dicom_seg import read_dicom_seg


@pytest.fixture
def studies(dicom_seg_dir, tmp_path) -> Path:
    """Two studies: the dcmqi CT with its liver SEG beside the slices, and the rt-utils CT
    phantom in a sub-folder with its RTSTRUCT one level up."""
    root = tmp_path / "studies"
    shutil.copytree(dicom_seg_dir / "dcmqi_ct3slice", root / "a")
    shutil.copy(dicom_seg_dir / "dcmqi_seg/liver.dcm", root / "a" / "liver.dcm")
    (root / "b" / "ct").mkdir(parents=True)
    for name in ("ct_1.dcm", "ct_2.dcm"):
        shutil.copy(dicom_seg_dir / "rtutils_ct_rtstruct" / name, root / "b" / "ct" / name)
    shutil.copy(dicom_seg_dir / "rtutils_ct_rtstruct/rt.dcm", root / "b" / "rt.dcm")
    return root


def test_a_seg_and_an_rtstruct_study_become_a_dataset(studies, dicom_seg_dir, tmp_path):
    out = convert_dicom_studies(studies, tmp_path / "Dataset101_Test", quiet=True)
    spec = json.loads((out / "dataset.json").read_text())
    assert spec["labels"] == {"background": 0, "Liver": 1, "ROI-1": 2}
    assert spec["channel_names"] == {"0": "CT"} and spec["numTraining"] == 2
    dataset = open_dataset(out)
    assert [c.case_id for c in dataset.training] == ["case_000", "case_001"]
    image, label = read_training_case(dataset.training[0], dataset.spec)
    source = read_dicom_series(studies / "a")
    np.testing.assert_array_equal(image.array, source.array)
    np.testing.assert_allclose(image.affine, source.affine, atol=1e-5)
    liver, _ = read_dicom_seg(dicom_seg_dir / "dcmqi_seg/liver.dcm", studies / "a")
    np.testing.assert_array_equal(label, liver.array[0])
    assert set(np.unique(read_image(out / "labelsTr/case_001.nii.gz").array)) == {0, 2}
    rows = (out / "cases.csv").read_text().splitlines()
    assert rows == [
        "case,series_folder,label_file",
        "case_000,a,a/liver.dcm",
        "case_001,b/ct,b/rt.dcm",
    ]


def test_names_match_across_studies_without_case_or_spaces(studies, tmp_path):
    shutil.copytree(studies / "a", studies / "c")
    renamed = pydicom.dcmread(studies / "c" / "liver.dcm")
    renamed.SegmentSequence[0].SegmentLabel = " liver "
    renamed.save_as(studies / "c" / "liver.dcm")
    out = convert_dicom_studies(studies, tmp_path / "Dataset102_Test", quiet=True)
    assert json.loads((out / "dataset.json").read_text())["labels"]["Liver"] == 1
    assert set(np.unique(read_image(out / "labelsTr/case_002.nii.gz").array)) == {0, 1}


def test_two_segments_of_one_name_are_refused_and_nothing_is_written(
    studies, tmp_path, dicom_seg_dir
):
    shutil.copy(dicom_seg_dir / "dcmqi_seg/partial_overlaps.dcm", studies / "a" / "overlaps.dcm")
    clash = pydicom.dcmread(studies / "a" / "overlaps.dcm")
    clash.SegmentSequence[1].SegmentLabel = clash.SegmentSequence[0].SegmentLabel.lower()
    clash.save_as(studies / "a" / "overlaps.dcm")
    with pytest.raises(DatasetError, match="two segments named"):
        convert_dicom_studies(studies, tmp_path / "Dataset103_Test", quiet=True)
    assert not (tmp_path / "Dataset103_Test").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_label_object_without_its_series_is_refused(studies, tmp_path, run_cli):
    for path in (studies / "b" / "ct").iterdir():
        path.unlink()
    code, _, err = run_cli(["convert", "dicom", studies, "--out", tmp_path / "Dataset104_Test"])
    assert code == 2 and "rt.dcm: references a series that is not in its study folder" in err
    assert len(err.strip().splitlines()) == 1
