"""Random training patches with foreground oversampling."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from medseg.preprocess import CaseGeometry
from medseg.runs.plan import IGNORE_CLASS

_MAX_FOREGROUND_POINTS = 20_000


@dataclass(frozen=True)
class TrainingCase:
    """A normalised image ``(C, *spatial)`` float32, its class-index map ``(*spatial)`` and the
    affine of its grid.

    After the plan's preprocessing, ``geometry`` records how to map a prediction back to the
    original image and ``label_path`` names the original label file, so that validation is
    scored on the case's own grid.
    """

    case_id: str
    image: np.ndarray
    target: np.ndarray
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    geometry: CaseGeometry | None = None
    label_path: Path | None = None


class PatchSampler:
    """Draws batches of patches; at least a third (``foreground_fraction``) are centred on a
    randomly chosen foreground class present in the case.

    Parameters
    ----------
    cases
        Training cases; ``target`` holds class indices ``0..K-1``.
    patch_size
        Patch size per axis of the data; for a 2D network on 3D data, 1 along ``slice_axis``.
    rng
        The run's seeded generator.
    slice_axis
        If given, that axis (of size 1 in the patch) is dropped from the returned batch.
    """

    def __init__(
        self,
        cases: Sequence[TrainingCase],
        patch_size: Sequence[int],
        rng: np.random.Generator,
        foreground_fraction: float = 1 / 3,
        slice_axis: int | None = None,
    ) -> None:
        if not cases:
            raise ValueError("no training cases")
        self.cases = list(cases)
        self.patch_size = [int(p) for p in patch_size]
        self.rng = rng
        self.foreground_fraction = foreground_fraction
        self.slice_axis = slice_axis
        self._foreground = [self._foreground_points(c.target) for c in self.cases]

    def _foreground_points(self, target: np.ndarray) -> dict[int, np.ndarray]:
        points = {}
        for cls in np.unique(target):
            if cls in (0, IGNORE_CLASS):  # background, or voxels nobody annotated
                continue
            where = np.argwhere(target == cls)
            if len(where) > _MAX_FOREGROUND_POINTS:
                where = where[self.rng.choice(len(where), _MAX_FOREGROUND_POINTS, replace=False)]
            points[int(cls)] = where
        return points

    def _corner(self, case_index: int, force_foreground: bool) -> list[int]:
        shape = self.cases[case_index].target.shape
        foreground = self._foreground[case_index]
        if force_foreground and foreground:
            cls = list(foreground)[self.rng.integers(len(foreground))]
            points = foreground[cls]
            centre = points[self.rng.integers(len(points))]
            corner = [int(c) - p // 2 for c, p in zip(centre, self.patch_size)]
        else:
            corner = [
                int(self.rng.integers(0, max(s - p, 0) + 1)) for s, p in zip(shape, self.patch_size)
            ]
        # Keep the patch inside the image where the image is large enough; else centre it.
        return [
            min(max(c, 0), s - p) if s >= p else -((p - s) // 2)
            for c, s, p in zip(corner, shape, self.patch_size)
        ]

    def _crop(self, array: np.ndarray, corner: Sequence[int], fill: float) -> np.ndarray:
        """Crop ``array[..., corner:corner+patch]`` (last axes spatial), padding outside."""
        lead = array.ndim - len(corner)
        out = np.full(array.shape[:lead] + tuple(self.patch_size), fill, dtype=array.dtype)
        src, dst = [slice(None)] * lead, [slice(None)] * lead
        for c, p, s in zip(corner, self.patch_size, array.shape[lead:]):
            lo, hi = max(c, 0), min(c + p, s)
            src.append(slice(lo, hi))
            dst.append(slice(lo - c, hi - c))
        out[tuple(dst)] = array[tuple(src)]
        return out

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch: images ``(B, C, *patch)`` float32 and targets ``(B, *patch)`` int64."""
        n_foreground = math.ceil(batch_size * self.foreground_fraction)
        images, targets = [], []
        for b in range(batch_size):
            index = int(self.rng.integers(len(self.cases)))
            case = self.cases[index]
            corner = self._corner(index, force_foreground=b >= batch_size - n_foreground)
            images.append(self._crop(case.image, corner, 0.0))
            targets.append(self._crop(case.target, corner, 0))
        image = torch.from_numpy(np.stack(images))
        target = torch.from_numpy(np.stack(targets).astype(np.int64))
        if self.slice_axis is not None:
            image = image.squeeze(2 + self.slice_axis)
            target = target.squeeze(1 + self.slice_axis)
        return image, target
