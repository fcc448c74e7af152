"""De-identification of real files: the shared DICOM data and pydicom's bundled test files.

For each file: no value of a Basic Profile attribute survives anywhere in the data set (at any
sequence depth), no instance UID of the input appears in the output, no private attribute is
left but the kept ones, and the pixel data is byte for byte the same."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from pydicom.dataset import Dataset

from medseg.privacy.deidentify import (
    DEFAULT_KEEP_PRIVATE,
    UNTOUCHED_UIDS,
    Deidentifier,
    DeidOptions,
)
from medseg.privacy.profile import BASIC_PROFILE
from medseg.privacy.pseudonyms import STANDARD_UID_ROOT, Pseudonyms, Secret

SECRET = Secret(b"a test key of enough length")
PYDICOM_FILES = Path(pydicom.data.__file__).parent / "test_files"


def _part10_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return [p for p in files if p.read_bytes()[128:132] == b"DICM"]


def _readable(path: Path) -> Dataset | None:
    """The data set, or None for the files pydicom itself cannot read whole (some of its
    test files are broken on purpose), for DICOMDIRs (not copied by medseg) and for data sets
    that are no instance (no SOP Instance UID: `medseg anonymize` refuses them)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(path)
            list(dataset.iterall())
    except Exception:
        return None
    if dataset.get("SOPClassUID") in (None, "1.2.840.10008.1.3.10"):
        return None
    return dataset if dataset.get("SOPInstanceUID") else None


def _values(dataset: Dataset) -> set[tuple[int, str]]:
    """(tag, value) of every non-empty, non-sequence element at any depth."""
    found = set()
    for element in dataset.iterall():
        if element.VR != "SQ" and not element.is_empty:
            found.add((int(element.tag), str(element.value)))
    return found


def _instance_uids(dataset: Dataset) -> set[str]:
    uids = set()
    for element in dataset.iterall():
        if element.VR == "UI" and not element.is_empty and int(element.tag) not in UNTOUCHED_UIDS:
            values = element.value if isinstance(element.value, list) else [element.value]
            uids |= {str(v) for v in values if not str(v).startswith(STANDARD_UID_ROOT)}
    return uids


def _round_trip(dataset: Dataset) -> Dataset:
    Deidentifier(SECRET, Pseudonyms(SECRET), DeidOptions())(dataset)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset.save_as(buffer, enforce_file_format=True)
        return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def _check(path: Path) -> None:
    original = _readable(path)
    if original is None:
        return
    before = _readable(path)
    after = _round_trip(original)
    profiled = {(tag, value) for tag, value in _values(before) if tag in BASIC_PROFILE}
    survivors = profiled & _values(after)
    assert not survivors, f"{path.name}: {sorted(survivors)[:3]}"
    assert not _instance_uids(before) & _instance_uids(after), path.name
    private = [e.tag for e in after.iterall() if e.tag.is_private and e.tag.element >= 0x1000]
    kept_groups = {group for group, _, _ in DEFAULT_KEEP_PRIVATE}
    assert all(tag.group in kept_groups for tag in private), path.name
    if "PixelData" in before:
        assert after.PixelData == before.PixelData, path.name
    assert after.PatientIdentityRemoved == "YES"
    assert not [e.tag for e in after.iterall() if e.tag.element == 0], path.name  # group lengths


def test_the_shared_dicom_files(dicom_seg_dir, dicom_study_dir):
    files = _part10_files(dicom_seg_dir) + _part10_files(dicom_study_dir)
    assert len(files) >= 100
    for path in files:
        assert _readable(path) is not None, path
        _check(path)


def test_pydicoms_bundled_test_files():
    files = _part10_files(PYDICOM_FILES)
    readable = [p for p in files if _readable(p) is not None]
    assert len(files) > 100 and len(readable) > 100
    for path in readable:
        _check(path)


def test_kept_private_attributes_stay_with_their_creator_and_others_go():
    dataset = Dataset()
    dataset.PatientID = "12345"
    siemens = dataset.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    siemens.add_new(0x0C, "IS", "1000")  # b-value: kept by default
    siemens.add_new(0x08, "LO", "Smith")  # anything else of that creator: removed
    dataset.private_block(0x0029, "OTHER", create=True).add_new(0x10, "LO", "John Smith")
    Deidentifier(SECRET, Pseudonyms(SECRET), DeidOptions())(dataset)
    left = {int(e.tag): e.value for e in dataset if e.tag.is_private}
    assert left == {0x00190010: "SIEMENS MR HEADER", 0x0019100C: "1000"}


def test_keep_keeps_a_named_attribute_and_refuses_the_pseudonymised_ones():
    dataset = Dataset()
    dataset.ROIName = "GTV"  # the profile empties it; a user may keep structure names
    dataset.StudyDescription = "Brain for John Smith"
    Deidentifier(SECRET, Pseudonyms(SECRET), DeidOptions(keep=frozenset({"ROIName"})))(dataset)
    assert dataset.ROIName == "GTV" and "StudyDescription" not in dataset
    assert "kept ROIName" in dataset.DeidentificationMethod
    with pytest.raises(Exception, match="PatientID"):
        DeidOptions(keep=frozenset({"PatientID"}))
    with pytest.raises(Exception, match="not an attribute"):
        DeidOptions(keep=frozenset({"Rows"}))


def test_uids_the_table_does_not_name_are_replaced_but_standard_ones_stay():
    dataset = Dataset()
    dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    dataset.AcquisitionUID = "1.2.3.99"  # newer than the table
    dataset.CodingSchemeUID = "2.16.840.1.113883.6.96"  # SNOMED: names no instance
    Deidentifier(SECRET, Pseudonyms(SECRET), DeidOptions())(dataset)
    assert dataset.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert dataset.AcquisitionUID == SECRET.uid("1.2.3.99") != "1.2.3.99"
    assert dataset.CodingSchemeUID == "2.16.840.1.113883.6.96"


def test_overlays_and_curves_go_whole_and_partial_dates_are_emptied_when_shifting():
    dataset = Dataset()
    dataset.PatientID = "7"
    dataset.add_new(0x60000010, "US", 512)  # overlay rows
    dataset.add_new(0x60003000, "OW", b"\0\1")  # overlay data
    dataset.add_new(0x50000005, "US", 1)  # curve dimensions
    dataset.AcquisitionDateTime = "2019"  # a year only: cannot be shifted by days
    dataset.StudyTime = "101500"
    Deidentifier(SECRET, Pseudonyms(SECRET), DeidOptions(shift_dates=True))(dataset)
    assert not any(e.tag.group in (0x6000, 0x5000) for e in dataset)
    assert dataset.AcquisitionDateTime == "" and dataset.StudyTime == "101500"
    assert dataset.LongitudinalTemporalInformationModified == "MODIFIED"
