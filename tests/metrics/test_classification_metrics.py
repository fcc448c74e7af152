"""Classification metrics against scikit-learn's, on random and tied scores."""

from __future__ import annotations

import numpy as np
import pytest

from medseg.metrics.classification import (
    accuracy,
    balanced_accuracy,
    bootstrap_interval,
    calibration,
    class_scores,
    confusion_matrix,
    multiclass_auc,
    roc_auc,
    roc_curve,
    youden_threshold,
)

metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is a test extra")


@pytest.mark.parametrize("seed", range(5))
def test_scores_equal_scikit_learns(seed):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300), 1)  # many ties
    assert roc_auc(truth, scores) == pytest.approx(metrics.roc_auc_score(truth, scores), abs=1e-12)
    fpr, tpr, _ = metrics.roc_curve(truth, scores, drop_intermediate=False)
    curve = roc_curve(truth, scores)
    np.testing.assert_allclose(curve[0], fpr)
    np.testing.assert_allclose(curve[1], tpr)
    three = rng.integers(0, 3, 300)
    probabilities = rng.dirichlet([1, 1, 1], 300)
    expected = metrics.roc_auc_score(three, probabilities, multi_class="ovr", average="macro")
    assert multiclass_auc(three, probabilities) == pytest.approx(expected, abs=1e-12)
    predicted = rng.integers(0, 3, 300)
    assert accuracy(three, predicted) == pytest.approx(metrics.accuracy_score(three, predicted))
    assert balanced_accuracy(three, predicted) == pytest.approx(
        metrics.balanced_accuracy_score(three, predicted)
    )
    matrix = confusion_matrix(three, predicted, 3)
    np.testing.assert_array_equal(matrix, metrics.confusion_matrix(three, predicted))
    for k in range(3):
        ours = class_scores(matrix, k)
        truth_k, predicted_k = three == k, predicted == k
        assert ours["sensitivity"] == pytest.approx(metrics.recall_score(truth_k, predicted_k))
        assert ours["precision"] == pytest.approx(metrics.precision_score(truth_k, predicted_k))
        assert ours["f1"] == pytest.approx(metrics.f1_score(truth_k, predicted_k))
        assert ours["specificity"] == pytest.approx(metrics.recall_score(~truth_k, ~predicted_k))


def test_youden_picks_the_cut_that_separates_and_the_interval_brackets_the_auc():
    truth = np.array([0, 0, 0, 1, 1, 1])
    assert youden_threshold(truth, np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])) == pytest.approx(0.45)
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 200)
    positive = truth * 0.6 + rng.random(200) * 0.4
    probabilities = np.c_[1 - positive, positive]
    low, high = bootstrap_interval(truth, probabilities, resamples=500)
    assert low <= multiclass_auc(truth, probabilities) <= high and high - low < 0.2


def test_calibration_error_is_zero_when_confidence_matches_accuracy():
    truth = np.array([0] * 8 + [1] * 2)
    probabilities = np.tile([0.8, 0.2], (10, 1))  # 80 % confident, right 8 times in 10
    error, table = calibration(truth, probabilities)
    assert error == pytest.approx(0.0) and table[0]["count"] == 10
    wrong = np.tile([0.99, 0.01], (10, 1))
    assert calibration(truth, wrong)[0] == pytest.approx(0.19)
