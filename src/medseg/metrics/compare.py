"""Two sets of predictions scored against the same references: paired differences.

For every label and metric, over the cases where both methods' values are defined: the mean
of each, the mean difference B − A with its BCa bootstrap 95% confidence interval, the median
difference, the Wilcoxon signed-rank p-value (two-sided, uncorrected for the number of
labels and metrics) and how many cases each method wins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from medseg.errors import MedsegError
from medseg.metrics.aggregate import bootstrap_mean_ci
from medseg.metrics.case import HIGHER_IS_BETTER
from medseg.metrics.evaluate import Evaluation

#: The metrics compared, in the order of the tables.
COMPARED_METRICS: tuple[str, ...] = (
    "dice",
    "iou",
    "nsd",
    "hd95",
    "assd",
    "precision",
    "recall",
)


@dataclass
class Comparison:
    """The paired statistics of two evaluations on the same cases and labels.

    ``rows`` holds one dict per label and metric (the columns of comparison.csv);
    ``pairs`` maps (case, label, metric) to the two methods' values.
    """

    names: tuple[str, str]
    rows: list[dict[str, object]]
    pairs: dict[tuple[str, int, str], tuple[float, float]]
    labels: dict[int, str]
    #: the two evaluations' warnings, each prefixed with its method's name
    warnings: list[str] = field(default_factory=list)


def paired_statistics(a: np.ndarray, b: np.ndarray, higher_is_better: bool) -> dict[str, object]:
    """Statistics of ``b - a`` over the positions where both values are finite.

    Examples
    --------
    >>> s = paired_statistics(np.array([0.8, 0.7, 0.9]), np.array([0.9, 0.8, 0.9]), True)
    >>> s["n"], round(s["mean_difference"], 3), s["b_better"], s["ties"]
    (3, 0.067, 2, 1)
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    difference = b[both] - a[both]
    n = int(difference.size)
    if n == 0:
        keys = ("mean_a", "mean_b", "mean_difference", "ci95_low", "ci95_high")
        return {
            "n": 0,
            **dict.fromkeys(keys, math.nan),
            "median_difference": math.nan,
            "wilcoxon_p": math.nan,
            "b_better": 0,
            "a_better": 0,
            "ties": 0,
        }
    low, high = bootstrap_mean_ci(difference)
    gain = difference if higher_is_better else -difference
    return {
        "n": n,
        "mean_a": float(a[both].mean()),
        "mean_b": float(b[both].mean()),
        "mean_difference": float(difference.mean()),
        "ci95_low": low,
        "ci95_high": high,
        "median_difference": float(np.median(difference)),
        "wilcoxon_p": _wilcoxon_p(difference),
        "b_better": int((gain > 0).sum()),
        "a_better": int((gain < 0).sum()),
        "ties": int((gain == 0).sum()),
    }


def _wilcoxon_p(difference: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value; zero differences are dropped (Wilcoxon's
    original treatment), and a sample without any non-zero difference gives 1."""
    if not np.any(difference != 0):
        return 1.0
    return float(stats.wilcoxon(difference, zero_method="wilcox").pvalue)


def _values(evaluation: Evaluation) -> dict[tuple[str, int], Mapping[str, object]]:
    return {(str(r["case"]), int(r["label"])): r for r in evaluation.rows}  # type: ignore[call-overload]


def compare_evaluations(
    a: Evaluation,
    b: Evaluation,
    names: tuple[str, str] = ("A", "B"),
    metrics: Sequence[str] = COMPARED_METRICS,
) -> Comparison:
    """Pair two evaluations case by case and label by label.

    Both must score the same cases and labels (the same references); otherwise a
    :class:`MedsegError` names what differs.
    """
    values_a, values_b = _values(a), _values(b)
    if set(values_a) != set(values_b):
        only_a = sorted({case for case, _ in set(values_a) - set(values_b)})
        only_b = sorted({case for case, _ in set(values_b) - set(values_a)})
        raise MedsegError(
            "the two evaluations do not score the same cases and labels: "
            f"only in {names[0]}: {_some(only_a)}; only in {names[1]}: {_some(only_b)}"
        )
    keys = sorted(values_a)
    pairs: dict[tuple[str, int, str], tuple[float, float]] = {}
    rows: list[dict[str, object]] = []
    for label, label_name in a.labels.items():
        label_keys = [k for k in keys if k[1] == label]
        for metric in metrics:
            column_a = np.array([float(values_a[k][metric]) for k in label_keys])  # type: ignore[arg-type]
            column_b = np.array([float(values_b[k][metric]) for k in label_keys])  # type: ignore[arg-type]
            for (case, _), x, y in zip(label_keys, column_a, column_b):
                pairs[(case, label, metric)] = (float(x), float(y))
            statistics = paired_statistics(column_a, column_b, metric in HIGHER_IS_BETTER)
            rows.append({"label": label, "label_name": label_name, "metric": metric, **statistics})
    warnings = [f"{name}: {w}" for name, e in zip(names, (a, b)) for w in e.warnings]
    return Comparison(names, rows, pairs, dict(a.labels), warnings)


def _some(cases: Sequence[str], shown: int = 5) -> str:
    if not cases:
        return "none"
    more = f" and {len(cases) - shown} more" if len(cases) > shown else ""
    return ", ".join(cases[:shown]) + more
