"""Per-label statistics over cases: mean, spread, bootstrap confidence interval, counts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from medseg.metrics.case import METRICS

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


def bootstrap_mean_ci(
    values: np.ndarray,
    level: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Bias-corrected and accelerated (BCa) bootstrap confidence interval of the mean, by
    `scipy.stats.bootstrap` (cases resampled with replacement, seeded so the same values
    always give the same interval). BCa corrects the percentile interval for the skew that
    per-case metrics have (a few failed cases in a long tail).

    Examples
    --------
    >>> bootstrap_mean_ci(np.array([1.0, 1.0, 1.0]))
    (1.0, 1.0)
    >>> low, high = bootstrap_mean_ci(np.arange(100.0))
    >>> bool(low < 49.5 < high)
    True
    """
    values = np.asarray(values, np.float64).ravel()
    if values.size == 0:
        return (math.nan, math.nan)
    if values.min() == values.max():  # no spread: every resample has the same mean
        return (float(values[0]), float(values[0]))
    result = stats.bootstrap(
        (values,),
        np.mean,
        n_resamples=resamples,
        confidence_level=level,
        method="BCa",
        rng=np.random.default_rng(seed),
        batch=max(1, 2_000_000 // values.size),  # bound the resample matrix's memory
    )
    low, high = result.confidence_interval
    return (float(low), float(high))


def describe(values: Sequence[float]) -> dict[str, object]:
    """Statistics of one metric over cases; NaN (undefined) values are counted, not used.

    Examples
    --------
    >>> d = describe([1.0, 2.0, 3.0, float("nan")])
    >>> d["mean"], d["median"], d["n"], d["undefined"]
    (2.0, 2.0, 3, 1)
    """
    array = np.asarray(values, np.float64)
    defined = array[~np.isnan(array)]
    result: dict[str, object] = {
        "n": int(defined.size),
        "undefined": int(array.size - defined.size),
    }
    if defined.size == 0:
        keys = ("mean", "std", "median", "q1", "q3", "min", "max")
        return {**result, **dict.fromkeys(keys), "ci95": None}
    q1, median, q3 = np.percentile(defined, [25, 50, 75])
    low, high = bootstrap_mean_ci(defined)
    return {
        **result,
        "mean": float(defined.mean()),
        "std": float(defined.std(ddof=1)) if defined.size > 1 else 0.0,
        "median": float(median),
        "q1": float(q1),
        "q3": float(q3),
        "min": float(defined.min()),
        "max": float(defined.max()),
        "ci95": [low, high],
    }


def _emptiness(rows: Sequence[Mapping[str, object]]) -> dict[str, int]:
    ref_empty = [float(r["tp"]) + float(r["fn"]) == 0 for r in rows]  # type: ignore[arg-type]
    pred_empty = [float(r["tp"]) + float(r["fp"]) == 0 for r in rows]  # type: ignore[arg-type]
    return {
        "empty_reference": sum(r and not p for r, p in zip(ref_empty, pred_empty)),
        "empty_prediction": sum(p and not r for r, p in zip(ref_empty, pred_empty)),
        "empty_both": sum(r and p for r, p in zip(ref_empty, pred_empty)),
    }


def _lesion_totals(rows: Sequence[Mapping[str, object]]) -> dict[str, object]:
    """Lesion counts pooled over cases and the detection rates of the pooled counts."""
    tp, fp, fn = (sum(int(r[k]) for r in rows) for k in ("lesion_tp", "lesion_fp", "lesion_fn"))  # type: ignore[call-overload]

    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    return {
        "reference_lesions": sum(int(r["ref_lesions"]) for r in rows),  # type: ignore[call-overload]
        "predicted_lesions": sum(int(r["pred_lesions"]) for r in rows),  # type: ignore[call-overload]
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
    }


def summarise(
    rows: Sequence[Mapping[str, object]],
    labels: Sequence[int],
    names: Mapping[int, str] | None = None,
    cases: int | None = None,
    lesion_rows: Sequence[Mapping[str, object]] = (),
) -> dict[str, object]:
    """Per-label statistics of every metric, with the counts of cases, empty cases and
    undefined values; ``mean_dice`` is the mean over labels of the per-label mean Dice.

    Undefined values (NaN: e.g. Dice when a label is absent from both reference and
    prediction) are left out of every statistic and counted in ``undefined``.
    """
    names = names or {}
    per_label: dict[str, object] = {}
    label_means = []
    for label in labels:
        label_rows = [r for r in rows if r["label"] == label]
        stats = {m: describe([float(r[m]) for r in label_rows]) for m in METRICS}  # type: ignore[arg-type]
        mean_dice = stats["dice"]["mean"]
        if mean_dice is not None:
            label_means.append(mean_dice)
        entry: dict[str, object] = {
            "label": int(label),
            "mean_dice": mean_dice,
            "cases": len(label_rows),
            "undefined": stats["dice"]["undefined"],
            **_emptiness(label_rows),
            "metrics": stats,
        }
        lesions = [r for r in lesion_rows if r["label"] == label]
        if lesions:
            entry["lesions"] = _lesion_totals(lesions)
        per_label[names.get(label, str(label))] = entry
    if cases is None:
        cases = len({r["case"] for r in rows})
    return {
        "cases": cases,
        "mean_dice": float(np.mean(label_means)) if label_means else None,
        "labels": per_label,
    }
