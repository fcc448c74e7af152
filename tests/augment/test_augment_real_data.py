"""Image and label stay aligned through the training path on real data: patches drawn by the
sampler from Hippocampus (3D MRI) and ISBI (2D EM) cases, augmented with every spatial
transform on. The label's one-hot maps ride along as extra image channels, so they are
resampled exactly as the image is; their arg-max must equal the augmented label wherever the
label is uniform around a voxel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medseg.augment import AugmentationSettings, Augmenter, padded_patch_size
from medseg.datasets import open_dataset, read_training_case
from medseg.preprocess import zscore
from medseg.train.sampler import PatchSampler, TrainingCase

INTENSITY = ["noise", "blur", "brightness", "contrast", "low_resolution", "inverted_gamma", "gamma"]


def _spatial_settings() -> AugmentationSettings:
    data = AugmentationSettings().model_dump()
    for name in INTENSITY:  # intensity transforms would change the one-hot channels
        data[name]["probability"] = 0.0
    for name in ("rotation", "scaling", "elastic"):
        data[name]["probability"] = 1.0
    data["elastic"].update(magnitude=[2, 5], spacing=16)
    return AugmentationSettings.model_validate(data)


def _cases_with_label_channels(folder, count: int) -> tuple[list[TrainingCase], list[float]]:
    dataset = open_dataset(folder)
    values = dataset.spec.label_values
    cases, spacing = [], []
    for case in dataset.training[:count]:
        image, label = read_training_case(case, dataset.spec)
        target = np.searchsorted(values, label).astype(np.uint8)
        one_hot = [(target == k).astype(np.float32)[None] for k in range(len(values))]
        channels = np.concatenate([zscore(image.array), *one_hot])
        cases.append(TrainingCase(case.case_id, channels, target))
        spacing = list(image.spacing)
    return cases, spacing


def _uniform_around(label: torch.Tensor, classes: int, radius: int = 1) -> torch.Tensor:
    """Voxels whose (2 * radius + 1)-neighbourhood holds one class only."""
    pool = F.max_pool3d if label.ndim == 4 else F.max_pool2d
    present = torch.stack([(label == k).float() for k in range(classes)], 1)
    counts = pool(present, 2 * radius + 1, 1, radius).sum(1)
    return counts == 1


@pytest.mark.parametrize(
    ("fixture", "count", "patch"),
    [("hippocampus_dir", 6, (40, 56, 40)), ("isbi_dir", 2, (192, 192))],
)
def test_augmented_real_patches_keep_their_labels(request, fixture, count, patch) -> None:
    cases, spacing = _cases_with_label_channels(request.getfixturevalue(fixture), count)
    classes = cases[0].image.shape[0] - 1
    settings = _spatial_settings()
    drawn = padded_patch_size(patch, settings, spacing)
    sampler = PatchSampler(cases, drawn, np.random.default_rng(0))
    augment = Augmenter(settings, dim=len(patch), seed=0, spacing=spacing)
    for _ in range(2):
        batch, target = sampler.sample(4)
        out, out_label = augment(batch, target, output_size=patch)
        from_channels = out[:, 1:].argmax(1)
        inner = _uniform_around(out_label, classes)
        assert torch.equal(from_channels[inner], out_label[inner])
        assert inner.float().mean() > 0.8  # most voxels were judged
        assert (out_label > 0).float().mean() > 0.01  # with foreground among them
        assert not torch.equal(out[:, 1:].argmax(1), target[(slice(None), *_centre(drawn, patch))])


def _centre(size, out) -> list[slice]:
    return [slice((s - o) // 2, (s - o) // 2 + o) for s, o in zip(size, out)]


def _only(name: str) -> AugmentationSettings:
    data = AugmentationSettings().model_dump()
    for other in [*INTENSITY, "rotation", "scaling", "elastic", "mirror"]:
        data[other]["probability"] = 1.0 if other == name else 0.0
    return AugmentationSettings.model_validate(data)


@pytest.mark.parametrize("name", INTENSITY)
def test_each_intensity_transform_keeps_real_patches_in_range(hippocampus_dir, name) -> None:
    """On z-scored real MRI patches, each intensity transform alone (on every sample) leaves
    the values finite, their spread within nnU-Net's ranges (a factor 0.5-2 of the input's
    standard deviation, the mean within one of them) and the label untouched."""
    cases, spacing = _cases_with_label_channels(hippocampus_dir, 4)
    cases = [TrainingCase(c.case_id, c.image[:1], c.target) for c in cases]
    patch = (40, 56, 40)
    sampler = PatchSampler(cases, patch, np.random.default_rng(1))
    batch, target = sampler.sample(4)
    augment = Augmenter(_only(name), dim=3, seed=0, spacing=spacing)
    out, out_label = augment(batch, target, output_size=patch)
    assert torch.isfinite(out).all()
    assert torch.equal(out_label, target)
    assert not torch.equal(out, batch)
    for before, after in zip(batch, out):
        ratio = float(after.std() / before.std())
        assert 0.5 < ratio < 2.0, (name, ratio)
        assert abs(float(after.mean() - before.mean())) < float(before.std())
