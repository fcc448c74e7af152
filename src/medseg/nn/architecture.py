"""Choosing strides and kernel sizes per stage from the patch size and voxel spacing."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from medseg.nn.fcn import FCN
from medseg.nn.unet import UNet

MODELS = ("unet", "resunet", "fcn")

#: Residual blocks in the first encoder stages of ``resunet``, 6 in every deeper one
#: (nnU-Net's ResEnc U-Net: 1, 3, 4, 6, 6, 6).
RESIDUAL_BLOCKS = (1, 3, 4, 6)


def residual_blocks(n_stages: int) -> list[int]:
    """Residual blocks per encoder stage of a ``resunet`` with ``n_stages`` stages.

    Examples
    --------
    >>> residual_blocks(3), residual_blocks(6)
    ([1, 3, 4], [1, 3, 4, 6, 6, 6])
    """
    return [RESIDUAL_BLOCKS[min(k, len(RESIDUAL_BLOCKS) - 1)] for k in range(n_stages)]


def stage_layout(
    patch_size: Sequence[int],
    spacing: Sequence[float],
    max_stages: int = 6,
    min_feature_size: int = 4,
) -> tuple[list[list[int]], list[list[int]]]:
    """Strides and kernel sizes per stage, following nnU-Net's rules for anisotropy.

    An axis is pooled (stride 2) while its feature map stays at least ``min_feature_size``
    voxels after pooling and its current voxel size is at most twice the finest one; an axis
    more than twice as coarse as the finest gets kernel size 1 until pooling evens it out.

    Examples
    --------
    >>> strides, kernels = stage_layout((64, 64, 16), (0.8, 0.8, 2.5))
    >>> strides[:3]
    [[1, 1, 1], [2, 2, 1], [2, 2, 2]]
    >>> kernels[0]
    [3, 3, 1]
    """
    size = [float(s) for s in patch_size]
    current = list(spacing)
    strides: list[list[int]] = [[1] * len(size)]
    kernels: list[list[int]] = []
    while True:
        finest = min(current)
        kernels.append([3 if c <= 2 * finest else 1 for c in current])
        if len(strides) == max_stages:
            break
        stride = [
            2 if s / 2 >= min_feature_size and c <= 2 * finest else 1 for s, c in zip(size, current)
        ]
        if not any(s == 2 for s in stride):
            break
        strides.append(stride)
        size = [s / st for s, st in zip(size, stride)]
        current = [c * st for c, st in zip(current, stride)]
    return strides, kernels


def build_network(
    model: str,
    in_channels: int,
    num_classes: int,
    dim: int,
    features: Sequence[int],
    strides: Sequence[Sequence[int]],
    kernel_sizes: Sequence[Sequence[int]],
    deep_supervision: bool = False,
) -> nn.Module:
    """Build a network by name: ``unet``, ``resunet`` (the U-Net with a residual encoder,
    `residual_blocks`) or ``fcn``; ``deep_supervision`` applies to the U-Nets only (the FCN
    has no decoder stages to supervise)."""
    if model in ("unet", "resunet"):
        blocks = residual_blocks(len(features)) if model == "resunet" else None
        return UNet(
            in_channels, num_classes, dim, features, strides, kernel_sizes, deep_supervision,
            blocks,
        )  # fmt: skip
    if model == "fcn":
        return FCN(in_channels, num_classes, dim, features, strides, kernel_sizes)
    raise ValueError(f"unknown model '{model}', expected one of {MODELS}")
