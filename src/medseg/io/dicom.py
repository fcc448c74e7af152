"""DICOM series reading through pydicom: a folder of slices (or one multi-frame file) → `Image`.

Slices are sorted by their position along the slice normal, never by file name or
InstanceNumber; the slice spacing comes from those positions, never from SliceThickness. A series
whose slices do not form one regular grid (a missing slice, uneven spacing, gantry tilt, two
slices at one position, slices of different orientation, pixel size or matrix) is refused:
resampling it silently would put voxels where the scanner did not measure them.

DICOM patient coordinates are LPS; the affine returned is RAS+ like every `Image`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from medseg.errors import ImageReadError, located
from medseg.io.image import Image

# Relative tolerance on slice spacing and pixel spacing (0.1 %): looser than the rounding of
# positions in real headers (about 1e-6 mm), far tighter than any real missing or extra slice.
SPACING_TOLERANCE = 1e-3
# Largest sine of the angle between the step from one slice to the next and the slice normal.
TILT_TOLERANCE = 1e-3
# Largest difference between the direction cosines of two slices of one series.
ORIENTATION_TOLERANCE = 1e-4
# Slices whose positions along the normal differ by less than this (mm) are duplicates.
DUPLICATE_POSITION_MM = 1e-3
# A gap this many times the typical spacing means slices are missing, not uneven spacing.
MISSING_SLICE_FACTOR = 1.5
# How many files of a folder `is_dicom_folder` looks at.
DICOM_PROBE_FILES = 8

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

# pydicom reports a malformed file through many exception types.
_PYDICOM_ERRORS = (
    InvalidDicomError,
    OSError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    NotImplementedError,
    RuntimeError,
    struct.error,
)


@dataclass(frozen=True)
class _Frame:
    """One 2D frame of a series: where it lies and how to turn its pixels into values."""

    path: Path
    index: int | None  # frame number in a multi-frame file; None for a single-frame file
    matrix: tuple[int, int, int]  # rows, columns, samples per pixel
    position: np.ndarray | None  # ImagePositionPatient (LPS mm)
    orientation: np.ndarray | None  # ImageOrientationPatient: row then column direction
    pixel_spacing: tuple[float, float] | None  # between rows, between columns (mm)
    slice_spacing: float | None  # SpacingBetweenSlices or SliceThickness (one-slice images)
    slope: float
    intercept: float


def has_dicom_preamble(path: str | Path) -> bool:
    """Whether ``path`` is a file with the ``DICM`` marker at byte 128 (a DICOM Part 10 file).

    Examples
    --------
    >>> has_dicom_preamble(__file__)
    False
    """
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
    DICOMDIR, structure sets) are skipped. Voxel axis i runs along the DICOM row direction
    (pixel columns), j along the column direction (pixel rows), k along the slices sorted by
    position. Stored values become float32 through RescaleSlope/RescaleIntercept (CT in HU)
    unless those are the identity, in which case the stored integer type is kept.

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
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageReadError(located(folder, "folder not found"))
    groups: dict[str, list[tuple[Path, Dataset]]] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        if not has_dicom_preamble(path):
            continue
        header = _read_header(path)
        if "Rows" in header and "Columns" in header:
            groups.setdefault(str(header.get("SeriesInstanceUID", "")), []).append((path, header))
    if not groups:
        raise ImageReadError(located(folder, "no DICOM image files in this folder"))
    chosen = groups[_choose_series(folder, groups, series)]
    frames = [frame for path, header in chosen for frame in _frames(path, header)]
    return _assemble(folder, frames)


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
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(located(path, "file not found"))
    header = _read_header(path)
    if "Rows" not in header or "Columns" not in header:
        raise ImageReadError(located(path, "a DICOM file without an image (no Rows/Columns)"))
    return _assemble(path, _frames(path, header))


# --- headers and frames -----------------------------------------------------------------


def _read_header(path: Path) -> Dataset:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        raise ImageReadError(located(path, "not a DICOM file (no DICM marker)")) from None
    except _PYDICOM_ERRORS as exc:
        raise ImageReadError(located(path, f"not a readable DICOM file ({exc})")) from None


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


def _first_item(container: Dataset | None, keyword: str) -> Dataset | None:
    if container is None or keyword not in container:
        return None
    sequence = container[keyword].value
    return sequence[0] if len(sequence) else None


def _floats(value: Any, count: int) -> np.ndarray | None:
    """A multi-valued DS attribute as ``count`` floats, or None when absent or of another size."""
    if value is None:
        return None
    values = np.asarray([float(v) for v in value], dtype=np.float64)
    return values if values.shape == (count,) else None


def _number(value: Any, default: float) -> float:
    return default if value is None or value == "" else float(value)


def _frames(path: Path, header: Dataset) -> list[_Frame]:
    """The frames of one file with their geometry; per-frame functional groups win over shared
    ones, which win over the top-level attributes of a classic single-frame file."""
    try:
        count = int(header.get("NumberOfFrames", 1) or 1)
        matrix = (int(header.Rows), int(header.Columns), int(header.get("SamplesPerPixel", 1)))
        shared = _first_item(header, "SharedFunctionalGroupsSequence")
        per_frame = header.get("PerFrameFunctionalGroupsSequence")
        frames = []
        for index in range(count):
            own = per_frame[index] if per_frame is not None and index < len(per_frame) else None

            def find(group: str, keyword: str, own: Dataset | None = own) -> Any:
                for item in (_first_item(own, group), _first_item(shared, group)):
                    if item is not None and keyword in item:
                        return item.get(keyword)
                return header.get(keyword)

            if count > 1 and find("PlanePositionSequence", "ImagePositionPatient") is None:
                raise ImageReadError(
                    located(path, f"frame {index + 1} of {count} has no ImagePositionPatient")
                )
            spacing = _floats(find("PixelMeasuresSequence", "PixelSpacing"), 2)
            between = find("PixelMeasuresSequence", "SpacingBetweenSlices")
            thickness = find("PixelMeasuresSequence", "SliceThickness")
            slope = find("PixelValueTransformationSequence", "RescaleSlope")
            intercept = find("PixelValueTransformationSequence", "RescaleIntercept")
            frames.append(
                _Frame(
                    path=path,
                    index=index if count > 1 else None,
                    matrix=matrix,
                    position=_floats(find("PlanePositionSequence", "ImagePositionPatient"), 3),
                    orientation=_floats(
                        find("PlaneOrientationSequence", "ImageOrientationPatient"), 6
                    ),
                    pixel_spacing=None if spacing is None else (spacing[0], spacing[1]),
                    slice_spacing=float(between or thickness or 0.0) or None,
                    slope=_number(slope, 1.0),
                    intercept=_number(intercept, 0.0),
                )
            )
        return frames
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        raise ImageReadError(located(path, f"malformed DICOM header ({exc})")) from None


# --- geometry -----------------------------------------------------------------------------


def _name(frame: _Frame) -> str:
    return frame.path.name if frame.index is None else f"{frame.path.name} frame {frame.index + 1}"


def _mm(spacing: tuple[float, float] | None) -> str:
    return "none" if spacing is None else f"{spacing[0]:g} x {spacing[1]:g} mm"


def _check_consistent(where: Path, frames: list[_Frame]) -> None:
    first = frames[0]
    for frame in frames[1:]:
        if frame.matrix != first.matrix:
            raise ImageReadError(
                located(
                    where,
                    f"slices differ in rows x columns x samples: {first.matrix} in "
                    f"{_name(first)}, {frame.matrix} in {_name(frame)}",
                )
            )
        if (frame.orientation is None) != (first.orientation is None) or (
            frame.orientation is not None
            and np.abs(frame.orientation - first.orientation).max() > ORIENTATION_TOLERANCE
        ):
            raise ImageReadError(
                located(
                    where,
                    f"slices differ in orientation (ImageOrientationPatient): {_name(first)} "
                    f"and {_name(frame)}",
                )
            )
        if (frame.pixel_spacing is None) != (first.pixel_spacing is None) or (
            frame.pixel_spacing is not None
            and not np.allclose(frame.pixel_spacing, first.pixel_spacing, rtol=SPACING_TOLERANCE)
        ):
            raise ImageReadError(
                located(
                    where,
                    f"slices differ in pixel spacing: {_mm(first.pixel_spacing)} in "
                    f"{_name(first)}, {_mm(frame.pixel_spacing)} in {_name(frame)}",
                )
            )


def _slice_axis(
    where: Path, frames: list[_Frame], normal: np.ndarray
) -> tuple[list[_Frame], float]:
    """Sort ``frames`` along ``normal``; return them with the slice spacing, or refuse."""
    if len(frames) == 1:
        return frames, frames[0].slice_spacing or 1.0
    if any(frame.position is None for frame in frames):
        raise ImageReadError(
            located(where, "slices without ImagePositionPatient cannot be placed in space")
        )
    positions = np.stack([np.asarray(frame.position) for frame in frames])
    order = np.argsort(positions @ normal, kind="stable")
    frames, positions = [frames[k] for k in order], positions[order]
    steps = np.diff(positions, axis=0)
    gaps = steps @ normal
    for k, gap in enumerate(gaps):
        if gap < DUPLICATE_POSITION_MM:
            raise ImageReadError(
                located(
                    where,
                    f"two slices at one position ({float(positions[k] @ normal):.3f} mm along the "
                    f"normal): {_name(frames[k])} and {_name(frames[k + 1])}",
                )
            )
    sideways = np.linalg.norm(steps - np.outer(gaps, normal), axis=1)
    if np.any(sideways > TILT_TOLERANCE * gaps):
        k = int(np.argmax(sideways / gaps))
        angle = float(np.degrees(np.arctan2(sideways[k], gaps[k])))
        raise ImageReadError(
            located(
                where,
                f"gantry tilt or sheared stack: slices step {angle:.2f} degrees off their normal "
                f"(from {_name(frames[k])} to {_name(frames[k + 1])}); resample it first",
            )
        )
    typical = float(np.median(gaps))
    if gaps.max() > MISSING_SLICE_FACTOR * typical:
        k = int(np.argmax(gaps))
        missing = max(1, round(float(gaps[k]) / typical) - 1)
        raise ImageReadError(
            located(
                where,
                f"about {missing} missing slice(s): a gap of {gaps[k]:.3f} mm between "
                f"{_name(frames[k])} and {_name(frames[k + 1])} where the others are "
                f"{typical:.3f} mm",
            )
        )
    deviation = float(np.abs(gaps - typical).max() / typical)
    if deviation > SPACING_TOLERANCE:
        raise ImageReadError(
            located(
                where,
                f"non-uniform slice spacing: {gaps.min():.4f} to {gaps.max():.4f} mm "
                f"(tolerance {SPACING_TOLERANCE:.1%})",
            )
        )
    return frames, float(gaps.sum() / len(gaps))


def _assemble(where: Path, frames: list[_Frame]) -> Image:
    _check_consistent(where, frames)
    first = frames[0]
    if first.orientation is None:
        if len(frames) > 1:
            raise ImageReadError(
                located(where, "slices without ImageOrientationPatient cannot be placed in space")
            )
        row, column = np.eye(3)[0], np.eye(3)[1]  # a lone slice without geometry: axis-aligned
    else:
        row, column = first.orientation[:3], first.orientation[3:]
    normal = np.cross(row, column)
    if np.linalg.norm(normal) < 0.5:
        raise ImageReadError(
            located(where, f"ImageOrientationPatient {first.orientation} is degenerate")
        )
    normal = normal / np.linalg.norm(normal)
    frames, slice_spacing = _slice_axis(where, frames, normal)
    row_spacing, column_spacing = first.pixel_spacing or (1.0, 1.0)
    if min(row_spacing, column_spacing, slice_spacing) <= 0:
        raise ImageReadError(
            located(
                where,
                f"zero or negative spacing ({column_spacing:g} x {row_spacing:g} x "
                f"{slice_spacing:g} mm)",
            )
        )
    affine = np.eye(4)
    affine[:3, 0] = row * column_spacing
    affine[:3, 1] = column * row_spacing
    affine[:3, 2] = normal * slice_spacing
    affine[:3, 3] = frames[0].position if frames[0].position is not None else 0.0
    affine = LPS_TO_RAS @ affine
    if not np.all(np.isfinite(affine)):
        raise ImageReadError(located(where, "the geometry holds NaN or infinite values"))
    return Image(_voxels(frames), affine)


# --- pixels -------------------------------------------------------------------------------


def _voxels(frames: list[_Frame]) -> np.ndarray:
    """Stack the frames' pixels as ``(samples, columns, rows, slices)``, rescaled if needed."""
    pixels: dict[Path, np.ndarray] = {}
    for frame in frames:
        if frame.path not in pixels:
            try:
                pixels[frame.path] = pydicom.dcmread(frame.path).pixel_array
            except _PYDICOM_ERRORS as exc:
                raise ImageReadError(
                    located(frame.path, f"cannot decode the DICOM pixel data ({exc})")
                ) from None
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
