"""Lesion-wise detection: connected components of reference and prediction, matched by
overlap (numpy + connected-components-3d)."""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np

from medseg.metrics.overlap import PrecisionRecall

DEFAULT_LESION_IOU = 0.1


@dataclass(frozen=True)
class LesionCounts(PrecisionRecall):
    """Detected (TP), spurious (FP) and missed (FN) lesions of one label in one case, with
    their precision, recall and F1 (NaN without predicted, reference, or any lesions)."""

    reference_lesions: int
    predicted_lesions: int
    tp: int
    fp: int
    fn: int


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components of a 2D or 3D mask with full connectivity (8 in 2D, 26 in 3D):
    a label image numbered 1..n and n."""
    mask = np.ascontiguousarray(mask, dtype=bool)
    connectivity = 26 if mask.ndim == 3 else 8
    labels, count = cc3d.connected_components(mask, connectivity=connectivity, return_N=True)
    return labels, int(count)


def match_lesions(
    reference: np.ndarray, prediction: np.ndarray, iou_threshold: float = DEFAULT_LESION_IOU
) -> LesionCounts:
    """Match the connected components of two masks one to one.

    Every pair of a reference and a predicted component with IoU above ``iou_threshold`` is
    a candidate; pairs are taken greedily by decreasing IoU, each component at most once.
    Matched pairs are TP, unmatched predicted components FP, unmatched reference ones FN.

    Examples
    --------
    >>> ref = np.zeros((1, 12), bool); ref[0, 1:4] = ref[0, 7:10] = True
    >>> pred = np.zeros((1, 12), bool); pred[0, 2:4] = True; pred[0, 11] = True
    >>> match_lesions(ref, pred)
    LesionCounts(reference_lesions=2, predicted_lesions=2, tp=1, fp=1, fn=1)
    """
    if reference.shape != prediction.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {prediction.shape}")
    reference = reference.astype(bool, copy=False)
    prediction = prediction.astype(bool, copy=False)
    ref_labels, n_ref = components(reference)
    pred_labels, n_pred = components(prediction)
    if n_ref == 0 or n_pred == 0:
        return LesionCounts(n_ref, n_pred, 0, n_pred, n_ref)
    if n_ref == 1 and n_pred == 1:  # one object each (the organ case): IoU of the masks
        both = int(np.count_nonzero(reference & prediction))
        union = int(np.count_nonzero(reference)) + int(np.count_nonzero(prediction)) - both
        tp = int(both / union > iou_threshold)
        return LesionCounts(1, 1, tp, 1 - tp, 1 - tp)
    intersection, ref_sizes, pred_sizes, ref_ids, pred_ids = _overlaps(
        reference, ref_labels, n_ref, prediction, pred_labels, n_pred
    )
    iou = intersection / (ref_sizes[ref_ids] + pred_sizes[pred_ids] - intersection)
    used_ref: set[int] = set()
    used_pred: set[int] = set()
    for k in np.argsort(-iou, kind="stable"):
        if iou[k] <= iou_threshold:
            break
        r, p = int(ref_ids[k]), int(pred_ids[k])
        if r not in used_ref and p not in used_pred:
            used_ref.add(r)
            used_pred.add(p)
    tp = len(used_ref)
    return LesionCounts(n_ref, n_pred, tp, n_pred - tp, n_ref - tp)


#: Above this many (reference, prediction) component pairs, overlapping pairs are found by
#: sorting instead of in a dense joint histogram.
_DENSE_PAIRS = 4_000_000


def _overlaps(
    reference: np.ndarray,
    ref_labels: np.ndarray,
    n_ref: int,
    prediction: np.ndarray,
    pred_labels: np.ndarray,
    n_pred: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Intersection sizes of every overlapping (reference, predicted) component pair, the
    component sizes, and the pairs' ids: (intersection, ref_sizes, pred_sizes, ref_ids,
    pred_ids)."""
    ref_sizes = _sizes(reference, ref_labels, n_ref)
    pred_sizes = _sizes(prediction, pred_labels, n_pred)
    both = reference & prediction
    width = n_pred + 1
    ref_in_both = ref_labels[both].astype(np.int64) if n_ref > 1 else np.int64(1)
    pred_in_both = pred_labels[both] if n_pred > 1 else np.int64(1)
    pair_ids = np.broadcast_to(ref_in_both * width + pred_in_both, (int(np.count_nonzero(both)),))
    if (n_ref + 1) * width <= _DENSE_PAIRS:
        counts = np.bincount(pair_ids, minlength=(n_ref + 1) * width)
        pairs = np.flatnonzero(counts)
        intersection = counts[pairs]
    else:
        pairs, intersection = np.unique(pair_ids, return_counts=True)
    ref_ids, pred_ids = np.divmod(pairs, width)
    return intersection, ref_sizes, pred_sizes, ref_ids, pred_ids


def _sizes(mask: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Voxels per component, indexed by component number (index 0 unused)."""
    if count == 1:  # the common case of one object: no need to look at the labels
        return np.array([0, np.count_nonzero(mask)])
    return np.bincount(labels[mask], minlength=count + 1)
