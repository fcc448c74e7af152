"""The registration network: a U-Net from a (fixed, moving) pair to a velocity field."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from medseg.nn.unet import UNet

#: VoxelMorph's encoder widths: registration needs less capacity than segmentation.
REGISTRATION_FEATURES = (16, 32, 32, 32)


def registration_unet(dim: int = 3, features: Sequence[int] = REGISTRATION_FEATURES) -> UNet:
    """A U-Net taking the fixed and the moving image as two channels and returning ``dim``
    channels: a stationary velocity field in voxel units of the input grid. The output layer
    starts near zero, so an untrained network predicts (almost) the identity.

    Examples
    --------
    >>> import torch
    >>> net = registration_unet(features=(4, 8))
    >>> tuple(net(torch.zeros(1, 2, 8, 8, 8)).shape)
    (1, 3, 8, 8, 8)
    """
    network = UNet(2, dim, dim, features)
    nn.init.normal_(network.head.weight, std=1e-5)
    nn.init.zeros_(network.head.bias)
    return network
