"""Training and using a classifier on a small synthetic classification dataset."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from classification_helpers import make_dataset
from medseg.datasets.classification import open_classification_dataset
from medseg.infer.classify import predict_classes
from medseg.runs.classifier_plan import ClassifierPlan, is_classifier_run
from medseg.train.classifier import _sampling_weights, train_classifier

FAST = {"steps_per_epoch": 20, "batch_size": 16}


def _accuracy(predictions: Path, labels: Path) -> float:
    truth = dict(csv.reader(labels.open()))
    rows = list(csv.DictReader(predictions.open()))
    return float(np.mean([row["class"] == truth[row["case"]] for row in rows]))


def test_a_short_training_learns_the_classes_and_predict_writes_them(tmp_path):
    dataset = make_dataset(tmp_path / "Dataset9_Spots")
    run = tmp_path / "run"
    result = train_classifier(dataset, run, epochs=3, overrides=FAST, quiet=True)
    assert result.steps == 60 and len(result.history) == 3
    assert result.best["val_auc"] > 0.9, result.history
    assert is_classifier_run(run) and ClassifierPlan.load(run).class_names == ["plain", "spot"]
    assert (run / "fold_0/model_best.safetensors").is_file()
    assert (run / "fold_0/log.csv").read_text().startswith("step,train_loss,val_loss,val_auc")
    target = predict_classes(run, [dataset / "imagesTs"], tmp_path / "preds", quiet=True)
    header = target.read_text().splitlines()[0]
    assert header == "case,class,p_plain,p_spot"
    assert _accuracy(target, dataset / "labelsTs.csv") >= 0.75


def test_3d_volumes_train_and_predict(tmp_path):
    dataset = make_dataset(tmp_path / "Dataset9_Spots3d", dim=3, cases=24)
    run = tmp_path / "run"
    overrides = {"steps_per_epoch": 5, "batch_size": 4, "features": [8, 16]}
    result = train_classifier(dataset, run, epochs=1, fold="all", overrides=overrides, quiet=True)
    assert result.steps == 5 and "val_auc" not in result.best
    target = predict_classes(run, [dataset / "imagesTs"], tmp_path / "preds", quiet=True)
    assert len(target.read_text().splitlines()) == 13


def test_batches_draw_each_class_equally_often():
    targets = np.array([0] * 90 + [1] * 10)
    plan = ClassifierPlan(
        dim=2, channel_names={"0": "x"}, class_names=["a", "b"], input_size=[8, 8]
    )
    weights = _sampling_weights(targets, plan)
    assert weights[targets == 0].sum() == pytest.approx(0.5)
    plain = _sampling_weights(targets, plan.model_copy(update={"balance": "none"}))
    assert plain[targets == 0].sum() == pytest.approx(0.9)


def test_commands_refuse_the_other_kind_of_run_and_dataset(tmp_path, run_cli, phantom2d):
    dataset = make_dataset(tmp_path / "Dataset9_Spots")
    args = ["train-classifier", dataset, "--out", tmp_path / "run", "--epochs", "1"]
    code, out, err = run_cli([*args, "--set", "steps_per_epoch=4", "--set", "batch_size=8"])
    assert code == 0, err
    assert "trained 4 steps" in out
    code, _, err = run_cli(["postprocess", "--auto", tmp_path / "run"])
    assert code == 2 and "this command needs a segmentation run" in err
    predict = ["predict", tmp_path / "run", dataset / "imagesTs", "--out", tmp_path / "p"]
    code, _, err = run_cli([*predict, "--tta"])
    assert code == 2 and "--tta applies to segmentation runs" in err
    args = ["train-classifier", phantom2d, "--out", tmp_path / "r2", "--epochs", "1"]
    code, _, err = run_cli(args)
    assert code == 2 and "a segmentation dataset" in err
    code, _, err = run_cli(["train", dataset, "--out", tmp_path / "r3", "--epochs", "1"])
    assert code == 2 and "use medseg train-classifier" in err
    assert open_classification_dataset(dataset).spec.class_names == ["plain", "spot"]
