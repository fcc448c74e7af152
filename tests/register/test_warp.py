"""Warping images and label maps, checked against SimpleITK's Resample on oblique grids."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from medseg.io import Image
from medseg.register import jacobian, transforms
from medseg.register.affine_algebra import affine_from_parameters, invert_affine
from medseg.register.transforms import Transform
from medseg.register.warp import warp_image, warp_labels

FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])
FIXED_SHAPE = (36, 32, 20)
MOVING_SHAPE = (40, 36, 24)


def _oblique_grid(spacing, origin, seed) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    affine = np.eye(4)
    affine[:3, :3] = q * np.asarray(spacing)
    affine[:3, 3] = origin
    return affine


def _centred(affine: np.ndarray, shape) -> np.ndarray:
    """The same grid moved so that its centre voxel sits at the world origin."""
    out = affine.copy()
    out[:3, 3] -= affine[:3, :3] @ ((np.asarray(shape) - 1) / 2.0)
    return out


FIXED_AFFINE = _centred(_oblique_grid((1.1, 0.9, 1.8), (0, 0, 0), seed=4), FIXED_SHAPE)
MOVING_AFFINE = _centred(_oblique_grid((1.0, 1.2, 1.5), (0, 0, 0), seed=5), MOVING_SHAPE)
A = affine_from_parameters(
    rotation_radians=(0.08, -0.12, 0.15),
    translation_mm=(2.0, -1.5, 1.0),
    scale=(1.05, 0.97, 1.02),
)


def _to_sitk(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    vector = array.ndim == 4
    data = array.transpose(2, 1, 0, 3) if vector else array.transpose(2, 1, 0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(data), isVector=vector)
    geometry = FLIP @ affine
    spacing = np.linalg.norm(geometry[:3, :3], axis=0)
    image.SetSpacing(spacing.tolist())
    image.SetDirection((geometry[:3, :3] / spacing).ravel().tolist())
    image.SetOrigin(geometry[:3, 3].tolist())
    return image


def _from_sitk(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image).transpose(2, 1, 0)


def _itk_affine(affine_ras: np.ndarray) -> sitk.AffineTransform:
    lps = FLIP @ affine_ras @ FLIP
    return sitk.AffineTransform(lps[:3, :3].ravel().tolist(), lps[:3, 3].tolist())


def _itk_displacement(field_ras: np.ndarray, grid_affine: np.ndarray) -> sitk.Transform:
    lps = field_ras * np.array([-1.0, -1.0, 1.0])[:, None, None, None]
    image = _to_sitk(np.moveaxis(lps, 0, -1), grid_affine)
    return sitk.DisplacementFieldTransform(sitk.Cast(image, sitk.sitkVectorFloat64))


def _smooth_field(shape, amplitude_mm=2.5, seed=1) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(size=(3, *shape))
    field = np.stack([ndimage.gaussian_filter(c, 3.0) for c in noise])
    return amplitude_mm * field / np.abs(field).max()


def _moving_image(seed=0) -> Image:
    data = np.random.default_rng(seed).normal(size=(1, *MOVING_SHAPE)).astype(np.float32)
    return Image(data, MOVING_AFFINE)


FIXED = Image(np.zeros((1, *FIXED_SHAPE), np.float32), FIXED_AFFINE)


def _inside(transform: Transform, margin: float = 1.0) -> np.ndarray:
    """Fixed voxels whose T(x) is at least ``margin`` voxels inside the moving grid."""
    index = transform.map_grid(FIXED_AFFINE, FIXED_SHAPE)
    index = np.tensordot(invert_affine(MOVING_AFFINE)[:3, :3], index, axes=1)
    index += invert_affine(MOVING_AFFINE)[:3, 3, None, None, None]
    upper = np.asarray(MOVING_SHAPE)[:, None, None, None] - 1 - margin
    return np.all((index >= margin) & (index <= upper), axis=0)


def _sitk_resample(moving: Image, transform: sitk.Transform, method=sitk.sitkLinear):
    out = sitk.Resample(
        _to_sitk(moving.array[0], moving.affine),
        _to_sitk(FIXED.array[0], FIXED_AFFINE),
        transform,
        method,
        0.0,
        sitk.sitkFloat64,
    )
    return _from_sitk(out)


# --- images ----------------------------------------------------------------------------------


def test_affine_warp_equals_simpleitk() -> None:
    moving = _moving_image()
    transform = Transform(A)
    ours = warp_image(moving, FIXED, transform)
    assert ours.array.shape == (1, *FIXED_SHAPE) and ours.array.dtype == np.float32
    assert np.array_equal(ours.affine, FIXED_AFFINE)
    theirs = _sitk_resample(moving, _itk_affine(A))
    inside = _inside(transform)
    assert inside.mean() > 0.4
    assert np.allclose(ours.array[0][inside], theirs[inside], atol=1e-5)
    # far outside the moving image both give 0
    assert np.all(ours.array[0][~_inside(transform, margin=-1.0)] == 0)


def test_displacement_warp_equals_simpleitk() -> None:
    moving = _moving_image(seed=1)
    field = _smooth_field(FIXED_SHAPE)
    alone = Transform(displacement=field, grid_affine=FIXED_AFFINE)
    ours = warp_image(moving, FIXED, alone)
    theirs = _sitk_resample(moving, _itk_displacement(field, FIXED_AFFINE))
    inside = _inside(alone)
    assert inside.mean() > 0.4
    assert np.allclose(ours.array[0][inside], theirs[inside], atol=1e-5)
    # with the affine: ITK's composite applies the displacement first, then A
    both = Transform(A, field, FIXED_AFFINE)
    composite = sitk.CompositeTransform([_itk_affine(A), _itk_displacement(field, FIXED_AFFINE)])
    ours = warp_image(moving, FIXED, both)
    theirs = _sitk_resample(moving, composite)
    inside = _inside(both)
    assert np.allclose(ours.array[0][inside], theirs[inside], atol=1e-5)


def test_field_on_another_grid_is_interpolated() -> None:
    # the field lives on a coarser grid covering the fixed one: u is interpolated at fixed voxels
    coarse_shape = (24, 22, 16)
    coarse = _centred(_oblique_grid((2.0, 1.8, 2.6), (0, 0, 0), seed=6), coarse_shape)
    field = _smooth_field(coarse_shape, seed=2)
    transform = Transform(A, field, coarse)
    moving = _moving_image(seed=2)
    ours = warp_image(moving, FIXED, transform)
    composite = sitk.CompositeTransform([_itk_affine(A), _itk_displacement(field, coarse)])
    theirs = _sitk_resample(moving, composite)
    # only where the fixed voxel lies inside the field's grid (ITK uses u = 0 beyond it)
    index = np.tensordot(invert_affine(coarse)[:3, :3], _grid(FIXED_AFFINE), axes=1)
    index += invert_affine(coarse)[:3, 3, None, None, None]
    in_field = np.all((index >= 0) & (index <= np.reshape(coarse_shape, (3, 1, 1, 1)) - 1), 0)
    compare = _inside(transform) & in_field
    assert compare.mean() > 0.2
    assert np.allclose(ours.array[0][compare], theirs[compare], atol=1e-5)


def _grid(affine: np.ndarray) -> np.ndarray:
    return transforms.grid_points(affine, FIXED_SHAPE, slice(None))


def test_affine_path_equals_displacement_path_and_slabs_change_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moving = Image(np.stack([_moving_image(3).array[0], _moving_image(4).array[0]]), MOVING_AFFINE)
    zero = Transform(A, np.zeros((3, *FIXED_SHAPE)), FIXED_AFFINE)
    for order in (0, 1, 3):
        affine_only = warp_image(moving, FIXED, Transform(A), order=order).array
        whole = warp_image(moving, FIXED, zero, order=order).array
        assert np.allclose(affine_only, whole, atol=1e-5)
        monkeypatch.setattr(transforms, "CHUNK_VOXELS", FIXED_SHAPE[0] * FIXED_SHAPE[1] * 3)
        in_slabs = warp_image(moving, FIXED, zero, order=order).array
        monkeypatch.undo()
        assert np.array_equal(in_slabs, whole)
    # cubic in slabs is exactly scipy's one-call cubic (same spline coefficients)
    index = np.tensordot(invert_affine(MOVING_AFFINE) @ A, _homogeneous(_grid(FIXED_AFFINE)), 1)
    reference = ndimage.map_coordinates(moving.array[1], index[:3], order=3, mode="constant")
    assert np.allclose(whole[1], reference, atol=1e-5)


def _homogeneous(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points, np.ones((1, *points.shape[1:]))])


def test_output_types_and_refusals() -> None:
    moving = Image(np.arange(2 * 3 * 4, dtype=np.int16).reshape(1, 2, 3, 4), np.eye(4))
    assert warp_image(moving, moving, Transform(), order=0).array.dtype == np.int16
    assert warp_image(moving, moving, Transform()).array.dtype == np.float32
    assert np.array_equal(warp_image(moving, moving, Transform(), order=0).array, moving.array)
    as_double = Image(moving.array.astype(np.float64), np.eye(4))
    assert warp_image(as_double, moving, Transform(), order=3).array.dtype == np.float64
    flat = Image(np.zeros((1, 4, 4), np.float32), np.eye(4))
    with pytest.raises(ValueError, match="3D"):
        warp_image(flat, moving, Transform())
    with pytest.raises(ValueError, match="order"):
        warp_image(moving, moving, Transform(), order=7)


def test_memory_stays_bounded_in_slabs(monkeypatch: pytest.MonkeyPatch) -> None:
    shape = (64, 64, 64)
    grid = np.diag([1.5, 1.5, 1.5, 1.0])
    moving = Image(np.zeros((1, *shape), np.float32), grid)
    transform = Transform(A, np.zeros((3, *shape)), grid)
    monkeypatch.setattr(transforms, "CHUNK_VOXELS", 64 * 64 * 4)
    output_bytes = moving.array.nbytes
    for run in (
        lambda: warp_image(moving, moving, transform),
        lambda: warp_labels(moving, moving, transform, "linear"),
        lambda: transform.total_displacement(grid, shape),
        lambda: jacobian.jacobian_determinant(transform.displacement, grid),
    ):
        tracemalloc.start()
        run()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # one float64 coordinate array for the whole grid would alone be 6x the output
        assert peak < 3.5 * output_bytes + 4e6


# --- labels ----------------------------------------------------------------------------------


def _ball(radius_vox: float = 9.0) -> Image:
    centre = (np.asarray(MOVING_SHAPE) - 1) / 2.0
    distance = np.linalg.norm(np.indices(MOVING_SHAPE) - centre[:, None, None, None], axis=0)
    return Image((distance <= radius_vox).astype(np.uint8)[None] * 3, MOVING_AFFINE)


@pytest.mark.parametrize("method", ["nearest", "linear"])
def test_a_big_ball_keeps_its_label_volume_and_place(method: str) -> None:
    ball = _ball()
    transform = Transform(A)
    warped = warp_labels(ball, FIXED, transform, method)
    assert warped.array.dtype == np.uint8
    assert set(np.unique(warped.array)) == {0, 3}
    voxel_ml = abs(np.linalg.det(FIXED_AFFINE[:3, :3]))
    volume = np.count_nonzero(warped.array) * voxel_ml
    # the fixed-world ball is the moving one pulled back through A: volume / det(A)
    expected = np.count_nonzero(ball.array) * abs(np.linalg.det(MOVING_AFFINE[:3, :3]))
    assert volume == pytest.approx(expected / np.linalg.det(A[:3, :3]), rel=0.05)
    centre_index = np.argwhere(warped.array[0]).mean(axis=0)
    centre_world = FIXED_AFFINE[:3, :3] @ centre_index + FIXED_AFFINE[:3, 3]
    moving_centre = MOVING_AFFINE @ np.append((np.asarray(MOVING_SHAPE) - 1) / 2.0, 1.0)
    assert np.allclose(A @ np.append(centre_world, 1.0), moving_centre, atol=0.5)


@pytest.mark.parametrize("method", ["nearest", "linear"])
def test_labels_are_never_invented(method: str) -> None:
    rng = np.random.default_rng(7)
    coarse = rng.choice(np.array([2, 7, 300, 41], dtype=np.int32), size=(10, 9, 6))
    labels = np.kron(coarse, np.ones((4, 4, 4), np.int32))[:, :36, :24][None]
    labels[0, :5] = 0
    image = Image(labels, MOVING_AFFINE)
    transform = Transform(A, _smooth_field(FIXED_SHAPE, amplitude_mm=4.0), FIXED_AFFINE)
    warped = warp_labels(image, FIXED, transform, method)
    assert warped.array.dtype == np.uint16
    assert set(np.unique(warped.array)) <= {0, 2, 7, 41, 300}
    # a label map without 0 gets 0 only from outside: beyond the half voxel around the moving
    # grid (nearest), or where a corner of the interpolation cell lies outside it (linear)
    no_background = Image(labels + 1, MOVING_AFFINE)
    warped = warp_labels(no_background, FIXED, transform, method)
    inside = _inside(transform, margin=-0.49 if method == "nearest" else 0.0)
    assert 0 not in np.unique(warped.array[0][inside])
    assert 0 in np.unique(warped.array[0][~inside])


def test_nearest_labels_equal_simpleitk() -> None:
    labels = np.random.default_rng(8).integers(0, 6, size=MOVING_SHAPE).astype(np.uint8)
    image = Image(labels[None], MOVING_AFFINE)
    field = _smooth_field(FIXED_SHAPE)
    transform = Transform(A, field, FIXED_AFFINE)
    ours = warp_labels(image, FIXED, transform, "nearest").array[0]
    composite = sitk.CompositeTransform([_itk_affine(A), _itk_displacement(field, FIXED_AFFINE)])
    theirs = _sitk_resample(image, composite, sitk.sitkNearestNeighbor)
    inside = _inside(transform, margin=0.0)
    assert np.array_equal(ours[inside], theirs[inside])


def test_linear_labels_equal_interpolated_one_hot_argmax() -> None:
    labels = np.random.default_rng(9).choice([0, 1, 4, 9], size=MOVING_SHAPE).astype(np.uint8)
    labels = ndimage.median_filter(labels, size=3)  # some structure, some thin bits
    image = Image(labels[None], MOVING_AFFINE)
    transform = Transform(A, _smooth_field(FIXED_SHAPE), FIXED_AFFINE)
    ours = warp_labels(image, FIXED, transform, "linear").array[0]
    # reference: one-hot masks, outside = background, trilinear, argmax (smaller label on ties)
    index = np.tensordot(invert_affine(MOVING_AFFINE)[:3], _homogeneous(_map(transform)), 1)
    padded = np.pad(labels, 1)  # a ring of background; beyond it the ring's value repeats
    values = np.unique(padded)
    scores = np.stack(
        [
            ndimage.map_coordinates((padded == v).astype(float), index + 1, order=1, mode="nearest")
            for v in values
        ]
    )
    reference = values[np.argmax(scores, axis=0)]
    assert np.mean(ours == reference) == 1.0
    nearest = warp_labels(image, FIXED, transform, "nearest").array[0]
    assert 0.5 < np.mean(nearest == ours) < 1.0  # different methods, mostly the same answer


def _map(transform: Transform) -> np.ndarray:
    return transform.map_grid(FIXED_AFFINE, FIXED_SHAPE)


def test_label_refusals() -> None:
    grid = Image(np.zeros((1, 2, 2, 2)), np.eye(4))
    with pytest.raises(ValueError, match="whole numbers"):
        warp_labels(Image(np.full((1, 2, 2, 2), 0.5), np.eye(4)), grid, Transform())
    with pytest.raises(ValueError, match="0..65535"):
        warp_labels(Image(np.full((1, 2, 2, 2), -1), np.eye(4)), grid, Transform())
    with pytest.raises(ValueError, match="method"):
        warp_labels(grid, grid, Transform(), "cubic")  # type: ignore[arg-type]
    as_float = warp_labels(Image(np.full((1, 2, 2, 2), 2.0), np.eye(4)), grid, Transform())
    assert as_float.array.dtype == np.uint8 and np.all(as_float.array == 2)
