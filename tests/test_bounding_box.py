"""The bounding box of a mask: exact, grown by a margin, clipped to the array, None if empty."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.bounding_box import bounding_box


def _brute_force(mask: np.ndarray, margin: int) -> tuple[slice, ...] | None:
    """The box from the coordinates of every non-zero voxel (the test's own, plain way)."""
    where = np.argwhere(mask)
    if where.size == 0:
        return None
    low = np.maximum(where.min(axis=0) - margin, 0)
    high = np.minimum(where.max(axis=0) + 1 + margin, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high))


@pytest.mark.parametrize("shape", [(7,), (5, 9), (4, 6, 8), (3, 1, 4, 5)])
@pytest.mark.parametrize("margin", [0, 1, 3])
def test_random_masks_match_the_voxel_coordinates(shape: tuple[int, ...], margin: int) -> None:
    rng = np.random.default_rng(len(shape) * 10 + margin)
    for _ in range(20):
        mask = rng.random(shape) < rng.choice([0.0, 0.02, 0.3])
        assert bounding_box(mask, margin) == _brute_force(mask, margin)


def test_a_margin_is_clipped_to_the_array() -> None:
    mask = np.zeros((10, 10), bool)
    mask[0, 9] = mask[4, 6] = True
    assert bounding_box(mask) == (slice(0, 5), slice(6, 10))
    assert bounding_box(mask, margin=2) == (slice(0, 7), slice(4, 10))
    assert bounding_box(mask, margin=50) == (slice(0, 10), slice(0, 10))


def test_integer_maps_box_their_non_zero_voxels() -> None:
    labels = np.zeros((4, 5, 6), np.uint8)
    labels[1, 2, 3] = 2
    labels[2, 4, 5] = 7
    box = bounding_box(labels)
    assert box == (slice(1, 3), slice(2, 5), slice(3, 6))
    assert all(type(s.start) is int and type(s.stop) is int for s in box)
    assert np.count_nonzero(labels[box]) == np.count_nonzero(labels)


def test_empty_masks_have_no_box() -> None:
    assert bounding_box(np.zeros((3, 4), bool)) is None
    assert bounding_box(np.zeros((3, 4), bool), margin=2) is None
    assert bounding_box(np.zeros((0, 4), bool)) is None
