"""Transforms: the pull-back map T(x) = A (x + u(x)), affine algebra, parameters, Jacobians.

Points are checked against SimpleITK's own transforms (LPS, so flipped both ways)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from medseg.register import transforms
from medseg.register.affine_algebra import (
    affine_from_parameters,
    compose_affines,
    invert_affine,
    parameters_from_affine,
)
from medseg.register.jacobian import folding_percent, jacobian_determinant
from medseg.register.transforms import Transform, grid_points

FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


def _oblique_grid(spacing=(0.9, 1.3, 2.1), origin=(-20.0, 15.0, -8.0), seed=0) -> np.ndarray:
    """A rotated, anisotropic voxel-to-world affine."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    affine = np.eye(4)
    affine[:3, :3] = q * np.asarray(spacing)
    affine[:3, 3] = origin
    return affine


def _smooth_field(shape, amplitude_mm=3.0, seed=1) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(size=(3, *shape))
    field = np.stack([ndimage.gaussian_filter(c, 3.0) for c in noise])
    return amplitude_mm * field / np.abs(field).max()


def _itk_displacement(field_ras: np.ndarray, grid_affine: np.ndarray) -> sitk.Transform:
    lps = field_ras * np.array([-1.0, -1.0, 1.0])[:, None, None, None]
    image = sitk.GetImageFromArray(np.moveaxis(lps, 0, -1).transpose(2, 1, 0, 3), isVector=True)
    geometry = FLIP @ grid_affine
    spacing = np.linalg.norm(geometry[:3, :3], axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((geometry[:3, :3] / spacing).ravel().tolist())
    image.SetOrigin(geometry[:3, 3].tolist())
    return sitk.DisplacementFieldTransform(sitk.Cast(image, sitk.sitkVectorFloat64))


def _itk_affine(affine_ras: np.ndarray) -> sitk.AffineTransform:
    lps = FLIP @ affine_ras @ FLIP
    return sitk.AffineTransform(lps[:3, :3].ravel().tolist(), lps[:3, 3].tolist())


A = affine_from_parameters(
    rotation_radians=(0.1, -0.15, 0.2),
    translation_mm=(3.0, -2.0, 1.5),
    scale=(1.1, 0.95, 1.05),
    shear=(0.05, 0.0, -0.03),
    centre_mm=(5.0, 10.0, -3.0),
)


# --- affine algebra ------------------------------------------------------------------------


def test_invert_and_compose_identities() -> None:
    B = affine_from_parameters((0.3, 0.0, -0.1), (1.0, 2.0, 3.0), (2.0, 1.0, 0.5))
    assert np.allclose(compose_affines(A, invert_affine(A)), np.eye(4))
    assert np.allclose(compose_affines(invert_affine(A), A), np.eye(4))
    assert np.array_equal(compose_affines(), np.eye(4))
    assert np.allclose(compose_affines(A), A)
    point = np.array([1.0, -4.0, 7.0, 1.0])
    assert np.allclose(compose_affines(A, B) @ point, A @ (B @ point))  # B acts first
    assert np.allclose(invert_affine(compose_affines(A, B)), invert_affine(B) @ invert_affine(A))
    with pytest.raises(ValueError, match="singular"):
        invert_affine(np.diag([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="0, 0, 0, 1"):
        compose_affines(np.ones((4, 4)))


def test_parameters_round_trip_about_a_centre() -> None:
    params = parameters_from_affine(A, centre_mm=(5.0, 10.0, -3.0))
    assert np.allclose(params.rotation_radians, [0.1, -0.15, 0.2])
    assert np.allclose(params.translation_mm, [3.0, -2.0, 1.5])
    assert np.allclose(params.scale, [1.1, 0.95, 1.05])
    assert np.allclose(params.shear, [0.05, 0.0, -0.03])
    assert np.allclose(affine_from_parameters(*params), A)
    # the centre is a fixed point of the rotation/scale part: only the translation moves it
    assert np.allclose(A @ [5.0, 10.0, -3.0, 1.0], [8.0, 8.0, -1.5, 1.0])
    # the same affine described about another centre
    other = parameters_from_affine(A, centre_mm=(0.0, 0.0, 0.0))
    assert np.allclose(affine_from_parameters(*other), A)


def test_parameters_of_a_reflection_and_of_gimbal_lock() -> None:
    mirrored = np.diag([1.0, 1.0, -2.0, 1.0]) @ A
    params = parameters_from_affine(mirrored)
    assert params.scale[2] < 0 and np.allclose(affine_from_parameters(*params), mirrored)
    locked = affine_from_parameters(rotation_radians=(0.4, np.pi / 2, -0.2))
    assert np.allclose(affine_from_parameters(*parameters_from_affine(locked)), locked)


def test_rotation_matches_simpleitk_euler_xyz() -> None:
    # ITK's Euler3DTransform with ComputeZYX on is R = Rz Ry Rx, the same Euler XYZ order
    angles = (0.3, -0.2, 0.5)
    euler = sitk.Euler3DTransform()
    euler.SetComputeZYX(True)
    euler.SetRotation(*angles)
    ours = affine_from_parameters(rotation_radians=angles)
    assert np.allclose(np.asarray(euler.GetMatrix()).reshape(3, 3), ours[:3, :3])


# --- the transform ---------------------------------------------------------------------------


def test_transform_points_match_a_simpleitk_composite() -> None:
    grid = _oblique_grid()
    shape = (20, 18, 12)
    field = _smooth_field(shape)
    transform = Transform(A, field, grid)
    assert transform.grid_shape == shape and not transform.is_affine
    # ITK's composite applies the last transform added first: A(D(x))
    composite = sitk.CompositeTransform([_itk_affine(A), _itk_displacement(field, grid)])
    rng = np.random.default_rng(2)
    index = rng.uniform([1, 1, 1], np.asarray(shape) - 2, size=(50, 3))  # between voxels
    points = index @ grid[:3, :3].T + grid[:3, 3]
    ours = transform.apply(points)
    theirs = np.array([composite.TransformPoint((FLIP[:3, :3] @ p).tolist()) for p in points])
    assert np.allclose(ours, theirs @ FLIP[:3, :3], atol=1e-9)


def test_total_displacement_and_map_grid_agree_with_apply() -> None:
    grid = _oblique_grid()
    shape = (12, 10, 8)
    transform = Transform(A, _smooth_field(shape), grid, grid_shape=shape)
    total = transform.total_displacement(grid, shape, dtype=np.float64)
    centres = grid_points(grid, shape, slice(None)).reshape(3, -1).T
    expected = transform.apply(centres) - centres
    assert np.allclose(total.reshape(3, -1).T, expected, atol=1e-9)
    # on another grid the field is interpolated; map_grid of a slab matches apply there too
    other = _oblique_grid(spacing=(1.7, 1.1, 0.8), origin=(-15.0, 18.0, -5.0), seed=3)
    slab = transform.map_grid(other, (9, 7, 6), slice(2, 5))
    centres = grid_points(other, (9, 7, 6), slice(2, 5)).reshape(3, -1).T
    assert np.allclose(slab.reshape(3, -1).T, transform.apply(centres), atol=1e-9)


def test_displacement_outside_its_grid_takes_the_edge_value() -> None:
    field = np.zeros((3, 4, 4, 4))
    field[0, -1] = 2.0  # the last x slice moves 2 mm along x
    transform = Transform(displacement=field, grid_affine=np.eye(4))
    moved = transform.apply(np.array([[10.0, 1.0, 1.0], [-5.0, 1.0, 1.0], [2.5, 1.0, 1.0]]))
    assert np.allclose(moved[:, 0], [12.0, -5.0, 3.5])


def test_transform_refuses_inconsistent_input() -> None:
    with pytest.raises(ValueError, match="grid_affine"):
        Transform(displacement=np.zeros((3, 2, 2, 2)))
    with pytest.raises(ValueError, match=r"\(3, X, Y, Z\)"):
        Transform(displacement=np.zeros((2, 2, 2)), grid_affine=np.eye(4))
    with pytest.raises(ValueError, match="grid_shape"):
        Transform(displacement=np.zeros((3, 2, 2, 2)), grid_affine=np.eye(4), grid_shape=(2, 2, 3))
    with pytest.raises(ValueError, match="none given"):
        Transform(grid_affine=np.eye(4))
    with pytest.raises(ValueError, match="4x4"):
        Transform(np.eye(3))


def test_slabs_cover_the_grid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transforms, "CHUNK_VOXELS", 100)
    z = transforms.slabs((5, 5, 11))
    assert [(s.start, s.stop) for s in z] == [(0, 4), (4, 8), (8, 11)]
    assert transforms.slabs((50, 50, 3)) == [slice(0, 1), slice(1, 2), slice(2, 3)]


# --- Jacobian --------------------------------------------------------------------------------


def _world(grid: np.ndarray, shape) -> np.ndarray:
    return grid_points(grid, shape, slice(None))


@pytest.mark.parametrize("oblique", [False, True])
def test_jacobian_of_a_linear_field_is_its_determinant(oblique: bool) -> None:
    grid = _oblique_grid() if oblique else np.diag([0.8, 1.5, 2.5, 1.0])
    shape = (9, 8, 7)
    x = _world(grid, shape)
    scale = np.array([1.2, 0.7, 1.5])
    u = (scale - 1.0)[:, None, None, None] * x  # x -> diag(scale) x
    assert np.allclose(jacobian_determinant(u, grid), np.prod(scale), atol=1e-5)
    # any linear map M: x -> M x, i.e. u = (M - I) x, has determinant det(M) everywhere
    matrix = A[:3, :3]
    u = np.tensordot(matrix - np.eye(3), x, axes=1)
    assert np.allclose(jacobian_determinant(u, grid), np.linalg.det(matrix), atol=1e-5)


def test_jacobian_in_slabs_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    grid = _oblique_grid()
    field = _smooth_field((10, 9, 13), amplitude_mm=6.0)
    whole = jacobian_determinant(field, grid)
    monkeypatch.setattr(transforms, "CHUNK_VOXELS", 10 * 9 * 8 * 3)  # slabs of 3 slices
    assert np.allclose(jacobian_determinant(field, grid), whole, atol=1e-6)
    # and the one pass is the textbook formula: world derivatives with np.gradient
    by_index = np.stack([np.stack(np.gradient(c)) for c in field])  # [c, axis]
    jac = np.eye(3)[:, :, None, None, None] + np.einsum(
        "ca...,aw->cw...", by_index, np.linalg.inv(grid[:3, :3])
    )
    expected = np.linalg.det(np.moveaxis(jac, (0, 1), (-2, -1)))
    assert np.allclose(whole, expected, atol=1e-5)


def test_folding_is_detected() -> None:
    grid = np.eye(4)
    shape = (40, 8, 8)
    x = _world(grid, shape)
    smooth = np.zeros((3, *shape))
    smooth[0] = 0.5 * np.sin(x[0] / 6.0)  # derivative at most 0.5/6: no folding
    assert folding_percent(jacobian_determinant(smooth, grid)) == 0.0
    folding = np.zeros((3, *shape))
    r = x[0] - 20.0
    folding[0] = -2.0 * r * np.exp(-(r**2) / (2 * 4.0**2))  # d(x + u)/dx = -1 at x = 20
    jacobian = jacobian_determinant(folding, grid)
    assert jacobian.min() < 0 and abs(float(jacobian[20, 4, 4]) + 1.0) < 0.1  # central differences
    percent = folding_percent(jacobian)
    assert 0.0 < percent < 50.0
    assert percent == pytest.approx(100.0 * np.mean(jacobian <= 0))
