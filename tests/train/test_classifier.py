"""Training and using a classifier on a small synthetic classification dataset."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from classification_helpers import make_dataset
from medseg.datasets.classification import open_classification_dataset
from medseg.errors import ConfigError
from medseg.infer.classify import predict_classes
from medseg.runs.classifier_plan import ClassifierPlan, is_classifier_run
from medseg.train.classifier import train_classifier
from medseg.train.classifier_loop import ClassifierLoop, sampling_weights

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
    plan = ClassifierPlan.load(run)
    assert is_classifier_run(run) and plan.class_names == ["plain", "spot"]
    # the segmentation recipe's elastic deformation is not measured for classification
    assert plan.augmentation.elastic.probability == 0 < plan.augmentation.scaling.probability
    assert (run / "fold_0/model_best.safetensors").is_file()
    header = "step,seconds,learning_rate,train_loss,val_loss,val_auc"
    assert (run / "fold_0/log.csv").read_text().startswith(header)
    assert (run / "fold_0/curves.png").read_bytes()[:4] == b"\x89PNG"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["folds"]["0"]["steps"] == 60 and not manifest["folds"]["0"]["resumed"]
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
    weights = sampling_weights(targets, plan)
    assert weights[targets == 0].sum() == pytest.approx(0.5)
    plain = sampling_weights(targets, plan.model_copy(update={"balance": "none"}))
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


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_an_interrupted_fold_resumes_where_it_stopped(tmp_path, monkeypatch):
    dataset = make_dataset(tmp_path / "Dataset9_Spots")
    straight = train_classifier(dataset, tmp_path / "a", epochs=2, overrides=FAST, quiet=True)
    step, calls = ClassifierLoop._step, []

    def interrupted_at_step_25(self, *args):
        calls.append(1)
        if len(calls) == 25:  # Ctrl-C after the first validation (step 20)
            raise KeyboardInterrupt
        return step(self, *args)

    monkeypatch.setattr(ClassifierLoop, "_step", interrupted_at_step_25)
    stopped = train_classifier(dataset, tmp_path / "b", epochs=2, overrides=FAST, quiet=True)
    monkeypatch.undo()
    assert [r["step"] for r in stopped.history] == [20]
    with pytest.raises(ConfigError, match="--resume continues it"):
        train_classifier(dataset, tmp_path / "b", epochs=2, overrides=FAST, quiet=True)
    resumed = train_classifier(dataset, tmp_path / "b", epochs=2, resume=True, quiet=True)
    assert resumed.steps == straight.steps == 40
    assert [r["step"] for r in resumed.history] == [20, 40]
    a = _weights(tmp_path / "a/fold_0/model_latest.safetensors")
    b = _weights(tmp_path / "b/fold_0/model_latest.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    manifest = json.loads((tmp_path / "b/manifest.json").read_text())
    assert manifest["folds"]["0"]["resumed"] is True


def test_a_classifier_starts_from_a_segmentation_runs_encoder(tmp_path, untrained_run_dir):
    dataset = make_dataset(tmp_path / "Dataset9_Spots3d", dim=3, cases=24)
    seg = _weights(untrained_run_dir / "fold_0/model_best.safetensors")
    overrides = {"steps_per_epoch": 3, "batch_size": 4}
    run = tmp_path / "run"
    result = train_classifier(
        dataset,
        run,
        epochs=1,
        fold="all",
        overrides=overrides,
        init_from=untrained_run_dir,
        freeze_encoder=True,
        quiet=True,
    )
    assert result.steps == 3
    plan = ClassifierPlan.load(run)
    assert plan.encoder == "unet" and "--init-from" in plan.decisions[1].reason
    trained = _weights(run / "fold_all/model_latest.safetensors")
    encoder = [k for k in seg if k.startswith("encoder.")]
    assert encoder and {k for k in trained if k.startswith("encoder.")} == set(encoder)
    assert all(torch.equal(trained[k], seg[k]) for k in encoder)  # frozen: unchanged
    details = json.loads((run / "manifest.json").read_text())["folds"]["all"]["init_from"]
    assert details["loaded"] == len(encoder) and details["frozen_parameters"] > 0
    flat = make_dataset(tmp_path / "Dataset9_Spots2d")
    with pytest.raises(ConfigError, match="a 3D run, and the images are 2D"):
        train_classifier(flat, tmp_path / "r2", epochs=1, init_from=untrained_run_dir)
    with pytest.raises(ConfigError, match="starts from a run folder"):
        train_classifier(flat, tmp_path / "r3", epochs=1, init_from=tmp_path)
