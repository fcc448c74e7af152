"""Uncertainty maps, quality scores, the flag, and its calibration on cross-validation."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from medseg.datasets.phantom import write_phantom_dataset
from medseg.errors import RunFolderError
from medseg.infer import calibrate, load_trained_model, predict_paths
from medseg.infer.calibrate import calibrate_run, choose_flag
from medseg.infer.quality import (
    SCORES,
    Calibration,
    case_scores,
    entropy_map,
    flag,
    load_calibration,
    pairwise_agreement,
)
from medseg.io import read_image
from medseg.train import TrainOptions
from medseg.train.cross_validation import train_folds


def test_entropy_agreement_and_scores_of_a_known_case():
    probabilities = np.zeros((2, 4, 4))
    probabilities[1, :2] = 1.0  # sure foreground
    probabilities[0, 2:] = 0.5  # unsure background
    probabilities[1, 2:] = 0.5
    entropy = entropy_map(probabilities)
    assert entropy[:2].max() < 1e-6 and np.allclose(entropy[2:], 1.0)
    labels = (probabilities.argmax(0) == 1).astype(np.uint8)
    a, b = labels.copy(), labels.copy()
    b[0, 0] = 0  # one member misses a voxel: Dice 14/15
    assert pairwise_agreement([a, b]) == pytest.approx(14 / 15)
    assert np.isnan(pairwise_agreement([a]))
    scores = case_scores(probabilities, labels, [a, b], voxel_ml=0.5, calibration=None)
    assert scores["mean_entropy"] == pytest.approx(0.0, abs=1e-6)
    assert scores["disagreement"] == pytest.approx(1 / 15) and scores["volume_ml"] == 4.0
    assert np.isnan(scores["volume_z"]) and flag(scores, None) == ""
    assert scores["expected_dice_gap"] == pytest.approx(1 - 2 * 8 / (12 + 8))  # p: 8 + 8 * 0.5
    assert scores["worst_label_gap"] == scores["expected_dice_gap"]  # one label
    calibration = Calibration("volume_z", 2.0, 10.0, 3.0, {}, 20, 0.1)
    scores = case_scores(probabilities, labels, [a, b], voxel_ml=0.5, calibration=calibration)
    assert scores["volume_z"] == pytest.approx(2.0) and flag(scores, calibration) == "review"


def test_the_worst_label_gap_is_the_least_sure_label():
    probabilities = np.zeros((3, 4, 4))
    probabilities[0, :, :2] = 1.0  # background, sure
    probabilities[1, :2, 2:] = 1.0  # label 1, sure
    probabilities[2, 2:, 2:] = 0.6  # label 2, unsure
    probabilities[0, 2:, 2:] = 0.4
    labels = probabilities.argmax(0)
    scores = case_scores(probabilities, labels, [labels], voxel_ml=1.0, calibration=None)
    label_2 = 2 * (4 * 0.6) / (4 * 0.6 + 4)  # soft Dice of label 2 against its own mask
    assert scores["worst_label_gap"] == pytest.approx(1 - label_2)
    assert scores["expected_dice_gap"] == pytest.approx(1 - (1 + label_2) / 2)


def test_the_score_that_ranks_the_worst_cases_first_is_chosen():
    rng = np.random.default_rng(0)
    dice = rng.uniform(0.5, 0.95, 40)
    rows = [
        {"case": f"c{k}", "mean_entropy": 1 - d, "disagreement": rng.random(),
         "expected_dice_gap": rng.random(), "worst_label_gap": rng.random(),
         "volume_ml": 10.0, "reference_ml": 10.0 + k % 3, "dice": d}
        for k, d in enumerate(dice)
    ]  # fmt: skip
    calibration, curve = choose_flag(rows, 0.1, review_fraction=None)  # Youden's threshold
    assert calibration.score == "mean_entropy" and calibration.auroc["mean_entropy"] == 1.0
    flagged = {r["case"] for r in rows if r["mean_entropy"] >= calibration.threshold}
    assert flagged == {r["case"] for r in rows if r["worst"]}
    for share in (0.2, 0.3):  # a fixed share sent to review: the most doubtful cases
        calibration, _ = choose_flag(rows, 0.1, review_fraction=share)
        flagged = {r["case"] for r in rows if r["mean_entropy"] >= calibration.threshold}
        assert len(flagged) == round(share * 40) and calibration.review_fraction == share
        assert flagged == {r["case"] for r in sorted(rows, key=lambda r: r["dice"])[: len(flagged)]}
    assert curve[-1]["coverage"] == 1.0 and curve[0]["mean_dice"] >= curve[-1]["mean_dice"]


@pytest.fixture(scope="module")
def cross_validated(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    data = write_phantom_dataset(root / "ds", n_train=10, n_test=2, dim=2, shape=(32, 32))
    options = TrainOptions(epochs=2, iterations_per_epoch=3, quiet=True)
    train_folds(data, root / "run", options)
    return root / "run", data


def test_calibrate_stores_a_flag_that_predict_then_applies(cross_validated, tmp_path):
    run, data = cross_validated
    calibration, rows = calibrate_run(run, quiet=True)
    assert len(rows) == 10 and calibration.score in SCORES
    loaded = load_calibration(run)
    assert (loaded.score, loaded.threshold) == (calibration.score, calibration.threshold)
    assert str(loaded.auroc) == str(calibration.auroc)  # NaN where a score is undefined
    stored = json.loads((run / "quality.json").read_text())
    assert len(stored["risk_coverage"]) == 10 and (run / "quality_cv.csv").is_file()
    fit = stored["temperature_fit"]  # fitted on voxels of the cross-validation cases
    assert fit["voxels"] > 0 and 0.25 <= fit["fitted"] <= 4
    assert loaded.temperature == stored["temperature"]
    assert stored["temperature"] in (1.0, pytest.approx(fit["fitted"], abs=1e-6))
    assert fit["nll_after"] <= fit["nll_before"]
    out = tmp_path / "out"
    written = predict_paths(run, [data / "imagesTs"], out, quiet=True, uncertainty=True)
    table = list(csv.DictReader((tmp_path / "out" / "quality.csv").open()))
    assert len(table) == 2 and {row["flag"] for row in table} <= {"ok", "review"}
    maps = [p for p in written if p.name.endswith("_uncertainty.nii.gz")]
    image = read_image(next((data / "imagesTs").iterdir()))
    uncertainty = read_image(maps[0])
    assert uncertainty.spatial_shape == image.spatial_shape
    assert uncertainty.array.min() >= 0 and uncertainty.array.max() <= 1


def test_the_threshold_rule_is_stored_and_old_files_still_load(cross_validated, run_cli):
    run, _ = cross_validated
    calibration, _ = calibrate_run(run, quiet=True)
    assert calibration.review_fraction == 0.1 == load_calibration(run).review_fraction
    code, out, _ = run_cli(["--quiet", "calibrate", str(run), "--youden"])
    assert code == 0 and load_calibration(run).review_fraction is None
    original = (run / "quality.json").read_text()
    stored = json.loads(original)
    del stored["review_fraction"]  # written before the rule existed: Youden's
    (run / "quality.json").write_text(json.dumps(stored))
    assert load_calibration(run).review_fraction is None
    stored["review_fraction"] = 1.5
    (run / "quality.json").write_text(json.dumps(stored))
    with pytest.raises(RunFolderError, match="review_fraction"):
        load_calibration(run)
    stored["review_fraction"], stored["temperature"] = 0.1, 1e-9  # would make the map NaN
    (run / "quality.json").write_text(json.dumps(stored))
    with pytest.raises(RunFolderError, match="temperature"):
        load_calibration(run)
    (run / "quality.json").write_text(original)  # the module's run, as it was
    for bad in (["--review-fraction", "0"], ["--review-fraction", "0.1", "--youden"]):
        code, _, err = run_cli(["calibrate", str(run), *bad])
        assert code == 2 and "review-fraction" in err


def test_calibrate_predicts_each_fold_with_its_further_models(
    cross_validated, tmp_path, monkeypatch
):
    run, _ = cross_validated
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    shutil.copytree(copy / "fold_1", copy / "fold_1_1")  # as if the step cap left time
    shutil.rmtree(copy / "fold_1_1" / "validation")
    loaded = []

    def spy(run_dir, device="auto", folds=None, **kwargs):
        loaded.append(list(folds))
        return load_trained_model(run_dir, device, folds, **kwargs)

    monkeypatch.setattr(calibrate, "load_trained_model", spy)
    _, rows = calibrate_run(copy, quiet=True)
    assert loaded == [[0], [1, "1_1"], [2], [3], [4]]
    assert len(rows) == 10  # fold_1_1 adds no cases of its own


def test_a_run_without_cross_validation_cannot_be_calibrated(untrained_run_dir, run_cli):
    code, _, err = run_cli(["calibrate", untrained_run_dir, "--dataset", untrained_run_dir])
    assert code == 2 and "--cross-validation" in err
