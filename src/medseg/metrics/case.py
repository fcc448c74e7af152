"""All metrics of one case: per label, overlap, volumes, surface distances and lesions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from medseg.bounding_box import bounding_box
from medseg.metrics.lesions import DEFAULT_LESION_IOU, LesionCounts, match_lesions
from medseg.metrics.overlap import Confusion
from medseg.metrics.surface import SurfaceDistances, surface_distances

DEFAULT_TOLERANCE_MM = 1.0

#: Metric columns of ``metrics.csv``, in order. Counts are voxels, volumes ml, distances mm.
METRICS: tuple[str, ...] = (
    "dice",
    "iou",
    "precision",
    "recall",
    "specificity",
    "accuracy",
    "f1",
    "tp",
    "fp",
    "fn",
    "tn",
    "ref_volume_ml",
    "pred_volume_ml",
    "volume_diff_ml",
    "hd",
    "hd95",
    "assd",
    "nsd",
)
#: Columns of ``lesions.csv`` after case and label.
LESION_METRICS: tuple[str, ...] = (
    "ref_lesions",
    "pred_lesions",
    "lesion_tp",
    "lesion_fp",
    "lesion_fn",
    "lesion_precision",
    "lesion_recall",
    "lesion_f1",
)
#: Metrics where a higher value is better (the others: lower is better or neither).
HIGHER_IS_BETTER = frozenset(
    {"dice", "iou", "precision", "recall", "specificity", "accuracy", "f1", "nsd"}
)


@dataclass(frozen=True)
class CaseScores:
    """Rows of one case: ``metrics`` (one per label, keys ``case``, ``label``,
    ``label_name`` and every name in METRICS) and ``lesions`` (the same for LESION_METRICS)."""

    metrics: list[dict[str, object]]
    lesions: list[dict[str, object]]


def score_label(
    reference: np.ndarray,
    prediction: np.ndarray,
    spacing: Sequence[float] | None = None,
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
    lesion_iou: float = DEFAULT_LESION_IOU,
) -> tuple[dict[str, float], dict[str, float]]:
    """Every metric of one label from two boolean masks: (metrics, lesion metrics).

    The work is done inside the bounding box of both masks; TN counts the whole image.

    Examples
    --------
    >>> ref = np.zeros((8, 8), bool); ref[2:6, 2:6] = True
    >>> scores, lesions = score_label(ref, np.roll(ref, 1, axis=0), spacing=(1.0, 1.0))
    >>> scores["dice"], scores["hd"], lesions["lesion_tp"]
    (0.75, 1.0, 1)
    """
    if reference.shape != prediction.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {prediction.shape}")
    reference = reference.astype(bool, copy=False)
    prediction = prediction.astype(bool, copy=False)
    step = (1.0,) * reference.ndim if spacing is None else tuple(float(s) for s in spacing)
    voxel_ml = float(np.prod(step)) / 1000.0
    total = int(reference.size)
    box = bounding_box(reference | prediction)
    if box is not None:  # everything below happens in the box; outside it both are empty
        reference, prediction = reference[box], prediction[box]
    confusion = Confusion.of_masks(reference, prediction, total=total)
    distances = surface_distances(reference, prediction, step)
    lesions = match_lesions(reference, prediction, lesion_iou)
    return _metrics(confusion, distances, voxel_ml, tolerance_mm), _lesion_metrics(lesions)


def absent_label_scores(voxels: int) -> tuple[dict[str, float], dict[str, float]]:
    """The scores of a label absent from both reference and prediction of an image of
    ``voxels`` voxels (what :func:`score_label` gives for two empty masks)."""
    empty = np.zeros(0, np.float64)
    confusion = Confusion(0, 0, 0, voxels)
    return (
        _metrics(confusion, SurfaceDistances(empty, empty), 0.0, DEFAULT_TOLERANCE_MM),
        _lesion_metrics(LesionCounts(0, 0, 0, 0, 0)),
    )


def _metrics(
    c: Confusion, distances: SurfaceDistances, voxel_ml: float, tolerance_mm: float
) -> dict[str, float]:
    return {
        "dice": c.dice,
        "iou": c.iou,
        "precision": c.precision,
        "recall": c.recall,
        "specificity": c.specificity,
        "accuracy": c.accuracy,
        "f1": c.f1,
        "tp": c.tp,
        "fp": c.fp,
        "fn": c.fn,
        "tn": c.tn,
        "ref_volume_ml": (c.tp + c.fn) * voxel_ml,
        "pred_volume_ml": (c.tp + c.fp) * voxel_ml,
        "volume_diff_ml": (c.fp - c.fn) * voxel_ml,
        "hd": distances.hausdorff,
        "hd95": distances.hausdorff_percentile(95.0),
        "assd": distances.average_symmetric,
        "nsd": distances.surface_dice(tolerance_mm),
    }


def _lesion_metrics(lesions: LesionCounts) -> dict[str, float]:
    return {
        "ref_lesions": lesions.reference_lesions,
        "pred_lesions": lesions.predicted_lesions,
        "lesion_tp": lesions.tp,
        "lesion_fp": lesions.fp,
        "lesion_fn": lesions.fn,
        "lesion_precision": lesions.precision,
        "lesion_recall": lesions.recall,
        "lesion_f1": lesions.f1,
    }


def score_case(
    case: str,
    reference: np.ndarray,
    prediction: np.ndarray,
    labels: Sequence[int],
    names: Mapping[int, str] | None = None,
    spacing: Sequence[float] | None = None,
    tolerances: Mapping[int, float] | None = None,
    default_tolerance_mm: float = DEFAULT_TOLERANCE_MM,
    lesion_iou: float = DEFAULT_LESION_IOU,
    threads: int = 1,
    regions: Mapping[int, Sequence[int]] | None = None,
) -> CaseScores:
    """The metric and lesion rows (one per label) of two label maps of one case.

    ``medseg evaluate`` and the validation at the end of training both call this, so their
    numbers agree. ``tolerances`` overrides the surface-Dice tolerance per label; labels are
    scored on up to ``threads`` threads at once. With ``regions`` each "label" is a region:
    the voxels holding any of its label values (nnU-Net's region-based scoring, as BraTS
    scores whole tumour, tumour core and enhancing tumour).
    """
    if reference.shape != prediction.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {prediction.shape}")
    names = names or {}
    tolerances = tolerances or {}

    def one_label(label: int) -> tuple[dict[str, float], dict[str, float]]:
        tolerance = tolerances.get(label, default_tolerance_mm)
        if regions is not None:
            values = list(regions[label])
            masks = np.isin(reference, values), np.isin(prediction, values)
        else:
            masks = reference == label, prediction == label
        return score_label(*masks, spacing, tolerance, lesion_iou)

    if threads > 1 and len(labels) > 1:
        # numpy, cc3d and the k-d tree release the GIL: labels overlap well on threads.
        with ThreadPoolExecutor(min(threads, len(labels))) as pool:
            results = list(pool.map(one_label, labels))
    else:
        results = [one_label(label) for label in labels]
    metric_rows: list[dict[str, object]] = []
    lesion_rows: list[dict[str, object]] = []
    for label, (metrics, lesions) in zip(labels, results):
        head = {"case": case, "label": int(label), "label_name": names.get(label, str(label))}
        metric_rows.append({**head, **metrics})
        lesion_rows.append({**head, **lesions})
    return CaseScores(metric_rows, lesion_rows)
