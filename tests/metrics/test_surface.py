"""Surface voxels and surface distances, pinned by hand-computed cases and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.spatial.distance import cdist

from medseg.metrics import surface_distances, surface_voxels


def _cube(corner: tuple[int, ...], size: int = 4, grid: int = 8) -> np.ndarray:
    mask = np.zeros((grid,) * len(corner), bool)
    mask[tuple(slice(c, c + size) for c in corner)] = True
    return mask


def test_surface_of_a_cube_is_its_outer_layer() -> None:
    cube = _cube((1, 1, 1), size=3, grid=5)
    surface = surface_voxels(cube)
    assert surface.sum() == 26  # 27 voxels, the centre is interior
    assert not surface[2, 2, 2]
    assert not surface[~cube].any()


def test_surface_uses_face_connectivity() -> None:
    # The corner voxel of an L: all four face neighbours are foreground, only a diagonal
    # neighbour is background, so it is interior (not on the surface).
    mask = np.zeros((6, 6), bool)
    mask[1:5, 1:3] = True
    mask[3:5, 1:5] = True
    assert mask[3, 2] and not mask[2, 3]
    assert not surface_voxels(mask)[3, 2]
    assert surface_voxels(mask)[3, 3]  # background face neighbour above


def test_image_border_counts_as_background() -> None:
    full = np.ones((4, 4, 4), bool)
    surface = surface_voxels(full)
    assert surface.sum() == 64 - 8  # everything but the 2x2x2 core
    assert not surface[1:3, 1:3, 1:3].any()


def test_surface_equals_mask_xor_its_erosion() -> None:
    rng = np.random.default_rng(3)
    mask = ndimage.gaussian_filter(rng.standard_normal((20, 18, 9)), 1.5) > 0.1
    expected = mask ^ ndimage.binary_erosion(mask, border_value=0)
    np.testing.assert_array_equal(surface_voxels(mask), expected)


def test_cube_shifted_by_one_voxel_by_hand() -> None:
    # 4x4x4 cubes (56 surface voxels each) one voxel apart along x, spacing 2 mm along x.
    # From A to B: 16 voxels of A's x=0 face are 2 mm from B's x=1 face; the 4 inner voxels
    # of A's x=3 face are inside B, 1 mm (one voxel along y or z) from B's side walls; the
    # 36 others lie on B's surface (0 mm). B to A mirrors it.
    a, b = _cube((1, 1, 1)), _cube((2, 1, 1))
    d = surface_distances(a, b, spacing=(2.0, 1.0, 1.0))
    expected = np.sort(np.r_[np.zeros(36), np.ones(4), np.full(16, 2.0)])
    np.testing.assert_array_equal(np.sort(d.pred_to_ref), expected)
    np.testing.assert_array_equal(np.sort(d.ref_to_pred), expected)
    assert d.hausdorff == 2.0
    assert d.hausdorff_percentile(95) == 2.0  # position 52.25 of 56 sorted values: both 2
    assert d.hausdorff_percentile(50) == 0.0
    assert d.average_symmetric == pytest.approx((16 * 2 + 4 * 1) * 2 / 112)
    assert d.surface_dice(1.0) == pytest.approx(80 / 112)
    assert d.surface_dice(0.5) == pytest.approx(72 / 112)
    assert d.surface_dice(2.0) == 1.0


def test_shift_along_the_coarse_axis_costs_its_spacing() -> None:
    a, b = _cube((1, 1, 1)), _cube((1, 1, 2))
    d = surface_distances(a, b, spacing=(0.7, 0.7, 2.5))
    assert d.hausdorff == pytest.approx(2.5)
    # inner voxels of the far face: nearest side wall is 0.7 mm away in-plane
    assert sorted(set(np.round(d.pred_to_ref, 6))) == [0.0, 0.7, 2.5]


def test_far_apart_points_give_the_euclidean_distance() -> None:
    a = np.zeros((10, 10, 3), bool)
    b = a.copy()
    a[0, 0, 0] = True
    b[3, 4, 2] = True
    d = surface_distances(a, b, spacing=(1.0, 1.0, 6.0))
    assert d.hausdorff == pytest.approx(math.sqrt(9 + 16 + 144))
    assert d.average_symmetric == pytest.approx(13.0)


@pytest.mark.parametrize("seed", range(6))
def test_distances_equal_brute_force(seed: int) -> None:
    # Near points are found by the local offset search, far ones by the k-d tree: both
    # must give the exact nearest distance, here checked against all pairs.
    rng = np.random.default_rng(seed)
    ndim = 2 + seed % 2
    shape = tuple(int(n) for n in rng.integers(12, 30, ndim))
    spacing = tuple(float(s) for s in rng.uniform(0.3, 3.0, ndim))

    def blob() -> np.ndarray:
        field = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)
        return field > np.quantile(field, rng.uniform(0.6, 0.95))

    a, b = blob(), blob()
    d = surface_distances(a, b, spacing)
    pa = np.argwhere(surface_voxels(a)) * spacing
    pb = np.argwhere(surface_voxels(b)) * spacing
    np.testing.assert_allclose(d.pred_to_ref, cdist(pb, pa).min(axis=1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(d.ref_to_pred, cdist(pa, pb).min(axis=1), rtol=0, atol=1e-12)


def test_empty_masks() -> None:
    empty, cube = np.zeros((8, 8, 8), bool), _cube((2, 2, 2))
    both = surface_distances(empty, empty)
    assert math.isnan(both.hausdorff) and math.isnan(both.hausdorff_percentile(95))
    assert math.isnan(both.average_symmetric) and math.isnan(both.surface_dice(1.0))
    for ref, pred in ((empty, cube), (cube, empty)):
        one = surface_distances(ref, pred)
        assert math.isnan(one.hausdorff)
        assert math.isnan(one.hausdorff_percentile(95))
        assert math.isnan(one.average_symmetric)
        assert one.surface_dice(1.0) == 0.0


def test_identical_masks_are_at_distance_zero() -> None:
    cube = _cube((2, 2, 2))
    d = surface_distances(cube, cube, spacing=(0.5, 0.5, 3.0))
    assert d.hausdorff == 0.0 and d.average_symmetric == 0.0 and d.surface_dice(0.0) == 1.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        surface_distances(np.zeros((3, 3), bool), np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match="spacing"):
        surface_distances(np.zeros((3, 3), bool), np.zeros((3, 3), bool), spacing=(1.0,))
