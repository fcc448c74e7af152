"""Image-level classification metrics (numpy only): ROC AUC, accuracy, balanced accuracy.

Definitions follow scikit-learn's (the tests compare against it): the binary AUC is the
Mann-Whitney probability that a random positive scores above a random negative, ties counted
half; the multi-class AUC is the unweighted mean of the one-vs-rest AUCs; balanced accuracy is
the mean recall over the classes present in the truth.
"""

from __future__ import annotations

import numpy as np


def roc_auc(truth: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` (higher = positive) for binary ``truth``
    (0/1); NaN when only one class is present.

    Examples
    --------
    >>> roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    truth = np.asarray(truth).astype(bool)
    scores = np.asarray(scores, np.float64)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing their mean rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], len(values)]
    mean_ranks = (starts + ends + 1) / 2.0  # ranks start+1 .. end, their mean
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(mean_ranks, ends - starts)
    return ranks


def multiclass_auc(truth: np.ndarray, probabilities: np.ndarray) -> float:
    """ROC AUC of ``probabilities`` ``(N, K)``: the positive class's column for K = 2, else
    the mean one-vs-rest AUC over the classes present (NaN if fewer than two are)."""
    truth = np.asarray(truth)
    probabilities = np.asarray(probabilities, np.float64)
    if probabilities.shape[1] == 2:
        return roc_auc(truth == 1, probabilities[:, 1])
    present = [k for k in range(probabilities.shape[1]) if 0 < (truth == k).sum() < len(truth)]
    if len(present) < 2:
        return float("nan")
    return float(np.mean([roc_auc(truth == k, probabilities[:, k]) for k in present]))


def accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """The fraction of correct predictions."""
    return float(np.mean(np.asarray(truth) == np.asarray(predicted)))


def balanced_accuracy(truth: np.ndarray, predicted: np.ndarray) -> float:
    """The mean over the classes in ``truth`` of the fraction of that class predicted right.

    Examples
    --------
    >>> balanced_accuracy(np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0]))
    0.5
    """
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    return float(np.mean([np.mean(predicted[truth == k] == k) for k in np.unique(truth)]))
