"""`medseg convert dicom`: an nnU-Net dataset from DICOM studies labelled by SEG or RTSTRUCT."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pydicom
import pytest

from medseg.datasets import open_dataset, read_training_case
from medseg.datasets.from_dicom import convert_dicom_studies
from medseg.errors import DatasetError
from medseg.io import read_dicom_series, read_image
from medseg.io.dicom_seg import read_dicom_seg


def test_a_seg_and_an_rtstruct_study_become_a_dataset(dicom_studies, dicom_seg_dir, tmp_path):
    out = convert_dicom_studies(dicom_studies, tmp_path / "Dataset101_Test", quiet=True)
    spec = json.loads((out / "dataset.json").read_text())
    assert spec["labels"] == {"background": 0, "Liver": 1, "ROI-1": 2}
    assert spec["channel_names"] == {"0": "CT"} and spec["numTraining"] == 2
    dataset = open_dataset(out)
    assert [c.case_id for c in dataset.training] == ["case_000", "case_001"]
    image, label = read_training_case(dataset.training[0], dataset.spec)
    source = read_dicom_series(dicom_studies / "a")
    np.testing.assert_array_equal(image.array, source.array)
    np.testing.assert_allclose(image.affine, source.affine, atol=1e-5)
    liver, _ = read_dicom_seg(dicom_seg_dir / "dcmqi_seg/liver.dcm", dicom_studies / "a")
    np.testing.assert_array_equal(label, liver.array[0])
    assert set(np.unique(read_image(out / "labelsTr/case_001.nii.gz").array)) == {0, 2}
    rows = (out / "cases.csv").read_text().splitlines()
    assert rows == [
        "case,series_folder,label_file",
        "case_000,a,a/liver.dcm",
        "case_001,b/ct,b/rt.dcm",
    ]


def test_names_match_across_studies_without_case_or_spaces(dicom_studies, tmp_path):
    shutil.copytree(dicom_studies / "a", dicom_studies / "c")
    renamed = pydicom.dcmread(dicom_studies / "c" / "liver.dcm")
    renamed.SegmentSequence[0].SegmentLabel = " liver "
    renamed.save_as(dicom_studies / "c" / "liver.dcm")
    out = convert_dicom_studies(dicom_studies, tmp_path / "Dataset102_Test", quiet=True)
    assert json.loads((out / "dataset.json").read_text())["labels"]["Liver"] == 1
    assert set(np.unique(read_image(out / "labelsTr/case_002.nii.gz").array)) == {0, 1}


def test_two_segments_of_one_name_are_refused_and_nothing_is_written(
    dicom_studies, tmp_path, dicom_seg_dir
):
    overlaps = dicom_studies / "a" / "overlaps.dcm"
    shutil.copy(dicom_seg_dir / "dcmqi_seg/partial_overlaps.dcm", overlaps)
    clash = pydicom.dcmread(dicom_studies / "a" / "overlaps.dcm")
    clash.SegmentSequence[1].SegmentLabel = clash.SegmentSequence[0].SegmentLabel.lower()
    clash.save_as(dicom_studies / "a" / "overlaps.dcm")
    with pytest.raises(DatasetError, match="two segments named"):
        convert_dicom_studies(dicom_studies, tmp_path / "Dataset103_Test", quiet=True)
    assert not (tmp_path / "Dataset103_Test").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_label_object_without_its_series_is_refused(dicom_studies, tmp_path, run_cli):
    for path in (dicom_studies / "b" / "ct").iterdir():
        path.unlink()
    out = tmp_path / "Dataset104_Test"
    code, _, err = run_cli(["convert", "dicom", dicom_studies, "--out", out])
    assert code == 2 and "rt.dcm: references a series that is not in its study folder" in err
    assert len(err.strip().splitlines()) == 1
