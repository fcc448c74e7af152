"""DICOM headers and frames: what each 2D frame of a file is and where it lies (pydicom).

A classic file holds one frame; an enhanced multi-frame file holds many, each described by its
per-frame functional groups, the shared ones, or the top-level attributes, in that order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from medseg.errors import ImageReadError, located
from medseg.io.limits import DEFLATE_MAX_RATIO, check_declared_size

#: The smallest an encapsulated (compressed) frame can be: an item tag and its length.
ENCAPSULATED_FRAME_BYTES = 8

#: pydicom reports a malformed file through every kind of exception (fuzzing found
#: BytesLengthException, struct.error, TypeError, RecursionError ...): each call into it on
#: untrusted bytes turns any of them into a one-line `ImageReadError`.
PYDICOM_ERRORS = (Exception,)


@dataclass(frozen=True)
class Frame:
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

    @property
    def name(self) -> str:
        """The file name, with the frame number in a multi-frame file (for messages)."""
        if self.index is None:
            return self.path.name
        return f"{self.path.name} frame {self.index + 1}"


def read_header(path: Path) -> Dataset:
    """A DICOM file's attributes without its pixel data; `ImageReadError` if it is not one."""
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        for _ in header.iterall():  # pydicom parses values lazily: meet their errors here
            pass
        return header
    except InvalidDicomError:
        raise ImageReadError(located(path, "not a DICOM file (no DICM marker)")) from None
    except PYDICOM_ERRORS as exc:
        raise ImageReadError(located(path, f"not a readable DICOM file ({exc})")) from None


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


def file_frames(path: Path, header: Dataset) -> list[Frame]:
    """The frames of one file with their geometry; per-frame functional groups win over shared
    ones, which win over the top-level attributes of a classic single-frame file."""
    try:
        count = int(header.get("NumberOfFrames", 1) or 1)
        matrix = (int(header.Rows), int(header.Columns), int(header.get("SamplesPerPixel", 1)))
        _check_declared(path, header, count, matrix)
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
                Frame(
                    path=path,
                    index=index if count > 1 else None,
                    matrix=matrix,
                    position=_floats(find("PlanePositionSequence", "ImagePositionPatient"), 3),
                    orientation=_floats(
                        find("PlaneOrientationSequence", "ImageOrientationPatient"), 6
                    ),
                    pixel_spacing=None if spacing is None else (spacing[0], spacing[1]),
                    slice_spacing=float(between or thickness or 0.0) or None,
                    slope=_rescale(path, "RescaleSlope", slope, 1.0),
                    intercept=_rescale(path, "RescaleIntercept", intercept, 0.0),
                )
            )
        return frames
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        raise ImageReadError(located(path, f"malformed DICOM header ({exc})")) from None


def _rescale(path: Path, keyword: str, value: Any, default: float) -> float:
    """A rescale value that is finite (and for the slope non-zero), or `ImageReadError`."""
    number = _number(value, default)
    if not np.isfinite(number) or (keyword == "RescaleSlope" and number == 0.0):
        raise ImageReadError(located(path, f"invalid {keyword} {value!r}"))
    return number


def _check_declared(path: Path, header: Dataset, count: int, matrix: tuple[int, int, int]) -> None:
    """Refuse a frame count or matrix the voxel limit or the file's bytes cannot hold, before
    a frame is listed or a pixel decoded."""
    if count < 1 or min(matrix) < 1:
        raise ImageReadError(
            located(
                path, f"invalid NumberOfFrames {count} or matrix {matrix} (rows, columns, samples)"
            )
        )
    size = path.stat().st_size
    syntax = getattr(getattr(header, "file_meta", None), "TransferSyntaxUID", None)
    shape = (count, *matrix)
    if syntax is not None and syntax.is_compressed:
        if count * ENCAPSULATED_FRAME_BYTES > size:
            raise ImageReadError(
                located(path, f"declares {count} frames but holds {size} bytes: corrupt")
            )
        check_declared_size(path, shape, 1, size, float("inf"))
        return
    bits = int(header.get("BitsAllocated", 8) or 8)
    expansion = DEFLATE_MAX_RATIO if syntax is not None and syntax.is_deflated else 1.0
    if bits < 8:  # 1-bit frames (segmentations) pack 8 pixels into a byte
        expansion *= 8 / bits
    if header.get("PhotometricInterpretation") == "YBR_FULL_422":  # 2 chroma for 2 pixels
        expansion *= 1.5
    check_declared_size(path, shape, max(bits // 8, 1), size, expansion)
