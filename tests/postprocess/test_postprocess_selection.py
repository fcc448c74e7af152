"""Choosing post-processing from cross-validation cases: what the greedy rule keeps and
rejects, the empty-case convention, the evidence, and the postprocessing.json file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import RunFolderError
from medseg.metrics import dice
from medseg.postprocess import (
    POSTPROCESSING_FILE,
    LabelChoice,
    Operation,
    Postprocessing,
    apply_postprocessing,
    choose_postprocessing,
    load_postprocessing,
    postprocessing_table,
    save_postprocessing,
)

SHAPE = (28, 28, 12)
SPACING = (1.0, 1.0, 2.0)


def _ball(centre: tuple[float, ...], radius: float, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """A ball in millimetres (SPACING) around a voxel centre."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    distance = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, SPACING))
    return distance <= radius**2


def _mean_dice(cases, value: int, choice: Postprocessing | None = None) -> float:
    """Mean Dice of one label over cases (undefined cases skipped), after ``choice``."""
    values = []
    for prediction, reference, spacing in cases:
        if choice is not None:
            prediction = apply_postprocessing(prediction, choice, spacing)
        values.append(dice(reference == value, prediction == value))
    defined = [v for v in values if not math.isnan(v)]
    return sum(defined) / len(defined)


def _organ_with_specks(seed: int) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """One organ (label 1); the prediction is a little off and has spurious specks."""
    rng = np.random.default_rng(seed)
    centre = (14 + rng.integers(-2, 3), 14 + rng.integers(-2, 3), 6)
    reference = _ball(centre, 7.0).astype(np.uint8)
    prediction = _ball((centre[0] + 1, centre[1], centre[2]), 7.0).astype(np.uint8)
    prediction[1:3, 1:3, 1:3] = 1
    prediction[25:27, 2:4, 8:10] = 1
    return prediction, reference, SPACING


def test_keeps_the_largest_component_when_predictions_have_spurious_blobs() -> None:
    cases = [_organ_with_specks(seed) for seed in range(4)]
    choice = choose_postprocessing(cases, [1], ["organ"])
    label = choice.labels[0]
    assert choice.operations_for(1)[0] == Operation(name="keep_largest")
    assert choice.foreground_trial is None  # one label: the per-label step does the same
    assert label.name == "organ" and label.cases == 4 and choice.cases == 4
    assert label.mean_dice_before == pytest.approx(_mean_dice(cases, 1), abs=1e-12)
    assert label.mean_dice_after > label.mean_dice_before + 0.01
    # the evidence is what applying the choice to the whole images gives
    assert label.mean_dice_after == pytest.approx(_mean_dice(cases, 1, choice), abs=1e-12)
    first = label.trials[0]
    assert first.operation.name == "keep_largest" and first.accepted
    assert [t.accepted for t in label.trials].count(True) == len(label.operations)


def _two_kidneys(seed: int) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Label 1 is two kidneys of different size; the prediction has a speck in some cases."""
    reference = (_ball((8, 14, 6), 5.0) | _ball((21, 14, 6), 6.0)).astype(np.uint8)
    prediction = reference.copy()
    if seed % 2 == 0:
        prediction[14, 1:3, 1:3] = 1
    return prediction, reference, SPACING


def test_rejects_keep_largest_when_it_would_delete_a_real_second_component() -> None:
    cases = [_two_kidneys(seed) for seed in range(4)]
    choice = choose_postprocessing(cases, [1], {1: "kidneys"})
    label = choice.labels[0]
    names = [op.name for op in label.operations]
    assert "keep_largest" not in names
    keep = next(t for t in label.trials if t.operation.name == "keep_largest")
    assert not keep.accepted and keep.mean_dice < label.mean_dice_before
    # removing small components cleans the specks and keeps both kidneys
    assert "remove_small" in names
    assert label.mean_dice_after == pytest.approx(1.0)
    cleaned = apply_postprocessing(cases[0][0], choice, SPACING)
    np.testing.assert_array_equal(cleaned, cases[0][1])


def _two_organs(touching: bool, seed: int) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Labels 1 and 2, side by side (touching) or apart; label 1 is predicted with a speck."""
    reference = np.zeros(SHAPE, np.uint8)
    reference[_ball((10, 14, 6), 6.0)] = 1
    second = (16 if touching else 22, 14, 6)
    reference[_ball(second, 4.0) & (reference == 0)] = 2
    prediction = reference.copy()
    prediction[1 + seed % 2 : 3 + seed % 2, 24:26, 1:3] = 1
    return prediction, reference, SPACING


def test_whole_foreground_component_is_kept_when_the_labels_touch() -> None:
    cases = [_two_organs(True, seed) for seed in range(3)]
    choice = choose_postprocessing(cases, [1, 2], ["liver", "tumour"])
    assert choice.keep_largest_foreground
    assert choice.foreground_trial is not None and choice.foreground_trial.accepted
    # with the specks gone nothing is left for label 1 to gain
    assert choice.labels[0].operations == []
    assert choice.labels[0].mean_dice_after == pytest.approx(1.0)


def test_a_step_that_lowers_another_label_is_rejected() -> None:
    """Keeping the largest foreground component would clean label 1 but delete label 2,
    which lies apart: rejected, and label 1 gets its own clean-up instead."""
    cases = [_two_organs(False, seed) for seed in range(3)]
    choice = choose_postprocessing(cases, [2, 1, 0], ["liver", "tumour"])
    trial = choice.foreground_trial
    assert trial is not None and not trial.accepted
    assert trial.mean_dice[1] > choice.labels[0].mean_dice_before  # label 1 would gain ...
    assert trial.mean_dice[2] is None or trial.mean_dice[2] < 1.0  # ... label 2 would lose
    assert not choice.keep_largest_foreground
    assert choice.operations_for(1)[0].name == "keep_largest"
    assert choice.operations_for(2) == []
    assert [label.value for label in choice.labels] == [1, 2]


def test_empty_reference_cases_follow_the_metrics_convention() -> None:
    """A label absent from a reference: a predicted blob there scores 0; removing it makes
    the case undefined, and undefined cases are left out of the mean."""
    organ = _ball((14, 14, 6), 6.0).astype(np.uint8)
    stray = np.zeros(SHAPE, np.uint8)
    stray[3:5, 3:5, 3:5] = 1  # the only (so the largest) component: keep_largest keeps it
    nothing = np.zeros(SHAPE, np.uint8)
    cases = [
        (organ, organ, SPACING),
        (organ, organ, SPACING),
        (stray, nothing, SPACING),
        (nothing, nothing, SPACING),  # undefined from the start
    ]
    choice = choose_postprocessing(cases, [1])
    label = choice.labels[0]
    assert label.cases == 3
    assert label.mean_dice_before == pytest.approx(2 / 3)
    assert [op.name for op in label.operations] == ["remove_small"]
    assert label.mean_dice_after == pytest.approx(1.0)


def test_filling_holes_is_chosen_for_hollow_predictions() -> None:
    reference = _ball((14, 14, 6), 8.0).astype(np.uint8)
    prediction = reference.copy()
    prediction[_ball((14, 14, 6), 3.0)] = 0  # a closed cavity
    choice = choose_postprocessing([(prediction, reference, SPACING)] * 2, [1])
    assert choice.operations_for(1)[0].name in ("fill_holes", "fill_holes_slices")
    assert choice.labels[0].mean_dice_after == pytest.approx(1.0)


def test_gains_below_the_margin_are_not_taken() -> None:
    cases = [_organ_with_specks(seed) for seed in range(2)]
    choice = choose_postprocessing(cases, [1], min_gain=0.5)
    assert choice.is_empty and choice.min_gain == 0.5
    assert choice.labels[0].mean_dice_after == choice.labels[0].mean_dice_before
    assert all(not t.accepted for t in choice.labels[0].trials)


def test_two_dimensional_cases() -> None:
    reference = np.zeros((40, 40), np.uint8)
    reference[10:30, 10:30] = 1
    prediction = reference.copy()
    prediction[2:4, 35:37] = 1
    choice = choose_postprocessing([(prediction, reference, (0.5, 0.5))] * 2, [1])
    assert choice.operations_for(1)[0].name == "keep_largest"
    assert not any(t.operation.name == "fill_holes_slices" for t in choice.labels[0].trials)


def test_bad_case_lists_are_refused() -> None:
    good = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="shapes differ"):
        choose_postprocessing([(good, np.zeros((4, 5), np.uint8), (1.0, 1.0))], [1])
    with pytest.raises(ValueError, match="spacing"):
        choose_postprocessing([(good, good, (1.0, 1.0, 1.0))], [1])
    with pytest.raises(ValueError, match="no cases"):
        choose_postprocessing([], [1])
    with pytest.raises(ValueError, match="foreground"):
        choose_postprocessing([(good, good, (1.0, 1.0))], [0])


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    cases = [_two_organs(False, seed) for seed in range(2)]
    choice = choose_postprocessing(cases, [1, 2], ["liver", "tumour"])
    path = save_postprocessing(choice, tmp_path)
    assert path == tmp_path / POSTPROCESSING_FILE
    assert load_postprocessing(tmp_path) == choice
    raw = json.loads(path.read_text())
    assert raw["labels"][0]["operations"][0]["name"] == "keep_largest"
    assert set(raw["foreground_trial"]["mean_dice"]) == {"1", "2"}
    table = postprocessing_table(choice)
    assert "1 liver" in table and "keep largest component" in table and "rejected" in table


def test_load_refuses_broken_files(tmp_path: Path) -> None:
    path = tmp_path / POSTPROCESSING_FILE
    path.write_text("{not json")
    with pytest.raises(RunFolderError, match="not valid JSON"):
        load_postprocessing(tmp_path)
    path.write_text(json.dumps({"labels": [{"value": 1, "operations": [{"name": "dilate"}]}]}))
    with pytest.raises(RunFolderError, match=r"postprocessing\.json.*labels\.0\.operations"):
        load_postprocessing(tmp_path)
    path.write_text(json.dumps({"labels": [{"value": 1, "operations": [{"name": "opening"}]}]}))
    with pytest.raises(RunFolderError, match="radius"):
        load_postprocessing(tmp_path)
    path.write_text(json.dumps({"version": 99}))
    with pytest.raises(RunFolderError, match="newer"):
        load_postprocessing(tmp_path)


def test_apply_runs_labels_in_increasing_value_and_checks_spacing() -> None:
    # the centre voxel is a gap of label 1 (left-right) and of label 2 (up-down)
    labels = np.array(
        [
            [0, 0, 0, 0, 0],
            [0, 1, 2, 1, 0],
            [2, 1, 0, 1, 2],
            [0, 1, 2, 1, 0],
            [0, 0, 0, 0, 0],
        ],
        np.uint8,
    )
    closing = [Operation(name="closing", radius=1)]
    only_two = Postprocessing(labels=[LabelChoice(value=2, operations=closing)])
    assert apply_postprocessing(labels, only_two, (1.0, 1.0))[2, 2] == 2
    both = Postprocessing(
        labels=[LabelChoice(value=2, operations=closing), LabelChoice(value=1, operations=closing)]
    )
    out = apply_postprocessing(labels, both, (1.0, 1.0))
    assert out[2, 2] == 1, "label 1 runs first and takes the contested voxel"
    assert out.dtype == labels.dtype and labels[2, 2] == 0
    with pytest.raises(ValueError, match="spacing"):
        apply_postprocessing(labels, both, (1.0, 1.0, 1.0))
