"""`evaluate_classification`: predictions.csv scored against a class table, and its report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from medseg.errors import ConfigError, InputProblems, MedsegError
from medseg.io import Image, write_image
from medseg.report.classification import evaluate_classification

metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is a test extra")


def _tables(folder: Path, cases: int = 60, seed: int = 0, names=("benign", "malignant")):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, len(names), cases)
    noisy = np.eye(len(names))[truth] * 0.5 + rng.random((cases, len(names)))
    probabilities = noisy / noisy.sum(1, keepdims=True)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "predictions.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["case", "class", *(f"p_{n}" for n in names)])
        for k, row in enumerate(probabilities):
            writer.writerow([f"c{k:03d}", names[row.argmax()], *(f"{p:.6f}" for p in row)])
    with open(folder / "labels.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["case", "class"])
        writer.writerows((f"c{k:03d}", names[t]) for k, t in enumerate(truth))
    return truth, np.round(probabilities, 6)


def test_binary_scores_match_scikit_learn_at_the_threshold(tmp_path):
    truth, probabilities = _tables(tmp_path)
    evaluation, written = evaluate_classification(
        tmp_path / "predictions.csv", tmp_path / "labels.csv", tmp_path / "out", threshold=0.4
    )
    summary = evaluation.summary
    predicted = (probabilities[:, 1] >= 0.4).astype(int)
    assert summary["auc"] == pytest.approx(metrics.roc_auc_score(truth, probabilities[:, 1]))
    assert summary["sensitivity"] == pytest.approx(metrics.recall_score(truth, predicted))
    assert summary["precision"] == pytest.approx(metrics.precision_score(truth, predicted))
    assert summary["accuracy"] == pytest.approx(metrics.accuracy_score(truth, predicted))
    assert summary["threshold_rule"] == "given" and summary["positive_class"] == "malignant"
    low, high = summary["auc_ci95"]
    assert low < summary["auc"] < high
    assert [p.name for p in written] == ["summary.json", "cases.csv", "report.html"]
    assert json.loads(written[0].read_text())["confusion_matrix"]["counts"] == (
        metrics.confusion_matrix(truth, predicted).tolist()
    )


def test_youdens_threshold_comes_from_the_runs_validation_predictions(tmp_path):
    _tables(tmp_path / "test")
    _tables(tmp_path / "val", seed=1)
    fold = tmp_path / "run" / "fold_0"
    fold.mkdir(parents=True)
    rows = list(csv.reader((tmp_path / "val/predictions.csv").open()))
    truth = dict(csv.reader((tmp_path / "val/labels.csv").open()))
    with open(fold / "validation.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["case", "truth", *rows[0][1:]])
        writer.writerows([r[0], truth[r[0]], *r[1:]] for r in rows[1:])
    evaluation, _ = evaluate_classification(
        tmp_path / "test/predictions.csv", tmp_path / "test/labels.csv",
        threshold_from=tmp_path / "run",
    )  # fmt: skip
    assert evaluation.summary["threshold_rule"].startswith("Youden's on 60 validation")
    assert 0 < evaluation.summary["threshold"] < 1


def test_the_report_shows_the_most_confident_errors_on_their_images(tmp_path):
    _tables(tmp_path, cases=20)
    images = tmp_path / "images"
    for k in range(20):
        image = Image(np.full((1, 8, 8), k, np.uint8), np.eye(4))
        write_image(image, images / f"c{k:03d}_0000.png")
    tables = (tmp_path / "predictions.csv", tmp_path / "labels.csv")
    evaluate_classification(*tables, tmp_path / "o", images_dir=images)
    page = (tmp_path / "o/report.html").read_text()
    assert page.count("alt='c0") >= 1 and "alt='roc'" in page and "Confusion matrix" in page


def test_three_classes_use_the_most_probable_and_refuse_a_threshold(tmp_path):
    truth, probabilities = _tables(tmp_path, names=("a", "b", "c"))
    evaluation, _ = evaluate_classification(tmp_path / "predictions.csv", tmp_path / "labels.csv")
    expected = metrics.roc_auc_score(truth, probabilities, multi_class="ovr")
    assert evaluation.summary["auc"] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ConfigError, match="3 classes"):
        evaluate_classification(
            tmp_path / "predictions.csv", tmp_path / "labels.csv", threshold=0.3
        )


def test_bad_tables_are_refused_one_line_each(tmp_path):
    _tables(tmp_path)
    labels = (tmp_path / "labels.csv").read_text().splitlines()
    changed = labels[:-2] + ["c058,benign", "c059,flu"]
    (tmp_path / "short.csv").write_text("\n".join(changed) + "\n")
    (tmp_path / "missing.csv").write_text("\n".join(labels[:-1]) + "\n")
    with pytest.raises(InputProblems) as caught:
        evaluate_classification(tmp_path / "predictions.csv", tmp_path / "short.csv")
    assert len(caught.value.problems) == 1 and "'flu'" in caught.value.problems[0]
    with pytest.raises(InputProblems, match="1 problem"):
        evaluate_classification(tmp_path / "predictions.csv", tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("case,label,score\nc000,a,0.5\n")
    with pytest.raises(MedsegError, match="want a header"):
        evaluate_classification(tmp_path / "bad.csv", tmp_path / "labels.csv")


def test_the_cli_prints_the_scores_and_exits_2_on_bad_input(tmp_path, run_cli):
    _tables(tmp_path)
    command = ["evaluate-classification", tmp_path / "predictions.csv"]
    code, out, err = run_cli([*command, tmp_path / "labels.csv", "--out", tmp_path / "o"])
    assert code == 0 and "60 cases: AUC" in out and "specificity" in out, err
    code, _, err = run_cli([*command, tmp_path / "nope.csv"])
    assert code == 2 and "nope.csv: not found" in err
