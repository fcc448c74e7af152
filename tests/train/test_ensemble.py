"""The time a capped budget leaves over trains further models, on every case or in a fold."""

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg.datasets import open_dataset, read_training_case
from medseg.datasets.phantom import write_phantom_dataset
from medseg.folds import cross_validation_folders
from medseg.infer import load_trained_model
from medseg.infer.predict import predict_labels
from medseg.io import read_image
from medseg.runs import Plan
from medseg.train import TrainOptions, ensemble, train_run
from medseg.train.trainer import TrainResult


def _plan(**update) -> Plan:
    """A plan with just the budget fields `train_members` reads."""
    return Plan.model_construct(**{"minutes": 10, "max_iterations": 100, **update})


def _recording_trainer(seconds_each: float, calls: list, clock: list):
    def train_one(plan: Plan, fold_dir: Path) -> TrainResult:
        clock[0] += seconds_each
        calls.append((plan.seed, fold_dir.name, plan.minutes))
        return TrainResult(fold_dir, 1, 1, 0.0, seconds_each, [])

    return train_one


@pytest.fixture
def fake_clock(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(ensemble.time, "perf_counter", lambda: clock[0])
    return clock


def test_the_time_left_trains_models_with_the_next_seeds(tmp_path, fake_clock):
    calls: list = []
    plan = _plan(seed=7)
    trained = ensemble.train_members(
        _recording_trainer(100.0, calls, fake_clock), plan, tmp_path / "fold_all", 100.0, 290.0
    )
    # a model starts while the time left holds 80 % of the first's 100 s: 290 s hold three
    # more (the third with 90 s), not a fourth
    assert [name for _, name, _ in calls] == ["fold_all_1", "fold_all_2", "fold_all_3"]
    assert [seed for seed, _, _ in calls] == [8, 9, 10]
    # each model's own budget is the time left when it starts, so it ends in time (the
    # third on the clock, a little short of the first's steps)
    assert [round(m * 60) for _, _, m in calls] == [290, 190, 90]
    assert trained == [tmp_path / f"fold_all_{k}" for k in (1, 2, 3)]
    calls.clear()
    first = tmp_path / "fold_3"  # a numbered fold's further models are fold_3_1, ...
    ensemble.train_members(_recording_trainer(100.0, calls, fake_clock), plan, first, 100, 80)
    assert [name for _, name, _ in calls] == ["fold_3_1"]
    calls.clear()
    ensemble.train_members(_recording_trainer(100.0, calls, fake_clock), plan, first, 100, 79)
    assert calls == []  # 79 s are under 80 % of a model


def test_max_members_bounds_the_ensemble(tmp_path, fake_clock):
    calls: list = []
    plan = _plan(max_members=2)
    first = tmp_path / "fold_all"
    ensemble.train_members(_recording_trainer(10.0, calls, fake_clock), plan, first, 10, 1e6)
    assert [name for _, name, _ in calls] == ["fold_all_1"]
    calls.clear()
    ensemble.train_members(
        _recording_trainer(10.0, calls, fake_clock), _plan(max_members=1), first, 10, 1e6
    )
    assert calls == []


def test_a_model_cut_short_by_ctrl_c_is_removed(tmp_path, fake_clock):
    def interrupted(plan: Plan, fold_dir: Path) -> TrainResult:
        fold_dir.mkdir()
        (fold_dir / "model_latest.safetensors").write_bytes(b"half-trained")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ensemble.train_members(interrupted, _plan(), tmp_path / "fold_all", 1.0, 100.0)
    assert not (tmp_path / "fold_all_1").exists()


@pytest.mark.slow
def test_a_capped_budget_on_every_case_leaves_an_ensemble_that_predict_averages(
    tmp_path, monkeypatch
):
    data = write_phantom_dataset(tmp_path / "ds", n_train=6, n_test=1, dim=2, shape=(48, 48))
    # any time left is enough: the test does not depend on the machine's speed
    monkeypatch.setattr(ensemble, "MARGIN", 0.0)
    settings = {"max_iterations": 4, "max_members": 3}
    options = TrainOptions(minutes=1, iterations_per_epoch=2, quiet=True, settings=settings)
    run = tmp_path / "run"
    result = train_run(data, run, options, fold="all")
    assert result.members == [run / "fold_all_1", run / "fold_all_2"]
    manifest = json.loads((run / "manifest.json").read_text())
    models = [manifest["folds"][k] for k in ("all", "all_1", "all_2")]
    assert [(m["iterations"], m["seed"]) for m in models] == [(4, 0), (4, 1), (4, 2)]
    assert manifest["seed"] == 0  # the run's seed, not the last model's
    model = load_trained_model(run, device="cpu")
    assert len(model.networks) == 3
    first, second = (next(n.parameters()) for n in model.networks[:2])
    assert not torch.equal(first, second)  # other seeds, other models
    # training fold "all" anew in the same folder drops the old ensemble first
    shutil.rmtree(run / "fold_all")
    again = TrainOptions(
        minutes=1, iterations_per_epoch=2, quiet=True, settings=settings | {"max_members": 1}
    )
    assert train_run(data, run, again, fold="all").members == []
    assert sorted(p.name for p in run.glob("fold_*")) == ["fold_all"]


@pytest.mark.slow
def test_a_capped_fold_validates_its_models_averaged_as_predict_runs_them(tmp_path, monkeypatch):
    data = write_phantom_dataset(tmp_path / "ds", n_train=6, n_test=1, dim=2, shape=(48, 48))
    monkeypatch.setattr(ensemble, "MARGIN", 0.0)  # any time left is enough
    settings = {"max_iterations": 30, "max_members": 3, "mixed_precision": False}
    options = TrainOptions(minutes=1, iterations_per_epoch=10, quiet=True, settings=settings)
    run = tmp_path / "run"
    result = train_run(data, run, options, fold=0)
    assert result.members == [run / "fold_0_1", run / "fold_0_2"]
    # the further models score nothing of their own: the fold's validation is theirs averaged
    assert not (run / "fold_0_1" / "validation").exists()
    assert not (run / "fold_0" / "validation.partial").exists()
    assert cross_validation_folders(run) == [run / "fold_0" / "validation"]
    record = json.loads((run / "manifest.json").read_text())["folds"]
    assert [record[k]["seed"] for k in ("0", "0_1", "0_2")] == [0, 1, 2]
    # the cap counts the data trained on: fold 0 trains 4 of the 6 cases, so 20 of 30 steps
    assert len(json.loads((run / "splits.json").read_text())[0]["train"]) == 4
    assert [record[k]["iterations"] for k in ("0", "0_1", "0_2")] == [20, 20, 20]
    assert record["0"]["members"] == ["fold_0_1", "fold_0_2"]
    assert record["0"]["final_validation_mean_dice"] == result.validation.summary["mean_dice"]
    assert record["0"]["first_model_validation_mean_dice"] is not None
    # each validation label map is what medseg predict makes with the fold's three models
    dataset = open_dataset(data)
    model = load_trained_model(run, "cpu", folds=[0, "0_1", "0_2"], precision="float32")
    ending = dataset.spec.file_ending
    written = sorted((run / "fold_0" / "validation").glob(f"*{ending}"))
    assert len(written) == len(json.loads((run / "splits.json").read_text())[0]["validation"])
    for path in written:
        case = dataset.case(path.name.removesuffix(ending))
        image, _ = read_training_case(case, dataset.spec)
        labels, _ = predict_labels(model, image)
        assert np.array_equal(labels.array, read_image(path).array)
    assert any(read_image(p).array.any() for p in written)  # not all background
    # --resume adds no model, and the fold's validation still averages those it has
    resumed = train_run(data, run, dataclasses.replace(options, resume=True), fold=0)
    assert resumed.members == result.members
    record = json.loads((run / "manifest.json").read_text())["folds"]["0"]
    assert record["resumed"] and record["members"] == ["fold_0_1", "fold_0_2"]
    for path in written:
        case = dataset.case(path.name.removesuffix(ending))
        labels, _ = predict_labels(model, read_training_case(case, dataset.spec)[0])
        assert np.array_equal(labels.array, read_image(path).array)
    # training fold 0 anew drops its old further models first
    shutil.rmtree(run / "fold_0")
    again = TrainOptions(
        minutes=1, iterations_per_epoch=10, quiet=True, settings=settings | {"max_members": 1}
    )
    assert train_run(data, run, again, fold=0).members == []
    assert sorted(p.name for p in run.glob("fold_*")) == ["fold_0"]
