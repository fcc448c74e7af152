"""Paired comparison of two evaluations: statistics checked against scipy, pairing, refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from medseg.errors import MedsegError
from medseg.metrics import Evaluation
from medseg.metrics.compare import compare_evaluations, paired_statistics


def test_paired_statistics_against_scipy() -> None:
    rng = np.random.default_rng(3)
    a = rng.uniform(0.6, 0.9, 40)
    b = a + rng.normal(0.02, 0.03, 40)
    a[5] = np.nan  # undefined for A: the pair is left out
    got = paired_statistics(a, b, higher_is_better=True)
    keep = ~np.isnan(a)
    difference = b[keep] - a[keep]
    assert got["n"] == 39
    assert got["mean_difference"] == pytest.approx(difference.mean())
    assert got["median_difference"] == pytest.approx(np.median(difference))
    assert got["wilcoxon_p"] == pytest.approx(stats.wilcoxon(difference).pvalue)
    assert got["ci95_low"] < difference.mean() < got["ci95_high"]
    assert got["b_better"] + got["a_better"] + got["ties"] == 39
    assert got["b_better"] == int((difference > 0).sum())


def test_lower_is_better_for_distances() -> None:
    a, b = np.array([5.0, 4.0, 3.0]), np.array([4.0, 4.0, 1.0])  # B closer in two cases
    got = paired_statistics(a, b, higher_is_better=False)
    assert (got["b_better"], got["a_better"], got["ties"]) == (2, 0, 1)
    assert got["mean_difference"] == pytest.approx(-1.0)


def test_identical_methods_and_no_pairs() -> None:
    same = paired_statistics(np.ones(5), np.ones(5), True)
    assert same["wilcoxon_p"] == 1.0 and (same["ci95_low"], same["ci95_high"]) == (0.0, 0.0)
    none = paired_statistics(np.full(3, np.nan), np.ones(3), True)
    assert none["n"] == 0 and math.isnan(none["mean_difference"]) and math.isnan(none["wilcoxon_p"])


def _evaluation(values: dict[str, float]) -> Evaluation:
    metrics = ("dice", "iou", "nsd", "hd95", "assd", "precision", "recall")
    rows = [{"case": case, "label": 1, "label_name": "liver", **dict.fromkeys(metrics, value)}
            for case, value in values.items()]  # fmt: skip
    return Evaluation(rows=rows, summary={}, labels={1: "liver"})


def test_compare_evaluations_pairs_by_case() -> None:
    a = _evaluation({"x": 0.5, "y": 0.7, "z": 0.9})
    b = _evaluation({"z": 0.9, "x": 0.6, "y": 0.8})  # another order: paired by name
    comparison = compare_evaluations(a, b, ("unet", "fcn"))
    dice = next(r for r in comparison.rows if r["metric"] == "dice")
    assert dice["mean_difference"] == pytest.approx(0.2 / 3)
    assert (dice["b_better"], dice["ties"]) == (2, 1)
    assert comparison.pairs[("x", 1, "dice")] == (0.5, 0.6)
    assert comparison.names == ("unet", "fcn")


def test_compare_evaluations_refuses_other_cases() -> None:
    a = _evaluation({"x": 0.5, "y": 0.7})
    b = _evaluation({"x": 0.5, "w": 0.7})
    with pytest.raises(MedsegError, match="only in A: y; only in B: w"):
        compare_evaluations(a, b)
