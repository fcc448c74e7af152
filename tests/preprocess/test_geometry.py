"""Reorientation, cropping and resampling, each with its inverse."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.preprocess.geometry import (
    anisotropic_axis,
    canonical_orientation,
    crop,
    nonzero_box,
    reorient,
    resample,
    resample_labels,
    resampled_affine,
    resampled_shape,
    uncrop,
    undo_reorient,
)


def _world(affine: np.ndarray, index) -> np.ndarray:
    return affine[:3, :3] @ np.asarray(index, float) + affine[:3, 3]


def test_reorient_keeps_every_voxel_in_place() -> None:
    # LPI-like grid with permuted axes: voxel axis 0 runs along -y, 1 along +z, 2 along -x
    affine = np.array(
        [[0, 0, -2.0, 50], [-0.5, 0, 0, 10], [0, 3.0, 0, -20], [0, 0, 0, 1]], dtype=float
    )
    array = np.random.default_rng(0).normal(size=(2, 4, 5, 6))
    ornt = canonical_orientation(affine, 3)
    out, new_affine = reorient(array, affine, ornt)
    assert out.shape == (2, 6, 4, 5)
    # now the axes run along +x, +y, +z
    assert np.all(np.diag(new_affine[:3, :3]) > 0)
    for index in [(0, 0, 0), (3, 1, 5), (2, 4, 0)]:
        world = _world(affine, index)
        new_index = np.linalg.solve(new_affine[:3, :3], world - new_affine[:3, 3])
        new_index = tuple(int(round(v)) for v in new_index)
        assert np.allclose(out[(slice(None), *new_index)], array[(slice(None), *index)])
    np.testing.assert_array_equal(undo_reorient(out, ornt, array.shape[1:]), array)


def test_2d_images_are_not_reoriented() -> None:
    array = np.arange(12.0).reshape(1, 3, 4)
    ornt = canonical_orientation(np.eye(4), 2)
    out, affine = reorient(array, np.eye(4), ornt)
    assert out is array and np.array_equal(affine, np.eye(4))


def test_crop_and_uncrop() -> None:
    array = np.zeros((1, 10, 10, 4))
    array[0, 2:5, 3:9, 1:3] = 1.0
    box = nonzero_box(array)
    assert box == ((2, 5), (3, 9), (1, 3))
    cropped, affine = crop(array, np.diag([2.0, 2.0, 3.0, 1.0]), box)
    assert cropped.shape == (1, 3, 6, 2)
    assert np.allclose(_world(affine, (0, 0, 0)), [4.0, 6.0, 3.0])
    back = uncrop(cropped, box, (10, 10, 4), fill=np.array([0.0]))
    np.testing.assert_array_equal(back, array)


def test_empty_image_keeps_its_whole_box() -> None:
    assert nonzero_box(np.zeros((1, 3, 4))) == ((0, 3), (0, 4))


def test_resampled_grid_covers_the_same_field_of_view() -> None:
    affine = np.diag([0.5, 0.5, 4.0, 1.0])
    old, new = (40, 40, 10), resampled_shape((40, 40, 10), (0.5, 0.5, 4.0), (1.0, 1.0, 2.0))
    assert new == (20, 20, 20)
    new_affine = resampled_affine(affine, old, new)
    assert np.allclose(np.diag(new_affine)[:3], [1.0, 1.0, 2.0])
    # the outer voxel edges coincide: old edge at index -0.5, new edge at index -0.5
    assert np.allclose(_world(affine, (-0.5, -0.5, -0.5)), _world(new_affine, (-0.5, -0.5, -0.5)))
    assert np.allclose(_world(affine, (39.5, 39.5, 9.5)), _world(new_affine, (19.5, 19.5, 19.5)))


def test_resample_preserves_a_smooth_image_and_its_mean() -> None:
    x = np.linspace(0, 1, 30)
    smooth = np.sin(2 * np.pi * x)[:, None] * np.cos(np.pi * x)[None, :]
    up = resample(smooth[None], (60, 60), order=3)
    down = resample(up, (30, 30), order=3)
    assert np.abs(down[0] - smooth).max() < 0.02


def test_separate_axis_uses_nearest_neighbour() -> None:
    array = np.zeros((1, 4, 4, 3))
    array[0, :, :, 1] = 5.0
    out = resample(array, (8, 8, 6), order=3, separate_axis=2, separate_order=0)
    # along the separate axis values are copied, never blended
    assert set(np.unique(np.round(out[0, 4, 4, :], 6))) <= {0.0, 5.0}


def test_resampled_labels_never_invent_values() -> None:
    labels = np.zeros((12, 12, 6), np.uint8)
    labels[2:6, 2:6, 1:4] = 1
    labels[6:10, 6:10, 2:5] = 3  # value 2 does not occur
    for shape in [(24, 24, 12), (7, 9, 5), (12, 12, 18)]:
        out = resample_labels(labels, shape, values=[0, 1, 3])
        assert out.shape == shape
        assert set(np.unique(out)) <= {0, 1, 3}
        assert {1, 3} <= set(np.unique(out))


@pytest.mark.parametrize(
    ("spacing", "axis"), [((1, 1, 1), None), ((0.7, 0.7, 3.0), 2), ((4.0, 1.0, 1.0), 0)]
)
def test_anisotropic_axis(spacing, axis) -> None:
    assert anisotropic_axis(spacing) == axis
