"""The Jacobian determinant of a displacement field, and how much of it folds."""

from __future__ import annotations

import numpy as np

from medseg.register.affine_algebra import checked_affine
from medseg.register.transforms import slabs


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
    to_index = np.linalg.inv(checked_affine(grid_affine, "grid_affine")[:3, :3])
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


def _gradient(values: np.ndarray, axis: int) -> np.ndarray:
    if values.shape[axis] < 2:
        return np.zeros_like(values)  # a single slice: no change measurable along this axis
    return np.gradient(values, axis=axis)
