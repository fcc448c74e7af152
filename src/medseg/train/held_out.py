"""How long to train on every case, read from a validation curve (``Plan.held_out_stop``).

A small dataset overfits after a number of steps that depends on the data: 40 Hippocampus
cases (40×56×40 patches) were still fine after 1,500 steps, ISBI's 24 images (384² patches)
peaked after 500 (docs/plan.md#steps-per-case). A model trained on every case has no validation
cases to stop it at its peak. With ``held_out_stop``, a minutes budget and no ``--fold``, a
search model trains first on fold 0's training cases (``fold_all_search``), validated on
fold 0's validation cases, for at most ``SEARCH_SHARE`` of the budget, and stops once its
smoothed validation Dice has not improved for ``PATIENCE`` validations and has fallen
``DECLINE`` under its best. The model on every case (``fold_all``) then trains for the steps
of the search's best epoch if its curve fell that far after it, else as long as the search
trained (`chosen_steps`), scaled by the number of cases (the planner's cap, too, grows with
the data), and the time left trains further models that long (`medseg.train.ensemble`). The
search model keeps the weights of its best epoch and joins the ensemble that `medseg predict`
averages. Measured in docs/train.md#held-out-stop.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from medseg.errors import RunFolderError, located
from medseg.io import write_text_atomic
from medseg.progress import log_line
from medseg.runs import Plan
from medseg.train import distributed
from medseg.train.sampler import TrainingCase
from medseg.train.trainer import TrainResult

Split = tuple[list[TrainingCase], list[TrainingCase]]

#: The search model's folder beside ``fold_all``.
SEARCH_DIR = "fold_all_search"
#: At most this share of the budget goes to the search model.
SEARCH_SHARE = 0.5
#: Validations without a better smoothed Dice that end the search ...
PATIENCE = 3
#: ... once the smoothed Dice has also fallen this far under its best: a curve that is flat
#: while the learning rate is still high climbs again as it decays (docs/train.md#held-out-stop).
DECLINE = 0.002
#: What the search found, for a resumed ``fold_all`` (in the search model's folder).
FOUND_FILE = "search.json"
#: The search runs only with at least this many cases (fold 0 validates a fifth of them).
MIN_CASES = 10


def search_affordable(affordable_steps: int, cap: int) -> bool:
    """Whether the search's share of a budget that affords ``affordable_steps`` reaches the
    whole step ``cap``. Only then can the search run to its peak (or its own, smaller cap)
    and leave the model on every case as long: on a shorter budget it ends on the clock
    while still rising and splits the steps between two shorter models, which cost 0.003
    Dice on 160 Hippocampus cases at 10 minutes (docs/train.md#held-out-stop)."""
    return affordable_steps * SEARCH_SHARE >= cap


def search_wanted(plan: Plan, cases: int) -> bool:
    """Whether a minutes budget on ``cases`` cases searches its step count first."""
    return plan.held_out_stop and plan.minutes is not None and cases >= MIN_CASES


def cap_for_cases(plan: Plan, cases: int, all_cases: int) -> Plan:
    """The plan for a model that trains on ``cases`` of the ``all_cases`` its step cap was
    set for: the cap scaled to that share (it counts patches per share of the data trained
    on, docs/plan.md#steps-per-case), as for a fold's training cases.

    Examples
    --------
    >>> plan = Plan.model_construct(max_iterations=7000)
    >>> cap_for_cases(plan, 160, 200).max_iterations
    5600
    """
    if plan.max_iterations is None or cases >= all_cases:
        return plan
    cap = max(1, round(plan.max_iterations * cases / all_cases))
    return plan.model_copy(update={"max_iterations": cap})


def search_plan(plan: Plan, search_cases: int, all_cases: int) -> Plan:
    """The search model's plan: ``SEARCH_SHARE`` of the budget, the step cap scaled to its
    share of the cases, and the early stop."""
    assert plan.minutes is not None
    return cap_for_cases(plan, search_cases, all_cases).model_copy(
        update={
            "minutes": plan.minutes * SEARCH_SHARE,
            "early_stop_patience": PATIENCE,
            "early_stop_decline": DECLINE,
            "held_out_stop": False,
        }
    )


def best_steps(result: TrainResult) -> int:
    """The steps trained at the search's best epoch (its last without validation)."""
    by_epoch = {r.epoch: r.iterations for r in result.history}
    return by_epoch.get(result.best_epoch, result.history[-1].iterations)


def chosen_steps(result: TrainResult, decline: float = DECLINE) -> int:
    """The steps the models on every case train, from the search's ``result``: its best
    epoch's where the smoothed validation Dice then fell ``decline`` under that best (a peak,
    past which more steps overfit), else its last epoch's. A curve that stays within
    ``decline`` of its best, to the search's cap or its clock, is a plateau within noise, as
    for the early stop, and no evidence that longer overfits (docs/train.md#held-out-stop)."""
    validated = [r.val_dice_smoothed for r in result.history if not math.isnan(r.val_dice_smoothed)]
    if validated and result.best_val_dice - validated[-1] >= decline:
        return best_steps(result)
    return result.history[-1].iterations


def final_plan(
    plan: Plan, steps: int, search_cases: int, all_cases: int, minutes_left: float
) -> Plan:
    """The plan of the models on every case: the search's ``steps`` scaled from its cases to
    all of them (never beyond the plan's cap), in the time left."""
    scaled = max(1, round(steps * all_cases / search_cases))
    if plan.max_iterations is not None:
        scaled = min(scaled, plan.max_iterations)
    return plan.model_copy(update={"max_iterations": scaled, "minutes": max(minutes_left, 1e-3)})


def remove_search(run_dir: Path) -> None:
    """Delete an earlier run's search model (a new ``fold_all`` is being trained)."""
    shutil.rmtree(run_dir / SEARCH_DIR, ignore_errors=True)


def search_then_plan(
    train_one: Callable[[Plan, Path, Split], TrainResult],
    plan: Plan,
    search_split: Split,
    all_cases: int,
    run_dir: Path,
    quiet: bool = True,
) -> tuple[Plan, TrainResult]:
    """Train the search model with ``train_one(plan, folder, (training, validation))``;
    return the plan of the models on every case, and the search's result. Under torchrun
    rank 0's validation and clock decide for every rank."""
    assert plan.minutes is not None
    started = time.perf_counter()
    searched = len(search_split[0])
    log_line(f"{SEARCH_DIR}: fold 0 finds how long {all_cases} cases can train", quiet)
    result = train_one(search_plan(plan, searched, all_cases), run_dir / SEARCH_DIR, search_split)
    spent = distributed.from_rank_zero(time.perf_counter() - started)
    best = int(distributed.from_rank_zero(best_steps(result)))
    steps = int(distributed.from_rank_zero(chosen_steps(result)))
    final = final_plan(plan, steps, searched, all_cases, plan.minutes - spent / 60)
    if distributed.current_ranks().is_main:
        found = {"best_steps": best, "chosen_steps": steps, "search_cases": searched,
                 "all_cases": all_cases, "max_iterations": final.max_iterations,
                 "minutes": final.minutes}  # fmt: skip
        write_text_atomic(run_dir / SEARCH_DIR / FOUND_FILE, json.dumps(found, indent=1))
    after = "" if steps == best else f", within {DECLINE} of it to {steps}"
    log_line(
        f"fold 0 validated best after {best} steps{after}: every case trains "
        f"{final.max_iterations}",
        quiet,
    )
    return final, result


def resumed_plan(plan: Plan, run_dir: Path) -> Plan:
    """The plan a resumed ``fold_all`` continues with: the steps and minutes its search chose
    (the plan itself when it had no search)."""
    path = run_dir / SEARCH_DIR / FOUND_FILE
    if not plan.held_out_stop or not path.is_file():
        return plan
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
        update = {"max_iterations": found["max_iterations"], "minutes": found["minutes"]}
        return Plan.model_validate({**plan.model_dump(), **update})
    except (ValueError, KeyError, TypeError) as exc:  # pydantic's errors are ValueErrors
        raise RunFolderError(located(path, "is not a search record medseg wrote")) from exc
