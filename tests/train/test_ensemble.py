"""The time a capped budget leaves over trains further models (fold "all" only)."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from medseg.datasets.phantom import write_phantom_dataset
from medseg.infer import load_trained_model
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
        _recording_trainer(100.0, calls, fake_clock), plan, tmp_path, 100.0, 290.0
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
    ensemble.train_members(_recording_trainer(100.0, calls, fake_clock), plan, tmp_path, 100, 79)
    assert calls == []  # 79 s are under 80 % of a model


def test_max_members_bounds_the_ensemble(tmp_path, fake_clock):
    calls: list = []
    plan = _plan(max_members=2)
    ensemble.train_members(_recording_trainer(10.0, calls, fake_clock), plan, tmp_path, 10, 1e6)
    assert [name for _, name, _ in calls] == ["fold_all_1"]
    calls.clear()
    ensemble.train_members(
        _recording_trainer(10.0, calls, fake_clock), _plan(max_members=1), tmp_path, 10, 1e6
    )
    assert calls == []


def test_a_model_cut_short_by_ctrl_c_is_removed(tmp_path, fake_clock):
    def interrupted(plan: Plan, fold_dir: Path) -> TrainResult:
        fold_dir.mkdir()
        (fold_dir / "model_latest.safetensors").write_bytes(b"half-trained")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ensemble.train_members(interrupted, _plan(), tmp_path, 1.0, 100.0)
    assert not (tmp_path / "fold_all_1").exists()


def test_member_dirs_are_numbered_folders_only(tmp_path):
    for name in ("fold_all", "fold_all_10", "fold_all_2", "fold_all_x", "fold_0"):
        (tmp_path / name).mkdir()
    (tmp_path / "fold_all_3").write_text("a file")
    assert [p.name for p in ensemble.member_dirs(tmp_path)] == ["fold_all_2", "fold_all_10"]


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
