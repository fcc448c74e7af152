"""overlay.png of a registration: checkerboards of fixed and moving before and after, with
label contours (fixed green, moving red) when labels were given (matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from medseg.io import Image, atomic_path
from medseg.register.transforms import Transform
from medseg.register.warp import warp_image, warp_labels


def _unit(slice_: np.ndarray) -> np.ndarray:
    low, high = np.percentile(slice_, [1, 99])
    return np.clip((slice_ - low) / max(high - low, 1e-8), 0, 1)


def checkerboard(a: np.ndarray, b: np.ndarray, squares: int = 8) -> np.ndarray:
    """Alternate squares of two equally shaped 2D images.

    Examples
    --------
    >>> checkerboard(np.zeros((4, 4)), np.ones((4, 4)), squares=2).astype(int).tolist()
    [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]]
    """
    rows = (np.arange(a.shape[0]) * squares // a.shape[0])[:, None]
    cols = (np.arange(a.shape[1]) * squares // a.shape[1])[None, :]
    return np.where((rows + cols) % 2 == 0, a, b)


def save_registration_overlay(
    fixed: Image,
    moving: Image,
    transform: Transform,
    path: str | Path,
    fixed_labels: Image | None = None,
    moving_labels: Image | None = None,
) -> Path:
    """Two panels (before: identity in world coordinates; after: the transform) of the
    fixed grid's middle axial slice. Only that slice is resampled."""
    z = fixed.spatial_shape[2] // 2
    fixed_slice = _unit(fixed.array[0][:, :, z].astype(np.float32))
    shift = np.eye(4)
    shift[2, 3] = z
    x, y = fixed.spatial_shape[:2]
    plane_grid = Image(np.zeros((1, x, y, 1), np.float32), fixed.affine @ shift)
    if transform.displacement is not None:  # its field, cut to the same slice
        transform = Transform(
            transform.affine, transform.displacement[:, :, :, z : z + 1], plane_grid.affine
        )
    fig = Figure(figsize=(8, 4.4), dpi=100)
    axes = fig.subplots(1, 2)
    for ax, (title, t) in zip(axes, (("before", Transform()), ("after", transform))):
        warped = _unit(warp_image(moving, plane_grid, t).array[0][:, :, 0].astype(np.float32))
        ax.imshow(checkerboard(fixed_slice, warped).T, cmap="gray", origin="lower")
        for labels, colour in ((fixed_labels, "#00d000"), (moving_labels, "#ff3030")):
            if labels is None:
                continue
            if labels is moving_labels:
                plane = warp_labels(labels, plane_grid, t, "nearest").array[0][:, :, 0]
            else:
                plane = labels.array[0][:, :, z]
            for value in np.unique(plane):
                if value != 0:
                    ax.contour((plane == value).T, levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(f"{title}: fixed / moving checkerboard", fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
