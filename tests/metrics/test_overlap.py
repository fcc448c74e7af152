"""Dice on masks and label maps, with hand-computed expectations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medseg.metrics import Confusion, LesionCounts, dice, dice_per_label


def _cube(corner: tuple[int, int, int], size: int = 4, grid: int = 10) -> np.ndarray:
    mask = np.zeros((grid, grid, grid), bool)
    x, y, z = corner
    mask[x : x + size, y : y + size, z : z + size] = True
    return mask


def test_cubes_shifted_by_one_voxel() -> None:
    # Two 4x4x4 cubes (64 voxels each), one shifted by one voxel along x: they share a
    # 3x4x4 block of 48 voxels, so Dice = 2 * 48 / (64 + 64) = 0.75.
    a, b = _cube((2, 2, 2)), _cube((3, 2, 2))
    assert a.sum() == b.sum() == 64
    assert (a & b).sum() == 48
    assert dice(a, b) == pytest.approx(0.75)
    assert dice(b, a) == pytest.approx(0.75)


def test_cubes_shifted_diagonally() -> None:
    # Shifted by one voxel along every axis: the overlap is 3x3x3 = 27 voxels,
    # Dice = 54 / 128.
    assert dice(_cube((2, 2, 2)), _cube((3, 3, 3))) == pytest.approx(54 / 128)


def test_cubes_of_different_sizes() -> None:
    # A 2x2x2 cube (8 voxels) inside a 4x4x4 cube (64): Dice = 2 * 8 / 72.
    assert dice(_cube((2, 2, 2)), _cube((2, 2, 2), size=2)) == pytest.approx(16 / 72)


def test_small_1d_example() -> None:
    a = np.array([1, 1, 0, 0], bool)
    b = np.array([1, 0, 0, 0], bool)
    assert dice(a, b) == pytest.approx(2 / 3)


def test_identical_masks() -> None:
    assert dice(_cube((1, 1, 1)), _cube((1, 1, 1))) == 1.0


def test_disjoint_masks() -> None:
    assert dice(_cube((0, 0, 0), size=3), _cube((5, 5, 5), size=3)) == 0.0


def test_both_empty_is_nan() -> None:
    empty = np.zeros((3, 3), bool)
    assert math.isnan(dice(empty, empty))


@pytest.mark.parametrize("empty_side", ["reference", "prediction"])
def test_one_empty_is_zero(empty_side: str) -> None:
    full, empty = _cube((1, 1, 1)), np.zeros((10, 10, 10), bool)
    pair = (empty, full) if empty_side == "reference" else (full, empty)
    assert dice(*pair) == 0.0


def test_dice_is_a_python_float() -> None:
    assert type(dice(_cube((1, 1, 1)), _cube((2, 1, 1)))) is float


def test_integer_masks_are_treated_as_masks() -> None:
    assert dice(np.array([2, 0, 0]), np.array([1, 0, 0])) == 1.0


def test_dice_per_label_by_hand() -> None:
    reference = np.array(
        [
            [0, 1, 1, 0],
            [0, 1, 1, 0],
            [2, 2, 0, 0],
        ]
    )
    prediction = np.array(
        [
            [0, 1, 1, 1],
            [0, 0, 1, 0],
            [2, 0, 0, 3],
        ]
    )
    scores = dice_per_label(reference, prediction, [1, 2, 3, 4])
    # label 1: reference 4 voxels, prediction 4, shared 3 -> 6/8
    assert scores[1] == pytest.approx(6 / 8)
    # label 2: reference 2, prediction 1, shared 1 -> 2/3
    assert scores[2] == pytest.approx(2 / 3)
    # label 3: only in the prediction -> 0
    assert scores[3] == 0.0
    # label 4: in neither -> undefined
    assert math.isnan(scores[4])
    assert list(scores) == [1, 2, 3, 4]


def test_dice_per_label_only_scores_the_labels_asked_for() -> None:
    reference = np.array([0, 1, 2])
    assert list(dice_per_label(reference, reference, [2])) == [2]
    assert dice_per_label(reference, reference, []) == {}


def test_dice_per_label_refuses_different_shapes() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        dice_per_label(np.zeros((3, 3), int), np.zeros((3, 4), int), [1])


def test_confusion_counts_and_ratios_by_hand() -> None:
    # reference 4 voxels, prediction 3, sharing 2, in an image of 10
    reference = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], bool)
    prediction = np.array([0, 0, 1, 1, 1, 0, 0, 0, 0, 0], bool)
    c = Confusion.of_masks(reference, prediction)
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 2, 5)
    assert c.dice == pytest.approx(4 / 7) and c.f1 == c.dice
    assert c.iou == pytest.approx(2 / 5)
    assert c.precision == pytest.approx(2 / 3) and c.recall == pytest.approx(1 / 2)
    assert c.specificity == pytest.approx(5 / 6) and c.accuracy == pytest.approx(7 / 10)


def test_confusion_of_a_crop_counts_the_whole_image() -> None:
    c = Confusion.of_masks(np.ones(3, bool), np.ones(3, bool), total=100)
    assert (c.tp, c.tn) == (3, 97)


def test_confusion_empty_combinations() -> None:
    both = Confusion(0, 0, 0, 10)
    assert all(math.isnan(v) for v in (both.dice, both.iou, both.precision, both.recall))
    assert both.specificity == 1.0 and both.accuracy == 1.0
    only_predicted = Confusion(0, 3, 0, 7)
    assert only_predicted.dice == 0.0 and only_predicted.precision == 0.0
    assert math.isnan(only_predicted.recall)
    only_reference = Confusion(0, 0, 3, 7)
    assert only_reference.dice == 0.0 and only_reference.recall == 0.0
    assert math.isnan(only_reference.precision)


@pytest.mark.parametrize(
    ("tp", "fp", "fn", "expected"),
    [
        (3, 1, 2, (3 / 4, 3 / 5, 6 / 9)),
        (2, 0, 0, (1.0, 1.0, 1.0)),
        (0, 4, 1, (0.0, 0.0, 0.0)),
        (0, 0, 2, (math.nan, 0.0, 0.0)),  # nothing predicted
        (0, 2, 0, (0.0, math.nan, 0.0)),  # nothing in the reference
        (0, 0, 0, (math.nan, math.nan, math.nan)),
    ],
)
def test_voxels_and_lesions_share_precision_recall_and_f1(
    tp: int, fp: int, fn: int, expected: tuple[float, float, float]
) -> None:
    voxels = Confusion(tp, fp, fn, tn=50)
    lesions = LesionCounts(tp + fn, tp + fp, tp, fp, fn)
    for counts in (voxels, lesions):
        got = (counts.precision, counts.recall, counts.f1)
        assert got == pytest.approx(expected, nan_ok=True)
        assert all(type(v) is float for v in got)
    assert voxels.f1 == pytest.approx(voxels.dice, nan_ok=True)
