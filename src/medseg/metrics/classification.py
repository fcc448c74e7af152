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


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """``(classes, classes)`` counts: row = true class, column = predicted class.

    Examples
    --------
    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 2).tolist()
    [[1, 0], [1, 1]]
    """
    pairs = np.asarray(truth) * classes + np.asarray(predicted)
    return np.bincount(pairs, minlength=classes * classes).reshape(classes, classes)


def class_scores(matrix: np.ndarray, k: int) -> dict[str, float]:
    """Class ``k`` against the rest from a confusion matrix: sensitivity (recall),
    specificity, precision, F1 (NaN where a denominator is 0)."""
    tp = matrix[k, k]
    fn, fp = matrix[k].sum() - tp, matrix[:, k].sum() - tp
    tn = matrix.sum() - tp - fn - fp
    return {
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else float("nan")


def youden_threshold(truth: np.ndarray, scores: np.ndarray) -> float:
    """The score threshold (predict positive at ``score >= t``) with the largest
    sensitivity + specificity - 1; the middle between two neighbouring scores."""
    truth = np.asarray(truth).astype(bool)
    scores = np.asarray(scores, np.float64)
    candidates = np.unique(scores)
    if len(candidates) < 2 or truth.all() or not truth.any():
        return 0.5
    cuts = np.r_[candidates[0], (candidates[1:] + candidates[:-1]) / 2]
    positive = scores[None, :] >= cuts[:, None]
    sensitivity = (positive & truth).sum(1) / truth.sum()
    specificity = (~positive & ~truth).sum(1) / (~truth).sum()
    return float(cuts[int(np.argmax(sensitivity + specificity))])


def bootstrap_interval(
    truth: np.ndarray, probabilities: np.ndarray, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """The 95 % percentile bootstrap interval of `multiclass_auc` (cases resampled with
    replacement; resamples with one class only are skipped)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        pick = rng.integers(0, len(truth), len(truth))
        value = multiclass_auc(truth[pick], probabilities[pick])
        if np.isfinite(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def calibration(
    truth: np.ndarray, probabilities: np.ndarray, bins: int = 10
) -> tuple[float, list[dict[str, float]]]:
    """Expected calibration error of the predicted class's probability (confidence) in
    ``bins`` equal-width bins, and the reliability table (per bin: count, mean confidence,
    accuracy). ECE = sum over bins of (count / N) * |accuracy - confidence|."""
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == np.asarray(truth)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    table, error = [], 0.0
    for b in range(bins):
        inside = which == b
        if not inside.any():
            continue
        gap = abs(correct[inside].mean() - confidence[inside].mean())
        error += inside.mean() * gap
        table.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": int(inside.sum()),
                "confidence": float(confidence[inside].mean()),
                "accuracy": float(correct[inside].mean()),
            }
        )
    return float(error), table


def roc_curve(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    truth = np.asarray(truth).astype(bool)
    order = np.argsort(-np.asarray(scores, np.float64), kind="mergesort")
    ordered, hits = np.asarray(scores)[order], truth[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(ordered)), len(ordered) - 1]
    tpr = np.r_[0, np.cumsum(hits)[last_of_tie]] / max(hits.sum(), 1)
    fpr = np.r_[0, np.cumsum(~hits)[last_of_tie]] / max((~hits).sum(), 1)
    return fpr, tpr
