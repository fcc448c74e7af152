"""Per-label statistics: descriptive values, bootstrap interval, counts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medseg.metrics import absent_label_scores, bootstrap_mean_ci, describe, summarise


def test_describe_by_hand() -> None:
    stats = describe([0.2, 0.4, 0.6, 0.8, float("nan")])
    assert stats["n"] == 4 and stats["undefined"] == 1
    assert stats["mean"] == pytest.approx(0.5)
    assert stats["std"] == pytest.approx(np.std([0.2, 0.4, 0.6, 0.8], ddof=1))
    assert stats["median"] == pytest.approx(0.5)
    assert (stats["q1"], stats["q3"]) == (pytest.approx(0.35), pytest.approx(0.65))
    low, high = stats["ci95"]
    assert 0.2 <= low < 0.5 < high <= 0.8


def test_describe_without_defined_values() -> None:
    stats = describe([float("nan")] * 3)
    assert stats["n"] == 0 and stats["undefined"] == 3
    assert stats["mean"] is None and stats["ci95"] is None


def test_bootstrap_is_seeded_and_covers_the_mean() -> None:
    values = np.random.default_rng(0).normal(0.8, 0.05, 50)
    first, second = bootstrap_mean_ci(values), bootstrap_mean_ci(values)
    assert first == second
    standard_error = values.std(ddof=1) / math.sqrt(values.size)
    # a 95% interval is about +-1.96 standard errors around the mean
    assert first[0] == pytest.approx(
        values.mean() - 1.96 * standard_error, abs=0.3 * standard_error
    )
    assert first[1] == pytest.approx(
        values.mean() + 1.96 * standard_error, abs=0.3 * standard_error
    )
    assert bootstrap_mean_ci(values, seed=1) != first


def _row(case: str, label: int, dice: float, tp: int, fp: int, fn: int) -> dict:
    metrics, lesions = absent_label_scores(1000)
    row = {**metrics, "case": case, "label": label, "dice": dice, "tp": tp, "fp": fp, "fn": fn}
    return row


def test_summarise_counts_empty_cases() -> None:
    rows = [
        _row("a", 1, 0.5, tp=5, fp=5, fn=5),
        _row("b", 1, float("nan"), tp=0, fp=0, fn=0),  # label absent from both
        _row("c", 1, 0.0, tp=0, fp=3, fn=0),  # only predicted
        _row("d", 1, 0.0, tp=0, fp=0, fn=4),  # only in the reference
    ]
    summary = summarise(rows, [1], {1: "liver"})
    liver = summary["labels"]["liver"]
    assert (liver["cases"], liver["undefined"]) == (4, 1)
    assert (liver["empty_both"], liver["empty_reference"], liver["empty_prediction"]) == (1, 1, 1)
    assert liver["mean_dice"] == pytest.approx(0.5 / 3)
    assert liver["metrics"]["dice"]["n"] == 3
    assert summary["cases"] == 4 and summary["mean_dice"] == pytest.approx(0.5 / 3)


def test_summarise_pools_lesion_counts() -> None:
    rows = [_row("a", 1, 0.5, 5, 5, 5), _row("b", 1, 0.5, 5, 5, 5)]
    lesions = [
        {"label": 1, "ref_lesions": 3, "pred_lesions": 2, "lesion_tp": 2, "lesion_fp": 0,
         "lesion_fn": 1},
        {"label": 1, "ref_lesions": 1, "pred_lesions": 3, "lesion_tp": 1, "lesion_fp": 2,
         "lesion_fn": 0},
    ]  # fmt: skip
    pooled = summarise(rows, [1], lesion_rows=lesions)["labels"]["1"]["lesions"]
    assert (pooled["tp"], pooled["fp"], pooled["fn"]) == (3, 2, 1)
    assert pooled["precision"] == pytest.approx(3 / 5) and pooled["recall"] == pytest.approx(3 / 4)
    assert pooled["f1"] == pytest.approx(6 / 9)
