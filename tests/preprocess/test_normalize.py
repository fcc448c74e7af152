"""Normalisation schemes and the classic filters."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.preprocess import ChannelNormalization, normalize_channel, zscore
from medseg.preprocess.filters import denoise_gaussian, equalize


def test_ct_clips_then_uses_dataset_statistics() -> None:
    how = ChannelNormalization(scheme="ct", clip_low=-100, clip_high=300, mean=100, std=50)
    out = normalize_channel(np.array([-1000.0, -100.0, 100.0, 300.0, 3000.0]), how)
    assert out.tolist() == [-4.0, -4.0, 0.0, 4.0, 4.0]
    with pytest.raises(ValueError, match="ct normalisation needs"):
        normalize_channel(np.zeros(3), ChannelNormalization(scheme="ct"))


def test_zscore_nonzero_ignores_and_keeps_the_background() -> None:
    channel = np.array([0.0, 0.0, 10.0, 20.0, 30.0])
    out = normalize_channel(channel, ChannelNormalization(scheme="zscore_nonzero"))
    assert out[:2].tolist() == [0.0, 0.0]
    assert out[2:].mean() == pytest.approx(0.0, abs=1e-6)
    assert out[2:].std() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("scheme", "expected"),
    [("scale_255", [0.0, 0.5, 1.0]), ("minmax", [0.0, 0.5, 1.0]), ("none", [0.0, 127.5, 255.0])],
)
def test_simple_schemes(scheme: str, expected: list[float]) -> None:
    out = normalize_channel(np.array([0.0, 127.5, 255.0]), ChannelNormalization(scheme=scheme))
    assert out.dtype == np.float32
    assert out.tolist() == pytest.approx(expected)


def test_constant_channel_is_zero_not_nan() -> None:
    assert zscore(np.full((1, 5), 7.0)).tolist() == [[0.0] * 5]


def test_gaussian_denoising_uses_millimetres() -> None:
    noise = np.random.default_rng(0).normal(size=(40, 40)).astype(np.float32)
    fine = denoise_gaussian(noise, 1.0, (1.0, 1.0))
    coarse_grid = denoise_gaussian(noise, 1.0, (2.0, 2.0))  # 1 mm = half a voxel here
    assert fine.std() < coarse_grid.std() < noise.std()


def test_equalization() -> None:
    ramp = np.linspace(0, 1, 400).reshape(20, 20) ** 4  # most values crowd near 0
    hist = equalize(ramp, "hist")
    assert hist.min() >= 0 and hist.max() <= 1
    assert np.median(hist) > np.median(ramp)  # spread out
    clahe = equalize(ramp * 1000, "clahe")
    assert clahe.min() >= 0 and clahe.max() <= 1
    assert equalize(ramp, "none") is ramp
