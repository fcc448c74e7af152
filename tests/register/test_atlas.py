"""Atlas-based segmentation: several deformed, labelled copies of the MNI template
segment the template itself better than any one of them does alone, before registration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medseg.io import Image
from medseg.register.atlas import atlas_segment, fuse_labels


def _dice(a: np.ndarray, b: np.ndarray, value: int) -> float:
    return 2 * np.sum((a == value) & (b == value)) / (np.sum(a == value) + np.sum(b == value))


def test_fusion_votes_and_weights() -> None:
    a, b, c = np.array([1, 1, 0]), np.array([2, 1, 0]), np.array([2, 0, 0])
    assert fuse_labels([a, b, c]).tolist() == [2, 1, 0]
    # a heavy weight on the first candidate wins its voxels
    assert fuse_labels([a, b, c], [np.array([5.0, 1, 1]), 1.0, 1.0]).tolist() == [1, 1, 0]


@pytest.mark.slow
def test_atlases_segment_the_template(mni_2mm) -> None:
    # majority vote here; the weighted vote's arithmetic is pinned above (one run of three
    # deformable registrations costs most of a minute on two cores)
    image2mm, labels2mm = mni_2mm
    # 4 mm keeps three deformable registrations to a few seconds each
    image = Image(
        ndimage.zoom(image2mm.array[0], 0.5, order=1)[None],
        image2mm.affine @ np.diag([2.0, 2.0, 2.0, 1.0]),
    )
    truth = ndimage.zoom(labels2mm.array[0], 0.5, order=0)
    rng = np.random.default_rng(1)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in image.spatial_shape], indexing="ij"))
    atlases, before = [], []
    for _ in range(3):
        field = np.stack(
            [ndimage.gaussian_filter(rng.standard_normal(image.spatial_shape), 2) for _ in range(3)]
        )
        field *= 1.0 / field.std()  # about one 4 mm voxel, smooth
        warped = ndimage.map_coordinates(image.array[0], index + field, order=1)
        warped_labels = ndimage.map_coordinates(truth, index + field, order=0).astype(np.uint8)
        atlases.append((image.with_array(warped[None]), image.with_array(warped_labels[None])))
        before.append(np.mean([_dice(truth, warped_labels, v) for v in (1, 2)]))
    result = atlas_segment(image, atlases, fusion="majority")
    fused = result.labels.array[0]
    assert result.labels.spatial_shape == image.spatial_shape
    assert set(np.unique(fused)) <= {0, 1, 2}
    after = np.mean([_dice(truth, fused, v) for v in (1, 2)])
    assert after > max(before) and after > np.mean(before) + 0.05, (before, after)
    assert len(result.metrics) == 3
