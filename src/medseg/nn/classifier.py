"""A CNN classifier for 2D and 3D images: an encoder, global pooling, dropout, a linear head.

The encoder is residual (`ResidualClassifier`) or a trained U-Net's (`EncoderClassifier` with
`medseg.nn.unet.unet_encoder`, for ``--init-from`` a segmentation run). Its stages are in
``encoder`` (Grad-CAM and feature-map views hook into them by name: ``encoder.0`` …
``encoder.{n-1}``, the last by default).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medseg.nn.blocks import ResidualStage


class EncoderClassifier(nn.Module):
    """``encoder`` (stages applied in turn) → global average pooling → dropout → linear head.

    Parameters
    ----------
    dim
        2 or 3.
    encoder
        The stages, a `nn.Sequential` or `nn.ModuleList`; the last gives ``width`` channels.
    width, num_classes
        The encoder's output channels and the classes (2 for a binary task: softmax over two
        logits).
    dropout
        Dropout probability before the head.

    Examples
    --------
    >>> from medseg.nn.unet import unet_encoder
    >>> net = EncoderClassifier(2, unet_encoder(2, 1, (8, 16)), 16, 3)
    >>> tuple(net(torch.rand(4, 1, 28, 28)).shape)
    (4, 3)
    """

    def __init__(
        self, dim: int, encoder: nn.Module, width: int, num_classes: int, dropout: float = 0.3
    ) -> None:
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim}")
        self.dim = dim
        self.encoder = encoder
        self.pool = nn.AdaptiveAvgPool3d(1) if dim == 3 else nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.encoder:
            x = stage(x)
        return self.head(self.dropout(self.pool(x).flatten(1)))


class ResidualClassifier(EncoderClassifier):
    """An `EncoderClassifier` with a residual encoder of `ResidualStage` modules.

    Parameters
    ----------
    dim
        2 or 3.
    in_channels, num_classes
        Input channels and classes.
    features
        Width of each stage; stage 0 keeps the input size, each later one halves it.
    blocks
        Residual blocks per stage.
    dropout
        Dropout probability before the head.

    Examples
    --------
    >>> net = ResidualClassifier(2, 1, 2, features=(8, 16, 32))
    >>> tuple(net(torch.rand(4, 1, 28, 28)).shape)
    (4, 2)
    """

    def __init__(
        self,
        dim: int,
        in_channels: int,
        num_classes: int,
        features: Sequence[int] = (32, 64, 128, 256),
        blocks: int = 2,
        dropout: float = 0.3,
    ) -> None:
        widths = [in_channels, *features]
        encoder = nn.Sequential(
            *(
                ResidualStage(
                    dim, widths[k], widths[k + 1], blocks, 1 if k == 0 else 2, norm="batch"
                )
                for k in range(len(features))
            )
        )
        super().__init__(dim, encoder, features[-1], num_classes, dropout)
