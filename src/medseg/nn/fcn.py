"""The classic fully convolutional network (FCN-8s style) for 2D and 3D, as a baseline."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medseg.nn.blocks import (
    CONV,
    MAX_POOL,
    TRANSPOSED_CONV,
    DoubleConv,
    pad_to_multiple,
    product_of_strides,
    stage_settings,
)


class FCN(nn.Module):
    """Convolution/pooling encoder, transposed-convolution upsampling with skip fusion.

    As in FCN-8s (Long et al. 2015): class scores are predicted from the deepest stage,
    upsampled by a transposed convolution and added to the scores of the stage before, twice,
    then upsampled to the input resolution in one transposed convolution. There is no
    decoder with skip concatenation: that is what separates it from the U-Net.

    Parameters
    ----------
    in_channels, num_classes
        Input channels and output classes (background included).
    dim
        2 or 3 spatial dimensions.
    features
        Channels per stage; at least 4 stages (three pooled stages are fused).
    strides
        Per stage, the pooling per axis before it (the first is all ones).
    kernel_sizes
        Per stage, the kernel size per axis.

    Examples
    --------
    >>> net = FCN(1, 2, dim=2, features=(8, 16, 32, 64))
    >>> net(torch.zeros(1, 1, 33, 41)).shape
    torch.Size([1, 2, 33, 41])
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        dim: int = 3,
        features: Sequence[int] = (16, 32, 64, 128, 256),
        strides: Sequence[Sequence[int]] | None = None,
        kernel_sizes: Sequence[Sequence[int]] | None = None,
    ) -> None:
        super().__init__()
        n = len(features)
        if n < 4:
            raise ValueError("FCN needs at least 4 stages")
        strides, kernel_sizes = stage_settings(n, dim, strides, kernel_sizes)
        self.divisor = product_of_strides(strides, dim)
        self.stages = nn.ModuleList()
        channels = in_channels
        for stage, (f, s, k) in enumerate(zip(features, strides, kernel_sizes)):
            pool = MAX_POOL[dim](tuple(s), tuple(s)) if stage > 0 else nn.Identity()
            self.stages.append(nn.Sequential(pool, DoubleConv(dim, channels, f, k)))
            channels = f
        conv = CONV[dim]
        self.score = nn.ModuleList(conv(features[i], num_classes, 1) for i in (-3, -2, -1))
        up = TRANSPOSED_CONV[dim]
        self.up_deep = up(num_classes, num_classes, tuple(strides[-1]), tuple(strides[-1]))
        self.up_mid = up(num_classes, num_classes, tuple(strides[-2]), tuple(strides[-2]))
        final = product_of_strides(strides[: n - 2], dim)
        self.up_final = up(num_classes, num_classes, final, final)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, crop = pad_to_multiple(x, self.divisor)
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        shallow, mid, deep = (s(o) for s, o in zip(self.score, outputs[-3:]))
        fused = self.up_mid(self.up_deep(deep) + mid) + shallow
        return self.up_final(fused)[tuple(crop)]
