"""Augmentation settings: one small model per transform, each with a probability and its
parameters; a parameter is a fixed value, a ``[low, high]`` range or a distribution.

The defaults are nnU-Net v2's training recipe. Every field is plain JSON, so the settings sit
in ``plan.json`` as ``augmentation`` and any field can be overridden on the command line
(``--set augmentation.rotation.probability=0.5``).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


class Distribution(BaseModel):
    """A random parameter drawn from a named distribution.

    - ``uniform``: uniform on ``[low, high]``;
    - ``log_uniform``: ``exp`` of a uniform draw on ``[log low, log high]`` (``0 < low``);
    - ``normal``: ``mean``, ``std``; clipped to ``[low, high]`` when those are given;
    - ``split_uniform``: half the draws uniform on ``[low, pivot]``, half on ``[pivot, high]``,
      so that a factor is as often below 1 as above (nnU-Net's brightness, contrast and gamma).

    Examples
    --------
    >>> Distribution(distribution="normal", mean=1, std=0.1).std
    0.1
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    distribution: Literal["uniform", "log_uniform", "normal", "split_uniform"]
    low: float | None = None
    high: float | None = None
    mean: float | None = None
    std: float | None = Field(default=None, ge=0)
    pivot: float = 1.0

    @model_validator(mode="after")
    def _complete(self) -> Distribution:
        kind = self.distribution
        if kind == "normal":
            if self.mean is None or self.std is None:
                raise ValueError("a normal distribution needs mean and std")
            if self.low is not None and self.high is not None and self.low > self.high:
                raise ValueError(f"low {self.low} is above high {self.high}")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"a {kind} distribution needs low and high")
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        if kind == "log_uniform" and self.low <= 0:
            raise ValueError("a log_uniform distribution needs 0 < low")
        if kind == "split_uniform" and not self.low <= self.pivot <= self.high:
            raise ValueError(f"pivot {self.pivot} is outside [{self.low}, {self.high}]")
        return self


def _ordered(pair: tuple[float, float]) -> tuple[float, float]:
    if pair[0] > pair[1]:
        raise ValueError(f"range {list(pair)} has low above high")
    return pair


Range = Annotated[tuple[float, float], AfterValidator(_ordered)]
# A fixed value, a [low, high] range (uniform) or a Distribution.
Parameter = float | Range | Distribution


def split_uniform(low: float, high: float, pivot: float = 1.0) -> Distribution:
    """A ``split_uniform`` distribution (see `Distribution`).

    Examples
    --------
    >>> split_uniform(0.75, 1.25).distribution
    'split_uniform'
    """
    return Distribution(distribution="split_uniform", low=low, high=high, pivot=pivot)


def draw(parameter: Parameter, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """Draw values of ``parameter`` (float64, on the CPU) from ``generator``.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> draw(2.0, (3,), g).tolist()
    [2.0, 2.0, 2.0]
    >>> values = draw((-1.0, 1.0), (1000,), g)
    >>> bool(values.min() >= -1 and values.max() <= 1)
    True
    """
    if isinstance(parameter, (int, float)):
        return torch.full(shape, float(parameter), dtype=torch.float64)
    if isinstance(parameter, tuple):
        low, high = parameter
        return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)
    kind = parameter.distribution
    if kind == "normal":
        values = parameter.mean + parameter.std * torch.randn(
            shape, generator=generator, dtype=torch.float64
        )
        if parameter.low is None and parameter.high is None:
            return values
        return values.clamp(min=parameter.low, max=parameter.high)
    uniform = torch.rand(shape, generator=generator, dtype=torch.float64)
    low, high = float(parameter.low), float(parameter.high)  # type: ignore[arg-type]
    if kind == "uniform":
        return low + (high - low) * uniform
    if kind == "log_uniform":
        return torch.exp(math.log(low) + (math.log(high) - math.log(low)) * uniform)
    upper = torch.rand(shape, generator=generator) < 0.5
    pivot = parameter.pivot
    return torch.where(upper, pivot + (high - pivot) * uniform, low + (pivot - low) * uniform)


def bounds(parameter: Parameter) -> tuple[float, float]:
    """The smallest and largest value ``parameter`` gives (mean ± 3 std for an unclipped
    normal distribution).

    Examples
    --------
    >>> bounds((-30, 30))
    (-30.0, 30.0)
    >>> bounds(Distribution(distribution="normal", mean=0, std=10))
    (-30.0, 30.0)
    """
    if isinstance(parameter, (int, float)):
        return float(parameter), float(parameter)
    if isinstance(parameter, tuple):
        return float(parameter[0]), float(parameter[1])
    if parameter.distribution == "normal":
        mean, spread = float(parameter.mean), 3 * float(parameter.std)  # type: ignore[arg-type]
        low = mean - spread if parameter.low is None else max(parameter.low, mean - spread)
        high = mean + spread if parameter.high is None else min(parameter.high, mean + spread)
        return low, high
    return float(parameter.low), float(parameter.high)  # type: ignore[arg-type]


Probability = Annotated[float, Field(ge=0, le=1)]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RotationSettings(_Settings):
    """Rotation about the patch centre, in millimetres (so anisotropic voxels stay right).

    3D data turns about each axis by its own ``angle_degrees`` draw; 2D data, and 3D data whose
    one axis is much coarser than the others (see ``anisotropy_threshold``), turn only in the
    plane, by ``in_plane_angle_degrees`` (nnU-Net: ±30° in 3D, ±180° in 2D).
    """

    probability: Probability = 0.2
    angle_degrees: Parameter = (-30.0, 30.0)
    in_plane_angle_degrees: Parameter = (-180.0, 180.0)


class ScalingSettings(_Settings):
    """Zoom about the patch centre. ``factor`` is nnU-Net's: the patch covers ``factor``
    times as much of the input, so above 1 zooms out (structures look smaller)."""

    probability: Probability = 0.2
    factor: Parameter = (0.7, 1.4)
    per_axis: bool = False  # one factor per axis instead of one for all


class TranslationSettings(_Settings):
    """Shift of the sampled region, in voxels, drawn per axis (off in nnU-Net: the patch
    sampler's random position already translates)."""

    probability: Probability = 0.0
    voxels: Parameter = (-10.0, 10.0)


class ElasticSettings(_Settings):
    """Smooth random displacement: random vectors on a grid of control points ``spacing``
    voxels apart, interpolated linearly, scaled so that the largest displacement is
    ``magnitude`` voxels (off in nnU-Net v2's default recipe)."""

    probability: Probability = 0.0
    magnitude: Parameter = (0.0, 8.0)
    spacing: Parameter = (16.0, 32.0)


class MirrorSettings(_Settings):
    """Mirroring along each allowed axis with ``probability`` (each axis on its own)."""

    probability: Probability = 0.5
    axes: list[int] | None = None  # spatial axes that may be mirrored; None: all


class NoiseSettings(_Settings):
    """Additive Gaussian noise of standard deviation ``std`` (one draw per sample, shared by
    its channels). nnU-Net calls this range a variance but uses it as the standard
    deviation; so do we."""

    probability: Probability = 0.1
    std: Parameter = (0.0, 0.1)


class BlurSettings(_Settings):
    """Gaussian blur; each channel of a chosen sample is blurred with
    ``per_channel_probability``, with ``sigma`` (voxels) drawn per axis unless
    ``per_axis`` is off."""

    probability: Probability = 0.2
    per_channel_probability: Probability = 0.5
    sigma: Parameter = (0.5, 1.0)
    per_axis: bool = True


class BrightnessSettings(_Settings):
    """Multiplication by ``factor`` (drawn per channel)."""

    probability: Probability = 0.15
    factor: Parameter = Field(default_factory=lambda: split_uniform(0.75, 1.25))


class ContrastSettings(_Settings):
    """Contrast change about the channel mean by ``factor`` (drawn per channel); with
    ``preserve_range`` the result is clipped to the channel's former minimum and maximum."""

    probability: Probability = 0.15
    factor: Parameter = Field(default_factory=lambda: split_uniform(0.75, 1.25))
    preserve_range: bool = True


class LowResolutionSettings(_Settings):
    """Simulated low resolution: each channel of a chosen sample, with
    ``per_channel_probability``, is downsampled by ``zoom`` (nearest neighbour) and
    upsampled back (linear)."""

    probability: Probability = 0.25
    per_channel_probability: Probability = 0.5
    zoom: Parameter = (0.5, 1.0)


class GammaSettings(_Settings):
    """Gamma correction of each channel rescaled to [0, 1] (``invert``: of the negated
    image), then, with ``retain_stats``, moved back to the channel's mean and standard
    deviation."""

    probability: Probability = 0.3
    gamma: Parameter = Field(default_factory=lambda: split_uniform(0.7, 1.5))
    invert: bool = False
    retain_stats: bool = True


class AugmentationSettings(BaseModel):
    """Training-time augmentation; the defaults follow nnU-Net v2.

    Applied in this order: the spatial step (rotation, scaling, translation, elastic
    deformation, mirroring and the crop to the output size, in one resampling), then noise,
    blur, brightness, contrast, low resolution, inverted gamma and gamma.

    Examples
    --------
    >>> settings = AugmentationSettings()
    >>> settings.rotation.probability, settings.mirror.probability
    (0.2, 0.5)
    >>> AugmentationSettings.model_validate({"gamma": {"gamma": [0.5, 2]}}).gamma.gamma
    (0.5, 2.0)
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    rotation: RotationSettings = Field(default_factory=RotationSettings)
    scaling: ScalingSettings = Field(default_factory=ScalingSettings)
    translation: TranslationSettings = Field(default_factory=TranslationSettings)
    elastic: ElasticSettings = Field(default_factory=ElasticSettings)
    mirror: MirrorSettings = Field(default_factory=MirrorSettings)
    noise: NoiseSettings = Field(default_factory=NoiseSettings)
    blur: BlurSettings = Field(default_factory=BlurSettings)
    brightness: BrightnessSettings = Field(default_factory=BrightnessSettings)
    contrast: ContrastSettings = Field(default_factory=ContrastSettings)
    low_resolution: LowResolutionSettings = Field(default_factory=LowResolutionSettings)
    inverted_gamma: GammaSettings = Field(
        default_factory=lambda: GammaSettings(probability=0.1, invert=True)
    )
    gamma: GammaSettings = Field(default_factory=GammaSettings)
    # One axis whose spacing is more than this many times every other's makes the data
    # "anisotropic": rotation, scaling and elastic deformation stay in the other axes' plane.
    anisotropy_threshold: float = Field(default=3.0, gt=1)
    # padded_patch_size enlarges no axis by more than this factor.
    max_patch_enlargement: float = Field(default=1.4, ge=1)
