"""The bounding box of a mask's non-zero voxels, as slices (a leaf: numpy only).

Metrics, post-processing and preprocessing all work inside the box around a structure so that
their cost follows the structure's size rather than the image's.
"""

from __future__ import annotations

import numpy as np


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...] | None:
    """The smallest box holding every non-zero voxel of ``mask``, one slice per axis.

    Parameters
    ----------
    mask
        An array of any number of dimensions; its non-zero (``True``) voxels are boxed.
    margin
        Voxels added on each side of every axis; the box is clipped to the array, so it
        never starts below 0 nor ends beyond the axis length.

    Returns
    -------
    tuple of slice or None
        Slices with integer ``start`` and ``stop`` (step None), ``None`` for a mask with no
        non-zero voxel: callers differ on what an empty mask means, so none is chosen here.

    Examples
    --------
    >>> m = np.zeros((4, 5), bool); m[1, 2] = m[2, 3] = True
    >>> bounding_box(m)
    (slice(1, 3, None), slice(2, 4, None))
    >>> bounding_box(m, margin=2)
    (slice(0, 4, None), slice(0, 5, None))
    >>> bounding_box(np.zeros((3, 3))) is None
    True
    """
    box = []
    for axis in range(mask.ndim):
        # one projection per axis touches every voxel ndim times but needs no index arrays,
        # which np.nonzero would build for every foreground voxel
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        if hits.size == 0:
            return None
        start = max(int(hits[0]) - margin, 0)
        stop = min(int(hits[-1]) + 1 + margin, mask.shape[axis])
        box.append(slice(start, stop))
    return tuple(box)
