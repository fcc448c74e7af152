"""The classic intensity operations users ask for, as plan options: Gaussian denoising,
histogram equalisation and CLAHE (scikit-image / scipy). Applied per channel, before
normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import ndimage

Equalization = Literal["none", "hist", "clahe"]


def denoise_gaussian(channel: np.ndarray, sigma_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """Gaussian smoothing with a standard deviation of ``sigma_mm`` millimetres per axis.

    Examples
    --------
    >>> x = np.zeros((9, 9), np.float32); x[4, 4] = 1
    >>> round(float(denoise_gaussian(x, 1.0, (1.0, 1.0)).sum()), 4)
    1.0
    """
    sigma = [sigma_mm / s for s in spacing]
    return ndimage.gaussian_filter(channel.astype(np.float32, copy=False), sigma, mode="nearest")


def _unit_range(channel: np.ndarray) -> np.ndarray:
    low, high = float(channel.min()), float(channel.max())
    return (channel.astype(np.float64) - low) / max(high - low, 1e-12)


def equalize(channel: np.ndarray, method: Equalization) -> np.ndarray:
    """Histogram equalisation (``hist``) or contrast-limited adaptive equalisation
    (``clahe``); the result lies in [0, 1]. ``none`` returns the channel unchanged."""
    from skimage import exposure  # heavy import, only when asked for

    if method == "none":
        return channel
    if method == "hist":
        return exposure.equalize_hist(channel).astype(np.float32)
    return exposure.equalize_adapthist(_unit_range(channel)).astype(np.float32)
