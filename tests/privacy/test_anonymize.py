"""`anonymize_folder` on real series: references still resolve, runs repeat, a killed run
finishes on a rerun, the report names no patient, bad inputs are refused one line each."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pydicom.data
import pytest

from medseg.errors import ConfigError
from medseg.io.dicom_seg import read_dicom_seg
from medseg.io.rtstruct import read_rtstruct
from medseg.privacy.anonymize import REPORT_NAME, anonymize_folder
from medseg.privacy.deidentify import DeidOptions
from medseg.privacy.pseudonyms import Pseudonyms, Secret, load_key

PYDICOM_FILES = Path(pydicom.data.__file__).parent / "test_files"


def _output_of(out_dir: Path, key_file: Path, original: Path) -> Path:
    """Where `anonymize_folder` put ``original`` (names derived as it derives them)."""
    secret = Secret(load_key(key_file)[0])
    header = pydicom.dcmread(original, stop_before_pixels=True)
    pseudonym = Pseudonyms(secret)(str(header.PatientID or header.PatientName))
    uids = [secret.uid(str(header[k].value)) for k in ("StudyInstanceUID", "SeriesInstanceUID")]
    return out_dir.joinpath(pseudonym, *uids, f"{secret.uid(str(header.SOPInstanceUID))}.dcm")


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*.dcm"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    ("series", "seg"),
    [
        ("dcmqi_ct3slice", "dcmqi_seg/liver.dcm"),
        ("dcmqi_ct3slice", "dcmqi_seg/partial_overlaps.dcm"),
    ],
)
def test_a_seg_still_reads_onto_its_series_after_de_identification(
    dicom_seg_dir, tmp_path, series, seg
):
    key = tmp_path / "study.key"
    out = tmp_path / "out"
    result = anonymize_folder(dicom_seg_dir, out, key_file=key, quiet=True)
    assert result.written == 15 and not result.failures and result.new_key
    new_seg = _output_of(out, key, dicom_seg_dir / seg)
    a_slice = next((dicom_seg_dir / series).iterdir())
    labels, names = read_dicom_seg(new_seg, _output_of(out, key, a_slice).parent)
    expected, expected_names = read_dicom_seg(dicom_seg_dir / seg, dicom_seg_dir / series)
    assert np.array_equal(labels.array, expected.array) and labels.array.any()
    np.testing.assert_allclose(labels.affine, expected.affine)
    assert names == expected_names  # segment labels are not in the profile
    assert pydicom.dcmread(new_seg).PatientIdentityRemoved == "YES"


def test_an_rtstruct_still_rasterises_onto_its_series_and_keep_keeps_roi_names(
    dicom_seg_dir, tmp_path
):
    source = dicom_seg_dir / "rtutils_ct_rtstruct"
    key = tmp_path / "k"
    options = DeidOptions(keep=frozenset({"ROIName"}))
    anonymize_folder(source, tmp_path / "out", options, key_file=key, quiet=True)
    structure = _output_of(tmp_path / "out", key, source / "rt.dcm")
    series = _output_of(tmp_path / "out", key, source / "ct_1.dcm").parent
    labels, names = read_rtstruct(structure, series)
    expected, expected_names = read_rtstruct(source / "rt.dcm", source)
    assert np.array_equal(labels.array, expected.array) and labels.array.any()
    assert names == expected_names == {1: "ROI-1"}
    anonymize_folder(source, tmp_path / "plain", key_file=key, quiet=True)
    _, emptied = read_rtstruct(_output_of(tmp_path / "plain", key, source / "rt.dcm"), series)
    assert emptied == {1: ""}  # the profile empties ROI Name unless it is kept


def test_the_same_key_gives_the_same_files_and_another_key_other_uids(dicom_seg_dir, tmp_path):
    for name in ("a", "b"):
        anonymize_folder(dicom_seg_dir, tmp_path / name, key_file=tmp_path / "k1", quiet=True)
    anonymize_folder(dicom_seg_dir, tmp_path / "c", key_file=tmp_path / "k2", quiet=True)
    first, second, other = (_tree(tmp_path / n) for n in "abc")
    assert len(first) == 15 and first == second
    uids = {part for name in first for part in name.removesuffix(".dcm").split("/")[1:]}
    other_uids = {part for name in other for part in name.removesuffix(".dcm").split("/")[1:]}
    assert not uids & other_uids


def test_a_killed_run_leaves_no_half_file_and_a_rerun_finishes_it(
    dicom_seg_dir, tmp_path, monkeypatch
):
    key = tmp_path / "k"
    anonymize_folder(dicom_seg_dir, tmp_path / "whole", key_file=key, quiet=True)
    real_save = pydicom.Dataset.save_as
    calls = []

    def save_then_die(self, target, *args, **kwargs):
        calls.append(target)
        if len(calls) == 3:
            Path(target).write_bytes(b"DICM half")  # a partial write, then the kill
            raise KeyboardInterrupt
        return real_save(self, target, *args, **kwargs)

    monkeypatch.setattr(pydicom.Dataset, "save_as", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        anonymize_folder(dicom_seg_dir, tmp_path / "out", key_file=key, quiet=True)
    monkeypatch.undo()
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert len(files) == 2 and all(not p.name.startswith(".") for p in files)
    result = anonymize_folder(dicom_seg_dir, tmp_path / "out", key_file=key, quiet=True)
    assert (result.written, result.already_there) == (13, 2)
    assert _tree(tmp_path / "out") == _tree(tmp_path / "whole")


def test_a_mapping_file_names_patients_and_learns_new_ones(dicom_seg_dir, tmp_path):
    mapping = tmp_path / "pseudonyms.csv"
    mapping.write_text("patient_id,pseudonym\n99000,STUDY001\n")  # the dcmqi CT's patient
    anonymize_folder(dicom_seg_dir, tmp_path / "out", key_file=tmp_path / "k", mapping=mapping)
    folders = {p.name for p in (tmp_path / "out").iterdir() if p.is_dir()}
    rows = mapping.read_text().splitlines()
    assert "STUDY001" in folders and rows[0] == "patient_id,pseudonym"
    assert {row.split(",")[1] for row in rows[1:]} == folders
    with pytest.raises(ConfigError, match="out of the output"):
        anonymize_folder(dicom_seg_dir, tmp_path / "out", mapping=tmp_path / "out" / "m.csv")
    mapping.write_text("patient_id,pseudonym\n1,../etc\n")
    with pytest.raises(ConfigError, match="line 2"):
        anonymize_folder(dicom_seg_dir, tmp_path / "o2", mapping=mapping, quiet=True)


def _mixed_folder(folder: Path) -> list[str]:
    """CT and MR files of pydicom, an ultrasound and a burned-in copy, a duplicate, a DICOMDIR,
    a text file, a truncated file and one without UIDs; returns the patients' names/IDs."""
    folder.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "no_meta.dcm", "nested_priv_SQ.dcm"):
        shutil.copy(PYDICOM_FILES / name, folder / name)
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", folder / "again.dcm")
    shutil.copy(PYDICOM_FILES / "dicomdirtests" / "DICOMDIR", folder / "DICOMDIR")
    (folder / "notes.txt").write_text("not an image")
    flagged = (("us.dcm", "Modality", "US"), ("bia.dcm", "BurnedInAnnotation", "YES"))
    for name, attribute, value in flagged:
        dataset = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
        setattr(dataset, attribute, value)
        dataset.SOPInstanceUID = pydicom.uid.generate_uid()
        dataset.save_as(folder / name)
    whole = (folder / "bia.dcm").read_bytes()
    (folder / "cut.dcm").write_bytes(whole[: len(whole) - 1000])  # pixel data cut short
    return ["CompressedSamples", "1CT1", "4MR1"]


def test_the_report_counts_and_flags_without_naming_anyone(tmp_path):
    patients = _mixed_folder(tmp_path / "in")
    result = anonymize_folder(tmp_path / "in", tmp_path / "out", quiet=True)
    report_text = (tmp_path / "out" / REPORT_NAME).read_text()
    report = json.loads(report_text)
    assert report["files"] == {
        "written": 4, "already_there": 0, "skipped": 3, "duplicates": 1, "failed": 2,
    }  # fmt: skip
    assert sorted(f["reason"].split()[0] for f in report["burned_in"]) == ["Burned", "ultrasound:"]
    assert [f["input"] for f in report["failed"]] == [6, 7]  # cut.dcm, nested_priv_SQ.dcm
    assert not any(name in report_text for name in patients + ["cut.dcm", "nested"])
    assert len(result.failures) == 2 and all("\n" not in line for line in result.failures)
    assert "cut.dcm" in result.failures[0] and "nested_priv_SQ.dcm" in result.failures[1]
    assert "again.dcm" in result.duplicates[0]


def test_places_are_checked_before_any_work(dicom_seg_dir, tmp_path):
    with pytest.raises(ConfigError, match="outside the input"):
        anonymize_folder(tmp_path, tmp_path / "out")
    with pytest.raises(ConfigError, match="not a folder"):
        anonymize_folder(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "short.key").write_text("abc")
    with pytest.raises(ConfigError, match="at least 16"):
        anonymize_folder(dicom_seg_dir, tmp_path / "o", key_file=tmp_path / "short.key")
    assert not (tmp_path / "o").exists()
