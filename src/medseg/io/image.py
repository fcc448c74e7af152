"""The `Image` type: a channel-first array with its geometry."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Image:
    """A channel-first image ``(C, *spatial)`` and the affine that places it in the world.

    Parameters
    ----------
    array
        Voxel data, shape ``(C, X, Y[, Z])``. Spatial axes are the file's voxel axes.
    affine
        4x4 matrix mapping voxel indices ``(i, j, k, 1)`` to world millimetres (RAS+, the
        nibabel convention). For 2D images the third voxel index is 0, so the third column
        carries the (unused) slice direction.

    Examples
    --------
    >>> img = Image(np.zeros((1, 4, 5), np.float32), np.diag([0.5, 0.5, 1.0, 1.0]))
    >>> img.spatial_shape, img.spacing
    ((4, 5), (0.5, 0.5))
    """

    array: np.ndarray
    affine: np.ndarray

    def __post_init__(self) -> None:
        if self.array.ndim not in (3, 4):
            raise ValueError(
                f"Image array must be (C, X, Y) or (C, X, Y, Z), got {self.array.shape}"
            )
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise ValueError(f"Image affine must be 4x4, got {affine.shape}")
        object.__setattr__(self, "affine", affine)

    @property
    def channels(self) -> int:
        """Number of channels ``C``."""
        return int(self.array.shape[0])

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Shape of the spatial axes."""
        return tuple(int(s) for s in self.array.shape[1:])

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return self.array.ndim - 1

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size in mm along each spatial axis (norms of the affine's columns)."""
        norms = np.linalg.norm(self.affine[:3, : self.ndim], axis=0)
        return tuple(float(n) for n in norms)

    def with_array(self, array: np.ndarray) -> Image:
        """Return an image with the same geometry and new data of the same spatial shape."""
        if tuple(array.shape[1:]) != self.spatial_shape:
            raise ValueError(
                f"new array spatial shape {array.shape[1:]} differs from {self.spatial_shape}"
            )
        return Image(array, self.affine)


def same_grid(a: Image, b: Image, atol: float = 1e-3) -> bool:
    """Whether two images share spatial shape and affine (to ``atol`` mm)."""
    return a.spatial_shape == b.spatial_shape and bool(np.allclose(a.affine, b.affine, atol=atol))


def spacing_affine(spacing: tuple[float, ...]) -> np.ndarray:
    """A 4x4 axis-aligned affine with the given 2 or 3 voxel sizes and origin at zero."""
    diag = list(spacing) + [1.0] * (3 - len(spacing)) + [1.0]
    return np.diag(np.asarray(diag, dtype=np.float64))
