"""Overlap metrics on masks and label maps (numpy only).

Every ratio here is a function of the four voxel counts of a confusion matrix; a ratio
whose denominator is zero is undefined and returned as NaN (see docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN (undefined) when the denominator is 0."""
    return numerator / denominator if denominator > 0 else float("nan")


class PrecisionRecall:
    """Precision, recall and F1 of the counts ``tp``, ``fp`` and ``fn`` that a subclass holds
    (voxels in `Confusion`, lesions in `LesionCounts`): both report them alike, so the
    formulas and their undefined cases live once, here.

    Examples
    --------
    >>> @dataclass(frozen=True)
    ... class Detections(PrecisionRecall):
    ...     tp: int
    ...     fp: int
    ...     fn: int
    >>> d = Detections(tp=3, fp=1, fn=2)
    >>> d.precision, d.recall, round(d.f1, 4)
    (0.75, 0.6, 0.6667)
    >>> Detections(0, 0, 5).precision  # nothing predicted
    nan
    """

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        """TP / (TP + FP); NaN when nothing is predicted."""
        return ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        """Sensitivity TP / (TP + FN); NaN when the reference holds nothing."""
        return ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall, 2TP / (2TP + FP + FN); NaN when neither
        side holds anything."""
        return ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)


@dataclass(frozen=True)
class Confusion(PrecisionRecall):
    """Voxel counts of one label: true/false positives and negatives.

    Examples
    --------
    >>> c = Confusion(tp=3, fp=1, fn=2, tn=94)
    >>> round(c.dice, 4), round(c.iou, 4), c.precision, c.recall
    (0.6667, 0.5, 0.75, 0.6)
    >>> Confusion(0, 0, 0, 10).dice
    nan
    """

    tp: int
    fp: int
    fn: int
    tn: int

    @classmethod
    def of_masks(
        cls, reference: np.ndarray, prediction: np.ndarray, total: int | None = None
    ) -> Confusion:
        """Counts of two boolean masks; ``total`` voxels of the whole image (default: the
        masks' size) so that masks cropped around the foreground still give the right TN."""
        reference = reference.astype(bool, copy=False)
        prediction = prediction.astype(bool, copy=False)
        tp = int(np.count_nonzero(reference & prediction))
        ref_sum = int(np.count_nonzero(reference))
        pred_sum = int(np.count_nonzero(prediction))
        total = reference.size if total is None else total
        return cls(tp, pred_sum - tp, ref_sum - tp, total - ref_sum - pred_sum + tp)

    @property
    def dice(self) -> float:
        """2TP / (2TP + FP + FN), the voxels' F1; NaN when both masks are empty."""
        return self.f1

    @property
    def iou(self) -> float:
        """Jaccard index TP / (TP + FP + FN); NaN when both masks are empty."""
        return ratio(self.tp, self.tp + self.fp + self.fn)

    @property
    def specificity(self) -> float:
        """TN / (TN + FP); NaN only when every voxel is reference foreground."""
        return ratio(self.tn, self.tn + self.fp)

    @property
    def accuracy(self) -> float:
        """(TP + TN) / all voxels."""
        return ratio(self.tp + self.tn, self.tp + self.fp + self.fn + self.tn)


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
    return Confusion.of_masks(reference, prediction).dice


def dice_per_label(
    reference: np.ndarray, prediction: np.ndarray, labels: Iterable[int]
) -> dict[int, float]:
    """Dice of each label value between two label maps of the same shape."""
    if reference.shape != prediction.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {prediction.shape}")
    return {int(k): dice(reference == k, prediction == k) for k in labels}


def mask_ignored(reference: np.ndarray, prediction: np.ndarray, ignore: int | None) -> np.ndarray:
    """The prediction with the reference's ``ignore`` voxels copied in, so that they count
    for no label: neither true or false positive nor negative of any label other than
    ``ignore`` (nnU-Net v2's ignore label). ``None``: the prediction unchanged.

    Examples
    --------
    >>> mask_ignored(np.array([0, 1, 9, 9]), np.array([1, 1, 1, 0]), 9).tolist()
    [1, 1, 9, 9]
    """
    if ignore is None:
        return prediction
    ignored = reference == ignore
    if not ignored.any():
        return prediction
    return np.where(ignored, reference, prediction)
