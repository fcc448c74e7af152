"""Overlap metrics on integer label maps (numpy only)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def dice(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Dice coefficient of two boolean masks; NaN when both are empty.

    Both-empty is undefined rather than perfect: aggregations skip it and count it.

    Examples
    --------
    >>> a = np.array([1, 1, 0, 0], bool); b = np.array([1, 0, 0, 0], bool)
    >>> round(dice(a, b), 4)
    0.6667
    >>> dice(np.zeros(3, bool), np.zeros(3, bool))
    nan
    """
    reference, prediction = reference.astype(bool, copy=False), prediction.astype(bool, copy=False)
    ref_sum = int(np.count_nonzero(reference))
    pred_sum = int(np.count_nonzero(prediction))
    if ref_sum + pred_sum == 0:
        return float("nan")
    intersection = int(np.count_nonzero(reference & prediction))
    return 2.0 * intersection / (ref_sum + pred_sum)


def dice_per_label(
    reference: np.ndarray, prediction: np.ndarray, labels: Iterable[int]
) -> dict[int, float]:
    """Dice of each label value between two label maps of the same shape."""
    if reference.shape != prediction.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {prediction.shape}")
    return {int(k): dice(reference == k, prediction == k) for k in labels}
