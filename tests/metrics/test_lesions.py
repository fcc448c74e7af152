"""Lesion-wise detection: components, one-to-one matching by IoU, empty cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medseg.metrics import LesionCounts, match_lesions
from medseg.metrics.lesions import components


def _boxes(shape: tuple[int, ...], *boxes: tuple[slice, ...]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for box in boxes:
        mask[box] = True
    return mask


def test_components_use_full_connectivity() -> None:
    diagonal = np.zeros((3, 3, 3), bool)
    diagonal[0, 0, 0] = diagonal[1, 1, 1] = True  # touch at a corner only
    assert components(diagonal)[1] == 1
    plane = np.zeros((3, 3), bool)
    plane[0, 0] = plane[1, 1] = True
    assert components(plane)[1] == 1


def test_detected_missed_and_spurious_lesions() -> None:
    shape = (20, 20, 5)
    reference = _boxes(
        shape,
        np.s_[1:5, 1:5, 1:3],  # found: the prediction overlaps it well
        np.s_[10:14, 10:14, 1:3],  # missed: nothing predicted there
    )
    prediction = _boxes(
        shape,
        np.s_[2:5, 1:5, 1:3],  # IoU 24/32 with the first lesion
        np.s_[16:19, 1:4, 1:3],  # spurious
    )
    counts = match_lesions(reference, prediction)
    assert counts == LesionCounts(2, 2, tp=1, fp=1, fn=1)
    assert counts.precision == 0.5 and counts.recall == 0.5 and counts.f1 == 0.5


def test_overlap_below_the_threshold_is_no_match() -> None:
    shape = (1, 40)
    reference = _boxes(shape, np.s_[0:1, 0:20])
    prediction = _boxes(shape, np.s_[0:1, 18:38])  # IoU = 2 / 38 = 0.053
    assert match_lesions(reference, prediction).tp == 0
    assert match_lesions(reference, prediction, iou_threshold=0.05).tp == 1


def test_matching_is_one_to_one_best_first() -> None:
    # One predicted component covers two reference lesions: it matches only the one it
    # overlaps most; the other reference lesion is missed.
    shape = (1, 30)
    reference = _boxes(shape, np.s_[0:1, 0:10], np.s_[0:1, 12:15])
    prediction = _boxes(shape, np.s_[0:1, 0:15])
    counts = match_lesions(reference, prediction)
    assert counts == LesionCounts(2, 1, tp=1, fp=0, fn=1)


def test_single_objects_use_the_mask_iou() -> None:
    reference = _boxes((10, 10), np.s_[0:4, 0:4])
    assert match_lesions(reference, _boxes((10, 10), np.s_[0:4, 0:1])).tp == 1  # IoU 0.25
    assert match_lesions(reference, _boxes((10, 10), np.s_[3:6, 3:6])).tp == 0  # IoU 1/24


def test_many_components_take_the_sparse_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # A grid of nuclei-like dots: the dense and the sparse overlap counting must agree.
    reference = np.zeros((60, 60), bool)
    reference[::3, ::3] = True  # 400 isolated pixels
    prediction = reference.copy()
    prediction[::6, ::3] = False  # half of the rows of dots missed
    prediction[1::6, 1::3] = True  # spurious dots next to them
    dense = match_lesions(reference, prediction)
    monkeypatch.setattr("medseg.metrics.lesions._DENSE_PAIRS", 0)
    assert match_lesions(reference, prediction) == dense
    assert dense.reference_lesions == 400 and dense.tp == 200 and dense.fn == 200


@pytest.mark.parametrize(
    ("ref_has", "pred_has", "expected"),
    [
        (False, False, (math.nan, math.nan, math.nan)),
        (True, False, (math.nan, 0.0, 0.0)),
        (False, True, (0.0, math.nan, 0.0)),
    ],
)
def test_empty_cases(ref_has: bool, pred_has: bool, expected: tuple[float, ...]) -> None:
    blob = _boxes((8, 8), np.s_[2:4, 2:4])
    empty = np.zeros((8, 8), bool)
    counts = match_lesions(blob if ref_has else empty, blob if pred_has else empty)
    got = (counts.precision, counts.recall, counts.f1)
    for value, want in zip(got, expected):
        assert (math.isnan(value) and math.isnan(want)) or value == want
