"""Resampling a moving image (or label map) on the fixed grid through a `Transform`.

Pull-back: for every voxel centre ``x`` of the fixed grid the moving image is sampled at
``T(x)`` (moving world, RAS+ mm), at the voxel index ``inv(moving.affine) @ T(x)``. Work is done
in slabs of fixed-grid slices, so a 256^3 volume needs ~100 MB of temporaries beyond its input
and output.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Literal

import numpy as np
from scipy import ndimage

from medseg.io.image import Image
from medseg.register.affine_algebra import compose_affines, invert_affine
from medseg.register.transforms import Transform, slabs

#: Largest label value `warp_labels` accepts (the output is uint8 or uint16).
MAX_LABEL = 2**16 - 1


def warp_image(moving: Image, fixed_grid: Image, transform: Transform, order: int = 1) -> Image:
    """The moving image resampled on the fixed grid: ``moving(T(x))`` at every fixed voxel.

    Parameters
    ----------
    moving
        The image to resample, 3D, any number of channels (each resampled alike).
    fixed_grid
        Gives the output grid (shape and affine); its voxel values are not used.
    transform
        Fixed-world to moving-world map (see `Transform`).
    order
        Spline order: 0 nearest, 1 linear (default), 3 cubic (up to 5).

    Returns
    -------
    Image
        On the fixed grid; 0 where ``T(x)`` falls beyond the outermost voxel centres of the
        moving image (ITK keeps the edge value for another half voxel; elsewhere the two
        agree). Order 0 keeps the input dtype; otherwise float32 (float64 for float64 input).

    Examples
    --------
    >>> moving = Image(np.arange(27.0).reshape(1, 3, 3, 3), np.eye(4))
    >>> shift = np.eye(4)
    >>> shift[:3, 3] = [1.0, 0.0, 0.0]  # fixed x is moving x + 1 mm
    >>> warp_image(moving, moving, Transform(shift)).array[0, :, 0, 0].tolist()
    [9.0, 18.0, 0.0]
    """
    _check_3d(moving, "moving")
    _check_3d(fixed_grid, "fixed_grid")
    if order not in range(6):
        raise ValueError(f"order must be 0 to 5, got {order}")
    dtype = moving.array.dtype
    if order > 0:
        out_dtype = np.float64 if dtype == np.float64 else np.float32
    else:
        out_dtype = np.uint8 if dtype == np.bool_ else dtype
    shape = fixed_grid.spatial_shape
    out = np.empty((moving.channels, *shape), dtype=out_dtype)
    index_map = _to_moving_index(transform, moving)
    for c, channel in enumerate(moving.array):
        source = _interpolation_source(channel, order)
        if index_map.is_affine:
            # One matrix from fixed voxel index to moving voxel index: no coordinate arrays.
            matrix = compose_affines(index_map.affine, fixed_grid.affine)
            ndimage.affine_transform(
                source,
                matrix,
                output_shape=shape,
                output=out[c],
                order=order,
                mode="constant",
                cval=0.0,
                prefilter=False,
            )
            continue
        for z in slabs(shape):
            out[c, :, :, z] = ndimage.map_coordinates(
                source,
                index_map.map_grid(fixed_grid.affine, shape, z),
                order=order,
                mode="constant",
                cval=0.0,
                prefilter=False,
                output=out_dtype,
            )
    return Image(out, fixed_grid.affine)


def warp_labels(
    labels: Image,
    fixed_grid: Image,
    transform: Transform,
    method: Literal["nearest", "linear"] = "nearest",
) -> Image:
    """A label map resampled on the fixed grid, never inventing a label.

    Parameters
    ----------
    labels
        Non-negative integer labels (up to 65535), 3D; every channel is resampled alike.
    fixed_grid
        Gives the output grid (shape and affine).
    transform
        Fixed-world to moving-world map (see `Transform`).
    method
        ``"nearest"``: the label of the voxel nearest to ``T(x)``. ``"linear"``: each label's
        one-hot mask is interpolated trilinearly at ``T(x)`` and the largest wins (ties go to
        the smaller label) — smoother boundaries, and thin structures survive better.

    Returns
    -------
    Image
        uint8 (uint16 when a label exceeds 255) on the fixed grid. Every value is one of the
        input's labels, or 0 (background) where ``T(x)`` falls outside the label map: more than
        half a voxel beyond its outermost voxel centres for "nearest" (as ITK), and for
        "linear" the outside counts as background in the interpolated masks.

    Examples
    --------
    >>> # label 0 at (0, 0, 0), 3 at (0, 1, 0), 5 at (1, 0, 0) and (1, 1, 0)
    >>> labels = Image(np.array([[[[0], [3]], [[5], [5]]]], dtype=np.int64), np.eye(4))
    >>> shift = np.eye(4)
    >>> shift[:3, 3] = [0.4, 0.4, 0.0]
    >>> one_voxel = Image(np.zeros((1, 1, 1, 1)), np.eye(4))  # a fixed grid: one voxel at 0
    >>> [warp_labels(labels, one_voxel, Transform(shift), m).array.item()
    ...  for m in ("nearest", "linear")]  # 5 weighs 0.4 at (0.4, 0.4, 0), label 0 only 0.36
    [0, 5]
    """
    _check_3d(labels, "labels")
    _check_3d(fixed_grid, "fixed_grid")
    if method not in ("nearest", "linear"):
        raise ValueError(f"method must be 'nearest' or 'linear', got {method!r}")
    dtype = _label_dtype(labels.array)
    shape = fixed_grid.spatial_shape
    out = np.empty((labels.channels, *shape), dtype=dtype)
    index_map = _to_moving_index(transform, labels)
    # The linear vote holds 8 labels and weights per point: smaller slabs keep it ~100 MB.
    share = 1 if method == "nearest" else 4
    for c, channel in enumerate(labels.array):
        source = np.ascontiguousarray(channel, dtype=dtype)
        for z in slabs(shape, share):
            index = index_map.map_grid(fixed_grid.affine, shape, z)
            vote = _nearest_label if method == "nearest" else _linear_label
            out[c, :, :, z] = vote(source, index)
    return Image(out, fixed_grid.affine)


def _nearest_label(labels: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The label of the voxel nearest to each continuous index (halves round up); 0 outside."""
    nearest = np.floor(index + 0.5).astype(np.intp)
    flat, inside = _flat_index(nearest, labels.shape)
    return np.where(inside, labels.ravel()[flat], 0).astype(labels.dtype)


def _linear_label(labels: np.ndarray, index: np.ndarray) -> np.ndarray:
    """argmax over labels of their trilinearly interpolated one-hot masks (0 outside).

    Only the labels of the 8 voxels around a point can score, and a label's score is the sum
    of the trilinear weights of the corners holding it. Scoring those 8 candidates costs the
    same whatever the number of labels, where one interpolation per label would not.
    """
    base = np.floor(index)
    frac = index - base
    base = base.astype(np.intp)
    corner_labels = np.empty((8, *index.shape[1:]), dtype=labels.dtype)
    corner_weights = np.empty((8, *index.shape[1:]), dtype=np.float64)
    flat_labels = labels.ravel()
    for corner, offsets in enumerate(itertools.product((0, 1), repeat=3)):
        weight = np.ones(index.shape[1:])
        for axis, offset in enumerate(offsets):
            weight *= frac[axis] if offset else 1.0 - frac[axis]
        flat, inside = _flat_index(base + np.reshape(offsets, (3, 1, 1, 1)), labels.shape)
        corner_labels[corner] = np.where(inside, flat_labels[flat], 0)
        corner_weights[corner] = weight
    best_label = corner_labels[0].copy()
    best_score = np.full(index.shape[1:], -1.0)
    for corner in range(8):
        candidate = corner_labels[corner]
        score = np.where(corner_labels == candidate, corner_weights, 0.0).sum(axis=0)
        better = (score > best_score) | ((score == best_score) & (candidate < best_label))
        best_label[better] = candidate[better]
        best_score[better] = score[better]
    return best_label


def _flat_index(index: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Flat positions of integer ``(3, ...)`` indices (clipped) and whether each is inside."""
    inside = np.ones(index.shape[1:], dtype=bool)
    flat = np.zeros(index.shape[1:], dtype=np.intp)
    for axis, size in enumerate(shape):
        inside &= (index[axis] >= 0) & (index[axis] < size)
        flat = flat * size + np.clip(index[axis], 0, size - 1)
    return flat, inside


def _to_moving_index(transform: Transform, moving: Image) -> Transform:
    """The transform followed by the moving image's world-to-voxel map."""
    return dataclasses.replace(
        transform, affine=compose_affines(invert_affine(moving.affine), transform.affine)
    )


def _interpolation_source(channel: np.ndarray, order: int) -> np.ndarray:
    """What scipy interpolates: for splines above order 1 the coefficients, computed once.

    These are exactly the coefficients ``map_coordinates(..., prefilter=True)`` would compute
    on every call (for mode 'constant' it pads nothing), so slabs give the same values as
    one call on the whole grid.
    """
    if channel.dtype == np.bool_:
        channel = channel.astype(np.uint8)
    elif channel.dtype == np.float16:
        channel = channel.astype(np.float32)
    if order > 1:
        return ndimage.spline_filter(channel, order=order, output=np.float64, mode="constant")
    return channel


def _label_dtype(array: np.ndarray) -> type:
    if array.size == 0:
        return np.uint8
    whole = np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_
    if not whole and (
        not np.issubdtype(array.dtype, np.floating) or not np.all(np.mod(array, 1) == 0)
    ):
        raise ValueError("a label map must hold whole numbers")
    low, high = array.min(), array.max()
    if low < 0 or high > MAX_LABEL:
        raise ValueError(f"labels must lie in 0..{MAX_LABEL}, got {low}..{high}")
    return np.uint8 if high <= 255 else np.uint16


def _check_3d(image: Image, name: str) -> None:
    if image.ndim != 3:
        raise ValueError(f"{name} must be a 3D image, got spatial shape {image.spatial_shape}")
