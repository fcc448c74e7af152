"""Building blocks shared by the networks, written once for 2D and 3D."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

CONV = {2: nn.Conv2d, 3: nn.Conv3d}
TRANSPOSED_CONV = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
INSTANCE_NORM = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}
BATCH_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
MAX_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}


def _norm(kind: str, dim: int, channels: int) -> nn.Module:
    if kind == "instance":
        return INSTANCE_NORM[dim](channels, eps=1e-5, affine=True)
    if kind == "batch":
        return BATCH_NORM[dim](channels)
    raise ValueError(f"unknown norm '{kind}', expected instance or batch")


class ConvNormAct(nn.Module):
    """Convolution, instance normalisation (affine) and LeakyReLU(0.01)."""

    def __init__(
        self,
        dim: int,
        in_channels: int,
        out_channels: int,
        kernel_size: Sequence[int],
        stride: Sequence[int] | int = 1,
    ) -> None:
        super().__init__()
        padding = tuple(k // 2 for k in kernel_size)
        self.conv = CONV[dim](in_channels, out_channels, tuple(kernel_size), stride, padding)
        self.norm = _norm("instance", dim, out_channels)
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class DoubleConv(nn.Sequential):
    """Two `ConvNormAct` layers; the first may downsample with a stride."""

    def __init__(
        self,
        dim: int,
        in_channels: int,
        out_channels: int,
        kernel_size: Sequence[int],
        stride: Sequence[int] | int = 1,
    ) -> None:
        super().__init__(
            ConvNormAct(dim, in_channels, out_channels, kernel_size, stride),
            ConvNormAct(dim, out_channels, out_channels, kernel_size),
        )


class ResidualBlock(nn.Module):
    """ResNet's basic block: two convolutions, each normalised, with a shortcut (a strided 1×1
    convolution and norm where the shape changes) added before the last LeakyReLU.

    ``norm`` is ``"instance"`` (segmentation, as in `ConvNormAct`) or ``"batch"`` (a classifier:
    a class can depend on an image's overall brightness, which instance norm would erase).
    ``kernel_size`` and ``stride`` are per axis or one number for all.

    Examples
    --------
    >>> block = ResidualBlock(3, 4, 8, kernel_size=(3, 3, 1), stride=(2, 2, 1))
    >>> tuple(block(torch.zeros(1, 4, 8, 8, 5)).shape)
    (1, 8, 4, 4, 5)
    """

    def __init__(
        self,
        dim: int,
        in_channels: int,
        out_channels: int,
        kernel_size: Sequence[int] | int = 3,
        stride: Sequence[int] | int = 1,
        norm: str = "instance",
    ) -> None:
        super().__init__()
        kernel = (kernel_size,) * dim if isinstance(kernel_size, int) else tuple(kernel_size)
        strides = (stride,) * dim if isinstance(stride, int) else tuple(stride)
        padding = tuple(k // 2 for k in kernel)
        conv = CONV[dim]
        self.body = nn.Sequential(
            conv(in_channels, out_channels, kernel, strides, padding, bias=False),
            _norm(norm, dim, out_channels),
            nn.LeakyReLU(0.01, inplace=True),
            conv(out_channels, out_channels, kernel, 1, padding, bias=False),
            _norm(norm, dim, out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if any(s != 1 for s in strides) or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                conv(in_channels, out_channels, 1, strides, bias=False),
                _norm(norm, dim, out_channels),
            )
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class ResidualStage(nn.Sequential):
    """``blocks`` `ResidualBlock` modules; the first changes the width and applies
    ``stride``."""

    def __init__(
        self,
        dim: int,
        in_channels: int,
        out_channels: int,
        blocks: int,
        stride: Sequence[int] | int = 1,
        kernel_size: Sequence[int] | int = 3,
        norm: str = "instance",
    ) -> None:
        layers = [ResidualBlock(dim, in_channels, out_channels, kernel_size, stride, norm)]
        layers += [
            ResidualBlock(dim, out_channels, out_channels, kernel_size, 1, norm)
            for _ in range(blocks - 1)
        ]
        super().__init__(*layers)


def pad_to_multiple(x: torch.Tensor, divisor: Sequence[int]) -> tuple[torch.Tensor, list[slice]]:
    """Zero-pad the spatial axes of ``x`` up to multiples of ``divisor``.

    Returns the padded tensor and the slices that crop a same-sized output back.
    """
    spatial = x.shape[2:]
    pads: list[int] = []
    crop = [slice(None), slice(None)]
    for size, d in zip(spatial, divisor):
        extra = (-size) % d
        crop.append(slice(extra // 2, extra // 2 + size))
        pads.append((extra // 2, extra - extra // 2))
    if not any(sum(p) for p in pads):
        return x, crop
    flat = [v for pair in reversed(pads) for v in pair]  # F.pad wants last axis first
    return F.pad(x, flat), crop


def stage_settings(
    n_stages: int,
    dim: int,
    strides: Sequence[Sequence[int]] | None,
    kernel_sizes: Sequence[Sequence[int]] | None,
) -> tuple[list[list[int]], list[list[int]]]:
    """Strides and kernel sizes per stage, defaulting to 2 and 3 on every axis (stage 0: 1)."""
    strides = [list(s) for s in strides] if strides else [[1] * dim] + [[2] * dim] * (n_stages - 1)
    kernels = [list(k) for k in kernel_sizes] if kernel_sizes else [[3] * dim] * n_stages
    if len(strides) != n_stages or len(kernels) != n_stages:
        raise ValueError("features, strides and kernel_sizes need one entry per stage")
    return strides, kernels


def product_of_strides(strides: Sequence[Sequence[int]], dim: int) -> tuple[int, ...]:
    """The total downsampling factor per axis."""
    total = [1] * dim
    for stride in strides:
        total = [t * s for t, s in zip(total, stride)]
    return tuple(total)
