"""`evaluate_and_report` with DICOM-SEG and RTSTRUCT references (a folder of studies)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medseg.errors import ConfigError
from medseg.io import Image, write_image
from medseg.io.dicom_seg import read_dicom_seg
from medseg.io.rtstruct import read_rtstruct
from medseg.report import evaluate_and_report


@pytest.fixture
def predictions(dicom_studies, tmp_path):
    """Predictions named after the series folders, in a run's numbering (liver 2, ROI-1 1):
    the liver exact, the phantom's ROI shifted by two columns."""
    preds = tmp_path / "preds"
    preds.mkdir()
    liver, _ = read_dicom_seg(dicom_studies / "a/liver.dcm", dicom_studies / "a")
    write_image(Image((liver.array * 2).astype(np.uint8), liver.affine), preds / "a.nii.gz")
    roi, _ = read_rtstruct(dicom_studies / "b/rt.dcm", dicom_studies / "b/ct")
    shifted = np.roll(roi.array, 2, axis=1).astype(np.uint8)
    write_image(Image(shifted, roi.affine), preds / "ct.nii.gz")
    run_json = tmp_path / "dataset.json"
    labels = {"background": 0, "roi-1": 1, "Liver": 2}
    spec = {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": 2}
    spec["file_ending"] = ".nii.gz"
    run_json.write_text(json.dumps(spec))
    return preds, run_json, roi.array


def test_predictions_are_scored_against_the_seg_and_rtstruct_of_their_series(
    predictions, dicom_studies, tmp_path
):
    preds, run_json, roi = predictions
    evaluation, written = evaluate_and_report(
        preds, dicom_studies, tmp_path / "scores", label_names=run_json
    )
    dice = {(r["case"], r["label_name"]): r["dice"] for r in evaluation.rows}
    assert dice[("a", "Liver")] == 1.0
    overlap = np.logical_and(roi, np.roll(roi, 2, axis=1)).sum()
    assert dice[("ct", "roi-1")] == pytest.approx(2 * overlap / (2 * roi.sum()))
    assert 0 < dice[("ct", "roi-1")] < 1
    assert [p.name for p in written] == [
        "metrics.csv", "summary.csv", "lesions.csv", "summary.json", "report.html", "figures",
    ]  # fmt: skip
    report = (tmp_path / "scores/report.html").read_text()
    assert 'alt="a"' in report and 'alt="ct"' in report  # overlays drawn on the series
    assert evaluation.warnings == []


def test_label_names_apply_to_dicom_references_only(predictions, tmp_path):
    preds, run_json, _ = predictions
    with pytest.raises(ConfigError, match="DICOM references"):
        evaluate_and_report(preds, preds, label_names=run_json)


def test_the_cli_warns_of_segments_the_run_does_not_predict(
    predictions, dicom_studies, tmp_path, run_cli
):
    preds, run_json, _ = predictions
    spec = json.loads(run_json.read_text())
    spec["labels"] = {"background": 0, "liver": 2}
    run_json.write_text(json.dumps(spec))
    (preds / "ct.nii.gz").unlink()
    args = ["evaluate", preds, dicom_studies, "--label-names", run_json, "--only-predicted"]
    code, out, err = run_cli([*args, "--out", tmp_path / "scores"])
    assert code == 0, err
    assert "rt.dcm: segment 'ROI-1' is not a predicted label: not scored" in err
