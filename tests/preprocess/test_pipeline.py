"""A case through preprocessing and its prediction back: the same world coordinates."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.spatial.transform import Rotation

from medseg.errors import ConfigError
from medseg.io import Image, read_image
from medseg.preprocess import (
    ChannelNormalization,
    Preprocessing,
    preprocess_image,
    preprocess_label,
    restore_classes,
    restore_labels,
    restore_probabilities,
    was_resampled,
)

ZSCORE = [ChannelNormalization(scheme="zscore_nonzero")]


def _world_points(shape, affine) -> np.ndarray:
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    return index @ affine[:3, :3].T + affine[:3, 3]


def _centroid(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    index = np.argwhere(mask)
    affine = np.asarray(affine)
    return (index @ affine[:3, : mask.ndim].T + affine[:3, 3]).mean(0)


def _ball_image(affine: np.ndarray, shape, centre_offset=(3.0, -2.0, 1.0), radius=10.0):
    world = _world_points(shape, affine)
    centre = world.reshape(-1, 3).mean(0) + centre_offset
    label = (np.linalg.norm(world - centre, axis=-1) < radius).astype(np.uint8)
    rng = np.random.default_rng(0)
    image = np.where(label > 0, 100.0, 20.0) + rng.normal(0, 1, shape)
    return Image(image[None].astype(np.float32), affine), label, centre


def _round_trip(image: Image, label: np.ndarray, target_spacing) -> np.ndarray:
    """Preprocess, take the label on the network grid as the 'prediction', restore."""
    prep = Preprocessing(target_spacing=list(target_spacing), normalization=ZSCORE)
    array, geometry = preprocess_image(image, prep)
    on_grid = preprocess_label(label, geometry, prep, [0, 1])
    assert array.shape[1:] == on_grid.shape == tuple(geometry.shape)
    # the ball sits at the same place in the world on the network's grid
    assert np.allclose(
        _centroid(on_grid, geometry.affine), _centroid(label, image.affine), atol=0.3
    )
    probabilities = np.stack([on_grid == 0, on_grid == 1]).astype(np.float32)
    restored = restore_probabilities(probabilities, geometry)
    assert restored.shape == (2, *label.shape)
    return restored.argmax(0)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def test_oblique_anisotropic_non_ras_nifti_grid() -> None:
    rotation = Rotation.from_euler("xyz", [20, -10, 35], degrees=True).as_matrix()
    permute = np.array([[0, 0, -1], [-1, 0, 0], [0, 1, 0]], float)  # axes: -y, +z, -x
    affine = np.eye(4)
    affine[:3, :3] = rotation @ permute @ np.diag([0.7, 0.9, 3.0])
    affine[:3, 3] = [10.0, -20.0, 5.0]
    image, label, _ = _ball_image(affine, (60, 50, 24))
    image.array[0, :5] = 0  # a zero border that cropping removes
    back = _round_trip(image, label, (1.0, 1.0, 1.0))
    assert _dice(back == 1, label == 1) > 0.95
    assert np.allclose(_centroid(back == 1, affine), _centroid(label == 1, affine), atol=0.3)


def test_2d_image_round_trip() -> None:
    image2d = np.zeros((1, 64, 48), np.float32)
    label = np.zeros((64, 48), np.uint8)
    label[20:40, 10:30] = 1
    image2d[0] = 10 + 50 * label
    back = _round_trip(Image(image2d, np.diag([0.5, 0.8, 1.0, 1.0])), label, (1.0, 1.0))
    assert _dice(back == 1, label == 1) > 0.95


def test_dicom_series_round_trip(dicom_study_dir) -> None:
    # A real DICOM series (0.69 mm in-plane, 6.5 mm slices, LPS): a ball placed in its world
    # comes back on the same voxels after resampling to 1 x 1 x 3 mm and back.
    series = next(p for p in dicom_study_dir.iterdir() if "T1post" in p.name)
    image = read_image(series)
    world = _world_points(image.spatial_shape, image.affine)
    centre = world.reshape(-1, 3).mean(0)
    label = (np.linalg.norm(world - centre, axis=-1) < 25).astype(np.uint8)
    back = _round_trip(image, label, (1.0, 1.0, 3.0))
    assert back.shape == image.spatial_shape
    assert _dice(back == 1, label == 1) > 0.9
    assert np.allclose(_centroid(back == 1, image.affine), centre, atol=1.0)


def test_channel_count_must_match_the_plan() -> None:
    prep = Preprocessing(target_spacing=[1.0, 1.0], normalization=ZSCORE * 2)
    with pytest.raises(ValueError, match="channels"):
        preprocess_image(Image(np.zeros((1, 4, 4), np.float32), np.eye(4)), prep)


def test_filters_run_in_the_pipeline() -> None:
    image, label, _ = _ball_image(np.diag([1.0, 1.0, 1.0, 1.0]), (24, 24, 16))
    plain = Preprocessing(target_spacing=[1, 1, 1], normalization=ZSCORE)
    smooth = plain.model_copy(update={"denoise_sigma_mm": 1.0, "equalization": "clahe"})
    a, _ = preprocess_image(image, plain)
    b, _ = preprocess_image(image, smooth)
    assert a.shape == b.shape and not np.allclose(a, b)
    assert np.isfinite(b).all()


def test_a_case_far_from_the_plans_spacing_or_too_large_is_refused_before_resampling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = Image(np.ones((1, 8, 8, 8), np.float32), np.diag([40.0, 40.0, 40.0, 1.0]))
    plan = Preprocessing(target_spacing=[1.0, 1.0, 1.0], normalization=ZSCORE)
    with pytest.raises(ConfigError, match=r"coarse.nii.gz: spacing \[40.0, 40.0, 40.0\] mm is 40"):
        preprocess_image(image, plan, "coarse.nii.gz")
    near = Image(np.ones((1, 8, 8, 8), np.float32), np.diag([4.0, 4.0, 4.0, 1.0]))
    assert preprocess_image(near, plan)[0].shape == (1, 32, 32, 32)
    monkeypatch.setenv("MEDSEG_MAX_VOXELS", "1000")
    with pytest.raises(
        ConfigError, match="gives 3.28e\\+04 voxels, more than the limit of 1e\\+03"
    ):
        preprocess_image(near, plan, "near.nii.gz")
    with pytest.raises(ValidationError, match="greater than 0"):
        Preprocessing(target_spacing=[0.0, 1.0, 1.0], normalization=ZSCORE)


def test_restoring_classes_one_at_a_time_equals_the_argmax_of_all() -> None:
    """`restore_classes` (two image-sized channels in memory) gives exactly the argmax of
    `restore_probabilities` (K of them), ties included, on an oblique, cropped grid."""
    rotation = Rotation.from_euler("xyz", [10, 25, -15], degrees=True).as_matrix()
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.8, 0.8, 2.5])
    image, _, _ = _ball_image(affine, (40, 36, 14))
    image.array[0, :, :4] = 0  # cropped away
    prep = Preprocessing(target_spacing=[1.0, 1.0, 1.5], normalization=ZSCORE)
    array, geometry = preprocess_image(image, prep)
    rng = np.random.default_rng(3)
    probabilities = rng.dirichlet(np.ones(5), size=array.shape[1:]).astype(np.float32)
    probabilities = np.moveaxis(probabilities, -1, 0)
    probabilities[2, :4] = probabilities[1, :4]  # exact ties: the first class wins
    expected = restore_probabilities(probabilities, geometry).argmax(0)
    assert np.array_equal(restore_classes(probabilities, geometry), expected)


def test_labels_of_a_grid_not_resampled_go_back_by_crop_and_orientation_alone() -> None:
    """On an oblique, cropped grid at the plan's spacing, `restore_labels` of the network
    grid's classes equals the argmax of the restored probabilities; a resampled grid is
    refused (its labels would need interpolation)."""
    rotation = Rotation.from_euler("xyz", [10, 25, -15], degrees=True).as_matrix()
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-0.8, 0.8, 2.5])
    image, _, _ = _ball_image(affine, (40, 36, 14))
    image.array[0, :, :4] = 0  # cropped away
    prep = Preprocessing(target_spacing=[0.8, 0.8, 2.5], normalization=ZSCORE)
    array, geometry = preprocess_image(image, prep)
    assert not was_resampled(geometry) and geometry.cropped_shape != geometry.original_shape
    rng = np.random.default_rng(4)
    probabilities = np.moveaxis(rng.dirichlet(np.ones(4), size=array.shape[1:]), -1, 0)
    expected = restore_probabilities(probabilities.astype(np.float32), geometry).argmax(0)
    restored = restore_labels(probabilities.argmax(0).astype(np.uint8), geometry, 0)
    assert restored.dtype == np.uint8 and np.array_equal(restored, expected)
    resampled = geometry.model_copy(update={"shape": [n + 1 for n in geometry.shape]})
    with pytest.raises(ValueError, match="resampled"):
        restore_labels(probabilities.argmax(0), resampled, 0)
