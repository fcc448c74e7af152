"""What registration training learns from: the network's grid, the fold's cases resampled onto
it, the pairs drawn for each step and the fixed pairs every epoch is validated on."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medseg.datasets import (
    DatasetFolder,
    open_dataset,
    read_case_image,
    read_label,
    train_val_split,
)
from medseg.errors import ConfigError
from medseg.io import Image, read_image
from medseg.nn import REGISTRATION_FEATURES
from medseg.progress import make_progress
from medseg.register.learned import centred_grid, image_centre, network_input
from medseg.register.transforms import Transform
from medseg.register.warp import warp_labels

VALIDATION_PAIRS = 16
#: The network's grid is at most this many voxels; coarser spacing beyond it.
MAX_GRID_VOXELS = 96**3
#: Grid sizes are multiples of the U-Net's total stride on the half-resolution pair.
GRID_MULTIPLE = 2 ** len(REGISTRATION_FEATURES)


@dataclass
class CaseStack:
    """Cases resampled onto the network's grid, each centred on its own image."""

    ids: list[str]
    images: torch.Tensor  # (N, 1, X, Y, Z) float32, robustly scaled
    labels: torch.Tensor | None  # (N, 1, X, Y, Z) integer labels, or None

    def labels_at(self, index: np.ndarray, device: torch.device) -> torch.Tensor | None:
        """The labels of the cases at ``index`` on ``device`` (None without labels)."""
        return None if self.labels is None else self.labels[index].to(device)


@dataclass
class PairData:
    """The stacks training draws pairs from and the validation pairs, on one grid."""

    fixed: CaseStack  # the training cases, or the atlas
    moving: CaseStack
    val_fixed: CaseStack  # the validation cases, or the atlas
    val_moving: CaseStack
    val_pairs: list[tuple[int, int]]
    values: list[int]  # foreground labels scored and used by the Dice term; [] without labels
    atlas: bool
    spacing: tuple[float, float, float]  # the grid's voxel size (mm)
    shape: tuple[int, int, int]

    def draw_pairs(self, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Random (fixed, moving) indices: two different cases, or the atlas and a case."""
        n_fixed, n_moving = len(self.fixed.ids), len(self.moving.ids)
        fixed = np.zeros(count, int) if self.atlas else rng.integers(0, n_fixed, count)
        moving = rng.integers(0, n_moving, count)
        if not self.atlas and n_moving > 1:  # never a case with itself
            same = moving == fixed
            moving[same] = (moving[same] + rng.integers(1, n_moving, same.sum())) % n_moving
        return fixed, moving


def plan_grid(images: list[Image]) -> tuple[tuple[float, float, float], tuple[int, int, int]]:
    """The network's grid: the median voxel size along each world axis, and a shape (a
    multiple of the U-Net's stride) covering the largest image, coarsened to at most
    `MAX_GRID_VOXELS` voxels."""
    spacings = np.array([np.linalg.norm(im.affine[:3, :3], axis=1) for im in images])
    spacing = np.median(spacings, axis=0)
    extents = []
    for image in images:
        corners = np.array(np.meshgrid(*[[0, n - 1] for n in image.spatial_shape])).reshape(3, -1)
        world = image.affine[:3, :3] @ corners
        extents.append(world.max(axis=1) - world.min(axis=1))
    extent = np.max(extents, axis=0) + spacing
    scale = max(1.0, (np.prod(extent / spacing) / MAX_GRID_VOXELS) ** (1 / 3))
    while True:
        shape = [
            GRID_MULTIPLE * math.ceil(e / (s * scale) / GRID_MULTIPLE)
            for e, s in zip(extent, spacing)
        ]
        if np.prod(shape) <= MAX_GRID_VOXELS:
            break
        scale *= 1.05
    return tuple(float(s * scale) for s in spacing), tuple(int(n) for n in shape)  # type: ignore[return-value]


def stack_cases(
    items: list[tuple[str, Image, np.ndarray | None]],
    spacing: tuple[float, ...],
    shape: tuple[int, ...],
) -> CaseStack:
    """Resample images (and labels) onto grids of ``spacing`` and ``shape`` centred on each."""
    images, labels = [], []
    for _, image, label in items:
        grid = centred_grid(image_centre(image), spacing, shape)
        images.append(network_input(image, grid, shape, Transform()))
        if label is not None:
            source = Image(label[None], image.affine)
            target = Image(np.zeros((1, *shape), np.uint8), grid)
            labels.append(warp_labels(source, target, Transform(), "nearest").array[0])
    stacked_labels = None
    if labels and len(labels) == len(items):
        stacked_labels = torch.from_numpy(np.stack(labels).astype(np.int32))[:, None]
    return CaseStack(
        [case_id for case_id, _, _ in items],
        torch.from_numpy(np.stack(images))[:, None],
        stacked_labels,
    )


def _read_cases(
    dataset: DatasetFolder, ids: list[str], quiet: bool
) -> list[tuple[str, Image, np.ndarray | None]]:
    items = []
    with make_progress(quiet) as progress:
        task = progress.add_task("reading cases", total=len(ids))
        for case_id in ids:
            case = dataset.case(case_id)
            image = read_case_image(case)
            label = None
            if case.label_path is not None:
                label = read_label(case.label_path, image, dataset.spec.label_values)
            items.append((case_id, Image(image.array[:1], image.affine), label))
            progress.advance(task)
    return items


def prepare_pairs(
    dataset_dir: str | Path,
    fold: int,
    atlas: str | Path | None,
    atlas_labels: str | Path | None,
    quiet: bool,
) -> PairData:
    """Read the fold's training and validation cases (and the atlas), plan the grid on the
    training images and resample everything onto it."""
    dataset = open_dataset(dataset_dir)
    train_ids, val_ids = train_val_split([c.case_id for c in dataset.training], fold)
    if atlas is None and len(val_ids) < 2:
        raise ConfigError(f"{dataset_dir}: too few cases for validation pairs in fold {fold}")
    train_items = _read_cases(dataset, train_ids, quiet)
    val_items = _read_cases(dataset, val_ids, quiet)
    spacing, shape = plan_grid([image for _, image, _ in train_items])
    moving = stack_cases(train_items, spacing, shape)
    val_moving = stack_cases(val_items, spacing, shape)
    if atlas is None:
        fixed, val_fixed = moving, val_moving
        n = len(val_ids)
        val_pairs = [(k, (k + 1) % n) for k in range(min(VALIDATION_PAIRS, n))]
    else:
        atlas_image = read_image(atlas)
        atlas_label = None
        if atlas_labels is not None:
            atlas_label = read_label(Path(atlas_labels), atlas_image, dataset.spec.label_values)
        single = Image(atlas_image.array[:1], atlas_image.affine)
        fixed = val_fixed = stack_cases([("atlas", single, atlas_label)], spacing, shape)
        val_pairs = [(0, j) for j in range(min(VALIDATION_PAIRS, len(val_ids)))]
    values = []
    if fixed.labels is not None and moving.labels is not None:
        values = sorted(int(v) for v in dataset.spec.label_values if int(v) != 0)
    return PairData(
        fixed, moving, val_fixed, val_moving, val_pairs, values, atlas is not None, spacing, shape
    )
