"""Spending the time a capped training leaves over: further models with the next seeds.

On a small dataset the planner caps a minutes budget's steps (``max_iterations``: more steps
overfit), so the first model can finish with most of the budget left. That time trains more
models on the same cases with the next seeds, each as long as the first (the last one may
end on the clock a little short of it), into ``fold_K_1``, ``fold_K_2``, ... beside
``fold_K`` (``fold_all_1``, ... for the model on every case); `medseg predict` averages
every ``fold_*`` model of a run folder. A fold with validation cases then predicts them
with its models averaged (`validate_ensemble`), so that cross-validation, `medseg
postprocess --auto` and `medseg calibrate` judge what `medseg predict` runs. A distributed
run (torchrun) trains them the same way, every rank following rank 0's clock. Measured in
docs/train.md#ensemble.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch

from medseg.folds import member_dirs
from medseg.metrics import Evaluation
from medseg.progress import log_line
from medseg.runs import Plan, network_for, trained_networks
from medseg.train import distributed
from medseg.train.sampler import TrainingCase
from medseg.train.trainer import TrainResult
from medseg.train.validation import predict_and_score

#: A further model starts only if the time left is this share of what the first took; a
#: shorter one ends on the clock, its learning rate decayed over the time it had. At 1.05 a
#: 10-minute run on 40 Hippocampus cases left out its third model with about 212 of the 222
#: seconds it asked for; another run of the same plan trained it.
MARGIN = 0.8


def capped_early(plan: Plan, result: TrainResult) -> bool:
    """Whether a minutes budget ended at the plan's step cap rather than on the clock."""
    if plan.minutes is None or plan.max_iterations is None or not result.history:
        return False
    return result.history[-1].iterations >= plan.max_iterations


def train_members(
    train_one: Callable[[Plan, Path], TrainResult],
    plan: Plan,
    first_dir: Path,
    seconds_per_model: float,
    seconds_left: float,
    quiet: bool = True,
) -> list[Path]:
    """Train models 1, 2, ... of the fold whose first model is in ``first_dir`` (seed
    ``plan.seed + k``, into ``{first_dir}_k``) with ``train_one(plan, folder)`` while
    ``seconds_left`` holds ``MARGIN`` of the first's time (``seconds_per_model``) and the
    plan allows (``max_members`` in all); under torchrun rank 0's time decides for every
    rank. A model cut short by Ctrl-C is removed, so that `medseg predict` never averages a
    half-trained one. Returns the folders trained."""
    trained: list[Path] = []
    for k in range(1, plan.max_members):
        # under torchrun every rank follows rank 0's clock: they train the same models
        if distributed.from_rank_zero(seconds_left) < MARGIN * seconds_per_model:
            break
        fold_dir = first_dir.with_name(f"{first_dir.name}_{k}")
        member = plan.model_copy(update={"seed": plan.seed + k, "minutes": seconds_left / 60})
        log_line(f"time left for another model: {fold_dir.name} (seed {member.seed})", quiet)
        start = time.perf_counter()
        try:
            train_one(member, fold_dir)
        except KeyboardInterrupt:
            shutil.rmtree(fold_dir, ignore_errors=True)
            raise
        seconds_left -= time.perf_counter() - start
        trained.append(fold_dir)
    return trained


def remove_members(run_dir: Path, fold: int | str) -> None:
    """Delete the further models of an earlier fold ``fold`` (a new one is being trained)."""
    for folder in member_dirs(run_dir, fold):
        shutil.rmtree(folder)


def validate_ensemble(
    plan: Plan,
    model_dirs: list[Path],
    cases: list[TrainingCase],
    device: torch.device,
    out_dir: Path,
) -> Evaluation:
    """Predict and score the validation ``cases`` with the models of ``model_dirs`` averaged
    in every window, as `medseg predict` averages them (each model's best weights, in the
    training's precision), into ``out_dir``, which is replaced only once every case is
    written."""
    run_dir = model_dirs[0].parent
    networks = trained_networks(run_dir, model_dirs, lambda: network_for(plan), device)
    partial = out_dir.with_name(f"{out_dir.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    dtype = plan.training_dtype(device)
    evaluation = predict_and_score(networks, plan, cases, device, partial, dtype)
    shutil.rmtree(out_dir, ignore_errors=True)
    partial.rename(out_dir)
    return evaluation
