"""Spatial transforms of a registration result, and the affine algebra they need.

The convention, used everywhere in `medseg.register`: a transform maps points of the FIXED
image's world to the MOVING image's world ("pull-back", as ITK and ANTs store it). The warped
moving image at a fixed world point ``x`` is ``moving(T(x))``, with

    T(x) = A @ (x + u(x))

in RAS+ millimetres: ``A`` is a 4x4 world-to-world affine and ``u`` an optional displacement
field sampled at the voxel centres of the fixed grid, also in RAS+ millimetres. So the
displacement acts first, in the fixed image's space, and the affine then carries the point into
the moving image's space.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import ndimage

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
        object.__setattr__(self, "affine", _checked_affine(self.affine, "affine"))
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
        object.__setattr__(self, "grid_affine", _checked_affine(self.grid_affine, "grid_affine"))
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
        return (_apply_affine(self.affine, moved)).T

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
        grid_affine = _checked_affine(grid_affine, "grid_affine")
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
        return _apply_affine(self.affine, points)

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
        grid_affine = _checked_affine(grid_affine, "grid_affine")
        for z in slabs(shape):
            moved = self.map_grid(grid_affine, shape, z)
            moved -= grid_points(grid_affine, shape, z)
            out[:, :, :, z] = moved
        return out

    def _displacement_at(self, points: np.ndarray) -> np.ndarray:
        """``u`` at ``(3, N)`` world points: trilinear, nearest edge value outside the grid."""
        assert self.displacement is not None and self.grid_affine is not None
        index = _apply_affine(invert_affine(self.grid_affine), points)
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


# --- affine algebra ------------------------------------------------------------------------


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """The inverse of a 4x4 affine.

    Raises ``ValueError`` for a singular matrix or a last row other than ``(0, 0, 0, 1)``.

    Examples
    --------
    >>> A = affine_from_parameters(translation_mm=(1.0, 2.0, 3.0), scale=(2.0, 2.0, 2.0))
    >>> np.allclose(invert_affine(A) @ A, np.eye(4))
    True
    """
    affine = _checked_affine(affine, "affine")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ValueError("the affine is singular and has no inverse")
    return np.linalg.inv(affine)


def compose_affines(*affines: np.ndarray) -> np.ndarray:
    """The product of 4x4 affines: ``compose_affines(A, B)(x) = A(B(x))`` (B acts first).

    With no argument, the identity.

    Examples
    --------
    >>> shift = affine_from_parameters(translation_mm=(1.0, 0.0, 0.0))
    >>> double = affine_from_parameters(scale=(2.0, 2.0, 2.0))
    >>> (compose_affines(double, shift) @ [1.0, 0.0, 0.0, 1.0])[:3].tolist()  # 2 * (1 + 1)
    [4.0, 0.0, 0.0]
    """
    out = np.eye(4)
    for affine in affines:
        out = out @ _checked_affine(affine, "affine")
    return out


class AffineParameters(NamedTuple):
    """The parameters of `affine_from_parameters`, in its argument order."""

    rotation_radians: np.ndarray
    translation_mm: np.ndarray
    scale: np.ndarray
    shear: np.ndarray
    centre_mm: np.ndarray


def affine_from_parameters(
    rotation_radians: np.ndarray | tuple[float, float, float] = (0.0, 0.0, 0.0),
    translation_mm: np.ndarray | tuple[float, float, float] = (0.0, 0.0, 0.0),
    scale: np.ndarray | tuple[float, float, float] = (1.0, 1.0, 1.0),
    shear: np.ndarray | tuple[float, float, float] = (0.0, 0.0, 0.0),
    centre_mm: np.ndarray | tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """A 4x4 world affine ``x -> R S_h S (x - c) + c + t`` from readable parameters.

    ``M = R @ Sh @ S`` is applied about the centre ``c``, then the translation ``t``:

    - ``S = diag(scale)``;
    - ``Sh`` is upper triangular with ``shear = (xy, xz, yz)`` above the diagonal;
    - ``R = Rz @ Ry @ Rx``: rotations about the fixed world axes x, then y, then z (Euler XYZ,
      extrinsic), angles in radians, right-handed (positive turns y towards z about x).

    As a registration affine it maps fixed-world points to moving-world points (RAS+ mm).

    Examples
    --------
    >>> A = affine_from_parameters(rotation_radians=(0.0, 0.0, np.pi / 2), centre_mm=(1, 0, 0))
    >>> np.round(A @ [2.0, 0.0, 0.0, 1.0], 6).tolist()  # 1 mm right of the centre -> anterior
    [1.0, 1.0, 0.0, 1.0]
    """
    rx, ry, rz = (float(a) for a in _vector(rotation_radians, "rotation_radians"))
    sxy, sxz, syz = _vector(shear, "shear")
    centre = _vector(centre_mm, "centre_mm")
    rotation = _rotation_z(rz) @ _rotation_y(ry) @ _rotation_x(rx)
    shearing = np.array([[1.0, sxy, sxz], [0.0, 1.0, syz], [0.0, 0.0, 1.0]])
    matrix = rotation @ shearing @ np.diag(_vector(scale, "scale"))
    affine = np.eye(4)
    affine[:3, :3] = matrix
    affine[:3, 3] = centre - matrix @ centre + _vector(translation_mm, "translation_mm")
    return affine


def parameters_from_affine(
    affine: np.ndarray, centre_mm: np.ndarray | tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> AffineParameters:
    """The parameters that `affine_from_parameters` turns back into ``affine``.

    The 3x3 part is split as rotation @ shear @ scale (a QR decomposition); a reflection shows
    as a negative z scale. Near gimbal lock (y rotation of ±90°) the x rotation is set to 0.

    Examples
    --------
    >>> A = affine_from_parameters((0.1, -0.2, 0.3), (5.0, 0.0, -1.0), (1.0, 2.0, 0.5))
    >>> p = parameters_from_affine(A)
    >>> np.round(p.rotation_radians, 6).tolist(), np.round(p.scale, 6).tolist()
    ([0.1, -0.2, 0.3], [1.0, 2.0, 0.5])
    >>> np.allclose(affine_from_parameters(*p), A)
    True
    """
    affine = _checked_affine(affine, "affine")
    centre = _vector(centre_mm, "centre_mm")
    matrix = affine[:3, :3]
    if abs(np.linalg.det(matrix)) < 1e-12:
        raise ValueError("a singular affine has no rotation/scale parameters")
    q, r = np.linalg.qr(matrix)
    signs = np.sign(np.diag(r))
    q, r = q * signs, signs[:, None] * r  # positive diagonal: scales come out positive
    if np.linalg.det(q) < 0:  # a reflection: keep R a rotation, flip the z scale
        flip = np.diag([1.0, 1.0, -1.0])
        q, r = q @ flip, flip @ r
    scale = np.diag(r).copy()
    shearing = r / scale[None, :]
    rotation = _euler_xyz(q)
    translation = affine[:3, 3] - centre + matrix @ centre
    return AffineParameters(
        rotation,
        translation,
        scale,
        np.array([shearing[0, 1], shearing[0, 2], shearing[1, 2]]),
        centre,
    )


# --- Jacobian ------------------------------------------------------------------------------


def jacobian_determinant(displacement: np.ndarray, grid_affine: np.ndarray) -> np.ndarray:
    """Determinant of the Jacobian of ``x -> x + u(x)`` at every voxel of the field's grid.

    Derivatives are central differences (one-sided at the edges) taken along the voxel axes and
    turned into world derivatives through the grid's spacing and direction cosines:
    ``J = I + (du/dijk) @ inv(M)`` with ``M`` the 3x3 part of ``grid_affine``. Values below 1
    mean local shrinking, above 1 growth, ``<= 0`` folding. The affine ``A`` of a `Transform`
    is not included (the whole map's determinant is ``det(A) * J``).

    Parameters
    ----------
    displacement
        ``(3, X, Y, Z)`` world millimetres (RAS+, or any frame matching ``grid_affine``).
    grid_affine
        Voxel-to-world affine of the grid the field is sampled on.

    Returns
    -------
    numpy.ndarray
        ``(X, Y, Z)`` float32.

    Examples
    --------
    >>> grid = np.diag([2.0, 2.0, 2.0, 1.0])
    >>> x = np.indices((4, 4, 4)) * 2.0  # world coordinates of the voxel centres
    >>> u = 0.5 * x  # x -> 1.5 x along every axis
    >>> float(jacobian_determinant(u, grid).mean())
    3.375
    """
    field = np.asarray(displacement)
    if field.ndim != 4 or field.shape[0] != 3:
        raise ValueError(f"displacement must have shape (3, X, Y, Z), got {field.shape}")
    to_index = np.linalg.inv(_checked_affine(grid_affine, "grid_affine")[:3, :3])
    shape = field.shape[1:]
    out = np.empty(shape, dtype=np.float32)
    for z in slabs(shape, share=8):
        # one slice of halo on each side so that the z differences are central inside the slab
        lo, hi = max(z.start - 1, 0), min(z.stop + 1, shape[2])
        part = field[:, :, :, lo:hi].astype(np.float64)
        keep = slice(z.start - lo, z.start - lo + (z.stop - z.start))
        # by_index[c][a] = du_c / d(index a)
        by_index = [[_gradient(part[c], a)[:, :, keep] for a in range(3)] for c in range(3)]
        jac = np.empty((3, 3, *by_index[0][0].shape))
        for c in range(3):
            for w in range(3):
                jac[c, w] = sum(by_index[c][a] * to_index[a, w] for a in range(3))
                if c == w:
                    jac[c, w] += 1.0
        out[:, :, z] = (
            jac[0, 0] * (jac[1, 1] * jac[2, 2] - jac[1, 2] * jac[2, 1])
            - jac[0, 1] * (jac[1, 0] * jac[2, 2] - jac[1, 2] * jac[2, 0])
            + jac[0, 2] * (jac[1, 0] * jac[2, 1] - jac[1, 1] * jac[2, 0])
        )
    return out


def folding_percent(jacobian: np.ndarray) -> float:
    """Percentage of voxels whose Jacobian determinant is ``<= 0`` (the map folds there).

    Examples
    --------
    >>> folding_percent(np.array([1.0, 0.5, 0.0, -0.2]))
    50.0
    """
    jacobian = np.asarray(jacobian)
    if jacobian.size == 0:
        return 0.0
    return float(100.0 * np.count_nonzero(jacobian <= 0) / jacobian.size)


# --- helpers -------------------------------------------------------------------------------


def _gradient(values: np.ndarray, axis: int) -> np.ndarray:
    if values.shape[axis] < 2:
        return np.zeros_like(values)  # a single slice: no change measurable along this axis
    return np.gradient(values, axis=axis)


def _apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``affine`` applied to ``(3, ...)`` points, as a new float64 array of the same shape."""
    out = np.empty(points.shape, dtype=np.float64)
    for row in range(3):
        m = affine[row]
        out[row] = m[0] * points[0] + m[1] * points[1] + m[2] * points[2] + m[3]
    return out


def _checked_affine(affine: np.ndarray, name: str) -> np.ndarray:
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"{name} must be 4x4, got {affine.shape}")
    if not np.all(np.isfinite(affine)):
        raise ValueError(f"{name} holds NaN or infinite values")
    if not np.allclose(affine[3], [0.0, 0.0, 0.0, 1.0]):
        raise ValueError(f"{name} must end with the row (0, 0, 0, 1), got {affine[3].tolist()}")
    return affine


def _vector(values: np.ndarray | tuple[float, ...], name: str) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64)
    if out.shape != (3,):
        raise ValueError(f"{name} must hold 3 numbers, got shape {out.shape}")
    return out


def _rotation_x(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rotation_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rotation_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _euler_xyz(rotation: np.ndarray) -> np.ndarray:
    """Angles ``(x, y, z)`` with ``rotation = Rz @ Ry @ Rx``."""
    sin_y = -float(np.clip(rotation[2, 0], -1.0, 1.0))
    y = np.arcsin(sin_y)
    if np.sqrt(rotation[2, 1] ** 2 + rotation[2, 2] ** 2) > 1e-9:
        x = np.arctan2(rotation[2, 1], rotation[2, 2])
        z = np.arctan2(rotation[1, 0], rotation[0, 0])
    else:  # gimbal lock: only x - z (or x + z) is defined; put it all in z
        x = 0.0
        z = np.arctan2(-rotation[0, 1], rotation[1, 1])
    return np.array([x, y, z], dtype=np.float64)
