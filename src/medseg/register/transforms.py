"""Spatial transforms of a registration result, and the grids they are evaluated on.

The convention, used everywhere in `medseg.register`: a transform maps points of the FIXED
image's world to the MOVING image's world ("pull-back", as ITK and ANTs store it). The warped
moving image at a fixed world point ``x`` is ``moving(T(x))``, with

    T(x) = A @ (x + u(x))

in RAS+ millimetres: ``A`` is a 4x4 world-to-world affine and ``u`` an optional displacement
field sampled at the voxel centres of the fixed grid, also in RAS+ millimetres. So the
displacement acts first, in the fixed image's space, and the affine then carries the point into
the moving image's space.

The 4x4 affine algebra lives in `medseg.register.affine_algebra`, the Jacobian determinant of a
displacement in `medseg.register.jacobian`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from medseg.register.affine_algebra import apply_affine, checked_affine, invert_affine

#: Points handled at once when a transform is evaluated on a whole grid; bounds the memory of
#: temporaries to ~100 MB whatever the grid size.
CHUNK_VOXELS = 2**20


@dataclass(frozen=True, eq=False)
class Transform:
    """A fixed-world to moving-world map ``T(x) = A @ (x + u(x))`` (RAS+ millimetres).

    Parameters
    ----------
    affine
        4x4 world-to-world matrix ``A`` (fixed RAS+ to moving RAS+); identity by default.
    displacement
        Optional ``u``, shape ``(3, X, Y, Z)``: RAS+ millimetres at the voxel centres of the
        fixed grid. Between voxel centres it is interpolated trilinearly; outside the grid the
        nearest edge value is used.
    grid_affine
        The voxel-to-world affine of the grid ``displacement`` lives on (required with it).
    grid_shape
        ``(X, Y, Z)`` of that grid; taken from ``displacement`` when omitted.

    Examples
    --------
    >>> shift = np.eye(4)
    >>> shift[:3, 3] = [10.0, 0.0, 0.0]
    >>> Transform(shift).apply(np.array([[1.0, 2.0, 3.0]])).tolist()
    [[11.0, 2.0, 3.0]]
    >>> u = np.zeros((3, 4, 4, 4))
    >>> u[2] = 1.5  # every fixed point first moves 1.5 mm superior
    >>> Transform(shift, u, np.eye(4)).apply(np.array([[1.0, 2.0, 3.0]])).tolist()
    [[11.0, 2.0, 4.5]]
    """

    affine: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(4))
    displacement: np.ndarray | None = None
    grid_affine: np.ndarray | None = None
    grid_shape: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "affine", checked_affine(self.affine, "affine"))
        if self.displacement is None:
            if self.grid_affine is not None or self.grid_shape is not None:
                raise ValueError("grid_affine and grid_shape describe a displacement; none given")
            return
        field = np.asarray(self.displacement)
        if field.ndim != 4 or field.shape[0] != 3:
            raise ValueError(f"displacement must have shape (3, X, Y, Z), got {field.shape}")
        if not np.issubdtype(field.dtype, np.floating):
            field = field.astype(np.float64)
        if self.grid_affine is None:
            raise ValueError("a displacement needs the grid_affine of the grid it is sampled on")
        shape = tuple(int(s) for s in field.shape[1:])
        if self.grid_shape is not None and tuple(self.grid_shape) != shape:
            raise ValueError(f"grid_shape {tuple(self.grid_shape)} differs from {shape}")
        object.__setattr__(self, "displacement", field)
        object.__setattr__(self, "grid_affine", checked_affine(self.grid_affine, "grid_affine"))
        object.__setattr__(self, "grid_shape", shape)

    @property
    def is_affine(self) -> bool:
        """Whether the transform is the affine ``A`` alone (no displacement field)."""
        return self.displacement is None

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map fixed-world points to moving-world points: ``T(x)`` for each row.

        Parameters
        ----------
        points
            ``(N, 3)`` RAS+ millimetres in the fixed image's world.

        Returns
        -------
        numpy.ndarray
            ``(N, 3)`` float64 RAS+ millimetres in the moving image's world.

        Examples
        --------
        >>> Transform().apply(np.zeros((2, 3))).shape
        (2, 3)
        """
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"points must have shape (N, 3), got {points.shape}")
        moved = points.T.copy()
        if self.displacement is not None:
            moved += self._displacement_at(moved)
        return (apply_affine(self.affine, moved)).T

    def map_grid(
        self, grid_affine: np.ndarray, shape: tuple[int, ...], z: slice = slice(None)
    ) -> np.ndarray:
        """``T(x)`` at the voxel centres ``x`` of a grid (or of the slab ``z`` of its slices).

        Parameters
        ----------
        grid_affine
            Voxel-to-world affine of the grid (usually the fixed image's).
        shape
            ``(X, Y, Z)`` of the grid.
        z
            Slices along the third axis to evaluate (a step-1 slice); all by default.

        Returns
        -------
        numpy.ndarray
            ``(3, X, Y, nz)`` float64 RAS+ millimetres in the moving image's world.

        Examples
        --------
        >>> Transform().map_grid(np.diag([2.0, 2.0, 2.0, 1.0]), (3, 4, 5), slice(1, 3))[:, 0, 0]
        array([[0., 0.],
               [0., 0.],
               [2., 4.]])
        """
        grid_affine = checked_affine(grid_affine, "grid_affine")
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3:
            raise ValueError(f"a grid shape has 3 axes, got {shape}")
        start, stop, step = z.indices(shape[2])
        if step != 1:
            raise ValueError("map_grid takes a slab of consecutive slices (step 1)")
        points = grid_points(grid_affine, shape, slice(start, stop))
        if self.displacement is not None:
            if self.grid_shape == shape and np.allclose(self.grid_affine, grid_affine, atol=1e-6):
                # The fixed grid itself: u is known at these points, nothing to interpolate.
                points += self.displacement[:, :, :, start:stop]
            else:
                flat = points.reshape(3, -1)
                flat += self._displacement_at(flat)
        return apply_affine(self.affine, points)

    def total_displacement(
        self, grid_affine: np.ndarray, shape: tuple[int, ...], dtype: type = np.float32
    ) -> np.ndarray:
        """``T(x) - x`` at every voxel centre of a grid, in RAS+ millimetres.

        This is the whole transform (affine included) as one displacement field, the form that
        `write_displacement` stores. Computed in slabs, so temporaries stay ~100 MB.

        Returns
        -------
        numpy.ndarray
            ``(3, X, Y, Z)`` in ``dtype`` (float32 by default).

        Examples
        --------
        >>> A = np.diag([2.0, 1.0, 1.0, 1.0])  # moving = fixed stretched twice along x
        >>> d = Transform(A).total_displacement(np.eye(4), (3, 1, 1))
        >>> d[0, :, 0, 0].tolist()  # T(x) - x = 2x - x
        [0.0, 1.0, 2.0]
        """
        shape = tuple(int(s) for s in shape)
        out = np.empty((3, *shape), dtype=dtype)
        grid_affine = checked_affine(grid_affine, "grid_affine")
        for z in slabs(shape):
            moved = self.map_grid(grid_affine, shape, z)
            moved -= grid_points(grid_affine, shape, z)
            out[:, :, :, z] = moved
        return out

    def _displacement_at(self, points: np.ndarray) -> np.ndarray:
        """``u`` at ``(3, N)`` world points: trilinear, nearest edge value outside the grid."""
        assert self.displacement is not None and self.grid_affine is not None
        index = apply_affine(invert_affine(self.grid_affine), points)
        return np.stack(
            [
                ndimage.map_coordinates(component, index, order=1, mode="nearest")
                for component in self.displacement
            ]
        )


def grid_points(grid_affine: np.ndarray, shape: tuple[int, ...], z: slice) -> np.ndarray:
    """World coordinates of the voxel centres of the slab ``z`` of a 3D grid.

    Returns
    -------
    numpy.ndarray
        ``(3, X, Y, nz)`` float64 millimetres.

    Examples
    --------
    >>> grid_points(np.diag([1.0, 2.0, 3.0, 1.0]), (2, 2, 4), slice(3, 4))[:, 1, 1, 0].tolist()
    [1.0, 2.0, 9.0]
    """
    start, stop, _ = z.indices(shape[2])
    i = np.arange(shape[0], dtype=np.float64)[:, None, None]
    j = np.arange(shape[1], dtype=np.float64)[None, :, None]
    k = np.arange(start, stop, dtype=np.float64)[None, None, :]
    out = np.empty((3, shape[0], shape[1], max(stop - start, 0)))
    for row in range(3):
        m = grid_affine[row]
        out[row] = m[0] * i + m[1] * j + m[2] * k + m[3]
    return out


def slabs(shape: tuple[int, ...], share: int = 1) -> list[slice]:
    """Consecutive slabs of slices along the third axis of about ``CHUNK_VOXELS / share`` voxels.

    Examples
    --------
    >>> slabs((1024, 256, 5), share=2)  # 2 slices of 2^18 voxels make 2^20 / 2
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    per_slice = max(int(shape[0]) * int(shape[1]), 1)
    step = max(CHUNK_VOXELS // max(share, 1) // per_slice, 1)
    return [slice(z, min(z + step, shape[2])) for z in range(0, shape[2], step)]
