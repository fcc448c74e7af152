"""DICOM-SEG and RTSTRUCT as evaluation references: cases by series folder, labels by name."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from medseg.datasets.dicom_references import is_studies_folder, write_references
from medseg.errors import DatasetError
from medseg.io import read_dicom_series, read_image
from medseg.io.dicom_seg import read_dicom_seg


def test_references_are_named_by_series_folder_and_numbered_by_the_runs_names(
    dicom_studies, dicom_seg_dir, tmp_path
):
    names = {1: "Spleen", 2: "liver"}  # the run's numbering; "Liver" matches without case
    notes = write_references(dicom_studies, tmp_path / "refs", names)
    assert sorted(p.name for p in (tmp_path / "refs/labelsTs").iterdir()) == [
        "a.nii.gz", "ct.nii.gz",
    ]  # fmt: skip
    liver, _ = read_dicom_seg(dicom_seg_dir / "dcmqi_seg/liver.dcm", dicom_studies / "a")
    reference = read_image(tmp_path / "refs/labelsTs/a.nii.gz")
    np.testing.assert_array_equal(reference.array, liver.array * 2)
    image = read_image(tmp_path / "refs/imagesTs/a_0000.nii.gz")
    np.testing.assert_array_equal(image.array, read_dicom_series(dicom_studies / "a").array)
    assert not read_image(tmp_path / "refs/labelsTs/ct.nii.gz").array.any()
    assert len(notes) == 1 and "rt.dcm" in notes[0] and "'ROI-1'" in notes[0]
    spec = json.loads((tmp_path / "refs/dataset.json").read_text())
    assert spec["labels"] == {"background": 0, "Spleen": 1, "liver": 2}


def test_without_names_labels_are_numbered_as_first_seen(dicom_studies, tmp_path):
    assert write_references(dicom_studies, tmp_path / "refs") == []
    spec = json.loads((tmp_path / "refs/dataset.json").read_text())
    assert spec["labels"] == {"background": 0, "Liver": 1, "ROI-1": 2}


def test_two_references_for_one_series_folder_name_are_refused(dicom_studies, tmp_path):
    shutil.copytree(dicom_studies / "b", dicom_studies / "c")  # a second series folder "ct"
    with pytest.raises(DatasetError, match="series folder named 'ct'"):
        write_references(dicom_studies, tmp_path / "refs")


def test_a_studies_folder_has_sub_folders_and_no_files(dicom_studies, dicom_seg_dir):
    assert is_studies_folder(dicom_studies)
    assert not is_studies_folder(dicom_seg_dir)  # holds SOURCE.md: a folder of files
    assert not is_studies_folder(dicom_studies / "a")
