"""Intensity transforms: what each does to the chosen samples, and nothing to the others."""

from __future__ import annotations

import pytest
import torch

from medseg.augment import (
    Brightness,
    Contrast,
    Gamma,
    GaussianBlur,
    GaussianNoise,
    LowResolution,
)
from medseg.augment.settings import (
    BlurSettings,
    BrightnessSettings,
    ContrastSettings,
    GammaSettings,
    LowResolutionSettings,
    NoiseSettings,
)


def images(batch: int = 4, channels: int = 2, size: tuple[int, ...] = (24, 24, 16)):
    g = torch.Generator().manual_seed(0)
    return 3 + 2 * torch.randn(batch, channels, *size, generator=g)


def test_noise_standard_deviation_per_sample() -> None:
    noise = GaussianNoise(NoiseSettings(probability=1.0, std=(0.5, 1.0)))
    out = noise(torch.zeros(8, 2, 32, 32, 16), torch.Generator().manual_seed(0))
    std = out.flatten(2).std(2)
    assert bool(((std > 0.48) & (std < 1.02)).all())
    assert torch.allclose(std[:, 0], std[:, 1], rtol=0.05)  # one std per sample
    assert len(set(std[:, 0].round(decimals=2).tolist())) > 4  # drawn per sample


@pytest.mark.parametrize(
    "transform",
    [
        GaussianNoise(NoiseSettings(probability=0.5)),
        GaussianBlur(BlurSettings(probability=0.5, per_channel_probability=1.0)),
        Brightness(BrightnessSettings(probability=0.5, factor=(0.5, 0.6))),
        Contrast(ContrastSettings(probability=0.5, factor=(0.5, 0.6))),
        LowResolution(LowResolutionSettings(probability=0.5, per_channel_probability=1.0)),
        Gamma(GammaSettings(probability=0.5, gamma=(1.5, 2))),
        Gamma(GammaSettings(probability=0.5, gamma=(1.5, 2), invert=True)),
    ],
    ids=lambda t: type(t).__name__,
)
def test_only_chosen_samples_change(transform) -> None:
    before = images(batch=12)
    out = transform(before.clone(), torch.Generator().manual_seed(3))
    changed = [not torch.equal(out[b], before[b]) for b in range(12)]
    assert 0 < sum(changed) < 12


def test_blur_smooths_keeps_mean_and_skips_the_coarse_axis() -> None:
    image = images(batch=2, channels=1)
    blur = GaussianBlur(
        BlurSettings(probability=1.0, per_channel_probability=1.0, sigma=1.0), skip_axis=2
    )
    out = blur(image.clone(), torch.Generator())
    assert float(out.std()) < 0.6 * float(image.std())
    assert abs(float(out.mean() - image.mean())) < 0.05
    # along axis 2 nothing moved: a volume constant in-plane stays as it is
    layers = torch.arange(16.0).view(1, 1, 1, 1, 16).expand(1, 1, 24, 24, 16).contiguous()
    assert torch.allclose(blur(layers.clone(), torch.Generator()), layers)


def test_brightness_multiplies_each_channel() -> None:
    image = images()
    out = Brightness(BrightnessSettings(probability=1.0))(image.clone(), torch.Generator())
    factor = out.flatten(2).mean(2) / image.flatten(2).mean(2)
    assert torch.allclose(out, image * factor[:, :, None, None, None], rtol=1e-5)
    assert bool(((factor >= 0.75 - 1e-6) & (factor <= 1.25 + 1e-6)).all())
    assert len(set(factor.flatten().round(decimals=4).tolist())) == factor.numel()


def test_contrast_keeps_mean_and_range() -> None:
    image = images()
    contrast = Contrast(ContrastSettings(probability=1.0, factor=(1.5, 2.0)))
    out = contrast(image.clone(), torch.Generator())
    rows, before = out.flatten(2), image.flatten(2)
    assert bool((rows.amin(2) >= before.amin(2) - 1e-5).all())
    assert bool((rows.amax(2) <= before.amax(2) + 1e-5).all())
    assert float(rows.std(2).min() / before.std(2).max()) > 1.3


def test_gamma_keeps_mean_and_std_and_bends_the_histogram() -> None:
    image = images()
    for invert in (False, True):
        gamma = Gamma(GammaSettings(probability=1.0, gamma=2.0, invert=invert))
        out = gamma(image.clone(), torch.Generator())
        rows, before = out.flatten(2), image.flatten(2)
        assert torch.allclose(rows.mean(2), before.mean(2), atol=1e-3)
        assert torch.allclose(rows.std(2), before.std(2), rtol=1e-3)
        skew = ((rows - rows.mean(2, keepdim=True)) ** 3).mean(2)
        # gamma 2 pushes mass to the low end (positive skew); inverted, to the high end
        assert bool((skew > 0.5).all()) if not invert else bool((skew < -0.5).all())


def test_gamma_without_stats_on_a_ramp() -> None:
    ramp = torch.linspace(0, 1, 11).view(1, 1, 11)
    gamma = Gamma(GammaSettings(probability=1.0, gamma=0.5, retain_stats=False))
    assert torch.allclose(gamma(ramp.clone(), torch.Generator()), ramp.sqrt(), atol=1e-6)


def test_low_resolution_makes_blocks_and_spares_the_coarse_axis() -> None:
    image = images(batch=1, channels=1)
    low = LowResolution(
        LowResolutionSettings(probability=1.0, per_channel_probability=1.0, zoom=0.5),
        skip_axis=2,
    )
    out = low(image.clone(), torch.Generator())
    assert out.shape == image.shape
    assert float(out.std()) < 0.8 * float(image.std())
    # in-plane detail is lost, but slices along axis 2 are not mixed
    layers = torch.arange(16.0).view(1, 1, 1, 1, 16).expand(1, 1, 24, 24, 16).contiguous()
    assert torch.allclose(low(layers.clone(), torch.Generator()), layers)
