"""Fold 0's validation curve chooses how long every case trains (``Plan.held_out_stop``)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from medseg.datasets import open_dataset
from medseg.datasets.phantom import write_phantom_dataset
from medseg.errors import RunFolderError
from medseg.infer import load_trained_model
from medseg.io import read_image, write_image
from medseg.loop import EpochRecord
from medseg.runs import Plan
from medseg.train import TrainOptions, auto_config, held_out, train_run
from medseg.train.cross_validation import summarise_cross_validation
from medseg.train.trainer import Trainer, TrainResult


def _plan(**update) -> Plan:
    """A plan with just the fields the search reads."""
    fields = {"minutes": 30.0, "max_iterations": 1000, "held_out_stop": True, "seed": 0}
    return Plan.model_construct(**{**fields, **update})


def _result(best_epoch: int, steps: list[int], smoothed: list[float] | None = None) -> TrainResult:
    """A search's result: epochs of ``steps`` with ``smoothed`` validation Dice (nan: none)."""
    smoothed = smoothed or [math.nan] * len(steps)
    history = [
        EpochRecord(e, s, float(e), 0.01, 0.5, 0.8, val_dice_smoothed=d)
        for e, (s, d) in enumerate(zip(steps, smoothed, strict=True), start=1)
    ]
    best = smoothed[best_epoch - 1] if best_epoch else -1.0
    return TrainResult(Path("x"), len(steps), best_epoch, best, 1.0, history)


def test_the_search_takes_half_the_budget_and_a_cap_scaled_to_its_cases():
    search = held_out.search_plan(_plan(), search_cases=32, all_cases=40)
    assert search.minutes == 30.0 * held_out.SEARCH_SHARE
    assert search.max_iterations == 800  # 1,000 steps for 40 cases: 800 for 32
    assert search.early_stop_patience == held_out.PATIENCE
    assert search.early_stop_decline == held_out.DECLINE > 0  # a plateau does not end it
    assert not search.held_out_stop  # the search model does not search again
    assert held_out.search_plan(_plan(max_iterations=None), 8, 10).max_iterations is None


def test_a_model_on_a_share_of_the_cases_gets_that_share_of_the_cap():
    assert held_out.cap_for_cases(_plan(), 160, 200).max_iterations == 800
    assert held_out.cap_for_cases(_plan(), 1, 3000).max_iterations == 1  # never zero
    assert held_out.cap_for_cases(_plan(), 40, 40).max_iterations == 1000  # every case
    assert held_out.cap_for_cases(_plan(max_iterations=None), 8, 10).max_iterations is None


def test_every_case_trains_the_searched_steps_scaled_to_all_cases_within_the_cap():
    final = held_out.final_plan(_plan(), steps=400, search_cases=32, all_cases=40, minutes_left=12)
    assert (final.max_iterations, final.minutes) == (500, 12)
    assert held_out.final_plan(_plan(), 900, 32, 40, 12).max_iterations == 1000  # the cap
    uncapped = held_out.final_plan(_plan(max_iterations=None), 900, 32, 40, 12)
    assert uncapped.max_iterations == 1125


def test_the_best_epochs_steps_are_read_from_the_history():
    assert held_out.best_steps(_result(2, [100, 200, 300, 400])) == 200
    # no validated epoch (best epoch 0): the steps trained
    assert held_out.best_steps(_result(0, [100, 200])) == 200


def test_every_case_trains_past_the_best_epoch_unless_the_curve_fell_after_it():
    steps = [100, 200, 300, 400, 500]
    peak = [0.80, 0.88, 0.877, 0.875, 0.870]  # 0.010 under the best at the end: overfitting
    assert held_out.chosen_steps(_result(2, steps, peak)) == 200
    plateau = [0.80, 0.88, 0.879, 0.8785, 0.8790]  # never DECLINE under the best: noise
    assert held_out.chosen_steps(_result(2, steps, plateau)) == 500
    rising = [0.80, 0.85, 0.86, 0.87, 0.88]
    assert held_out.chosen_steps(_result(5, steps, rising)) == 500
    # validated every second epoch: the last validation decides, and the steps trained count
    sparse = [0.80, math.nan, 0.88, math.nan, 0.85]
    assert held_out.chosen_steps(_result(3, steps, sparse)) == 300
    assert held_out.chosen_steps(_result(0, [100, 200])) == 200  # no validation at all


def test_the_search_needs_the_flag_a_minutes_budget_and_ten_cases():
    assert held_out.search_wanted(_plan(), held_out.MIN_CASES)
    assert not held_out.search_wanted(_plan(), held_out.MIN_CASES - 1)
    assert not held_out.search_wanted(_plan(held_out_stop=False), 40)
    assert not held_out.search_wanted(_plan(minutes=None), 40)


def test_the_planner_asks_for_a_search_only_where_its_half_reaches_the_cap():
    # 40 Hippocampus cases at 10 minutes (3,557 steps, cap 1,365) search; 160 cases at 10
    # minutes (3,675 steps, cap 5,632) and 40 cases at 5 (1,707) train one model
    assert held_out.search_affordable(3557, 1365)
    assert not held_out.search_affordable(3675, 5632)
    assert not held_out.search_affordable(1707, 1365)
    assert held_out.search_affordable(2 * 1365, 1365)
    assert not held_out.search_affordable(2 * 1365 - 1, 1365)


def test_a_resumed_model_keeps_the_searched_steps_and_refuses_a_bad_record(tmp_path):
    plan = Plan.model_validate(
        {**_complete_plan().model_dump(), "held_out_stop": True, "minutes": 30}
    )
    assert held_out.resumed_plan(plan, tmp_path) is plan  # no search: the plan itself
    record = tmp_path / held_out.SEARCH_DIR / held_out.FOUND_FILE
    record.parent.mkdir()
    record.write_text(json.dumps({"max_iterations": 450, "minutes": 14.5}))
    resumed = held_out.resumed_plan(plan, tmp_path)
    assert (resumed.max_iterations, resumed.minutes) == (450, 14.5)
    for bad in ("{", json.dumps({"minutes": 3}), json.dumps({"max_iterations": -1, "minutes": 3})):
        record.write_text(bad)
        with pytest.raises(RunFolderError, match="search.json"):
            held_out.resumed_plan(plan, tmp_path)


def _complete_plan() -> Plan:
    return auto_config(
        shapes=[(36, 50, 35)], spacings=[(1, 1, 1)], in_channels=1, label_values=[0, 1],
        label_names=["background", "x"], channel_names=["MR"], file_ending=".nii.gz",
    )  # fmt: skip


@pytest.mark.slow
def test_training_stops_once_validation_has_not_improved_for_the_patience(tmp_path, monkeypatch):
    data = write_phantom_dataset(tmp_path / "ds", n_train=6, n_test=1, dim=2, shape=(48, 48))
    # scripted validation Dice: the smoothed score (0.5 each) peaks at epoch 3
    scores = iter([0.5, 0.7, 0.8, 0.6, 0.55, 0.5, 0.9, 0.9, 0.9, 0.9])
    monkeypatch.setattr(Trainer, "validation_step", lambda self: {1: next(scores)})
    settings = {"early_stop_patience": 3}
    options = TrainOptions(epochs=10, iterations_per_epoch=1, quiet=True, settings=settings)
    result = train_run(data, tmp_path / "run", options, fold=0)
    assert result.best_epoch == 3
    assert [r.epoch for r in result.history] == [1, 2, 3, 4, 5, 6]  # 3 worse, then stopped


@pytest.mark.slow
def test_a_plateau_does_not_stop_training_until_the_dice_falls_by_the_decline(
    tmp_path, monkeypatch
):
    data = write_phantom_dataset(tmp_path / "ds", n_train=6, n_test=1, dim=2, shape=(48, 48))
    # flat for four validations (patience 3 would stop at epoch 4), then falling
    scores = iter([0.8, 0.8, 0.8, 0.8, 0.8, 0.79, 0.7, 0.6, 0.5, 0.5, 0.5, 0.5])
    monkeypatch.setattr(Trainer, "validation_step", lambda self: {1: next(scores)})
    settings = {"early_stop_patience": 3, "early_stop_decline": 0.05}
    options = TrainOptions(epochs=12, iterations_per_epoch=1, quiet=True, settings=settings)
    result = train_run(data, tmp_path / "run", options, fold=0)
    smoothed = [r.val_dice_smoothed for r in result.history]
    assert result.best_epoch == 1 and len(smoothed) > 4
    assert 0.8 - smoothed[-1] >= 0.05  # stopped at the first validation that far under
    assert all(0.8 - s < 0.05 for s in smoothed[:-1])


@pytest.mark.slow
def test_fold_zero_chooses_the_steps_of_every_case_and_joins_the_ensemble(tmp_path, monkeypatch):
    data = write_phantom_dataset(tmp_path / "ds", n_train=10, n_test=1, dim=2, shape=(48, 48))
    # fold 0's scripted validation peaks (smoothed) after its third epoch of 2 steps
    scores = iter([0.5, 0.7, 0.8, 0.6, 0.55, 0.5] + [0.1] * 20)
    monkeypatch.setattr(Trainer, "validation_step", lambda self: {1: next(scores)})
    settings = {"held_out_stop": True, "max_iterations": 40, "max_members": 1,
                "validation_share": 1.0}  # fmt: skip
    options = TrainOptions(minutes=2, iterations_per_epoch=2, quiet=True, settings=settings)
    run = tmp_path / "run"
    (run / held_out.SEARCH_DIR).mkdir(parents=True)
    (run / held_out.SEARCH_DIR / "stale").write_text("an earlier run's search")
    result = train_run(data, run, options, fold="all")
    assert result.search is not None and result.search.best_epoch == 3
    assert [r.iterations for r in result.search.history] == [2, 4, 6, 8, 10, 12]
    found = json.loads((run / held_out.SEARCH_DIR / held_out.FOUND_FILE).read_text())
    # 6 steps on fold 0's 8 training cases: 8 (rounded from 7.5) on all 10
    assert (found["best_steps"], found["search_cases"], found["all_cases"]) == (6, 8, 10)
    assert found["chosen_steps"] == 6  # the smoothed Dice fell well after its best
    assert found["max_iterations"] == 8
    assert result.history[-1].iterations == 8
    assert (run / held_out.SEARCH_DIR / "validation" / "summary.json").is_file()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["folds"]["all_search"]["best_epoch"] == 3
    assert manifest["folds"]["all"]["iterations"] == 8
    assert len(load_trained_model(run, device="cpu").networks) == 2  # search + every case
    assert not (run / held_out.SEARCH_DIR / "stale").exists()  # an old search is dropped
    # --resume continues fold "all" with the searched steps, not the plan's cap of 40
    again = TrainOptions(minutes=2, iterations_per_epoch=2, quiet=True, settings=settings,
                         resume=True)  # fmt: skip
    assert train_run(data, run, again, fold="all").history[-1].iterations == 8


def test_the_cross_validation_summary_ignores_the_searchs_validation(tmp_path):
    data = write_phantom_dataset(tmp_path / "ds", n_train=2, n_test=0, dim=2, shape=(16, 16))
    run = tmp_path / "run"
    for folder, right in (("fold_0", True), (held_out.SEARCH_DIR, False)):
        (run / folder / "validation").mkdir(parents=True)
        label = read_image(data / "labelsTr" / "phantom_000.png")
        array = label.array if right else np.zeros_like(label.array)
        write_image(label.with_array(array), run / folder / "validation" / "phantom_000.png")
    summary = summarise_cross_validation(run, open_dataset(data)).summary
    assert summary["mean_dice"] == pytest.approx(1.0)  # fold 0's, not the search's
