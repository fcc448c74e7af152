"""Image similarity measures for registration (PyTorch, differentiable; lower is better).

Each takes the fixed and the warped moving intensities as tensors of the same shape
``(N, 1, *spatial)`` (or flat ``(N,)`` samples for the global ones) and returns a scalar
loss: the negative similarity, so that every measure is minimised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mse(fixed: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
    """Mean squared intensity difference (mono-modal, same intensity scale).

    Examples
    --------
    >>> float(mse(torch.zeros(4), torch.full((4,), 2.0)))
    4.0
    """
    return torch.mean((fixed - moving) ** 2)


def ncc(fixed: torch.Tensor, moving: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Negative global normalised cross-correlation, in [-1, 1] (mono-modal, any linear
    intensity relation).

    Examples
    --------
    >>> x = torch.arange(10.0)
    >>> round(float(ncc(x, 3 * x + 1)), 4)
    -1.0
    """
    f = fixed.flatten() - fixed.mean()
    m = moving.flatten() - moving.mean()
    return -(f * m).sum() / torch.sqrt((f * f).sum() * (m * m).sum() + eps)


def lncc(
    fixed: torch.Tensor, moving: torch.Tensor, window: int = 9, eps: float = 1e-5
) -> torch.Tensor:
    """Negative local (windowed) normalised cross-correlation, averaged over voxels: robust to
    slowly varying intensity differences; the usual choice for deformable registration.
    Tensors are ``(N, 1, *spatial)``; ``window`` voxels per side (box filter)."""
    dims = fixed.dim() - 2
    pool = F.avg_pool3d if dims == 3 else F.avg_pool2d

    def local_mean(x: torch.Tensor) -> torch.Tensor:
        # a box mean is separable: one pass per axis (3 x window, not window^3, per voxel);
        # with per-axis voxel counts at the borders it equals the n-D mean
        for axis in range(dims):
            size = min(window, x.shape[axis + 2])  # a thin image: the window fits its axis
            size -= 1 - size % 2  # odd, so the window stays centred
            kernel = [1] * dims
            kernel[axis] = size
            padding = [0] * dims
            padding[axis] = size // 2
            x = pool(x, kernel, stride=1, padding=padding, count_include_pad=False)
        return x

    mu_f, mu_m = local_mean(fixed), local_mean(moving)
    var_f = local_mean(fixed * fixed) - mu_f * mu_f
    var_m = local_mean(moving * moving) - mu_m * mu_m
    cov = local_mean(fixed * moving) - mu_f * mu_m
    cc = cov * cov / (var_f.clamp_min(0) * var_m.clamp_min(0) + eps)
    return -cc.mean()


def mutual_information(
    fixed: torch.Tensor, moving: torch.Tensor, bins: int = 32, sigma: float | None = None
) -> torch.Tensor:
    """Negative mutual information from a soft (Parzen, Gaussian) joint histogram of the two
    intensity samples, each first scaled to [0, 1] by its own range: for multi-modal pairs
    (MRI to CT, T1 to T2), where intensities relate by any one-to-one mapping.

    Examples
    --------
    >>> x = torch.rand(5000)
    >>> bool(mutual_information(x, 1 - x) < mutual_information(x, torch.rand(5000)))
    True
    """
    f, m = fixed.flatten(), moving.flatten()

    def unit(x: torch.Tensor) -> torch.Tensor:
        low, high = x.min().detach(), x.max().detach()
        return (x - low) / (high - low).clamp_min(1e-8)

    centres = torch.linspace(0, 1, bins, device=f.device, dtype=f.dtype)
    sigma = sigma or 0.5 / (bins - 1) * 2

    def weights(x: torch.Tensor) -> torch.Tensor:
        w = torch.exp(-0.5 * ((unit(x)[:, None] - centres[None, :]) / sigma) ** 2)
        return w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)

    wf, wm = weights(f), weights(m)
    joint = wf.T @ wm / f.numel()
    pf, pm = joint.sum(dim=1, keepdim=True), joint.sum(dim=0, keepdim=True)
    ratio = joint / (pf @ pm).clamp_min(1e-12)
    return -(joint * torch.log(ratio.clamp_min(1e-12))).sum()


MEASURES = {"mse": mse, "ncc": ncc, "lncc": lncc, "mi": mutual_information}
