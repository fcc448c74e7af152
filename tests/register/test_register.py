"""Registration on the real MNI template: a known affine is recovered, a known smooth
deformation is undone, multi-modal pairs align with mutual information."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medseg.io import Image
from medseg.register import Transform, warp_image, warp_labels
from medseg.register.affine_algebra import affine_from_parameters
from medseg.register.register import (
    RegistrationError,
    _similarity,
    check_inputs,
    register_images,
)


def _known_affine(fixed: Image) -> np.ndarray:
    centre = fixed.affine[:3, :3] @ (np.array(fixed.spatial_shape) / 2) + fixed.affine[:3, 3]
    return affine_from_parameters(
        rotation_radians=np.radians([6.0, -4.0, 5.0]),
        translation_mm=np.array([6.0, -4.0, 3.0]),
        scale=np.array([1.04, 0.97, 1.02]),
        centre_mm=centre,
    )


def _moved(fixed: Image, truth: np.ndarray) -> Image:
    """A moving image such that moving(truth(x)) = fixed(x): fixed warped by the inverse."""
    return warp_image(fixed, fixed, Transform(np.linalg.inv(truth)))


def _dice(a: np.ndarray, b: np.ndarray, value: int) -> float:
    return 2 * np.sum((a == value) & (b == value)) / (np.sum(a == value) + np.sum(b == value))


@pytest.mark.slow
def test_known_affine_is_recovered(mni_2mm) -> None:
    fixed, _ = mni_2mm
    truth = _known_affine(fixed)
    result = register_images(fixed, _moved(fixed, truth), method="affine")
    found = result.transform.affine
    assert np.abs(found[:3, :3] - truth[:3, :3]).max() < 0.01
    # where the brain is, the two maps agree to a fraction of a voxel
    points = np.array([[0.0, -20.0, 10.0], [40.0, 10.0, 0.0], [-50.0, -60.0, 20.0]])
    mapped = points @ found[:3, :3].T + found[:3, 3]
    expected = points @ truth[:3, :3].T + truth[:3, 3]
    assert np.abs(mapped - expected).max() < 0.5
    assert result.metrics["similarity_after"] > result.metrics["similarity_before"]


@pytest.mark.slow
def test_rigid_keeps_rotation_and_translation_only(mni_2mm) -> None:
    fixed, _ = mni_2mm
    result = register_images(fixed, _moved(fixed, _known_affine(fixed)), method="rigid")
    linear = result.transform.affine[:3, :3]
    np.testing.assert_allclose(linear @ linear.T, np.eye(3), atol=1e-6)


@pytest.mark.slow
def test_multi_modal_pair_with_mutual_information(mni_2mm) -> None:
    fixed, _ = mni_2mm
    truth = _known_affine(fixed)
    moving = _moved(fixed, truth)
    data = moving.array[0]
    scaled = data / max(float(data.max()), 1e-6)
    remapped = moving.with_array((np.sin(2.5 * scaled) * 1000)[None].astype(np.float32))
    result = register_images(fixed, remapped, method="affine", metric="mi")
    assert np.abs(result.transform.affine[:3, :3] - truth[:3, :3]).max() < 0.02
    assert np.abs(result.transform.affine[:3, 3] - truth[:3, 3]).max() < 2.0


@pytest.mark.slow
def test_known_smooth_deformation_is_undone(mni_2mm) -> None:
    fixed, labels = mni_2mm
    shape = fixed.spatial_shape
    rng = np.random.default_rng(0)
    field = np.stack([ndimage.gaussian_filter(rng.standard_normal(shape), 6) for _ in range(3)])
    field *= 8.0 / np.abs(field).max()  # up to 8 mm
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"))
    coords = index + field / 2.0  # 2 mm voxels
    moving = Image(ndimage.map_coordinates(fixed.array[0], coords, order=1)[None], fixed.affine)
    moved_labels = ndimage.map_coordinates(labels.array[0], coords, order=0).astype(np.uint8)
    moving_labels = Image(moved_labels[None], fixed.affine)
    before = [_dice(labels.array[0], moved_labels, v) for v in (1, 2)]
    result = register_images(
        fixed, moving, "deformable", moving_labels=moving_labels, fixed_labels=labels
    )
    assert result.warped_labels is not None
    after = [_dice(labels.array[0], result.warped_labels.array[0], v) for v in (1, 2)]
    # the issue asks for 0.9; the 2 mm level takes it to 0.95/0.94 (0.92/0.91 without it)
    assert min(before) < 0.86 and min(after) > 0.93
    assert result.metrics["folding_percent"] == 0.0
    assert result.metrics["labels_after"]["1"]["dice"] == pytest.approx(after[0])
    assert result.jacobian is not None and result.jacobian.min() > 0


def test_bad_inputs_are_refused() -> None:
    affine = np.eye(4)
    good = Image(np.random.default_rng(0).random((1, 16, 16, 16)).astype(np.float32), affine)
    flat = Image(np.zeros((1, 16, 16, 16), np.float32), affine)
    with pytest.raises(RegistrationError, match="2D image"):
        check_inputs(good, Image(np.ones((1, 16, 16), np.float32), affine))
    with pytest.raises(RegistrationError, match="moving: is empty"):
        check_inputs(good, flat)
    nan = good.with_array(np.where(good.array > 0.5, np.nan, good.array).astype(np.float32))
    with pytest.raises(RegistrationError, match="NaN"):
        check_inputs(nan, good)
    shifted = Image(np.zeros((1, 16, 16, 16), np.uint8), np.diag([2.0, 2.0, 2.0, 1.0]))
    with pytest.raises(RegistrationError, match="labels.nii.gz: label map's grid"):
        check_inputs(good, good, labels={"labels.nii.gz": (shifted, good)})
    with pytest.raises(RegistrationError, match="unknown similarity"):
        register_images(good, good, metric="cosine")


def test_label_warp_keeps_values() -> None:
    labels = np.zeros((1, 12, 12, 12), np.uint8)
    labels[0, 3:9, 3:9, 3:9] = 4
    image = Image(labels, np.eye(4))
    shift = np.eye(4)
    shift[:3, 3] = [1.5, 0.0, 0.0]
    out = warp_labels(image, image, Transform(shift), "nearest")
    assert set(np.unique(out.array)) <= {0, 4}


def test_lncc_in_metrics_stays_within_its_range_on_raw_intensities() -> None:
    # float32 running sums over a 1 mm brain-sized image with raw intensities in the
    # thousands once gave LNCC values near 2 (flat regions' variances lost to rounding)
    rng = np.random.default_rng(0)
    data = np.full((190, 230, 190), 3000.0, np.float32)
    data[40:150, 50:180, 40:150] = 5000.0 + 200.0 * rng.random((110, 130, 110))
    image = Image(data[None], np.eye(4))
    shifted = image.with_array(np.roll(data, 2, axis=0)[None])
    for other in (image, shifted):
        assert 0.0 <= _similarity("lncc", image, other) <= 1.0
    assert _similarity("lncc", image, shifted) < _similarity("lncc", image, image)
