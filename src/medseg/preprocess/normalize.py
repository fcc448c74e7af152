"""Intensity normalisation schemes, chosen per channel by the plan."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel

Scheme = Literal["ct", "zscore_nonzero", "zscore", "scale_255", "minmax", "none"]


class ChannelNormalization(BaseModel):
    """How one channel is normalised; ``ct`` uses the dataset's foreground statistics."""

    scheme: Scheme
    clip_low: float | None = None  # ct: foreground 0.5th percentile
    clip_high: float | None = None  # ct: foreground 99.5th percentile
    mean: float | None = None  # ct: foreground mean
    std: float | None = None  # ct: foreground standard deviation


def zscore(array: np.ndarray) -> np.ndarray:
    """Per-channel z-score of a ``(C, *spatial)`` array, as float32.

    A constant channel becomes zeros rather than NaN.

    Examples
    --------
    >>> out = zscore(np.array([[1.0, 2.0, 3.0]]))
    >>> [round(float(v), 3) for v in out[0]]
    [-1.225, 0.0, 1.225]
    """
    out = np.empty(array.shape, dtype=np.float32)
    for c in range(array.shape[0]):
        out[c] = _zscore(array[c].astype(np.float32, copy=False), None)
    return out


def _zscore(channel: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    values = channel if mask is None else channel[mask]
    if values.size == 0:
        return np.zeros(channel.shape, np.float32)
    mean = np.float32(values.mean(dtype=np.float64))
    std = np.float32(values.std(dtype=np.float64))
    out = (channel - mean) / max(std, np.float32(1e-8))
    if mask is not None:
        out[~mask] = 0
    return out.astype(np.float32, copy=False)


def normalize_channel(channel: np.ndarray, how: ChannelNormalization) -> np.ndarray:
    """One channel normalised by its scheme, as float32.

    - ``ct``: clip to the dataset's foreground [0.5, 99.5] percentiles, then subtract the
      foreground mean and divide by its standard deviation (the same numbers for every
      image: CT units mean something);
    - ``zscore_nonzero``: per image, z-score over the non-zero voxels, zero elsewhere (MRI
      and other arbitrary units; the background outside the body stays 0);
    - ``zscore``: per image, over all voxels; ``scale_255``: divide by 255 (8-bit images);
      ``minmax``: per image to [0, 1]; ``none``: unchanged.

    Examples
    --------
    >>> how = ChannelNormalization(scheme="ct", clip_low=-100, clip_high=300, mean=100, std=50)
    >>> normalize_channel(np.array([-1000.0, 100.0, 2000.0]), how).tolist()
    [-4.0, 0.0, 4.0]
    """
    channel = channel.astype(np.float32, copy=False)
    if how.scheme == "ct":
        if None in (how.clip_low, how.clip_high, how.mean, how.std):
            raise ValueError("ct normalisation needs clip_low, clip_high, mean and std")
        clipped = np.clip(channel, how.clip_low, how.clip_high)
        return ((clipped - np.float32(how.mean)) / np.float32(max(how.std, 1e-8))).astype(
            np.float32
        )  # type: ignore[arg-type]
    if how.scheme == "zscore_nonzero":
        return _zscore(channel, channel != 0)
    if how.scheme == "zscore":
        return _zscore(channel, None)
    if how.scheme == "scale_255":
        return channel / np.float32(255.0)
    if how.scheme == "minmax":
        low, high = float(channel.min()), float(channel.max())
        return (channel - np.float32(low)) / np.float32(max(high - low, 1e-8))
    return channel.copy()
