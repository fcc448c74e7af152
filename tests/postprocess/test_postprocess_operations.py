"""Post-processing operations on hand-made label maps: what each keeps, removes and adds,
spacing, the image border, and the two rules (no new label, no label written over another)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medseg.postprocess import (
    closing,
    fill_holes,
    fill_holes_slicewise,
    keep_largest_component,
    keep_largest_foreground,
    opening,
    remove_small_components,
    smooth,
    structuring_element,
)


def test_keep_largest_component_uses_full_connectivity_and_spares_other_labels() -> None:
    labels = np.zeros((10, 10, 6), np.uint8)
    labels[1:4, 1:4, 1:4] = 1  # 27 voxels
    labels[4, 4, 4] = 1  # touches the block at a corner only: same component (26-connected)
    labels[7:9, 7:9, 1:3] = 1  # 8 voxels, separate: removed
    labels[7:9, 1:3, 1:3] = 2  # another label: untouched
    out = keep_largest_component(labels, 1)
    assert out[4, 4, 4] == 1 and out[1, 1, 1] == 1
    assert not out[7:9, 7:9, 1:3].any()
    assert np.count_nonzero(out == 1) == 28
    np.testing.assert_array_equal(out == 2, labels == 2)
    assert labels[7, 7, 1] == 1, "the input must not be modified"


def test_keep_largest_component_2d_uses_eight_neighbours() -> None:
    labels = np.zeros((6, 6), np.int16)
    labels[0, 0] = labels[1, 1] = labels[2, 2] = 3  # a diagonal line: one component of 3
    labels[4:6, 4] = 3  # two voxels
    out = keep_largest_component(labels, 3)
    assert out.dtype == np.int16
    assert out[2, 2] == 3 and not out[4:6, 4].any()


def test_keep_largest_foreground_removes_every_label_outside_the_largest_component() -> None:
    labels = np.zeros((12, 12, 4), np.uint8)
    labels[1:6, 1:4, :] = 1
    labels[1:6, 4:7, :] = 2  # touches label 1: together the largest component
    labels[9:11, 9:11, 1:3] = 2  # a stray piece of label 2
    labels[9:11, 1:3, 1:3] = 3  # a stray label 3
    out = keep_largest_foreground(labels)
    np.testing.assert_array_equal(out[:7], labels[:7])
    assert not out[7:].any()


def test_remove_small_components_counts_millimetres() -> None:
    labels = np.zeros((10, 10, 4), np.uint8)
    labels[1:3, 1:3, 1] = 1  # 4 voxels
    labels[5:9, 5:9, 1:3] = 1  # 32 voxels
    # spacing 1 x 1 x 3 mm: the small piece is 12 mm³
    kept = remove_small_components(labels, 1, 12.0, spacing=(1.0, 1.0, 3.0))
    assert kept[1, 1, 1] == 1, "a component exactly at the threshold stays (strictly smaller goes)"
    removed = remove_small_components(labels, 1, 12.5, spacing=(1.0, 1.0, 3.0))
    assert removed[1, 1, 1] == 0 and np.count_nonzero(removed) == 32
    # in isotropic 1 mm voxels the same piece is 4 mm³: a 5 mm³ threshold removes it
    assert remove_small_components(labels, 1, 5.0, spacing=(1.0, 1.0, 1.0))[1, 1, 1] == 0
    assert remove_small_components(labels, 1, 5.0, spacing=(1.0, 1.0, 3.0))[1, 1, 1] == 1


def test_remove_small_components_leaves_other_labels() -> None:
    labels = np.zeros((8, 8), np.uint8)
    labels[0, 0] = 1
    labels[4, 4] = 2  # as small, but another label
    out = remove_small_components(labels, 1, 3.0, spacing=(1.0, 1.0))
    assert out[0, 0] == 0 and out[4, 4] == 2


def _hollow_cube() -> np.ndarray:
    labels = np.zeros((9, 9, 9), np.uint8)
    labels[1:8, 1:8, 1:8] = 1
    labels[2:4, 2:4, 2:4] = 0  # a closed cavity
    labels[5:7, 5:7, 5:7] = 0  # another, with a voxel of label 2 in it
    labels[6, 6, 6] = 2
    return labels


def test_fill_holes_fills_pockets_that_the_label_alone_encloses() -> None:
    labels = _hollow_cube()
    out = fill_holes(labels, 1)
    assert (out[2:4, 2:4, 2:4] == 1).all()
    np.testing.assert_array_equal(out[5:7, 5:7, 5:7], labels[5:7, 5:7, 5:7])
    # the pocket next to label 2 is label 2's to fill if it encloses it: here it does not
    np.testing.assert_array_equal(fill_holes(labels, 2), labels)
    # a cavity open to the outside is not a hole
    labels[2, 2, 0:2] = 0
    assert (fill_holes(labels, 1)[2:4, 2:4, 2:4] == 0).all()


def test_fill_holes_of_a_label_inside_another() -> None:
    """A tumour (2) inside an organ (1), with a hollow core: the core is the tumour's hole,
    never the organ's, whatever order the two are filled in."""
    labels = np.zeros((11, 11), np.uint8)
    labels[1:10, 1:10] = 1
    labels[3:8, 3:8] = 2
    labels[5, 5] = 0
    assert fill_holes(labels, 1)[5, 5] == 0
    assert fill_holes(fill_holes(labels, 1), 2)[5, 5] == 2
    assert fill_holes(labels, 2)[5, 5] == 2


def test_fill_holes_2d_and_on_a_singleton_axis() -> None:
    ring = np.zeros((7, 7), np.uint8)
    ring[1:6, 1:6] = 1
    ring[2:5, 2:5] = 0
    assert (fill_holes(ring, 1)[1:6, 1:6] == 1).all()
    # the same slice stored as (X, Y, 1): filled as 2D, not left open towards the lone axis
    stacked = ring[:, :, None]
    assert (fill_holes(stacked, 1)[1:6, 1:6, 0] == 1).all()
    assert fill_holes(stacked, 1).shape == (7, 7, 1)


def test_fill_holes_slicewise_goes_across_the_coarsest_axis() -> None:
    labels = np.zeros((8, 8, 8), np.uint8)
    labels[1:7, 1:7, 1:7] = 1
    labels[3:5, 3:5, :] = 0  # a tunnel along axis 2, open at both ends
    assert fill_holes(labels, 1)[3, 3, 4] == 0
    # slices across axis 2 (the coarse one) each see the tunnel as a hole
    across_z = fill_holes_slicewise(labels, 1, spacing=(0.8, 0.8, 3.0))
    assert (across_z[3:5, 3:5, 1:7] == 1).all() and across_z[3, 3, 0] == 0
    # slices across axis 0 see a channel that reaches their border: nothing to fill
    across_x = fill_holes_slicewise(labels, 1, spacing=(3.0, 0.8, 0.8))
    np.testing.assert_array_equal(across_x, labels)


def test_structuring_element_is_flat_along_coarse_axes() -> None:
    assert structuring_element(1, (1.0, 1.0, 1.0)).sum() == 7
    assert structuring_element(1, (1.0, 1.0, 1.9)).sum() == 7  # within twice the finest
    flat = structuring_element(1, (0.8, 0.8, 2.5))
    assert flat.shape == (3, 3, 1) and flat.sum() == 5
    assert structuring_element(2, (1.0, 1.0)).sum() == 13


def test_opening_removes_thin_parts_and_respects_anisotropy() -> None:
    labels = np.zeros((12, 12, 5), np.uint8)
    labels[2:9, 2:9, 1:4] = 1
    labels[9:12, 5, 2] = 1  # a one-voxel-wide spur
    iso = opening(labels, 1, 1, spacing=(1.0, 1.0, 1.0))
    assert not iso[10:12, 5, 2].any()
    assert iso[5, 5, 2] == 1
    # a single slice of label 2: removed in isotropic voxels, kept when slices are 5 mm apart
    # (the element does not reach across slices)
    sheet = np.zeros((9, 9, 3), np.uint8)
    sheet[2:7, 2:7, 1] = 2
    assert not opening(sheet, 2, 1, spacing=(1.0, 1.0, 1.0)).any()
    kept = opening(sheet, 2, 1, spacing=(1.0, 1.0, 5.0))
    assert kept[4, 4, 1] == 2 and np.count_nonzero(kept) == 25 - 4  # the corners go


def test_closing_adds_from_background_only_and_keeps_border_voxels() -> None:
    labels = np.zeros((5, 9), np.uint8)
    labels[:, 0:4] = 1
    labels[:, 5:9] = 1  # a one-voxel gap at column 4; both halves touch the image border
    out = closing(labels, 1, 1, spacing=(1.0, 1.0))
    assert (out == 1).all(), "the gap closes and the border does not erode the label"
    labels[2, 4] = 3
    out = closing(labels, 1, 1, spacing=(1.0, 1.0))
    assert out[2, 4] == 3 and (out[[0, 1, 3, 4], 4] == 1).all()


def test_smooth_removes_spikes_and_fills_pits_without_taking_other_labels() -> None:
    labels = np.zeros((9, 9, 9), np.uint8)
    labels[2:7, 2:7, 2:7] = 1
    labels[1, 4, 4] = 1  # a spike
    labels[4, 4, 6] = 0  # a pit on the surface
    labels[4, 4, 7] = 2
    out = smooth(labels, 1, 1, spacing=(1.0, 1.0, 1.0))
    assert out[1, 4, 4] == 0 and out[4, 4, 6] == 1 and out[4, 4, 7] == 2
    # the pit sits next to another label's voxel: still background is all it takes
    labels[4, 4, 6] = 2
    out = smooth(labels, 1, 1, spacing=(1.0, 1.0, 1.0))
    assert out[4, 4, 6] == 2


def _random_label_map(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Blobs of labels 1-3 with holes, specks and contacts between labels."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)
    labels = np.digitize(noise, np.quantile(noise, [0.55, 0.7, 0.85])).astype(np.uint8)
    labels[rng.random(shape) < 0.02] = 0
    labels[rng.random(shape) < 0.01] = 2
    return labels


OPERATIONS = {
    "keep_largest": lambda a, v, s: keep_largest_component(a, v),
    "remove_small": lambda a, v, s: remove_small_components(a, v, 6.0, s),
    "fill_holes": lambda a, v, s: fill_holes(a, v),
    "fill_holes_slices": lambda a, v, s: fill_holes_slicewise(a, v, s),
    "opening": lambda a, v, s: opening(a, v, 1, s),
    "closing": lambda a, v, s: closing(a, v, 2, s),
    "smooth": lambda a, v, s: smooth(a, v, 2, s),
}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
@pytest.mark.parametrize(
    ("shape", "spacing"), [((40, 36), (1.0, 1.0)), ((24, 20, 10), (0.8, 0.8, 2.5))]
)
def test_no_new_label_and_no_label_written_over_another(
    name: str, shape: tuple[int, ...], spacing: tuple[float, ...]
) -> None:
    rng = np.random.default_rng(7)
    labels = _random_label_map(rng, shape)
    for value in (1, 2, 3):
        out = OPERATIONS[name](labels, value, spacing)
        assert out.shape == labels.shape and out.dtype == labels.dtype
        changed = out != labels
        assert changed.any() or name in ("keep_largest", "fill_holes", "fill_holes_slices")
        # a voxel changes only from `value` to background or from background to `value`
        removed = changed & (labels == value)
        added = changed & (labels == 0)
        assert (out[removed] == 0).all()
        assert (out[added] == value).all()
        assert not (changed & ~removed & ~added).any(), f"{name} touched another label"


def test_keep_largest_foreground_only_clears_voxels() -> None:
    labels = _random_label_map(np.random.default_rng(3), (30, 30, 8))
    out = keep_largest_foreground(labels)
    changed = out != labels
    assert changed.any() and (out[changed] == 0).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_operations_inside_the_bounding_box_equal_whole_image_morphology(seed: int) -> None:
    """The operations work on a crop around the label; the result must be what the plain
    scipy operation on the whole image gives."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((40, 40, 12), np.uint8)
    labels[10:30, 8:28, 2:10] = _random_label_map(rng, (20, 20, 8))
    labels[0:6, 0:5, 0:3] = 1  # against the image border
    mask = labels == 1
    spacing = (1.0, 1.0, 1.2)
    element = structuring_element(1, spacing)

    def padded(morphology, pad: int = 3) -> np.ndarray:  # the border repeats the edge
        inner = tuple(slice(pad, -pad) for _ in range(3))
        return morphology(np.pad(mask, pad, mode="edge"), element)[inner]

    expected = labels.copy()
    expected[mask & ~padded(ndimage.binary_opening)] = 0
    np.testing.assert_array_equal(opening(labels, 1, 1, spacing), expected)

    expected = labels.copy()
    expected[padded(ndimage.binary_closing) & (labels == 0)] = 1
    np.testing.assert_array_equal(closing(labels, 1, 1, spacing), expected)

    majority = ndimage.median_filter(mask.astype(np.uint8), footprint=element, mode="nearest")
    expected = labels.copy()
    expected[mask & (majority == 0)] = 0
    expected[(majority == 1) & (labels == 0)] = 1
    np.testing.assert_array_equal(smooth(labels, 1, 1, spacing), expected)

    expected = labels.copy()
    expected[ndimage.binary_fill_holes(mask) & (labels == 0)] = 1
    np.testing.assert_array_equal(fill_holes(labels, 1), expected)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="integers"):
        fill_holes(np.zeros((4, 4), np.float32), 1)
    with pytest.raises(ValueError, match="spacing"):
        opening(np.zeros((4, 4), np.uint8), 1, 1, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="2D or 3D"):
        keep_largest_component(np.zeros(5, np.uint8), 1)
