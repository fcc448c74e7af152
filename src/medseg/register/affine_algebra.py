"""The affine algebra of registration: 4x4 world affines checked, inverted, composed, applied
to points, and built from (or split into) readable parameters: rotation, translation, scale,
shear about a centre."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """The inverse of a 4x4 affine.

    Raises ``ValueError`` for a singular matrix or a last row other than ``(0, 0, 0, 1)``.

    Examples
    --------
    >>> A = affine_from_parameters(translation_mm=(1.0, 2.0, 3.0), scale=(2.0, 2.0, 2.0))
    >>> np.allclose(invert_affine(A) @ A, np.eye(4))
    True
    """
    affine = checked_affine(affine, "affine")
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
        out = out @ checked_affine(affine, "affine")
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
    affine = checked_affine(affine, "affine")
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


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``affine`` applied to ``(3, ...)`` points, as a new float64 array of the same shape.

    Row by row, so that points of any shape ``(3, ...)`` (a whole slab of a grid) need no
    reshaping and no homogeneous ``(4, N)`` copy.

    Examples
    --------
    >>> apply_affine(np.diag([2.0, 1.0, 1.0, 1.0]), np.ones((3, 2))).tolist()
    [[2.0, 2.0], [1.0, 1.0], [1.0, 1.0]]
    """
    out = np.empty(points.shape, dtype=np.float64)
    for row in range(3):
        m = affine[row]
        out[row] = m[0] * points[0] + m[1] * points[1] + m[2] * points[2] + m[3]
    return out


def checked_affine(affine: np.ndarray, name: str) -> np.ndarray:
    """``affine`` as a float64 4x4 array; ``ValueError`` naming it (``name``) when it is not
    a finite affine with the last row ``(0, 0, 0, 1)``.

    Examples
    --------
    >>> checked_affine(np.eye(3), "grid_affine")
    Traceback (most recent call last):
    ...
    ValueError: grid_affine must be 4x4, got (3, 3)
    """
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"{name} must be 4x4, got {affine.shape}")
    if not np.all(np.isfinite(affine)):
        raise ValueError(f"{name} holds NaN or infinite values")
    if not np.allclose(affine[3], [0.0, 0.0, 0.0, 1.0]):
        raise ValueError(f"{name} must end with the row (0, 0, 0, 1), got {affine[3].tolist()}")
    return affine


# --- helpers -------------------------------------------------------------------------------


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
