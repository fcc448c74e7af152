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
    Tensors are ``(N, 1, *spatial)``; ``window`` voxels per side (a box, cut at the borders)."""
    moments = torch.cat([fixed, moving, fixed * fixed, moving * moving, fixed * moving], dim=1)
    mu_f, mu_m, ff, mm, fm = box_mean(moments, window).unbind(1)
    var_f = ff - mu_f * mu_f
    var_m = mm - mu_m * mu_m
    cov = fm - mu_f * mu_m
    cc = cov * cov / (var_f.clamp_min(0) * var_m.clamp_min(0) + eps)
    return -cc.clamp(max=1).mean()  # <= 1 exactly (Cauchy-Schwarz); rounding can pass it


def local_normalised(image: torch.Tensor, window: int = 9, floor: float = 1e-3) -> torch.Tensor:
    """Intensities minus their local mean, divided by their local standard deviation (box of
    ``window`` voxels; ``floor`` keeps flat regions from blowing up noise).

    The mean squared difference of two locally normalised images is, window by window,
    2 x (1 - their local correlation): local NCC at the cost of one subtraction per step,
    because the normalisation is done once, before the images are warped (exact for
    translations, close for smooth deformations). The deformable stage optimises lncc so."""
    mean, square = box_mean(torch.cat([image, image * image], dim=1), window).unbind(1)
    spread = (square - mean * mean).clamp_min(0).sqrt()
    return (image - mean[:, None]) / (spread[:, None] + floor)


def box_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """The mean over a centred box of ``window`` voxels per axis, of every channel of
    ``(N, C, *spatial)``, over the voxels inside the image (the box is cut at the borders).

    Separable, and each axis by a running sum (cumsum, then the difference of two shifted
    copies), so the cost does not grow with the window; forward and backward are 3-4x faster
    than ``avg_pool3d`` on the CPU. A thin axis gets the largest odd window that fits. Each
    channel's mean is taken out first, so that the running sums stay small; even so, float32
    sums of raw intensities in the thousands over a 200^3 image round off more than a flat
    region's variance: give intensities of order 1 (`medseg.register.pyramid.robust_scaled`).

    Examples
    --------
    >>> box_mean(torch.tensor([[[1.0, 2.0, 3.0, 4.0]]]), 3).tolist()
    [[[1.5, 2.0, 3.0, 3.5]]]
    """
    offset = x.mean(dim=tuple(range(2, x.dim())), keepdim=True)
    x = x - offset
    for axis in range(2, x.dim()):
        n = x.shape[axis]
        size = min(window, n)
        size -= 1 - size % 2  # odd, so the box stays centred
        half = size // 2
        padding = [0, 0] * (x.dim() - 2)
        padding[2 * (x.dim() - 1 - axis)] = half + 1  # F.pad lists the last axis first
        padding[2 * (x.dim() - 1 - axis) + 1] = half
        running = torch.cumsum(F.pad(x, padding), dim=axis)
        total = running.narrow(axis, size, n) - running.narrow(axis, 0, n)
        index = torch.arange(n, device=x.device)
        count = (index + half).clamp(max=n - 1) - (index - half).clamp(min=0) + 1
        shape = [1] * x.dim()
        shape[axis] = n
        x = total / count.to(x.dtype).reshape(shape)
    return x + offset


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
