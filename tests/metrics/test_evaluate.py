"""Scoring a folder of predictions against a folder of references."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import MedsegError
from medseg.io import Image, spacing_affine, write_image
from medseg.metrics import Evaluation, evaluate_folders, summarise, write_evaluation

AFFINE = spacing_affine((1.0, 1.0, 2.0))
SHAPE = (6, 6, 4)


def _labels(*boxes: tuple[int, slice, slice, slice]) -> np.ndarray:
    array = np.zeros(SHAPE, np.uint8)
    for value, *box in boxes:
        array[tuple(box)] = value
    return array


def _write(folder: Path, name: str, array: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path = folder / name
    write_image(Image(array[None], affine), path)
    return path


# Case a: label 1 is a 2x2x2 block in the reference and the same block shifted by one voxel
# along x in the prediction (shared 1x2x2 = 4 voxels, Dice = 8/16); label 2 is a 2x2x1 block
# in both (Dice 1).
# Case b: label 1 is identical (Dice 1); label 2 is absent in both (undefined, NaN).
REF_A = _labels(
    (1, slice(0, 2), slice(0, 2), slice(0, 2)), (2, slice(4, 6), slice(4, 6), slice(3, 4))
)
PRED_A = _labels(
    (1, slice(1, 3), slice(0, 2), slice(0, 2)), (2, slice(4, 6), slice(4, 6), slice(3, 4))
)
REF_B = _labels((1, slice(2, 5), slice(2, 5), slice(1, 3)))
PRED_B = REF_B.copy()


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    refs, preds = tmp_path / "refs", tmp_path / "preds"
    refs.mkdir()
    preds.mkdir()
    _write(refs, "a.nii.gz", REF_A)
    _write(refs, "b.nii.gz", REF_B)
    _write(preds, "a.nii.gz", PRED_A)
    _write(preds, "b.nii.gz", PRED_B)
    return preds, refs


def _score(evaluation: Evaluation, case: str, label: int) -> float:
    (row,) = [r for r in evaluation.rows if r["case"] == case and r["label"] == label]
    return float(row["dice"])  # type: ignore[arg-type]


def test_evaluate_folders_by_hand(folders: tuple[Path, Path]) -> None:
    preds, refs = folders
    evaluation = evaluate_folders(preds, refs)
    assert len(evaluation.rows) == 4
    assert _score(evaluation, "a", 1) == pytest.approx(0.5)
    assert _score(evaluation, "a", 2) == pytest.approx(1.0)
    assert _score(evaluation, "b", 1) == pytest.approx(1.0)
    assert math.isnan(_score(evaluation, "b", 2))
    assert evaluation.warnings == []
    assert {r["label_name"] for r in evaluation.rows} == {"1", "2"}


def test_summary_skips_and_counts_undefined_cases(folders: tuple[Path, Path]) -> None:
    summary = evaluate_folders(*folders).summary
    assert summary["cases"] == 2
    labels = summary["labels"]
    assert labels["1"] == {"label": 1, "mean_dice": pytest.approx(0.75), "cases": 2, "undefined": 0}
    # label 2: Dice 1 in case a, undefined in case b -> mean over case a only, not (1 + 0)/2.
    assert labels["2"] == {"label": 2, "mean_dice": pytest.approx(1.0), "cases": 2, "undefined": 1}
    assert summary["mean_dice"] == pytest.approx((0.75 + 1.0) / 2)


def test_one_empty_scores_zero(folders: tuple[Path, Path]) -> None:
    preds, refs = folders
    _write(preds, "b.nii.gz", np.zeros(SHAPE, np.uint8))
    evaluation = evaluate_folders(preds, refs)
    assert _score(evaluation, "b", 1) == 0.0
    assert evaluation.summary["labels"]["1"]["mean_dice"] == pytest.approx(0.25)


def test_label_absent_everywhere_has_no_mean(folders: tuple[Path, Path]) -> None:
    evaluation = evaluate_folders(*folders, labels=[1, 5])
    label5 = evaluation.summary["labels"]["5"]
    assert label5 == {"label": 5, "mean_dice": None, "cases": 2, "undefined": 2}
    assert evaluation.summary["mean_dice"] == pytest.approx(0.75), "label 5 stays out of the mean"


def test_labels_argument_restricts_the_scores(folders: tuple[Path, Path]) -> None:
    evaluation = evaluate_folders(*folders, labels=[2])
    assert {r["label"] for r in evaluation.rows} == {2}
    assert list(evaluation.summary["labels"]) == ["2"]


def test_label_names_come_from_a_dataset_json_beside_the_references(
    folders: tuple[Path, Path],
) -> None:
    preds, refs = folders
    spec = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "liver": 1, "spleen": 2, "kidney": 3},
        "numTraining": 2,
        "file_ending": ".nii.gz",
    }
    (refs.parent / "dataset.json").write_text(json.dumps(spec))
    evaluation = evaluate_folders(preds, refs)
    assert list(evaluation.summary["labels"]) == ["liver", "spleen", "kidney"]
    assert evaluation.summary["labels"]["kidney"]["undefined"] == 2
    assert {r["label_name"] for r in evaluation.rows if r["label"] == 1} == {"liver"}


def test_prediction_without_reference_is_a_warning(folders: tuple[Path, Path]) -> None:
    preds, refs = folders
    _write(preds, "extra.nii.gz", PRED_B)
    evaluation = evaluate_folders(preds, refs)
    assert evaluation.summary["cases"] == 2
    assert len(evaluation.warnings) == 1
    assert str(preds / "extra.nii.gz") in evaluation.warnings[0]


def test_missing_prediction_is_an_error(folders: tuple[Path, Path]) -> None:
    preds, refs = folders
    (preds / "b.nii.gz").unlink()
    with pytest.raises(MedsegError, match="prediction missing") as info:
        evaluate_folders(preds, refs)
    assert str(preds / "b.nii.gz") in str(info.value)


def test_several_missing_predictions_are_counted(folders: tuple[Path, Path]) -> None:
    preds, refs = folders
    _write(refs, "c.nii.gz", REF_B)
    _write(refs, "d.nii.gz", REF_B)
    with pytest.raises(MedsegError, match=r"and 1 more") as info:
        evaluate_folders(preds, refs)
    assert str(preds / "c.nii.gz") in str(info.value)


def test_prediction_on_another_shape_is_an_error(folders: tuple[Path, Path]) -> None:
    preds, refs = folders
    _write(preds, "a.nii.gz", np.zeros((6, 6, 5), np.uint8))
    with pytest.raises(MedsegError, match="differs") as info:
        evaluate_folders(preds, refs)
    assert str(preds / "a.nii.gz") in str(info.value)


def test_prediction_with_another_affine_is_an_error(folders: tuple[Path, Path]) -> None:
    preds, refs = folders
    _write(preds, "a.nii.gz", PRED_A, spacing_affine((1.0, 1.0, 3.0)))
    with pytest.raises(MedsegError, match="affine") as info:
        evaluate_folders(preds, refs)
    assert str(preds / "a.nii.gz") in str(info.value)


def test_non_integer_prediction_is_an_error(folders: tuple[Path, Path]) -> None:
    preds, refs = folders
    _write(preds, "a.nii.gz", PRED_A.astype(np.float32) * 0.5)
    with pytest.raises(MedsegError, match="not an integer label map") as info:
        evaluate_folders(preds, refs)
    assert str(preds / "a.nii.gz") in str(info.value)


def test_multichannel_prediction_is_an_error(folders: tuple[Path, Path]) -> None:
    preds, refs = folders
    write_image(Image(np.stack([PRED_A, PRED_A]), AFFINE), preds / "a.nii.gz")
    with pytest.raises(MedsegError, match="2 channels"):
        evaluate_folders(preds, refs)


def test_missing_or_empty_folders_are_errors(tmp_path: Path, folders: tuple[Path, Path]) -> None:
    preds, refs = folders
    with pytest.raises(MedsegError, match="not found") as info:
        evaluate_folders(preds, tmp_path / "absent")
    assert str(tmp_path / "absent") in str(info.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(MedsegError, match="no supported image files") as info:
        evaluate_folders(empty, refs)
    assert str(empty) in str(info.value)


def test_2d_png_folders(tmp_path: Path) -> None:
    refs, preds = tmp_path / "refs", tmp_path / "preds"
    reference = np.zeros((8, 8), np.uint8)
    reference[2:6, 2:6] = 1  # 16 pixels
    prediction = np.zeros((8, 8), np.uint8)
    prediction[2:6, 3:7] = 1  # 16 pixels, 12 shared -> Dice 24/32
    write_image(Image(reference[None], np.eye(4)), refs / "s.png")
    write_image(Image(prediction[None], np.eye(4)), preds / "s.png")
    evaluation = evaluate_folders(preds, refs)
    assert evaluation.rows == [
        {"case": "s", "label": 1, "label_name": "1", "dice": pytest.approx(0.75)}
    ]


def test_summarise_directly() -> None:
    rows = [
        {"case": "x", "label": 1, "dice": 0.5},
        {"case": "y", "label": 1, "dice": float("nan")},
        {"case": "y", "label": 2, "dice": 0.0},
    ]
    summary = summarise(rows, [1, 2], {1: "one"})
    assert summary == {
        "cases": 2,
        "mean_dice": pytest.approx(0.25),
        "labels": {
            "one": {"label": 1, "mean_dice": 0.5, "cases": 2, "undefined": 1},
            "2": {"label": 2, "mean_dice": 0.0, "cases": 1, "undefined": 0},
        },
    }


def test_write_evaluation(folders: tuple[Path, Path], tmp_path: Path) -> None:
    evaluation = evaluate_folders(*folders)
    out = tmp_path / "scores" / "fold_0"
    paths = write_evaluation(evaluation, out)
    assert paths == [out / "metrics.csv", out / "summary.json"]
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv", "summary.json"]
    with (out / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["case", "label", "label_name", "dice"]
    table = {(r["case"], r["label"]): r["dice"] for r in rows}
    assert table == {
        ("a", "1"): "0.500000",
        ("a", "2"): "1.000000",
        ("b", "1"): "1.000000",
        ("b", "2"): "",  # undefined is an empty cell, not 'nan'
    }
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(json.dumps(evaluation.summary))
    assert summary["labels"]["2"]["undefined"] == 1
    assert summary["mean_dice"] == pytest.approx(0.875)
    assert "NaN" not in (out / "summary.json").read_text()


def test_write_evaluation_with_undefined_mean_writes_null(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    evaluation = evaluate_folders(*folders, labels=[7])
    write_evaluation(evaluation, tmp_path / "scores")
    summary = json.loads((tmp_path / "scores" / "summary.json").read_text())
    assert summary["mean_dice"] is None
    assert summary["labels"]["7"]["mean_dice"] is None


def test_all_background_folders_still_count_their_cases(tmp_path: Path) -> None:
    refs, preds = tmp_path / "refs", tmp_path / "preds"
    for folder in (refs, preds):
        for name in ("a.nii.gz", "b.nii.gz"):
            _write(folder, name, np.zeros(SHAPE, np.uint8))
    assert evaluate_folders(preds, refs).summary["cases"] == 2


def test_only_predicted_scores_the_references_that_have_a_prediction(
    folders: tuple[Path, Path],
) -> None:
    preds, refs = folders
    (preds / "b.nii.gz").unlink()
    evaluation = evaluate_folders(preds, refs, only_predicted=True)
    assert evaluation.summary["cases"] == 1
    assert {r["case"] for r in evaluation.rows} == {"a"}


def test_only_predicted_still_needs_one_match(folders: tuple[Path, Path], tmp_path: Path) -> None:
    _, refs = folders
    _write(tmp_path / "other", "zzz.nii.gz", PRED_B)
    with pytest.raises(MedsegError, match="no prediction matches"):
        evaluate_folders(tmp_path / "other", refs, only_predicted=True)
