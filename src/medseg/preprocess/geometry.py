"""Geometric steps of preprocessing, each with its exact inverse: reorientation to the
closest canonical (RAS) axis order, cropping to the non-zero region, and resampling to a
target spacing. Every step returns the array and the affine of the new grid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from nibabel import orientations
from scipy import ndimage

from medseg.bounding_box import bounding_box

#: An axis whose spacing is this many times the finest one is "strongly anisotropic"
#: (nnU-Net's rule): it is resampled separately, with nearest-neighbour interpolation.
ANISOTROPY_RATIO = 3.0


# --- reorientation ----------------------------------------------------------------------


def canonical_orientation(affine: np.ndarray, ndim: int) -> np.ndarray:
    """The nibabel orientation (axis, flip) per voxel axis that brings the array closest to
    RAS order; identity for 2D images (their third axis is not an array axis)."""
    if ndim == 2:
        return np.array([[0, 1], [1, 1]], dtype=float)
    return orientations.io_orientation(affine)


def reorient(
    array: np.ndarray, affine: np.ndarray, ornt: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Permute/flip the spatial axes of a channel-first array by ``ornt``; return the array
    and its new affine (the world position of every voxel is unchanged).

    Examples
    --------
    >>> affine = np.diag([-1.0, 1.0, 2.0, 1.0])  # x runs right to left: LAS
    >>> a = np.arange(8).reshape(1, 2, 2, 2)
    >>> out, new = reorient(a, affine, canonical_orientation(affine, 3))
    >>> new[:3, :3].diagonal().tolist(), bool(out[0, 0, 0, 0] == a[0, 1, 0, 0])
    ([1.0, 1.0, 2.0], True)
    """
    spatial = array.shape[1:]
    if len(spatial) == 2:
        return array, affine
    out = np.stack([orientations.apply_orientation(channel, ornt) for channel in array])
    new_affine = affine @ orientations.inv_ornt_aff(ornt, spatial)
    return np.ascontiguousarray(out), new_affine


def undo_reorient(array: np.ndarray, ornt: np.ndarray, original_shape: Sequence[int]) -> np.ndarray:
    """The inverse of :func:`reorient` for a channel-first array on the reoriented grid."""
    if len(original_shape) == 2:
        return array
    # the reoriented array is in identity (RAS) order; `back` takes it to the original order
    back = orientations.ornt_transform(np.array([[0, 1], [1, 1], [2, 1]], dtype=float), ornt)
    return np.stack([orientations.apply_orientation(c, back) for c in array])


# --- cropping ---------------------------------------------------------------------------


def nonzero_box(array: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Per spatial axis, the (start, stop) of the region where any channel is non-zero
    (the whole image when it is all zero)."""
    mask = np.any(array != 0, axis=0)
    box = bounding_box(mask)
    if box is None:
        return tuple((0, n) for n in mask.shape)
    return tuple((s.start, s.stop) for s in box)


def crop(
    array: np.ndarray, affine: np.ndarray, box: Sequence[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray]:
    """Cut a channel-first array to ``box``; the affine moves its origin to the box corner."""
    index = (slice(None),) + tuple(slice(a, b) for a, b in box)
    shift = np.eye(4)
    shift[: len(box), 3] = [a for a, _ in box]
    return np.ascontiguousarray(array[index]), affine @ shift


def uncrop(
    array: np.ndarray, box: Sequence[tuple[int, int]], shape: Sequence[int], fill: np.ndarray
) -> np.ndarray:
    """Place a cropped channel-first array back into the full ``shape``; voxels outside the
    box get ``fill`` (one value per channel, e.g. probability 1 for background)."""
    out = np.empty((array.shape[0], *shape), dtype=array.dtype)
    out[...] = np.asarray(fill, dtype=array.dtype).reshape((-1,) + (1,) * len(shape))
    out[(slice(None),) + tuple(slice(a, b) for a, b in box)] = array
    return out


# --- resampling -------------------------------------------------------------------------


def resampled_shape(
    shape: Sequence[int], spacing: Sequence[float], target: Sequence[float]
) -> tuple[int, ...]:
    """The shape that covers the same field of view at the ``target`` spacing.

    Examples
    --------
    >>> resampled_shape((100, 100, 20), (0.5, 0.5, 5.0), (1.0, 1.0, 2.5))
    (50, 50, 40)
    """
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target))


def resampled_affine(
    affine: np.ndarray, old_shape: Sequence[int], new_shape: Sequence[int]
) -> np.ndarray:
    """The affine of a grid of ``new_shape`` covering the same field of view (voxel edges
    aligned) as ``old_shape`` under ``affine``: voxel ``j`` of the new grid sits at old
    continuous index ``(j + 0.5) * n_old / n_new - 0.5``."""
    factor = np.asarray(old_shape, float) / np.asarray(new_shape, float)
    scale = np.eye(4)
    scale[: len(factor), : len(factor)] = np.diag(factor)
    scale[: len(factor), 3] = 0.5 * factor - 0.5
    return affine @ scale


def anisotropic_axis(spacing: Sequence[float]) -> int | None:
    """The axis to resample separately (nearest neighbour), if one is much coarser."""
    spacing = np.asarray(spacing, float)
    if spacing.size == 3 and spacing.max() >= ANISOTROPY_RATIO * spacing.min():
        axis = int(np.argmax(spacing))
        if np.count_nonzero(spacing >= ANISOTROPY_RATIO * spacing.min()) == 1:
            return axis
    return None


def _zoom(
    channel: np.ndarray, factors: Sequence[float], shape: Sequence[int], order: int
) -> np.ndarray:
    if all(abs(f - 1.0) < 1e-12 for f in factors) and tuple(channel.shape) == tuple(shape):
        return channel
    out = ndimage.zoom(
        channel, factors, order=order, mode="nearest", grid_mode=True, prefilter=order > 1
    )
    if out.shape != tuple(shape):  # zoom rounds the shape itself; ours is authoritative
        raise AssertionError(f"zoom gave {out.shape}, expected {tuple(shape)}")
    return out


def resample(
    array: np.ndarray,
    new_shape: Sequence[int],
    order: int = 3,
    separate_axis: int | None = None,
    separate_order: int = 0,
) -> np.ndarray:
    """Resample every channel of a float array to ``new_shape`` (edge-aligned grids, see
    :func:`resampled_affine`) with a spline of ``order``; ``separate_axis`` (a strongly
    anisotropic axis) is resampled afterwards on its own with ``separate_order``."""
    old_shape = array.shape[1:]
    factors = [n / o for n, o in zip(new_shape, old_shape)]
    out = []
    for channel in array:
        if separate_axis is None:
            out.append(_zoom(channel, factors, new_shape, order))
            continue
        in_plane = list(factors)
        in_plane[separate_axis] = 1.0
        middle = list(new_shape)
        middle[separate_axis] = old_shape[separate_axis]
        step = _zoom(channel, in_plane, middle, order)
        along = [1.0] * len(factors)
        along[separate_axis] = factors[separate_axis]
        out.append(_zoom(step, along, new_shape, separate_order))
    return np.stack(out)


def resample_labels(
    labels: np.ndarray,
    new_shape: Sequence[int],
    values: Sequence[int],
    separate_axis: int | None = None,
) -> np.ndarray:
    """Resample an integer label map ``(X, Y[, Z])`` by linear interpolation of each label's
    one-hot mask and taking the most likely label: boundaries stay smooth and no label
    appears that was not among ``values``."""
    if tuple(labels.shape) == tuple(new_shape):
        return labels
    one_hot = np.stack([(labels == v).astype(np.float32) for v in values])
    probabilities = resample(
        one_hot, new_shape, order=1, separate_axis=separate_axis, separate_order=0
    )
    return np.asarray(values, dtype=labels.dtype)[np.argmax(probabilities, axis=0)]
