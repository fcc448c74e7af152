"""The post-processing operations: each takes an integer label map and returns a new one.

Every operation works on one label's mask (or on the whole foreground) and obeys two rules:

- it never creates a label value that was not asked for, and
- it never writes over another label: voxels it removes become background (0), and voxels it
  adds (hole filling, closing, smoothing) are taken only from the background.

Connected components use full connectivity (8 in 2D, 26 in 3D), as the lesion metrics do.
Axes of length 1 are dropped before an operation (a 2D slice stored as ``(X, Y, 1)`` is
processed as 2D). Each operation works inside the bounding box of the label, padded by what
its neighbourhood needs, so it costs little on large images with small structures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import cc3d
import numpy as np
from scipy import ndimage

from medseg.bounding_box import bounding_box
from medseg.metrics.lesions import components

#: Axes whose spacing is more than this many times the finest are left out of the
#: structuring element (it is flat along them): one voxel across a 5 mm slice step is not
#: the same neighbourhood as one voxel across 0.8 mm in-plane.
COARSE_AXIS_RATIO = 2.0


def _full_connectivity(ndim: int) -> int:
    return 26 if ndim == 3 else 8


def _working_copy(
    labels: np.ndarray, spacing: Sequence[float] | None
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """A copy of ``labels`` (the result), a view of it without length-1 axes (kept 2D at
    least), and the spacing of the view's axes."""
    if labels.ndim not in (2, 3):
        raise ValueError(f"a label map must be 2D or 3D, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"a label map must hold integers, got {labels.dtype}")
    spacing = tuple(float(s) for s in spacing) if spacing is not None else (1.0,) * labels.ndim
    if len(spacing) != labels.ndim:
        raise ValueError(f"spacing {spacing} does not match a {labels.ndim}D label map")
    out = labels.copy()
    keep = [axis for axis, size in enumerate(labels.shape) if size > 1]
    while len(keep) < 2:  # a line or a single voxel: keep the first dropped axes
        keep = sorted(set(keep) | {next(a for a in range(labels.ndim) if a not in keep)})
    view = out.reshape([labels.shape[a] for a in keep])
    return out, view, tuple(spacing[a] for a in keep)


def structuring_element(radius: int, spacing: Sequence[float]) -> np.ndarray:
    """The neighbourhood used by opening, closing and smoothing: a ball of ``radius``
    voxels over the fine axes, flat along axes coarser than ``COARSE_AXIS_RATIO`` times the
    finest spacing. Radius 1 is the face-connected cross.

    Examples
    --------
    >>> structuring_element(1, (1.0, 1.0)).astype(int)
    array([[0, 1, 0],
           [1, 1, 1],
           [0, 1, 0]])
    >>> structuring_element(1, (0.8, 0.8, 5.0)).shape  # flat along the 5 mm axis
    (3, 3, 1)
    """
    if radius < 1:
        raise ValueError(f"radius must be at least 1 voxel, got {radius}")
    finest = min(spacing)
    extents = [radius if s <= COARSE_AXIS_RATIO * finest * (1 + 1e-6) else 0 for s in spacing]
    grids = np.ogrid[tuple(slice(-e, e + 1) for e in extents)]
    return sum(g.astype(np.int64) ** 2 for g in grids) <= radius**2


def keep_largest_component(labels: np.ndarray, value: int) -> np.ndarray:
    """Keep only the largest connected component of label ``value``; the rest becomes
    background. Of equal-sized components one is kept, always the same.

    Examples
    --------
    >>> labels = np.array([[1, 1, 0, 1], [0, 0, 0, 0], [2, 0, 0, 2]], np.uint8)
    >>> keep_largest_component(labels, 1)
    array([[1, 1, 0, 0],
           [0, 0, 0, 0],
           [2, 0, 0, 2]], dtype=uint8)
    """
    out, view, _ = _working_copy(labels, None)
    box = bounding_box(view == value)
    if box is not None:
        region = view[box]
        _keep_largest(region, region == value)
    return out


def keep_largest_foreground(labels: np.ndarray) -> np.ndarray:
    """Keep only the largest connected component of the whole foreground (all labels
    together); voxels of every label outside it become background.

    Examples
    --------
    >>> labels = np.array([[1, 2, 0, 0], [0, 0, 0, 3]], np.uint8)
    >>> keep_largest_foreground(labels)
    array([[1, 2, 0, 0],
           [0, 0, 0, 0]], dtype=uint8)
    """
    out, view, _ = _working_copy(labels, None)
    box = bounding_box(view != 0)
    if box is not None:
        region = view[box]
        _keep_largest(region, region != 0)
    return out


def _keep_largest(region: np.ndarray, mask: np.ndarray) -> None:
    """Set every voxel of ``mask`` outside its largest component to 0 in ``region``."""
    numbered, count = components(mask)
    if count > 1:
        sizes = np.bincount(numbered.ravel())
        sizes[0] = 0
        region[mask & (numbered != int(np.argmax(sizes)))] = 0


def remove_small_components(
    labels: np.ndarray, value: int, min_volume_mm3: float, spacing: Sequence[float]
) -> np.ndarray:
    """Remove the connected components of label ``value`` smaller than ``min_volume_mm3``
    (in 2D: an area in mm²); they become background.

    Examples
    --------
    >>> labels = np.array([[1, 1, 1, 0, 1, 1], [0, 0, 0, 0, 0, 0]], np.uint8)
    >>> remove_small_components(labels, 1, 2.5, spacing=(1.0, 1.0))  # 2 mm² goes, 3 stays
    array([[1, 1, 1, 0, 0, 0],
           [0, 0, 0, 0, 0, 0]], dtype=uint8)
    >>> remove_small_components(labels, 1, 2.5, spacing=(2.0, 1.0))[0]  # now 6 and 4 mm²
    array([1, 1, 1, 0, 1, 1], dtype=uint8)
    """
    voxel_volume = math.prod(float(s) for s in spacing)
    out, view, _ = _working_copy(labels, spacing)
    # a component of n voxels goes when n * voxel_volume < min_volume_mm3; cc3d.dust removes
    # components of fewer than `threshold` voxels (the epsilon absorbs float rounding)
    threshold = math.ceil(min_volume_mm3 / voxel_volume - 1e-9)
    box = bounding_box(view == value)
    if box is not None and threshold > 1:
        region = view[box]
        mask = region == value
        kept = cc3d.dust(mask, threshold=threshold, connectivity=_full_connectivity(mask.ndim))
        region[mask & ~kept.astype(bool)] = 0
    return out


def fill_holes(labels: np.ndarray, value: int) -> np.ndarray:
    """Fill the holes of label ``value``: pockets of background that it alone encloses.

    A pocket is a connected region of background voxels (face neighbours) that cannot reach
    the image border without crossing label ``value``. It is filled only if all its face
    neighbours belong to ``value``: a pocket that also borders another label (say a gap
    between an organ and a tumour inside it) is left as it is. So no label is written over,
    and the hole filling of two labels never competes for the same voxel.

    Examples
    --------
    >>> labels = np.array([[1, 1, 1, 1, 1, 1], [1, 0, 1, 0, 2, 1], [1, 1, 1, 1, 1, 1]], np.uint8)
    >>> fill_holes(labels, 1)  # the second pocket borders label 2: left as it is
    array([[1, 1, 1, 1, 1, 1],
           [1, 1, 1, 0, 2, 1],
           [1, 1, 1, 1, 1, 1]], dtype=uint8)
    """
    out, view, _ = _working_copy(labels, None)
    _fill(view, value, None)
    return out


def fill_holes_slicewise(
    labels: np.ndarray, value: int, spacing: Sequence[float] | None = None
) -> np.ndarray:
    """Fill the holes of label ``value`` in each 2D slice across the coarsest axis (largest
    spacing; of equal spacings the last axis); a 2D map is filled as a whole. Pockets are as
    in `fill_holes`, within a slice. Fills what `fill_holes` fills and also holes that are
    open only towards a neighbouring slice.

    Examples
    --------
    >>> labels = np.zeros((5, 5, 3), np.uint8); labels[1:4, 1:4, :] = 1
    >>> labels[2, 2, :] = 0  # a tunnel through every slice: not a hole in 3D
    >>> int(fill_holes(labels, 1)[2, 2, 1]), int(fill_holes_slicewise(labels, 1)[2, 2, 1])
    (0, 1)
    """
    out, view, view_spacing = _working_copy(labels, spacing)
    if view.ndim == 3:
        # of equal spacings the last axis: argmax over the reversed order
        axis = view.ndim - 1 - int(np.argmax(view_spacing[::-1]))
        structure = ndimage.generate_binary_structure(3, 1)
        index = [1, 1, 1]
        for offset in (0, 2):  # no connection to the neighbouring slices
            index[axis] = offset
            structure[tuple(index)] = False
        _fill(view, value, structure)
    else:
        _fill(view, value, None)
    return out


def _fill(view: np.ndarray, value: int, structure: np.ndarray | None) -> None:
    """Fill, in place, the background pockets enclosed by ``value`` alone; ``structure``
    connects the background (default: face neighbours)."""
    if structure is None:
        structure = ndimage.generate_binary_structure(view.ndim, 1)
    box = bounding_box(view == value, 1)
    if box is None:
        return
    region = view[box]
    mask = region == value
    enclosed = ndimage.binary_fill_holes(mask, structure=structure) & (region == 0)
    if not enclosed.any():
        return
    others = (region != 0) & ~mask
    if others.any():  # leave out the pockets that touch another label
        pockets, _ = ndimage.label(enclosed, structure=structure)
        touching = np.unique(pockets[ndimage.binary_dilation(others, structure) & enclosed])
        enclosed &= ~np.isin(pockets, touching)
    region[enclosed] = value


def opening(
    labels: np.ndarray, value: int, radius: int = 1, spacing: Sequence[float] | None = None
) -> np.ndarray:
    """Morphological opening of label ``value`` with `structuring_element`: removes thin
    protrusions, bridges and specks narrower than the element; removed voxels become
    background. Beyond the image border the nearest voxel repeats (as in `closing` and
    `smooth`), so a structure cut by the border is not worn away there.

    Examples
    --------
    >>> labels = np.zeros((5, 7), np.uint8); labels[1:4, 1:4] = 1; labels[:, 5] = 1
    >>> opened = opening(labels, 1)
    >>> opened[:, 5]  # the one-voxel-wide line goes
    array([0, 0, 0, 0, 0], dtype=uint8)
    >>> opened[1:4, 1:4]  # the 3 x 3 block keeps what the cross fits in
    array([[0, 1, 0],
           [1, 1, 1],
           [0, 1, 0]], dtype=uint8)
    """
    out, view, view_spacing = _working_copy(labels, spacing)
    element = structuring_element(radius, view_spacing)
    box = bounding_box(view == value, 2 * radius + 1)
    if box is not None:
        region = view[box]
        mask = region == value
        opened = _with_edge_padding(ndimage.binary_opening, mask, element, radius)
        region[mask & ~opened] = 0
    return out


def closing(
    labels: np.ndarray, value: int, radius: int = 1, spacing: Sequence[float] | None = None
) -> np.ndarray:
    """Morphological closing of label ``value`` with `structuring_element`: fills gaps and
    notches narrower than the element, from background voxels only. Beyond the image border
    the nearest voxel repeats, so the border neither erodes the label nor keeps a gap along
    it open; closing only ever adds voxels.

    Examples
    --------
    >>> labels = np.zeros((3, 7), np.uint8); labels[:, 0:3] = 1; labels[:, 4:7] = 1
    >>> closing(labels, 1)[1]  # the one-voxel gap is closed
    array([1, 1, 1, 1, 1, 1, 1], dtype=uint8)
    >>> labels[1, 3] = 2; closing(labels, 1)[1]  # ... but not over another label
    array([1, 1, 1, 2, 1, 1, 1], dtype=uint8)
    """
    out, view, view_spacing = _working_copy(labels, spacing)
    element = structuring_element(radius, view_spacing)
    box = bounding_box(view == value, 2 * radius + 2)
    if box is not None:
        region = view[box]
        mask = region == value
        closed = _with_edge_padding(ndimage.binary_closing, mask, element, radius)
        region[closed & (region == 0)] = value
    return out


def _with_edge_padding(
    morphology: Callable[..., np.ndarray], mask: np.ndarray, element: np.ndarray, radius: int
) -> np.ndarray:
    """``morphology(mask, structure=element)`` with the nearest voxel repeated beyond the
    array's edge, so that the image border acts neither as background nor as foreground."""
    pad = 2 * radius + 1  # the dilation at `radius` beyond the edge reads 2 * radius
    result = morphology(np.pad(mask, pad, mode="edge"), structure=element)
    return result[tuple(slice(pad, pad + n) for n in mask.shape)]


def smooth(
    labels: np.ndarray, value: int, radius: int = 1, spacing: Sequence[float] | None = None
) -> np.ndarray:
    """Smooth label ``value`` by majority vote (a median filter of its mask) over
    `structuring_element`: voxels where the label is a minority become background, background
    voxels where it is the majority join it. Values beyond the image border repeat the
    nearest voxel.

    Examples
    --------
    >>> labels = np.zeros((7, 7), np.uint8); labels[2:5, 2:5] = 1
    >>> labels[1, 3] = 1; labels[3, 3] = 0  # a spike and a pit
    >>> smooth(labels, 1)[1:6, 1:6]
    array([[0, 0, 0, 0, 0],
           [0, 1, 1, 1, 0],
           [0, 1, 1, 1, 0],
           [0, 1, 1, 1, 0],
           [0, 0, 0, 0, 0]], dtype=uint8)
    """
    out, view, view_spacing = _working_copy(labels, spacing)
    element = structuring_element(radius, view_spacing)
    box = bounding_box(view == value, radius + 1)
    if box is not None:
        region = view[box]
        mask = region == value
        majority = ndimage.median_filter(
            mask.astype(np.uint8), footprint=element, mode="nearest"
        ).astype(bool)
        region[mask & ~majority] = 0
        region[majority & (region == 0)] = value
    return out
