"""Intensity normalisation."""

from __future__ import annotations

import numpy as np


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
        channel = array[c].astype(np.float32, copy=False)
        mean = np.float32(channel.mean(dtype=np.float64))
        std = np.float32(channel.std(dtype=np.float64))
        out[c] = (channel - mean) / max(std, np.float32(1e-8))
    return out
