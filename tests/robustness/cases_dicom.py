"""Corpus cases for the DICOM readers: series folders and single (multi-frame) files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pydicom
from corpus import Base, case, dicom_slices, predict, random_bytes
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset


def spoil(path: Path, edit: Callable[[Dataset], object]) -> Path:
    """Edit one file's attributes and save it again."""
    ds = pydicom.dcmread(path)
    edit(ds)
    ds.save_as(path)
    return path


def series_with(d: Path, edit: Callable[[Dataset], object]) -> tuple[Path, Path]:
    """A 3-slice series whose middle slice is edited; returns (folder, spoilt file)."""
    slices = dicom_slices(d / "series")
    return d / "series", spoil(slices[1], edit)


def multi_frame(d: Path, frames: int) -> Path:
    """A folder holding one file that claims ``frames`` frames."""
    (d / "study").mkdir()
    path = d / "study" / "frames.dcm"
    pydicom.dcmread(get_testdata_file("CT_small.dcm")).save_as(path)
    spoil(path, lambda ds: setattr(ds, "NumberOfFrames", frames))
    return path


@case("dicom-frames-999999999")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    return predict(d, base, multi_frame(d, 999999999).parent), "frames.dcm"


@case("dicom-frames-more-than-bytes")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    return predict(d, base, multi_frame(d, 40).parent), "frames.dcm"


@case("dicom-rows-columns-65535")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    def huge(ds: Dataset) -> None:
        ds.Rows, ds.Columns = 65535, 65535

    folder, path = series_with(d, huge)
    return predict(d, base, folder), path.name


@case("dicom-rows-zero")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    folder, path = series_with(d, lambda ds: setattr(ds, "Rows", 0))
    return predict(d, base, folder), path.name


RESCALE_EDITS = {
    "dicom-nan-rescale-slope": ("RescaleSlope", "NaN"),
    "dicom-zero-rescale-slope": ("RescaleSlope", "0"),
    "dicom-infinite-rescale-intercept": ("RescaleIntercept", "inf"),
}


def _rescale_case(name: str, keyword: str, value: str) -> None:
    @case(name)
    def _(d: Path, base: Base) -> tuple[list[str], str]:
        folder, path = series_with(d, lambda ds: setattr(ds, keyword, value))
        return predict(d, base, folder), path.name


for _name, (_keyword, _value) in RESCALE_EDITS.items():
    _rescale_case(_name, _keyword, _value)


@case("dicom-slice-with-truncated-pixels")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    slices = dicom_slices(d / "series")
    slices[2].write_bytes(slices[2].read_bytes()[:-5000])
    return predict(d, base, d / "series"), slices[2].name


@case("dicom-slice-with-truncated-header")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    slices = dicom_slices(d / "series")
    slices[2].write_bytes(slices[2].read_bytes()[:600])
    return predict(d, base, d / "series"), slices[2].name


@case("dicom-slice-cut-before-its-marker")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    slices = dicom_slices(d / "series")
    slices[2].write_bytes(slices[2].read_bytes()[:100])
    return predict(d, base, d / "series"), slices[2].name


@case("dicom-slice-of-another-matrix")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    def smaller(ds: Dataset) -> None:
        ds.Rows = 64
        ds.PixelData = ds.PixelData[: 64 * 128 * 2]

    folder, _ = series_with(d, smaller)
    return predict(d, base, folder), "series"


@case("dicom-two-slices-at-one-position")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    folder, _ = series_with(d, lambda ds: setattr(ds, "ImagePositionPatient", [0.0, 0.0, 0.0]))
    return predict(d, base, folder), "series"


@case("dicom-marker-then-garbage")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = d / "garbage.dcm"
    path.write_bytes(bytes(128) + b"DICM" + random_bytes(d / "noise", 2000).read_bytes())
    (d / "noise").unlink()
    return predict(d, base, path), "garbage.dcm"


@case("dicom-pixel-data-of-another-length")
def _(d: Path, base: Base) -> tuple[list[str], str]:
    path = d / "odd.dcm"
    pydicom.dcmread(get_testdata_file("CT_small.dcm")).save_as(path)
    spoil(path, lambda ds: setattr(ds, "PixelData", ds.PixelData[:1001]))
    return predict(d, base, path), "odd.dcm"


@case("valid-dicom-series", control=True)
def _(d: Path, base: Base) -> tuple[list[str], str]:
    dicom_slices(d / "series")
    return predict(d, base, d / "series"), ""
