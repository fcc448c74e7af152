"""U-Net for 2D and 3D: encoder-decoder with skip concatenation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medseg.nn.blocks import (
    CONV,
    TRANSPOSED_CONV,
    ConvNormAct,
    DoubleConv,
    ResidualStage,
    pad_to_multiple,
    product_of_strides,
    stage_settings,
)


class UNet(nn.Module):
    """A U-Net with one stage per entry of ``features``.

    Each encoder stage is two conv-instance-norm-LeakyReLU layers, the first strided to
    downsample (stage 0 keeps full resolution); the decoder upsamples with transposed
    convolutions, concatenates the skip and applies two more layers. Strides and kernel sizes
    are per stage and per axis, so anisotropic data can pool the fine axes first. Inputs of any
    size are accepted: they are zero-padded to a multiple of the total stride and the output
    is cropped back.

    Parameters
    ----------
    in_channels, num_classes
        Input channels and output classes (background included).
    dim
        2 or 3 spatial dimensions.
    features
        Channels per stage, e.g. ``(16, 32, 64, 128)``.
    strides
        Per stage (``len(features)`` entries), the downsampling per axis; the first is all ones.
        Default: 2 on every axis after stage 0.
    kernel_sizes
        Per stage, the kernel size per axis. Default: 3 everywhere.
    deep_supervision
        In training mode, also return logits from the coarser decoder stages (nnU-Net's deep
        supervision): a list, full resolution first, then each coarser decoder output except
        the coarsest (which nnU-Net weights with zero). In eval mode the output is always the
        full-resolution tensor, so inference is the same with or without it.
    encoder_blocks
        Per stage, a number of residual blocks (`ResidualBlock`): a residual encoder, with one
        convolution per decoder stage instead of two (nnU-Net's residual-encoder U-Net).
        Default: the plain two-convolution stages.

    Examples
    --------
    >>> net = UNet(1, 3, dim=2, features=(8, 16, 32))
    >>> net(torch.zeros(2, 1, 37, 50)).shape
    torch.Size([2, 3, 37, 50])
    >>> net = UNet(1, 3, dim=2, features=(8, 16, 32, 64), deep_supervision=True)
    >>> [tuple(o.shape) for o in net(torch.zeros(2, 1, 32, 32))]
    [(2, 3, 32, 32), (2, 3, 16, 16)]
    >>> net = UNet(1, 3, dim=2, features=(8, 16, 32), encoder_blocks=(1, 2, 2))
    >>> net(torch.zeros(2, 1, 37, 50)).shape
    torch.Size([2, 3, 37, 50])
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        dim: int = 3,
        features: Sequence[int] = (16, 32, 64, 128, 256),
        strides: Sequence[Sequence[int]] | None = None,
        kernel_sizes: Sequence[Sequence[int]] | None = None,
        deep_supervision: bool = False,
        encoder_blocks: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        n = len(features)
        strides, kernel_sizes = stage_settings(n, dim, strides, kernel_sizes)
        self.dim = dim
        self.divisor = product_of_strides(strides, dim)
        self.encoder = unet_encoder(
            dim, in_channels, features, strides, kernel_sizes, encoder_blocks
        )
        decoder_block = DoubleConv if encoder_blocks is None else ConvNormAct
        self.upsample = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for stage in range(n - 1, 0, -1):
            stride = tuple(strides[stage])
            self.upsample.append(
                TRANSPOSED_CONV[dim](features[stage], features[stage - 1], stride, stride)
            )
            self.decoder.append(
                decoder_block(
                    dim, 2 * features[stage - 1], features[stage - 1], kernel_sizes[stage - 1]
                )
            )
        self.head = CONV[dim](features[0], num_classes, 1)
        self.deep_supervision = deep_supervision
        # one 1x1 head per decoder output between the coarsest and the full resolution
        coarse = [features[stage - 1] for stage in range(n - 1, 0, -1)][1:-1]
        self.aux_heads = nn.ModuleList(
            [CONV[dim](f, num_classes, 1) for f in coarse] if deep_supervision else []
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        x, crop = pad_to_multiple(x, self.divisor)
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        decoded = []
        for up, block in zip(self.upsample, self.decoder):
            x = block(torch.cat([up(x), skips.pop()], dim=1))
            decoded.append(x)
        output = self.head(x)[tuple(crop)]
        if not (self.training and self.aux_heads):
            return output
        # coarser outputs, finest first; training patches are multiples of the total stride,
        # so they need no crop
        coarse = decoded[1:-1][::-1]
        return [output] + [head(d) for head, d in zip(reversed(self.aux_heads), coarse)]


def unet_encoder(
    dim: int,
    in_channels: int,
    features: Sequence[int],
    strides: Sequence[Sequence[int]] | None = None,
    kernel_sizes: Sequence[Sequence[int]] | None = None,
    blocks: Sequence[int] | None = None,
) -> nn.ModuleList:
    """The U-Net's encoder alone: one stage per entry of ``features`` (module names ``0`` …
    ``n-1``, as under ``UNet.encoder``), so a classifier can reuse a trained segmentation
    network's encoder weights. A stage is a `DoubleConv`, or with ``blocks`` a `ResidualStage`
    of ``blocks[k]`` instance-normalised residual blocks, the first applying the stride.

    Examples
    --------
    >>> [type(stage).__name__ for stage in unet_encoder(2, 1, (8, 16))]
    ['DoubleConv', 'DoubleConv']
    >>> [len(stage) for stage in unet_encoder(2, 1, (8, 16), blocks=(1, 3))]
    [1, 3]
    """
    strides, kernel_sizes = stage_settings(len(features), dim, strides, kernel_sizes)
    if blocks is not None and len(blocks) != len(features):
        raise ValueError("encoder_blocks needs one entry per stage")
    encoder = nn.ModuleList()
    channels = in_channels
    for k, (f, s, kernel) in enumerate(zip(features, strides, kernel_sizes)):
        if blocks is None:
            encoder.append(DoubleConv(dim, channels, f, kernel, s))
        else:
            encoder.append(ResidualStage(dim, channels, f, blocks[k], s, kernel))
        channels = f
    return encoder
