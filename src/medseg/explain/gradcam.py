"""Grad-CAM (Selvaraju et al. 2017) with forward and backward hooks, for 2D and 3D networks.

For a chosen layer with activations ``A`` (K channels) and a scalar target ``y`` (a class's
logit, or a label's logits summed over the image for a segmenter), the map is
``ReLU(sum_k w_k A_k)`` with ``w_k`` the mean over space of ``dy/dA_k``. It has the layer's
resolution; `upsampled` brings it to the input's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from medseg.errors import ConfigError


def find_layer(network: nn.Module, name: str) -> nn.Module:
    """The submodule ``name`` (as in ``network.named_modules()``), or a `ConfigError` that
    lists the names to choose from."""
    modules = dict(network.named_modules())
    if name not in modules or not name:
        stages = [n for n in modules if n.count(".") == 1 and n.split(".")[1].isdigit()]
        raise ConfigError(f"--layer {name}: no such layer; try one of {', '.join(stages)}")
    return modules[name]


def grad_cam(
    network: nn.Module,
    layer: nn.Module,
    inputs: torch.Tensor,
    target: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Grad-CAM maps ``(B, *layer_spatial)`` of ``layer`` for ``target(network(inputs))``,
    a tensor of one score per batch item.

    Examples
    --------
    >>> from medseg.nn.classifier import ResidualClassifier
    >>> net = ResidualClassifier(2, 1, 2, features=(4, 8)).eval()
    >>> cam = grad_cam(net, net.encoder[1], torch.rand(1, 1, 16, 16), lambda y: y[:, 1])
    >>> tuple(cam.shape), bool((cam >= 0).all())
    ((1, 8, 8), True)
    """
    saved: dict[str, torch.Tensor] = {}

    def keep(module: nn.Module, args: object, output: torch.Tensor) -> None:
        saved["activation"] = output

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            scores = target(network(inputs))
            gradients = torch.autograd.grad(scores.sum(), saved["activation"])[0]
    finally:
        handle.remove()
    activation = saved["activation"].detach()
    spatial = tuple(range(2, activation.ndim))
    weights = gradients.mean(spatial, keepdim=True)
    return F.relu((weights * activation).sum(1))


def upsampled(cam: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Maps ``(B, *s)`` interpolated (linearly) to ``(B, *size)``."""
    mode = "trilinear" if len(size) == 3 else "bilinear"
    return F.interpolate(cam[:, None], size=size, mode=mode, align_corners=False)[:, 0]


def activations(network: nn.Module, layer: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The output of ``layer`` for ``inputs`` (feature maps ``(B, K, *s)``)."""
    saved: dict[str, torch.Tensor] = {}
    handle = layer.register_forward_hook(lambda m, a, out: saved.setdefault("out", out))
    try:
        with torch.no_grad():
            network(inputs)
    finally:
        handle.remove()
    return saved["out"]
