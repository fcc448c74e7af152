"""DICOM series reading through pydicom: a folder of slices (or one multi-frame file) → `Image`.

The files' headers become frames (`medseg.io.dicom_frames`), the frames one regular grid or a
refusal (`medseg.io.dicom_geometry`: slices sorted by position along their normal, never by
file name; no silent resampling of an irregular stack), and their pixels the array here.

DICOM patient coordinates are LPS; the affine returned is RAS+ like every `Image`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from medseg.errors import ImageReadError, ImageWriteError, located
from medseg.io.dicom_frames import PYDICOM_ERRORS, Frame, file_frames, read_header
from medseg.io.dicom_geometry import regular_grid
from medseg.io.image import Image
from medseg.io.limits import check_input_file

# How many files of a folder `is_dicom_folder` looks at.
DICOM_PROBE_FILES = 8

#: Objects with Rows/Columns that are results on a series, not part of it: skipped in a
#: series folder like structure sets and reports.
NOT_IMAGES = frozenset({"Segmentation Storage"})

#: pydicom's name for the decoder tried first on compressed pixel data (bench/dicom_decoders.py).
PREFERRED_DECODER = "pylibjpeg"


def has_dicom_preamble(path: str | Path) -> bool:
    """Whether ``path`` is a file with the ``DICM`` marker at byte 128 (a DICOM Part 10 file).

    Examples
    --------
    >>> has_dicom_preamble(__file__)
    False
    """
    if not Path(path).is_file():  # never open a FIFO or device: it could block
        return False
    try:
        with open(path, "rb") as stream:
            head = stream.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def is_dicom_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder with DICOM files among its first few visible files.

    Cheap: only the first `DICOM_PROBE_FILES` files (by name) are opened, 132 bytes each.

    Examples
    --------
    >>> is_dicom_folder(Path(__file__).parent)
    False
    """
    path = Path(path)
    if not path.is_dir():
        return False
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    return any(has_dicom_preamble(p) for p in files[:DICOM_PROBE_FILES])


def read_dicom_series(folder: str | Path, series: str | None = None) -> Image:
    """Read the DICOM series in ``folder`` as a 3D image ``(C, X, Y, Z)`` with an RAS affine.

    Every file directly in the folder is tried; files that are not DICOM images (notes,
    DICOMDIR, structure sets, segmentations) are skipped, but a truncated image file (a
    ``.dcm`` file without the DICM marker, an image without Rows/Columns) is refused rather
    than left out. Voxel
    axis i runs along the DICOM row direction (pixel columns), j along the column direction
    (pixel rows), k along the slices sorted by position. Stored values become float32 through
    RescaleSlope/RescaleIntercept (CT in HU) unless those are the identity, in which case the
    stored integer type is kept.

    Parameters
    ----------
    folder
        A folder of DICOM files.
    series
        Which series to read when the folder holds several: a SeriesInstanceUID, an exact
        SeriesDescription, or a (case-insensitive) substring of exactly one description.

    Examples
    --------
    >>> image = read_dicom_series("study/T1post")  # doctest: +SKIP
    >>> image.array.shape, image.spacing  # doctest: +SKIP
    ((1, 280, 320, 22), (0.6875, 0.6875, 6.5))
    >>> read_dicom_series("study/all_series", series="T2")  # doctest: +SKIP
    """
    frames, affine = series_grid(folder, series)
    return Image(_voxels(frames), affine)


def series_grid(folder: str | Path, series: str | None = None) -> tuple[list[Frame], np.ndarray]:
    """The frames of the DICOM series in ``folder`` in slice order (voxel index k of
    `read_dicom_series`) and the RAS+ affine of their grid; ``series`` as there."""
    folder = Path(folder)
    return regular_grid(folder, _series_frames(folder, series))


def _series_frames(folder: Path, series: str | None) -> list[Frame]:
    """The frames of one series among the DICOM files directly in ``folder``, unsorted."""
    if not folder.is_dir():
        raise ImageReadError(located(folder, "folder not found"))
    groups: dict[str, list[tuple[Path, Dataset]]] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        if not has_dicom_preamble(path):
            if path.name.lower().endswith(".dcm"):
                raise ImageReadError(located(path, "no DICM marker: truncated or not DICOM"))
            continue
        header = read_header(path)
        if _sop_class(header) in NOT_IMAGES:
            continue
        if "Rows" in header and "Columns" in header:
            groups.setdefault(str(header.get("SeriesInstanceUID", "")), []).append((path, header))
        elif "Image Storage" in _sop_class(header):
            raise ImageReadError(located(path, "an image file without Rows/Columns: truncated"))
    if not groups:
        raise ImageReadError(located(folder, "no DICOM image files in this folder"))
    chosen = groups[_choose_series(folder, groups, series)]
    frames = [frame for path, header in chosen for frame in file_frames(path, header)]
    return frames


def read_dicom_file(path: str | Path) -> Image:
    """Read one DICOM file (single- or multi-frame) as a 3D image ``(C, X, Y, Z)``.

    A single-frame file gives one slice; its slice spacing is SpacingBetweenSlices, else
    SliceThickness, else 1 mm.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> image = read_dicom_file(get_testdata_file("CT_small.dcm"))
    >>> image.array.shape, image.array.dtype.name
    ((1, 128, 128, 1), 'float32')
    """
    path = check_input_file(path)
    header = read_header(path)
    if "Rows" not in header or "Columns" not in header:
        raise ImageReadError(located(path, "a DICOM file without an image (no Rows/Columns)"))
    return _assemble(path, file_frames(path, header))


def _sop_class(header: Dataset) -> str:
    """The SOP class's name ("CT Image Storage", "RT Structure Set Storage"), or ''."""
    uid = header.get("SOPClassUID")
    return str(getattr(uid, "name", "") or "")


def check_on_grid(labels: Image, frames: list[Frame], affine: np.ndarray, where: Path) -> None:
    """`ImageWriteError` unless ``labels`` lies on the grid of ``frames`` (from `series_grid`)."""
    rows, columns, _ = frames[0].matrix
    expected = (columns, rows, len(frames))
    if labels.array.ndim != 4 or labels.array.shape[1:] != expected:
        raise ImageWriteError(
            located(where, f"the label map's shape {labels.array.shape[1:]} is not the "
                    f"series' grid {expected}")
        )  # fmt: skip
    if not np.allclose(labels.affine, affine, atol=1e-4):
        raise ImageWriteError(located(where, "the label map is not on the series' grid"))


# --- choosing a series -------------------------------------------------------------------


def _description(header: Dataset) -> str:
    return str(header.get("SeriesDescription", "") or "")


def _choose_series(
    folder: Path, groups: dict[str, list[tuple[Path, Dataset]]], series: str | None
) -> str:
    def listing(uids: Sequence[str]) -> str:
        return "; ".join(
            f"{uid or '(no UID)'} '{_description(groups[uid][0][1])}' ({len(groups[uid])} files)"
            for uid in uids
        )

    if series is None:
        if len(groups) == 1:
            return next(iter(groups))
        raise ImageReadError(
            located(
                folder,
                f"{len(groups)} DICOM series in this folder, choose one with series= "
                f"(a UID or description): {listing(list(groups))}",
            )
        )
    if series in groups:
        return series
    exact = [uid for uid in groups if _description(groups[uid][0][1]) == series]
    matches = exact or [
        uid for uid in groups if series.lower() in _description(groups[uid][0][1]).lower()
    ]
    if len(matches) == 1:
        return matches[0]
    problem = "matches several" if matches else "matches none"
    found = listing(matches or list(groups))
    raise ImageReadError(
        located(folder, f"series {series!r} {problem} of the DICOM series here: {found}")
    )


# --- pixels -------------------------------------------------------------------------------


def _assemble(where: Path, frames: list[Frame]) -> Image:
    frames, affine = regular_grid(where, frames)
    return Image(_voxels(frames), affine)


def _voxels(frames: list[Frame]) -> np.ndarray:
    """Stack the frames' pixels as ``(samples, columns, rows, slices)``, rescaled if needed."""
    pixels: dict[Path, np.ndarray] = {}
    for frame in frames:
        if frame.path not in pixels:
            pixels[frame.path] = decode_pixels(frame.path)
    rescale = any(frame.slope != 1.0 or frame.intercept != 0.0 for frame in frames)
    slices = []
    for frame in frames:
        data = pixels[frame.path]
        if frame.index is not None:
            data = data[frame.index]
        rows, columns, samples = frame.matrix
        if data.shape[:2] != (rows, columns):
            raise ImageReadError(
                located(frame.path, f"pixel data of shape {data.shape}, expected {frame.matrix}")
            )
        data = data.reshape(rows, columns, samples)
        if rescale:
            data = (data * np.float64(frame.slope) + frame.intercept).astype(np.float32)
        slices.append(np.transpose(data, (2, 1, 0)))
    return np.ascontiguousarray(np.stack(slices, axis=-1))


def decode_pixels(path: Path) -> np.ndarray:
    """A file's pixel data as pydicom's ``pixel_array`` (colour as RGB). Compressed data is
    decoded with pylibjpeg (libjpeg, OpenJPEG, RLE) whatever else is installed, so that a
    file reads the same everywhere; another installed decoder is tried only if it fails
    (docs/dicom.md#compressed-dicom). `ImageReadError` if no decoder can."""
    try:
        dataset = pydicom.dcmread(path)
        syntax = getattr(dataset.file_meta, "TransferSyntaxUID", None)
        if syntax is not None and syntax.is_compressed:
            try:
                dataset.pixel_array_options(decoding_plugin=PREFERRED_DECODER)
                return dataset.pixel_array
            except PYDICOM_ERRORS:
                dataset.pixel_array_options(decoding_plugin="")  # any installed decoder
        return dataset.pixel_array
    except PYDICOM_ERRORS as exc:
        problem = " ".join(str(exc).split())
        raise ImageReadError(
            located(path, f"cannot decode the DICOM pixel data ({problem})")
        ) from None
