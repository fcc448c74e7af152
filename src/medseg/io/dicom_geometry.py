"""From the frames of a DICOM series to one regular grid: the checks that they form one, their
order along the slice normal, the slice spacing and the RAS+ affine.

Slices are sorted by their position along the slice normal, never by file name or
InstanceNumber; the slice spacing comes from those positions, never from SliceThickness. A series
whose slices do not form one regular grid (a missing slice, uneven spacing, gantry tilt, two
slices at one position, slices of different orientation, pixel size or matrix) is refused:
resampling it silently would put voxels where the scanner did not measure them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medseg.errors import ImageReadError, located
from medseg.io.dicom_frames import Frame

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

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def regular_grid(where: Path, frames: list[Frame]) -> tuple[list[Frame], np.ndarray]:
    """The frames in slice order and the RAS+ affine of the grid they form, or a refusal
    (`ImageReadError` naming ``where`` and the slices concerned).

    Voxel axis i runs along the DICOM row direction (pixel columns), j along the column
    direction (pixel rows), k along the slices sorted by position.
    """
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
    return frames, affine


def _mm(spacing: tuple[float, float] | None) -> str:
    return "none" if spacing is None else f"{spacing[0]:g} x {spacing[1]:g} mm"


def _differ(a: Any, b: Any, far: Callable[[Any, Any], Any]) -> bool:
    """Whether an optional attribute differs between two frames: present in one only, or in
    both and ``far(a, b)``."""
    if a is None or b is None:
        return (a is None) != (b is None)
    return bool(far(a, b))


def _check_consistent(where: Path, frames: list[Frame]) -> None:
    first = frames[0]
    for frame in frames[1:]:
        if frame.matrix != first.matrix:
            raise ImageReadError(
                located(
                    where,
                    f"slices differ in rows x columns x samples: {first.matrix} in "
                    f"{first.name}, {frame.matrix} in {frame.name}",
                )
            )
        if _differ(
            frame.orientation,
            first.orientation,
            lambda a, b: np.abs(a - b).max() > ORIENTATION_TOLERANCE,
        ):
            raise ImageReadError(
                located(
                    where,
                    f"slices differ in orientation (ImageOrientationPatient): {first.name} "
                    f"and {frame.name}",
                )
            )
        if _differ(
            frame.pixel_spacing,
            first.pixel_spacing,
            lambda a, b: not np.allclose(a, b, rtol=SPACING_TOLERANCE),
        ):
            raise ImageReadError(
                located(
                    where,
                    f"slices differ in pixel spacing: {_mm(first.pixel_spacing)} in "
                    f"{first.name}, {_mm(frame.pixel_spacing)} in {frame.name}",
                )
            )


def _slice_axis(where: Path, frames: list[Frame], normal: np.ndarray) -> tuple[list[Frame], float]:
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
                    f"normal): {frames[k].name} and {frames[k + 1].name}",
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
                f"(from {frames[k].name} to {frames[k + 1].name}); resample it first",
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
                f"{frames[k].name} and {frames[k + 1].name} where the others are "
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
