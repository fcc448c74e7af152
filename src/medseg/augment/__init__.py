"""Batched training-time augmentation of ``(B, C, *spatial)`` patches and their labels.

`Augmenter` applies nnU-Net v2's recipe (configurable through `AugmentationSettings`): one
resampling per batch for rotation, scaling, translation, elastic deformation, mirroring and
the crop (labels by nearest neighbour), then noise, blur, brightness, contrast, simulated low
resolution and gamma, each vectorised over the batch. See docs/augment.md.
"""

from medseg.augment.augmenter import Augmenter
from medseg.augment.intensity import (
    Brightness,
    Contrast,
    Gamma,
    GaussianBlur,
    GaussianNoise,
    LowResolution,
)
from medseg.augment.settings import (
    AugmentationSettings,
    BlurSettings,
    BrightnessSettings,
    ContrastSettings,
    Distribution,
    ElasticSettings,
    GammaSettings,
    LowResolutionSettings,
    MirrorSettings,
    NoiseSettings,
    Parameter,
    RotationSettings,
    ScalingSettings,
    TranslationSettings,
    draw,
    split_uniform,
)
from medseg.augment.spatial import SpatialTransform, padded_patch_size, thick_axis

__all__ = [
    "AugmentationSettings",
    "Augmenter",
    "BlurSettings",
    "Brightness",
    "BrightnessSettings",
    "Contrast",
    "ContrastSettings",
    "Distribution",
    "ElasticSettings",
    "Gamma",
    "GammaSettings",
    "GaussianBlur",
    "GaussianNoise",
    "LowResolution",
    "LowResolutionSettings",
    "MirrorSettings",
    "NoiseSettings",
    "Parameter",
    "RotationSettings",
    "ScalingSettings",
    "SpatialTransform",
    "TranslationSettings",
    "draw",
    "padded_patch_size",
    "split_uniform",
    "thick_axis",
]
