"""Scoring a folder of predictions against a folder of references."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import InputProblems, MedsegError
from medseg.io import Image, spacing_affine, write_image
from medseg.metrics import (
    LESION_METRICS,
    METRICS,
    Evaluation,
    EvaluationSettings,
    evaluate_folders,
    write_evaluation,
)
from medseg.metrics.evaluate import WIDE_STATISTICS

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


def test_distances_use_the_spacing(folders: tuple[Path, Path]) -> None:
    # Case a, label 1: 2x2x2 blocks one voxel apart along x (1 mm): every surface voxel of
    # one block is 0 or 1 mm from the other's, so HD = HD95 = 1 mm; with spacing (1, 1, 2)
    # a shift along z would be 2 mm (checked in tests/metrics/test_surface.py).
    evaluation = evaluate_folders(*folders)
    (row,) = [r for r in evaluation.rows if r["case"] == "a" and r["label"] == 1]
    assert row["hd"] == pytest.approx(1.0)
    assert row["hd95"] == pytest.approx(1.0)
    # 8 voxels of 2 mm^3 each = 0.016 ml in both
    assert row["ref_volume_ml"] == pytest.approx(0.016)
    assert row["volume_diff_ml"] == pytest.approx(0.0)
    assert (row["tp"], row["fp"], row["fn"], row["tn"]) == (4, 4, 4, 144 - 12)


def _dice_stats(entry: dict) -> tuple:
    return (entry["mean_dice"], entry["cases"], entry["undefined"])


def test_summary_skips_and_counts_undefined_cases(folders: tuple[Path, Path]) -> None:
    summary = evaluate_folders(*folders).summary
    assert summary["cases"] == 2
    labels = summary["labels"]
    assert _dice_stats(labels["1"]) == (pytest.approx(0.75), 2, 0)
    # label 2: Dice 1 in case a, undefined in case b -> mean over case a only, not (1 + 0)/2.
    assert _dice_stats(labels["2"]) == (pytest.approx(1.0), 2, 1)
    assert labels["2"]["empty_both"] == 1
    assert labels["2"]["metrics"]["dice"]["n"] == 1
    assert labels["2"]["metrics"]["hd95"]["undefined"] == 1
    assert labels["1"]["metrics"]["dice"]["median"] == pytest.approx(0.75)
    assert summary["mean_dice"] == pytest.approx((0.75 + 1.0) / 2)


def test_one_empty_scores_zero(folders: tuple[Path, Path]) -> None:
    preds, refs = folders
    _write(preds, "b.nii.gz", np.zeros(SHAPE, np.uint8))
    evaluation = evaluate_folders(preds, refs)
    assert _score(evaluation, "b", 1) == 0.0
    label1 = evaluation.summary["labels"]["1"]
    assert label1["mean_dice"] == pytest.approx(0.25)
    assert label1["empty_prediction"] == 1
    assert label1["metrics"]["hd"]["undefined"] == 1
    assert label1["metrics"]["nsd"]["n"] == 2, "NSD is 0, not undefined, when one side is empty"


def test_label_absent_everywhere_has_no_mean(folders: tuple[Path, Path]) -> None:
    evaluation = evaluate_folders(*folders, labels=[1, 5])
    label5 = evaluation.summary["labels"]["5"]
    assert _dice_stats(label5) == (None, 2, 2)
    assert label5["empty_both"] == 2
    assert label5["metrics"]["dice"]["ci95"] is None
    assert evaluation.summary["mean_dice"] == pytest.approx(0.75), "label 5 stays out of the mean"


def test_labels_argument_restricts_the_scores(folders: tuple[Path, Path]) -> None:
    evaluation = evaluate_folders(*folders, labels=[2])
    assert {r["label"] for r in evaluation.rows} == {2}
    assert list(evaluation.summary["labels"]) == ["2"]


def _dataset_json(folder: Path, labels: dict[str, int]) -> None:
    spec = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, **labels},
        "numTraining": 2,
        "file_ending": ".nii.gz",
    }
    (folder / "dataset.json").write_text(json.dumps(spec))


def test_label_names_come_from_a_dataset_json_beside_the_references(
    folders: tuple[Path, Path],
) -> None:
    preds, refs = folders
    _dataset_json(refs.parent, {"liver": 1, "spleen": 2, "kidney": 3})
    evaluation = evaluate_folders(preds, refs)
    assert list(evaluation.summary["labels"]) == ["liver", "spleen", "kidney"]
    assert evaluation.summary["labels"]["kidney"]["undefined"] == 2
    assert {r["label_name"] for r in evaluation.rows if r["label"] == 1} == {"liver"}


def test_label_not_in_dataset_json_is_an_error(folders: tuple[Path, Path]) -> None:
    preds, refs = folders
    _dataset_json(refs.parent, {"liver": 1})
    with pytest.raises(InputProblems) as info:
        evaluate_folders(preds, refs)
    # label 2 is in both maps of case a: the reference and the prediction are both named
    assert sorted(info.value.problems) == sorted(
        [
            f"{refs / 'a.nii.gz'}: label values [2] not in dataset.json",
            f"{preds / 'a.nii.gz'}: label values [2] not in dataset.json",
        ]
    )


def test_per_label_tolerance_by_name_or_value(folders: tuple[Path, Path]) -> None:
    preds, refs = folders
    _dataset_json(refs.parent, {"liver": 1, "spleen": 2})
    # label 1 in case a: half of each block's surface voxels lie on the other's surface
    # (distance 0), the rest 1 mm away; tolerance 0.5 counts only the former.
    strict = evaluate_folders(preds, refs, settings=EvaluationSettings(tolerance_mm=0.5))
    by_name = EvaluationSettings(tolerance_mm=0.5, tolerances={"liver": 1.0})
    by_value = EvaluationSettings(tolerance_mm=0.5, tolerances={1: 1.0})

    def nsd(evaluation: Evaluation) -> float:
        (row,) = [r for r in evaluation.rows if r["case"] == "a" and r["label"] == 1]
        return float(row["nsd"])  # type: ignore[arg-type]

    assert nsd(strict) < 1.0
    assert nsd(evaluate_folders(preds, refs, settings=by_name)) == 1.0
    assert nsd(evaluate_folders(preds, refs, settings=by_value)) == 1.0
    with pytest.raises(MedsegError, match="unknown label 'lung'"):
        evaluate_folders(preds, refs, settings=EvaluationSettings(tolerances={"lung": 2.0}))


def test_prediction_without_reference_is_a_warning(folders: tuple[Path, Path]) -> None:
    preds, refs = folders
    _write(preds, "extra.nii.gz", PRED_B)
    evaluation = evaluate_folders(preds, refs)
    assert evaluation.summary["cases"] == 2
    assert len(evaluation.warnings) == 1
    assert str(preds / "extra.nii.gz") in evaluation.warnings[0]


def test_missing_predictions_are_each_named(folders: tuple[Path, Path]) -> None:
    preds, refs = folders
    (preds / "b.nii.gz").unlink()
    _write(refs, "c.nii.gz", REF_B)
    with pytest.raises(InputProblems, match="2 problem") as info:
        evaluate_folders(preds, refs)
    assert len(info.value.problems) == 2
    assert info.value.problems[0].startswith(f"{preds / 'b.nii.gz'}: prediction missing")
    assert info.value.problems[1].startswith(f"{preds / 'c.nii.gz'}: prediction missing")


def test_missing_prediction_can_be_scored_as_empty(folders: tuple[Path, Path]) -> None:
    preds, refs = folders
    (preds / "b.nii.gz").unlink()
    evaluation = evaluate_folders(preds, refs, missing_as_empty=True)
    assert _score(evaluation, "b", 1) == 0.0
    assert evaluation.pairs["b"] == (None, refs / "b.nii.gz")
    assert evaluation.summary["labels"]["1"]["empty_prediction"] == 1


def test_every_broken_pair_is_reported_at_once(folders: tuple[Path, Path]) -> None:
    preds, refs = folders
    _write(preds, "a.nii.gz", np.zeros((6, 6, 5), np.uint8))
    _write(preds, "b.nii.gz", PRED_B.astype(np.float32) * 0.5)
    with pytest.raises(InputProblems) as info:
        evaluate_folders(preds, refs)
    problems = info.value.problems
    assert len(problems) == 2
    assert problems[0].startswith(str(preds / "a.nii.gz")) and "differs" in problems[0]
    assert problems[1] == f"{preds / 'b.nii.gz'}: not an integer label map"


def test_prediction_with_another_affine_is_an_error(folders: tuple[Path, Path]) -> None:
    preds, refs = folders
    _write(preds, "a.nii.gz", PRED_A, spacing_affine((1.0, 1.0, 3.0)))
    with pytest.raises(MedsegError) as info:  # one problem: a plain one-line error
        evaluate_folders(preds, refs)
    assert str(info.value).startswith(str(preds / "a.nii.gz"))
    assert "affine" in str(info.value)


def test_multichannel_prediction_is_an_error(folders: tuple[Path, Path]) -> None:
    preds, refs = folders
    write_image(Image(np.stack([PRED_A, PRED_A]), AFFINE), preds / "a.nii.gz")
    with pytest.raises(MedsegError) as info:
        evaluate_folders(preds, refs)
    assert str(info.value) == f"{preds / 'a.nii.gz'}: 2 channels; a label map has 1"


def test_parallel_processes_give_the_same_scores(folders: tuple[Path, Path]) -> None:
    serial = evaluate_folders(*folders, jobs=1)
    parallel = evaluate_folders(*folders, jobs=2)
    assert json.dumps(serial.summary) == json.dumps(parallel.summary)
    assert str(serial.rows) == str(parallel.rows)  # NaN-safe comparison of every value


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
    (row,) = evaluation.rows
    assert (row["case"], row["label"], row["dice"]) == ("s", 1, pytest.approx(0.75))
    assert row["hd"] == pytest.approx(1.0)


def test_write_evaluation(folders: tuple[Path, Path], tmp_path: Path) -> None:
    evaluation = evaluate_folders(*folders)
    out = tmp_path / "scores" / "fold_0"
    paths = write_evaluation(evaluation, out)
    names = ["metrics.csv", "summary.csv", "lesions.csv", "summary.json"]
    assert paths == [out / name for name in names]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    with (out / "metrics.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["case", "label", "label_name", *METRICS]
    table = {(r["case"], r["label"]): r["dice"] for r in rows}
    assert table == {
        ("a", "1"): "0.5",
        ("a", "2"): "1",
        ("b", "1"): "1",
        ("b", "2"): "",  # undefined is an empty cell, not 'nan'
    }
    with (out / "lesions.csv").open(newline="") as handle:
        lesions = list(csv.DictReader(handle))
    assert list(lesions[0]) == ["case", "label", "label_name", *LESION_METRICS]
    assert [r["lesion_tp"] for r in lesions] == ["1", "1", "1", "0"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(json.dumps(evaluation.summary))
    assert summary["labels"]["2"]["undefined"] == 1
    assert summary["mean_dice"] == pytest.approx(0.875)
    assert summary["settings"]["nsd_tolerance_mm"] == 1.0
    assert summary["settings"]["labels"] == [1, 2] and not summary["settings"]["only_predicted"]
    assert summary["settings"]["prediction_dir"].endswith("preds")
    assert set(summary["versions"]) == {"medseg", "python", "numpy", "scipy"}
    assert "NaN" not in (out / "summary.json").read_text()


def test_wide_summary_has_one_row_per_label(folders: tuple[Path, Path], tmp_path: Path) -> None:
    evaluation = evaluate_folders(*folders)
    write_evaluation(evaluation, tmp_path)
    with (tmp_path / "summary.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["label"] for r in rows] == ["1", "2"]
    assert list(rows[0])[:6] == [
        "label", "label_name", "cases", "empty_reference", "empty_prediction", "empty_both",
    ]  # fmt: skip
    assert len(rows[0]) == 6 + len(METRICS) * len(WIDE_STATISTICS)
    for row in rows:
        stats = evaluation.summary["labels"][row["label_name"]]["metrics"]
        for metric in METRICS:
            expected = stats[metric]
            if expected["mean"] is None:
                assert row[f"{metric}_mean"] == "" and row[f"{metric}_ci95_low"] == ""
                continue
            assert float(row[f"{metric}_mean"]) == pytest.approx(expected["mean"], rel=1e-5)
            assert float(row[f"{metric}_ci95_high"]) == pytest.approx(expected["ci95"][1], rel=1e-5)
            assert row[f"{metric}_n"] == str(expected["n"])


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


def test_missing_as_empty_keeps_the_reference_labels_found(folders: tuple[Path, Path]) -> None:
    # without --labels or dataset.json the labels come from the files: a missing prediction
    # scored as empty must still contribute its reference's labels
    preds, refs = folders
    for name in ("a.nii.gz", "b.nii.gz"):
        (preds / name).unlink()
    _write(preds, "unrelated.nii.gz", np.zeros(SHAPE, np.uint8))  # every prediction missing
    evaluation = evaluate_folders(preds, refs, missing_as_empty=True)
    assert sorted({r["label"] for r in evaluation.rows}) == [1, 2]
    assert _score(evaluation, "a", 2) == 0.0 and _score(evaluation, "b", 1) == 0.0
