"""Intensity transforms on ``(B, C, *spatial)`` float batches, vectorised over the batch.

Each transform chooses its samples with its ``probability`` (and channels with
``per_channel_probability`` where it has one), draws its parameters from the run's generator,
and changes the chosen part of the batch in place. Data-sized random numbers (noise) come
from generators seeded from the run's generator (see `medseg.augment.noise`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from medseg.augment.noise import standard_normal
from medseg.augment.settings import (
    BlurSettings,
    BrightnessSettings,
    ContrastSettings,
    GammaSettings,
    LowResolutionSettings,
    NoiseSettings,
    draw,
)
from medseg.augment.workspace import Workspace


def choose(probability: float, count: int, generator: torch.Generator) -> torch.Tensor:
    """Indices (CPU, int64) of the ``count`` items chosen each with ``probability``.

    Examples
    --------
    >>> choose(1.0, 3, torch.Generator()).tolist()
    [0, 1, 2]
    """
    return (torch.rand(count, generator=generator) < probability).nonzero()[:, 0]


def _rows(image: torch.Tensor) -> torch.Tensor:
    """``(B * C, N)`` view of a contiguous batch."""
    return image.view(image.shape[0] * image.shape[1], -1)


def _per_row(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(device=like.device, dtype=like.dtype).view(-1, 1)


class GaussianNoise:
    """Adds zero-mean Gaussian noise; one standard deviation per chosen sample.

    Examples
    --------
    >>> from medseg.augment.settings import NoiseSettings
    >>> noise = GaussianNoise(NoiseSettings(probability=1.0, std=0.1))
    >>> out = noise(torch.zeros(2, 1, 64, 64), torch.Generator().manual_seed(0))
    >>> round(float(out.std()), 2)
    0.1
    """

    def __init__(self, settings: NoiseSettings) -> None:
        self.settings = settings
        self.workspace = Workspace()

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        chosen = choose(self.settings.probability, image.shape[0], generator)
        if len(chosen) == 0:
            return image
        std = draw(self.settings.std, (len(chosen),), generator)
        shape = (len(chosen), *image.shape[1:])
        noise, _ = self.workspace.get("noise", shape, image.dtype, image.device)
        standard_normal(noise, generator)
        for n, b in enumerate(chosen.tolist()):  # one fused pass per sample
            image[b].add_(noise[n], alpha=float(std[n]))
        return image


class GaussianBlur:
    """Gaussian blur with a separable kernel; sigma (voxels) per channel and axis.

    Parameters
    ----------
    settings
        Probability, per-channel probability, sigma.
    skip_axis
        A spatial axis never blurred (the coarse axis of anisotropic data), or None.

    Examples
    --------
    >>> from medseg.augment.settings import BlurSettings
    >>> blur = GaussianBlur(BlurSettings(probability=1.0, per_channel_probability=1.0))
    >>> image = torch.zeros(1, 1, 9, 9)
    >>> image[0, 0, 4, 4] = 1
    >>> out = blur(image, torch.Generator().manual_seed(0))
    >>> round(float(out.sum()), 4), bool(out[0, 0, 4, 4] < 0.5)
    (1.0, True)
    """

    def __init__(self, settings: BlurSettings, skip_axis: int | None = None) -> None:
        self.settings = settings
        self.skip_axis = skip_axis

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        s = self.settings
        batch, channels, *size = image.shape
        samples = choose(s.probability, batch, generator)
        if len(samples) == 0:
            return image
        rows = _chosen_rows(samples, channels, s.per_channel_probability, generator)
        if len(rows) == 0:
            return image
        dim = len(size)
        sigma = draw(s.sigma, (len(rows), dim if s.per_axis else 1), generator)
        sigma = sigma.expand(len(rows), dim).clamp_min(0.0)
        flat = _rows(image)
        index = rows.to(image.device)
        x = flat.index_select(0, index).view(1, len(rows), *size)
        for axis in range(dim):
            if axis == self.skip_axis or size[axis] < 2:
                continue
            x = _blur_axis(x, sigma[:, axis], axis)
        flat.index_copy_(0, index, x.view(len(rows), -1))
        return image


def _chosen_rows(
    samples: torch.Tensor, channels: int, probability: float, generator: torch.Generator
) -> torch.Tensor:
    """Rows ``b * C + c`` of the chosen samples' channels, each kept with ``probability``."""
    rows = (samples[:, None] * channels + torch.arange(channels)).flatten()
    keep = torch.rand(len(rows), generator=generator) < probability
    return rows[keep]


def _blur_axis(x: torch.Tensor, sigma: torch.Tensor, axis: int) -> torch.Tensor:
    """Blur ``x`` ``(1, K, *spatial)`` along ``axis``, row ``k`` with ``sigma[k]``; edges
    repeat the border value.

    A sum of shifted copies, one multiply-add per tap: on the CPU this is 3-4x faster than a
    depthwise ``conv3d`` along the first axis, and as fast along the last.
    """
    size = x.shape[2 + axis]
    radius = min(max(1, math.ceil(3 * float(sigma.max()))), size - 1)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (taps[None] / sigma.clamp_min(1e-6)[:, None]) ** 2)
    weights = (weights / weights.sum(1, keepdim=True)).to(x)
    dim = x.ndim - 2
    pad = [0] * (2 * dim)
    pad[2 * (dim - 1 - axis)] = pad[2 * (dim - 1 - axis) + 1] = radius
    padded = F.pad(x, pad, mode="replicate")
    shape = [1, len(sigma)] + [1] * dim
    out = padded.narrow(2 + axis, 0, size) * weights[:, 0].view(shape)
    for tap in range(1, 2 * radius + 1):
        out.addcmul_(padded.narrow(2 + axis, tap, size), weights[:, tap].view(shape))
    return out


class Brightness:
    """Multiplies each channel of a chosen sample by its own factor.

    Examples
    --------
    >>> from medseg.augment.settings import BrightnessSettings
    >>> bright = Brightness(BrightnessSettings(probability=1.0, factor=2.0))
    >>> bright(torch.ones(1, 2, 3), torch.Generator()).tolist()
    [[[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]]
    """

    def __init__(self, settings: BrightnessSettings) -> None:
        self.settings = settings

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch, channels = image.shape[:2]
        chosen = choose(self.settings.probability, batch, generator)
        if len(chosen) == 0:
            return image
        factor = torch.ones(batch, channels, dtype=torch.float64)
        factor[chosen] = draw(self.settings.factor, (len(chosen), channels), generator)
        _rows(image).mul_(_per_row(factor, image))
        return image


class Contrast:
    """Scales each channel of a chosen sample about its mean by its own factor; with
    ``preserve_range``, clips to the channel's former minimum and maximum.

    Examples
    --------
    >>> from medseg.augment.settings import ContrastSettings
    >>> contrast = Contrast(ContrastSettings(probability=1.0, factor=2.0, preserve_range=False))
    >>> contrast(torch.tensor([[[0.0, 1.0, 2.0]]]), torch.Generator()).tolist()
    [[[-1.0, 1.0, 3.0]]]
    """

    def __init__(self, settings: ContrastSettings) -> None:
        self.settings = settings

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        batch, channels = image.shape[:2]
        chosen = choose(self.settings.probability, batch, generator)
        if len(chosen) == 0:
            return image
        factor = draw(self.settings.factor, (len(chosen) * channels,), generator)
        part, store = _take_rows(image, chosen)
        factor = _per_row(factor, part)
        mean = part.mean(1, keepdim=True)
        if self.settings.preserve_range:
            low, high = part.amin(1, keepdim=True), part.amax(1, keepdim=True)
        part.sub_(mean).mul_(factor).add_(mean)
        if self.settings.preserve_range:
            torch.clamp(part, low, high, out=part)
        store(part)
        return image


def _take_rows(image: torch.Tensor, chosen: torch.Tensor):
    """``(len(chosen) * C, N)`` rows of the chosen samples, and a function that writes
    changed rows back (the rows are a view when every sample is chosen)."""
    if len(chosen) == image.shape[0]:
        return _rows(image), lambda rows: None
    index = chosen.to(image.device)
    part = _rows(image.index_select(0, index))

    def store(rows: torch.Tensor) -> None:
        image.index_copy_(0, index, rows.view(len(chosen), *image.shape[1:]))

    return part, store


class LowResolution:
    """Downsamples each chosen channel by ``zoom`` (nearest neighbour) and upsamples it back
    (linear), as if acquired at a coarser resolution.

    Parameters
    ----------
    settings
        Probability, per-channel probability, zoom.
    skip_axis
        A spatial axis kept at full resolution (the coarse axis of anisotropic data).

    Examples
    --------
    >>> from medseg.augment.settings import LowResolutionSettings
    >>> low = LowResolution(LowResolutionSettings(probability=1.0, per_channel_probability=1.0,
    ...     zoom=0.5))
    >>> tuple(low(torch.rand(2, 1, 8, 8), torch.Generator().manual_seed(0)).shape)
    (2, 1, 8, 8)
    """

    def __init__(self, settings: LowResolutionSettings, skip_axis: int | None = None) -> None:
        self.settings = settings
        self.skip_axis = skip_axis

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        s = self.settings
        batch, channels, *size = image.shape
        samples = choose(s.probability, batch, generator)
        if len(samples) == 0:
            return image
        rows = _chosen_rows(samples, channels, s.per_channel_probability, generator)
        zoom = draw(s.zoom, (len(rows),), generator).clamp(1e-3, 1.0)
        mode = "bilinear" if len(size) == 2 else "trilinear"
        flat = _rows(image)
        for row, z in zip(rows.tolist(), zoom.tolist()):
            small = [
                n if axis == self.skip_axis else max(1, round(n * z)) for axis, n in enumerate(size)
            ]
            channel = flat[row].view(1, 1, *size)
            coarse = F.interpolate(channel, size=small, mode="nearest-exact")
            back = F.interpolate(coarse, size=size, mode=mode, align_corners=False)
            flat[row] = back.view(-1)
        return image


class Gamma:
    """Gamma correction per channel of a chosen sample: the channel is rescaled to [0, 1],
    raised to the power ``gamma``, and scaled back (``retain_stats``: to its former mean and
    standard deviation). With ``invert``, the negated channel is corrected.

    Examples
    --------
    >>> from medseg.augment.settings import GammaSettings
    >>> gamma = Gamma(GammaSettings(probability=1.0, gamma=2.0, retain_stats=False))
    >>> gamma(torch.tensor([[[0.0, 1.0, 2.0]]]), torch.Generator()).tolist()
    [[[0.0, 0.5, 2.0]]]
    """

    def __init__(self, settings: GammaSettings) -> None:
        self.settings = settings

    def __call__(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        s = self.settings
        batch, channels = image.shape[:2]
        chosen = choose(s.probability, batch, generator)
        if len(chosen) == 0:
            return image
        gamma = draw(s.gamma, (len(chosen) * channels,), generator).clamp_min(1e-6)
        x, store = _take_rows(image, chosen)
        if s.invert:
            x.neg_()
        # (amin and amax are each ~6x faster than aminmax along a dimension on the CPU)
        low, high = x.amin(1, keepdim=True), x.amax(1, keepdim=True)
        span = (high - low).clamp_min(1e-7)
        x.sub_(low).div_(span)  # now in [0, 1]
        if s.retain_stats:
            mean_before, std_before = _mean_std(x)
        x.log_().mul_(_per_row(gamma, x)).exp_()  # x ** gamma, 3x faster than pow; 0 stays 0
        if s.retain_stats:
            mean_after, std_after = _mean_std(x)
            ratio = std_before / std_after.clamp_min(1e-7)
            # x_final = low + span * ((x - mean_after) * ratio + mean_before), as one mul-add
            scale = span * ratio
            shift = low + span * (mean_before - mean_after * ratio)
        else:
            scale, shift = span, low
        if s.invert:
            scale, shift = -scale, -shift
        x.mul_(scale).add_(shift)
        store(x)
        return image


def _mean_std(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) standard deviation of each row of values in [0, 1]."""
    n = rows.shape[1]
    mean = rows.sum(1, keepdim=True) / n
    square = torch.linalg.vector_norm(rows, dim=1, keepdim=True) ** 2 / n
    return mean, (square - mean * mean).clamp_min(0).sqrt()
