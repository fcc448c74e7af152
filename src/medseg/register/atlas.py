"""Atlas-based segmentation: register several labelled atlases to an image and fuse their
warped labels — segmentation without training."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from medseg.io import Image
from medseg.register.register import Method, register_images

Fusion = Literal["majority", "weighted"]


@dataclass
class AtlasResult:
    """The fused label map on the image's grid and each atlas's registration metrics."""

    labels: Image
    metrics: list[dict[str, object]]


def local_correlation(fixed: np.ndarray, warped: np.ndarray, window: int = 9) -> np.ndarray:
    """Local normalised cross-correlation per voxel, in [-1, 1] (box window)."""
    f = torch.from_numpy(np.asarray(fixed, np.float32))[None, None]
    m = torch.from_numpy(np.asarray(warped, np.float32))[None, None]

    def mean(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool3d(x, window, stride=1, padding=window // 2, count_include_pad=False)

    mf, mm = mean(f), mean(m)
    cov = mean(f * m) - mf * mm
    var = (mean(f * f) - mf * mf).clamp_min(0) * (mean(m * m) - mm * mm).clamp_min(0)
    return (cov / torch.sqrt(var + 1e-8))[0, 0].numpy()


def fuse_labels(
    candidates: Sequence[np.ndarray], weights: Sequence[np.ndarray | float] | None = None
) -> np.ndarray:
    """Per voxel, the label with the largest (weighted) vote; ties go to the smaller label.

    Examples
    --------
    >>> a, b, c = np.array([1, 0, 2]), np.array([1, 2, 2]), np.array([0, 2, 1])
    >>> fuse_labels([a, b, c]).tolist()
    [1, 2, 2]
    """
    values = np.unique(np.concatenate([np.unique(c) for c in candidates]))
    weights = weights if weights is not None else [1.0] * len(candidates)
    best = np.zeros(candidates[0].shape, values.dtype)
    best_score = np.full(candidates[0].shape, -np.inf)
    for value in values:  # ascending: a tie keeps the smaller label
        score = sum(np.asarray(w) * (c == value) for c, w in zip(candidates, weights))
        better = score > best_score
        best[better], best_score[better] = value, np.broadcast_to(score, best.shape)[better]
    return best


def atlas_segment(
    image: Image,
    atlases: Sequence[tuple[Image, Image]],
    method: Method = "deformable",
    fusion: Fusion = "majority",
    metric: str | None = None,
    device: torch.device | None = None,
) -> AtlasResult:
    """Register every (atlas image, atlas labels) pair to ``image`` and fuse the warped labels:
    ``majority`` vote, or ``weighted`` by each atlas's local similarity to the image after
    registration (local NCC, clipped at 0), which favours the atlases that match best where
    they match best."""
    if not atlases:
        raise ValueError("give at least one atlas")
    warped_labels, weights, metrics = [], [], []
    for atlas_image, atlas_labels in atlases:
        result = register_images(
            image, atlas_image, method, metric, moving_labels=atlas_labels, device=device
        )
        assert result.warped_labels is not None
        warped_labels.append(result.warped_labels.array[0])
        metrics.append(result.metrics)
        if fusion == "weighted":
            similarity = local_correlation(image.array[0], result.warped.array[0])
            weights.append(np.clip(similarity, 0, None) ** 2 + 1e-3)
    fused = fuse_labels(warped_labels, weights if fusion == "weighted" else None)
    dtype = np.uint8 if fused.max(initial=0) < 256 else np.uint16
    return AtlasResult(image.with_array(fused.astype(dtype)[None]), metrics)
