"""Lesion lists and FROC on synthetic cases with known hits, misses and false positives."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from medseg.io import Image, write_image
from medseg.metrics.detection import Lesion, find_lesions, froc, froc_from_files
from medseg.metrics.evaluate import evaluate_folders, write_evaluation


def _ball(shape, centre, radius):
    grid = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grid, centre)) <= radius**2


def test_lesions_have_world_centroids_volumes_and_confidences():
    mask = _ball((20, 20, 20), (5, 6, 7), 2) | _ball((20, 20, 20), (14, 14, 14), 3)
    probability = np.where(mask, 0.9, 0.0)
    probability[14, 14, 14] = 0.99
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-10.0, 0.0, 5.0]
    small, large = sorted(find_lesions(mask, affine, probability), key=lambda x: x.volume_ml)
    assert small.centroid_mm == (0.0, 12.0, 19.0) and small.bbox_first == (3, 4, 5)
    assert small.volume_ml == pytest.approx(33 * 8 / 1000)  # 33 voxels of 8 mm³
    assert large.confidence_max == pytest.approx(0.99) and 0.9 < large.confidence_mean < 0.91


def test_froc_counts_hits_misses_and_false_positives_per_case():
    reference = [
        [Lesion((0.0, 0.0, 0.0), (0,) * 3, (1,) * 3, 4.2, 1, 1)],  # radius 10 mm
        [Lesion((0.0, 0.0, 0.0), (0,) * 3, (1,) * 3, 4.2, 1, 1),
         Lesion((100.0, 0.0, 0.0), (0,) * 3, (1,) * 3, 4.2, 1, 1)],
    ]  # fmt: skip
    predicted = [
        [((2.0, 0.0, 0.0), 0.95), ((3.0, 0.0, 0.0), 0.90), ((50.0, 0.0, 0.0), 0.80)],
        [((1.0, 1.0, 0.0), 0.70), ((60.0, 0.0, 0.0), 0.60), ((100.0, 5.0, 0.0), 0.30)],
    ]
    result = froc(predicted, reference)
    # by confidence: hit, duplicate (ignored), FP (0.5/case), hit, FP (1/case), hit
    assert result["sensitivity"]["0.125"] == pytest.approx(1 / 3)
    assert result["sensitivity"]["0.5"] == pytest.approx(2 / 3)
    assert result["sensitivity"]["1"] == pytest.approx(1.0)
    assert result["reference_lesions"] == 3 and result["predicted_lesions"] == 6


def test_evaluate_reports_froc_from_the_predictions_lesion_list(tmp_path):
    refs, preds = tmp_path / "refs", tmp_path / "preds"
    shape = (24, 24, 24)
    for case, centres in (("a", [(6, 6, 6), (16, 16, 16)]), ("b", [(8, 8, 8)])):
        ref = np.zeros(shape, np.uint8)
        for centre in centres:
            ref[_ball(shape, centre, 3)] = 1
        write_image(Image(ref[None], np.eye(4)), refs / f"{case}.nii.gz")
        write_image(Image(ref[None], np.eye(4)), preds / f"{case}.nii.gz")
    with open(preds / "lesions.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        centroid = ["centroid_x_mm", "centroid_y_mm", "centroid_z_mm"]
        writer.writerow(["case", "label", "lesion", *centroid, "confidence_max"])
        writer.writerow(["a", "1", 1, 6, 6, 6, 0.9])  # hit
        writer.writerow(["a", "1", 2, 20, 3, 3, 0.8])  # false positive
        writer.writerow(["b", "1", 1, 8, 9, 8, 0.7])  # hit; a's second lesion is missed
    evaluation = evaluate_folders(preds, refs, labels=[1])
    found = evaluation.summary["froc"]["1"]
    assert found["sensitivity"]["0.125"] == pytest.approx(1 / 3)
    assert found["sensitivity"]["1"] == pytest.approx(2 / 3)
    references = {"a": refs / "a.nii.gz", "b": refs / "b.nii.gz"}
    direct = froc_from_files(preds / "lesions.csv", references, {1: "1"})
    assert direct["1"] == found


def test_a_validation_folder_with_evaluation_tables_can_be_scored_again(tmp_path):
    """Training writes its validation predictions and their evaluation (whose per-case
    lesion counts are also called lesions.csv) into one folder; scoring that folder again
    must not take those counts for a lesion list."""
    refs, preds = tmp_path / "refs", tmp_path / "preds"
    label = np.zeros((12, 12, 12), np.uint8)
    label[3:8, 3:8, 3:8] = 1
    write_image(Image(label[None], np.eye(4)), refs / "a.nii.gz")
    write_image(Image(label[None], np.eye(4)), preds / "a.nii.gz")
    write_evaluation(evaluate_folders(preds, refs), preds)
    assert (preds / "lesions.csv").is_file()
    evaluation = evaluate_folders(preds, refs)
    assert "froc" not in evaluation.summary
    assert evaluation.rows[0]["dice"] == 1.0
